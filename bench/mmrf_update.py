#!/usr/bin/env python3
"""MMRF's update in PyTorch, written the way a PyTorch engineer would, for a side-by-side
speed check against mmrf's update on burn.

Not part of CI. It builds MMRF's networks at their default sizes (the item and state
encoders, seven attentive agents whose main actor reads 448 inputs, the score-list
critics with their reward heads, and the feedback simulator with its own twin head) and
runs the update of `crates/train/src/actor_critic/trainer.rs` on random inputs of the
shapes `mmrf bench train-step` prints:

1. the simulator labels the non-impression samples (no gradient, the twin head under a
   Monte-Carlo dropout mask) and eq. 6 turns the two heads into labels;
2. the target networks value the next states: the target actors' score lists over the
   next requests' candidates, valued by the target critics;
3. the critics (with the encoders) regress on the TD targets, Huber's loss for WatchTime,
   and the reward heads on the items' feedback; one fused Adam step;
4. the actors ascend eq. 4 through frozen critics, plus the pull toward the logged items;
   one fused Adam step;
5. a soft update of the target networks (one `_foreach_lerp_`);
6. every 4 updates, a refit of the simulator (both heads, the twin through dropout).

Layers that read the same input are one matmul (the critics' state images, projection
and reward heads; the attention's three projections). `--params` checks the networks'
parameter counts against the `params` line `mmrf bench train-step` prints, so the two
sides train the same networks. Usage:

    pip install torch numpy     # CPU is enough
    mmrf bench train-step       # prints updates/s, a `params` line and a `shapes` line
    python3 bench/mmrf_update.py --threads 2 --params "<the params line>" <the shapes line's arguments>
"""

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

N, FEEDBACK, K, TABS = 7, 7, 6, 16
DIM, STATE, AGENT, HIDDEN, HEADS = 32, 64, 32, 64, 4
SIM_DIM, SIM_HIDDEN, SIM_HEAD, SIM_DROPOUT = 32, 32, 64, 0.2
LIST, TEMPERATURE, PULL, HUBER, GAMMA, TAU = 16, 0.1, 0.1, 3.0, 0.9, 0.01


def unit(x):
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + 1e-8)


class BatchedLinear(nn.Module):
    """N independent layers in one batched matmul: [N, B, i] -> [N, B, o]."""

    def __init__(self, n, i, o):
        super().__init__()
        k = 1.0 / i**0.5
        self.w = nn.Parameter(torch.empty(n, i, o).uniform_(-k, k))
        self.b = nn.Parameter(torch.empty(n, 1, o).uniform_(-k, k))

    def forward(self, x):
        return torch.baddbmm(self.b, x, self.w)


class ItemEncoder(nn.Module):
    def __init__(self, a, hidden, dim):
        super().__init__()
        self.id = nn.Embedding(a.n_videos, hidden)
        self.author = nn.Embedding(a.n_authors, hidden)
        self.tag = nn.Embedding(a.n_tags, hidden)
        self.features = nn.Linear(a.video_dim, hidden)
        self.out = nn.Linear(hidden, dim)

    def forward(self, ids, authors, tags, feats):
        h = self.id(ids) + self.author(authors) + self.tag(tags) + self.features(feats)
        return unit(self.out(F.relu(h)))


class StateEncoder(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.user = nn.Embedding(a.n_users, STATE)
        self.user_features = nn.Linear(a.user_dim, STATE)
        self.history = nn.Linear(DIM + FEEDBACK, STATE)
        self.hour = nn.Embedding(24, STATE)
        self.tab = nn.Embedding(TABS, STATE)
        self.position = nn.Linear(1, STATE)
        self.out = nn.Linear(STATE, STATE)

    def forward(self, x, hist):
        per = F.relu(self.history(torch.cat([hist, x["fb"]], 2)))
        m = x["mask"].unsqueeze(2)
        pooled = (per * m).sum(1) / m.sum(1).clamp_min(1.0)
        h = self.user(x["users"]) + self.user_features(x["uf"]) + pooled + self.hour(x["hour"]) + self.tab(x["tab"]) + self.position(x["pos"])
        return F.relu(self.out(F.relu(h)))


class Agents(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(STATE, N * AGENT)
        # W_q and W_k (no bias) and W_o (bias) read the same input: one matmul.
        self.qko = nn.Parameter(torch.empty(AGENT, 3 * AGENT).uniform_(-AGENT**-0.5, AGENT**-0.5))
        self.o_bias = nn.Parameter(torch.zeros(AGENT))
        self.aux_hidden = BatchedLinear(N - 1, 2 * AGENT, HIDDEN)
        self.aux_out = BatchedLinear(N - 1, HIDDEN, DIM)
        self.main_hidden = nn.Linear(AGENT * (1 + N) + (N - 1) * DIM, HIDDEN)
        self.main_out = nn.Linear(HIDDEN, DIM)
        self.register_buffer("eye", torch.eye(N) * 1e9)

    def forward(self, s):
        b = s.shape[0]
        h = F.relu(self.embed(s)).view(b, N, AGENT)
        q, k, o = (h @ self.qko).split(AGENT, 2)
        dk = AGENT // HEADS
        split = lambda x: x.view(b, N, HEADS, dk).transpose(1, 2)
        v = F.relu(o + self.o_bias)
        logits = split(q) @ split(k).transpose(2, 3) * dk**-0.5 - self.eye
        e = (logits.softmax(3) @ split(v)).transpose(1, 2).reshape(b, N, AGENT)
        aux_in = torch.cat([h[:, : N - 1], e[:, : N - 1]], 2).transpose(0, 1)
        aux = unit(self.aux_out(F.relu(self.aux_hidden(aux_in))))  # [N-1, B, D]
        main_in = torch.cat([h[:, N - 1], e.reshape(b, -1), aux.transpose(0, 1).reshape(b, -1)], 1)
        main = unit(self.main_out(F.relu(self.main_hidden(main_in))))
        return torch.cat([aux, main.unsqueeze(0)], 0)  # [N, B, D]


class Critics(nn.Module):
    """The score-list critics and the reward heads."""

    def __init__(self):
        super().__init__()
        # Every agent's state image T_i(s), the projection u(s) and the reward heads read s:
        # one matmul.
        self.from_state = nn.Linear(STATE, N * HIDDEN + DIM + N * DIM)
        self.item = nn.Linear(2 * DIM, HIDDEN, bias=False)
        self.out = BatchedLinear(N, HIDDEN, 1)

    def split(self, s):
        b = s.shape[0]
        t, u, r = self.from_state(s).split([N * HIDDEN, DIM, N * DIM], 1)
        return t.view(b, N, HIDDEN).transpose(0, 1), u, r.view(b, N, DIM)

    def q_items(self, parts, items):
        """q_i(s, e) [N, B, C] for items [B, C, D]."""
        t, u, _ = parts
        b, c, _ = items.shape
        g = self.item(torch.cat([items, items * u.unsqueeze(1)], 2))  # [B, C, hid]
        h = F.relu(t.unsqueeze(2) + g.unsqueeze(0))  # [N, B, C, hid]
        return self.out(h.reshape(N, b * c, HIDDEN)).view(N, b, c)

    def q_list(self, parts, a, cands, pad):
        """Q_i(s, a^i) [N, B] and log p [N, B, C] over each request's candidates."""
        logits = torch.einsum("nbd,bcd->nbc", a, cands) / TEMPERATURE + pad
        log_p = logits.log_softmax(2)
        return (log_p.exp() * self.q_items(parts, cands)).sum(2), log_p

    def item_rewards(self, parts, items):
        return items @ parts[2].transpose(1, 2)  # [B, K, N]


class Net(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.items = ItemEncoder(a, HIDDEN, DIM)
        self.state = StateEncoder(a)
        self.agents = Agents()
        self.critics = Critics()


class Simulator(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.items = ItemEncoder(a, SIM_HEAD, SIM_DIM)
        self.user = nn.Embedding(a.n_users, SIM_HIDDEN)
        self.user_features = nn.Linear(a.user_dim, SIM_HIDDEN)
        self.gru = nn.GRU(SIM_DIM + FEEDBACK, SIM_HIDDEN, batch_first=True)
        ctx = 2 * SIM_HIDDEN + SIM_DIM
        self.head = nn.Sequential(nn.Linear(ctx, SIM_HEAD), nn.ReLU(), nn.Linear(SIM_HEAD, N))
        self.twin = nn.Sequential(nn.Linear(ctx, SIM_HEAD), nn.ReLU(), nn.Linear(SIM_HEAD, N))

    def forward(self, x, hist, items, twin_mask=None):
        seq, _ = self.gru(torch.cat([hist, x["fb"]], 2))
        c = torch.cat([seq[:, -1], F.relu(self.user(x["users"]) + self.user_features(x["uf"]))], 1)
        z = torch.cat([c.unsqueeze(1).expand(-1, items.shape[1], -1), items], 2)
        zt = z * twin_mask if twin_mask is not None else F.dropout(z, SIM_DROPOUT, self.training)
        return torch.sigmoid(self.head(z)), torch.sigmoid(self.twin(zt))


def counts(net, sim):
    n = lambda m: sum(p.numel() for p in m.parameters())
    return {"items": n(net.items), "state": n(net.state), "agents": n(net.agents), "critics": n(net.critics), "simulator": n(sim)}


def check_params(line, net, sim):
    """Compare with `mmrf bench train-step`'s `params items=.. state=.. ...` line."""
    theirs = dict(kv.split("=") for kv in line.split() if "=" in kv)
    ours = counts(net, sim)
    bad = {k: (ours[k], int(theirs[k])) for k in ours if k in theirs and ours[k] != int(theirs[k])}
    missing = [k for k in ours if k not in theirs]
    if bad or missing:
        raise SystemExit(f"parameter counts differ from mmrf's (ours, mmrf's): {bad}; missing: {missing}")
    print("params match mmrf's: " + " ".join(f"{k}={v}" for k, v in ours.items()))


def main():
    p = argparse.ArgumentParser()
    for name, default in [("rows", 320), ("videos", 5000), ("user-dim", 60), ("video-dim", 100), ("n-users", 1000),
                          ("n-videos", 7388), ("n-authors", 2000), ("n-tags", 60), ("history", 20), ("steps", 40),
                          ("threads", 2), ("batch", 256), ("warmup", 5)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--params", help="the `params ...` line of `mmrf bench train-step`, to check against")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net, sim = Net(a), Simulator(a)
    if a.params:
        check_params(a.params, net, sim)
    target = Net(a)
    target.load_state_dict(net.state_dict())
    target.requires_grad_(False)
    critic_params = [*net.items.parameters(), *net.state.parameters(), *net.critics.parameters()]
    opt_c = torch.optim.Adam(critic_params, lr=1e-3, fused=True)
    opt_a = torch.optim.Adam(net.agents.parameters(), lr=1e-3, fused=True)
    opt_s = torch.optim.Adam(sim.parameters(), lr=2e-3, fused=True)
    online, shadow = list(net.parameters()), list(target.parameters())
    b, m, L, logged = a.rows, a.videos, a.history, a.batch
    samples = max(b - logged, 1)
    beta = torch.ones(N, 1)

    def state_inputs(rows):
        return {
            "users": torch.randint(0, a.n_users, (rows,)), "uf": torch.randn(rows, a.user_dim),
            "fb": torch.rand(rows, L, FEEDBACK), "mask": torch.ones(rows, L),
            "hour": torch.randint(0, 24, (rows,)), "tab": torch.randint(0, TABS, (rows,)), "pos": torch.rand(rows, 1),
        }

    def video_inputs():
        return (torch.randint(0, a.n_videos, (m,)), torch.randint(0, a.n_authors, (m,)),
                torch.randint(0, a.n_tags, (m,)), torch.randn(m, a.video_dim))

    def pick(e, *shape):
        return e[torch.randint(0, e.shape[0], (torch.Size(shape).numel(),))].view(*shape, -1)

    def regression(err):
        # Squared error for the six binary signals, 2·Huber for WatchTime (the last agent).
        return torch.cat([err[:-1].pow(2), 2 * F.huber_loss(err[-1:], torch.zeros_like(err[-1:]), reduction="none", delta=HUBER)], 0)

    phases = {}

    def lap(name, t0):
        t1 = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + t1 - t0
        return t1

    def update(step):
        t = time.perf_counter()
        x, xn, vids = state_inputs(b), state_inputs(b), video_inputs()
        pad = torch.zeros(b, LIST)
        # 1. The simulator labels the samples' items (no gradient, Monte-Carlo twin mask).
        with torch.no_grad():
            xs = state_inputs(samples)
            se = sim.items(*(v[: min(m, samples * (L + K))] for v in vids))
            mask = (torch.rand(samples, K, 2 * SIM_HIDDEN + SIM_DIM) >= SIM_DROPOUT) / (1 - SIM_DROPOUT)
            r, r2 = sim(xs, pick(se, samples, L), pick(se, samples, K), mask)
            r, r2 = r.clamp(1e-4, 1 - 1e-4), r2.clamp(1e-4, 1 - 1e-4)
            kl = r * (r / r2).log() + (1 - r) * ((1 - r) / (1 - r2)).log()
            labels = (r + r2) * 0.5 * torch.exp(5.0 * kl)
        t = lap("label", t)
        # 2. The target networks value the next states at the target actors' score lists.
        with torch.no_grad():
            te = target.items(*vids)
            sn = target.state(xn, pick(te, b, L))
            qn, _ = target.critics.q_list(target.critics.split(sn), target.agents(sn), pick(te, b, LIST), pad)
            y = torch.cat([torch.rand(b - samples, K, N), labels], 0).permute(2, 0, 1) + GAMMA * qn.unsqueeze(2)
        t = lap("target", t)
        # 3. The critics and encoders: TD error per item and the reward heads.
        e = net.items(*vids)
        s = net.state(x, pick(e, b, L))
        shown = pick(e, b, K)
        parts = net.critics.split(s)
        td = regression(net.critics.q_items(parts, shown) - y).mean()
        head = regression((net.critics.item_rewards(parts, shown) - torch.rand(b, K, N)).permute(2, 0, 1)).mean()
        opt_c.zero_grad(set_to_none=True)
        (td + head).backward()
        opt_c.step()
        t = lap("critic", t)
        # 4. The actors through frozen critics, pulled toward the logged items.
        sd, cands = s.detach(), pick(e.detach(), b, LIST)
        net.critics.requires_grad_(False)
        q, log_p = net.critics.q_list(net.critics.split(sd), net.agents(sd), cands, pad)
        nll = -log_p[:, :logged, :K].mean()
        actor = -(q * beta).mean() + PULL * nll
        opt_a.zero_grad(set_to_none=True)
        actor.backward()
        opt_a.step()
        net.critics.requires_grad_(True)
        t = lap("actor", t)
        # 5. Soft update of the target networks.
        with torch.no_grad():
            torch._foreach_lerp_(shadow, online, TAU)
        t = lap("soft_update", t)
        # 6. The simulator's refit on the batch's logged requests, every 4 updates.
        if (step + 1) % 4 == 0:
            xs = state_inputs(logged)
            se = sim.items(*vids)
            r, r2 = sim(xs, pick(se, logged, L), pick(se, logged, K))
            target_fb = torch.rand(logged, K, N)
            loss = (r - target_fb).pow(2).mean() + (r2 - target_fb).pow(2).mean()
            opt_s.zero_grad(set_to_none=True)
            loss.backward()
            opt_s.step()
        lap("simulator", t)

    for i in range(a.warmup):
        update(i)
    phases.clear()
    start = time.perf_counter()
    for i in range(a.steps):
        update(i)
    secs = time.perf_counter() - start
    print(f"pytorch {torch.__version__} threads={a.threads} updates/s={a.steps / secs:.2f} ms/update={1000 * secs / a.steps:.1f}")
    print("ms per phase: " + " ".join(f"{k}={1000 * v / a.steps:.2f}" for k, v in phases.items()))


if __name__ == "__main__":
    main()
