#!/usr/bin/env python3
"""MMRF's full update in PyTorch, for a side-by-side speed check against mmrf on burn.

Not part of CI. It builds the networks of `crates/model/src/mmrf.rs` and
`crates/model/src/simulator.rs` at the default sizes and runs the update of
`crates/train/src/actor_critic/trainer.rs` (the simulator's labels of the non-impression samples, critic
phase with reward heads, actor phase, soft update of the target networks, a simulator refit
every 4 updates) on random inputs of the shapes
`mmrf bench train-step` prints, then reports updates/s. Usage:

    pip install torch            # CPU is enough
    mmrf bench train-step        # prints updates/s and a `shapes` line
    python3 bench/mmrf_update.py --threads 2 <the shapes line's arguments>
"""

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

N, FEEDBACK, K, TABS = 7, 7, 6, 16


def unit(x):
    return x / (x.pow(2).sum(-1, keepdim=True) + 1e-8).sqrt()


class BatchedLinear(nn.Module):
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
    def __init__(self, a, s, dim):
        super().__init__()
        self.user = nn.Embedding(a.n_users, s)
        self.user_features = nn.Linear(a.user_dim, s)
        self.history = nn.Linear(dim + FEEDBACK, s)
        self.hour = nn.Embedding(24, s)
        self.tab = nn.Embedding(TABS, s)
        self.position = nn.Linear(1, s)
        self.out = nn.Linear(s, s)

    def forward(self, x):
        per = F.relu(self.history(torch.cat([x["hist"], x["fb"]], 2)))
        m = x["mask"].unsqueeze(2)
        pooled = (per * m).sum(1) / m.sum(1).clamp_min(1.0)
        h = self.user(x["users"]) + self.user_features(x["uf"]) + pooled + self.hour(x["hour"]) + self.tab(x["tab"]) + self.position(x["pos"])
        return F.relu(self.out(F.relu(h)))


class Agents(nn.Module):
    def __init__(self, s, h, dim, hidden, heads):
        super().__init__()
        self.embed = nn.Linear(s, N * h)
        self.wq = nn.Linear(h, h, bias=False)
        self.wk = nn.Linear(h, h, bias=False)
        self.wo = nn.Linear(h, h)
        self.aux_hidden = BatchedLinear(N - 1, 2 * h, hidden)
        self.aux_out = BatchedLinear(N - 1, hidden, dim)
        self.main_hidden = nn.Linear(2 * h + (N - 1) * dim, hidden)
        self.main_out = nn.Linear(hidden, dim)
        self.h, self.heads = h, heads

    def forward(self, s, alpha=1.0):
        b = s.shape[0]
        h = F.relu(self.embed(s)).view(b, N, self.h)
        dk = self.h // self.heads
        split = lambda x: x.view(b, N, self.heads, dk).transpose(1, 2)
        q, k, v = split(self.wq(h)), split(self.wk(h)), split(F.relu(self.wo(h)))
        logits = q @ k.transpose(2, 3) / dk**0.5 - torch.eye(N) * 1e9
        e = (logits.softmax(3) @ v).transpose(1, 2).reshape(b, N, self.h)
        he = torch.cat([h, e], 2)
        aux = unit(self.aux_out(F.relu(self.aux_hidden(he[:, : N - 1].transpose(0, 1)))))
        aux_for_main = aux * alpha + aux.detach() * (1 - alpha)
        main_in = torch.cat([he[:, N - 1], aux_for_main.transpose(0, 1).reshape(b, -1)], 1)
        main = unit(self.main_out(F.relu(self.main_hidden(main_in)))).unsqueeze(0)
        return torch.cat([aux, main], 0)


class Critics(nn.Module):
    def __init__(self, s, dim, hidden):
        super().__init__()
        self.trunk = BatchedLinear(N, s, hidden)
        self.value = BatchedLinear(N, hidden, 1)
        self.adv = BatchedLinear(N, hidden, dim)
        self.reward = nn.Linear(s, N * dim)

    def parts(self, s):
        t = F.relu(self.trunk(s.unsqueeze(0).expand(N, -1, -1)))
        return self.value(t), self.adv(t)

    def q(self, s, a):
        c, w = self.parts(s)
        return c.squeeze(2) + (w * a).sum(2)

    def q_items(self, s, items):
        c, w = self.parts(s)
        return (w.transpose(0, 1) @ items.transpose(1, 2)).transpose(0, 1) + c

    def item_rewards(self, s, items):
        u = self.reward(s).view(s.shape[0], N, -1)
        return items @ u.transpose(1, 2)


class Net(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.items = ItemEncoder(a, 64, 32)
        self.state = StateEncoder(a, 64, 32)
        self.agents = Agents(64, 32, 32, 64, 4)
        self.critics = Critics(64, 32, 64)


class Simulator(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.items = ItemEncoder(a, 64, 32)
        self.user = nn.Embedding(a.n_users, 32)
        self.user_features = nn.Linear(a.user_dim, 32)
        self.gru = nn.GRU(32 + FEEDBACK, 32, batch_first=True)
        ctx = 2 * 32 + 32
        self.head = nn.Sequential(nn.Linear(ctx, 64), nn.ReLU(), nn.Linear(64, N))
        self.twin = nn.Sequential(nn.Dropout(0.2), nn.Linear(ctx, 64), nn.ReLU(), nn.Linear(64, N))

    def forward(self, x, items):
        seq, _ = self.gru(torch.cat([x["hist"], x["fb"]], 2))
        state = seq[:, -1]
        c = torch.cat([state, F.relu(self.user(x["users"]) + self.user_features(x["uf"]))], 1)
        z = torch.cat([c.unsqueeze(1).expand(-1, items.shape[1], -1), items], 2)
        return torch.sigmoid(self.head(z)), torch.sigmoid(self.twin(z))


def main():
    p = argparse.ArgumentParser()
    for name, default in [("rows", 320), ("videos", 5000), ("user-dim", 60), ("video-dim", 100), ("n-users", 1000),
                          ("n-videos", 7388), ("n-authors", 2000), ("n-tags", 60), ("history", 20), ("steps", 40),
                          ("threads", 2), ("batch", 256)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--no-label", action="store_true", help="skip the labelling of non-impression samples")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net, sim = Net(a), Simulator(a)
    target = Net(a)
    target.load_state_dict(net.state_dict())
    for q in target.parameters():
        q.requires_grad_(False)
    critic_params = list(net.items.parameters()) + list(net.state.parameters()) + list(net.critics.parameters())
    opt_c = torch.optim.Adam(critic_params, lr=1e-3)
    opt_a = torch.optim.Adam(net.agents.parameters(), lr=1e-3)
    opt_s = torch.optim.Adam(sim.parameters(), lr=2e-3)
    b, m, L = a.rows, a.videos, a.history

    def state_inputs(rows):
        return {
            "users": torch.randint(0, a.n_users, (rows,)), "uf": torch.randn(rows, a.user_dim),
            "fb": torch.rand(rows, L, FEEDBACK), "mask": torch.ones(rows, L),
            "hour": torch.randint(0, 24, (rows,)), "tab": torch.randint(0, TABS, (rows,)), "pos": torch.rand(rows, 1),
        }

    def video_inputs():
        return (torch.randint(0, a.n_videos, (m,)), torch.randint(0, a.n_authors, (m,)),
                torch.randint(0, a.n_tags, (m,)), torch.randn(m, a.video_dim))

    phases = {}

    def lap(name, t0):
        t1 = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + t1 - t0
        return t1

    def update(step):
        t = time.perf_counter()
        x, xn = state_inputs(b), state_inputs(b)
        vids = video_inputs()
        # The simulator labels the non-impression samples (the rows beyond the batch).
        if not a.no_label:
            sim.eval()  # labels come from the simulator without dropout, as in mmrf
            with torch.no_grad():
                samples = max(b - a.batch, 1)
                xs = state_inputs(samples)
                ms = min(m, samples * (L + K))  # the samples' own videos, at most
                se = sim.items(*(v[:ms] for v in vids))
                xs["hist"] = se[torch.randint(0, ms, (samples * L,))].view(samples, L, -1)
                r, r2 = sim(xs, se[torch.randint(0, ms, (samples * K,))].view(samples, K, -1))
                kl = r * (r / r2).log() + (1 - r) * ((1 - r) / (1 - r2)).log()
                _labels = (r + r2) * 0.5 * torch.exp(-kl)
            sim.train()
        t = lap("label", t)
        e = net.items(*vids)
        x["hist"] = e[torch.randint(0, m, (b * L,))].view(b, L, -1)
        s = net.state(x)
        shown = e[torch.randint(0, m, (b * K,))].view(b, K, -1)
        q = net.critics.q_items(s, shown)
        t = lap("inputs", t)
        with torch.no_grad():
            te = target.items(*vids)
            xn["hist"] = te[torch.randint(0, m, (b * L,))].view(b, L, -1)
            sn = target.state(xn)
            qn = target.critics.q(sn, target.agents(sn))
            y = torch.rand(N, b, K) + 0.9 * qn.unsqueeze(2)
        t = lap("target", t)
        head = net.critics.item_rewards(s, shown)
        loss = (q - y).pow(2).mean() + (head - torch.rand(b, K, N)).pow(2).mean()
        opt_c.zero_grad()
        loss.backward()
        opt_c.step()
        t = lap("critic", t)
        sd = s.detach()
        qa = net.critics.q(sd, net.agents(sd))
        actor = -(qa.mean())
        opt_a.zero_grad()
        actor.backward()
        opt_a.step()
        t = lap("actor", t)
        with torch.no_grad():
            for pt, po in zip(target.parameters(), net.parameters()):
                pt.mul_(0.99).add_(po, alpha=0.01)
        t = lap("soft_update", t)
        if (step + 1) % 4 == 0:
            rows = a.batch
            xs = state_inputs(rows)
            se = sim.items(*vids)
            xs["hist"] = se[torch.randint(0, m, (rows * L,))].view(rows, L, -1)
            items = se[torch.randint(0, m, (rows * K,))].view(rows, K, -1)
            r, r2 = sim(xs, items)
            target_fb = torch.rand(rows, K, N)
            sl = (r - target_fb).pow(2).mean() + (r2 - target_fb).pow(2).mean()
            opt_s.zero_grad()
            sl.backward()
            opt_s.step()
        lap("simulator", t)

    for i in range(5):
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
