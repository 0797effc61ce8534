"""REINFORCE over the per-candidate view: one small network scores every candidate.

    python examples/reinforce.py [--episodes 400] [--seed 7] [--mmrf-run results/runs/mmrf]

The policy is a Plackett-Luce ranking: a request's K shown videos are drawn one after
another from ``softmax(f(candidate, context))`` over the candidates left, which the world
shows in that order. Its log-probability is exact, so the gradient is the textbook
REINFORCE one, ``Σ_t ∇ log π(slate_t | s_t) · (G_t − b)``, with ``G_t`` the WatchTime
(seconds) from request ``t`` to the end of the visit and ``b`` the batch's mean return.
After training, ``mmrf.ab`` runs it greedily (the K best scores) against random exposure,
the world's logging policy and, with ``--mmrf-run``, a trained MMRF run, paired over users.
Written the way CleanRL writes one algorithm per file: everything it does is here.
"""

import argparse
import time

import numpy as np
import torch
from torch import nn

import mmrf
from mmrf.wrappers import CANDIDATE_FEATURES, CONTEXT_FEATURES, features


class Scorer(nn.Module):
    """``f(candidate, context)``: one MLP applied to every candidate slot."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(len(CANDIDATE_FEATURES) + len(CONTEXT_FEATURES), hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, cands: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.cat([cands, context.expand(cands.shape[0], -1)], dim=1)
        return self.net(x).squeeze(1).masked_fill(mask == 0, float("-inf"))


def tensors(view: dict):
    return (
        torch.as_tensor(view["candidates"]),
        torch.as_tensor(view["context"]).unsqueeze(0),
        torch.as_tensor(view["mask"]),
    )


def sample_slate(logits: torch.Tensor, k: int, gen: torch.Generator):
    """K draws without replacement from softmax(logits) (Gumbel top-K) and their log-probability."""
    gumbel = -torch.log(-torch.log(torch.rand(logits.shape, generator=gen).clamp_min(1e-12)))
    picks = torch.topk(logits.detach() + gumbel, k).indices
    logp, left = torch.zeros(()), logits
    for i in picks:
        logp = logp + left[i] - torch.logsumexp(left, 0)
        left = left.clone()
        left[i] = float("-inf")
    return picks, logp


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=400)
    ap.add_argument("--batch", type=int, default=16, help="episodes per update")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=7, help="the world (7: the benchmark's default)")
    ap.add_argument("--ab-users", type=int, default=300, help="users in the A/B test")
    ap.add_argument("--mmrf-run", default=None, help="a trained MMRF run on the same world, as an arm")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    env = mmrf.CandidateFeatures(mmrf.WorldEnv(seed=args.seed))
    k, n = env.unwrapped.world.k, env.unwrapped.world.n_candidates
    policy = Scorer()
    opt = torch.optim.Adam(policy.parameters(), lr=args.lr)
    started, steps, returns = time.time(), 0, []
    for update in range(args.episodes // args.batch):
        logps, gains = [], []
        for e in range(args.batch):
            view, _ = env.reset(seed=args.seed * 100_000 + update * args.batch + e)
            ep_logp, ep_rewards = [], []
            while True:
                picks, logp = sample_slate(policy(*tensors(view)), k, gen)
                scores = np.full(n, -np.inf, dtype=np.float32)
                scores[picks.numpy()] = np.arange(k, 0, -1, dtype=np.float32)
                view, reward, terminated, truncated, _ = env.step(scores)
                ep_logp.append(logp)
                ep_rewards.append(reward)
                steps += 1
                if terminated or truncated:
                    break
            to_go = np.cumsum(ep_rewards[::-1])[::-1].copy()
            logps.extend(ep_logp)
            gains.extend(to_go)
            returns.append(to_go[0])
        gains = torch.as_tensor(np.array(gains), dtype=torch.float32)
        advantage = (gains - gains.mean()) / (gains.std() + 1e-6)
        loss = -(torch.stack(logps) * advantage).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"update {update + 1}: mean session WatchTime {np.mean(returns[-args.batch:]):.1f} s, {steps} steps")
    print(f"trained on {len(returns)} visits ({steps} requests) in {time.time() - started:.0f} s")

    known = env.known

    @torch.no_grad()
    def greedy(obs):
        view = features(obs, known)
        return policy(*tensors(view)).numpy().astype(np.float32)

    world = env.unwrapped.world
    arms = {"reinforce": greedy, "random": "random", "logging": "logging"}
    if args.mmrf_run:
        arms["mmrf"] = mmrf.Run.load(args.mmrf_run)
    report = mmrf.ab(world, arms, control="random", users=list(range(args.ab_users)))
    for arm in report["arms"]:
        per = dict(arm["per_session"])
        lift = dict(arm["lift"]).get("watch_time")
        print(
            f"{arm['name']:10s} WatchTime/session {per['watch_time']['mean']:7.1f} s"
            + (f"  lift over random {100 * lift['mean']:+.1f} %" if lift else "")
        )


if __name__ == "__main__":
    main()
