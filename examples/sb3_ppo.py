"""Stable-Baselines3's PPO on the world, as it comes: the env by id, its own policy.

    python examples/sb3_ppo.py [--steps 20000] [--seed 7] [--mmrf-run results/runs/mmrf]

PPO's ``MultiInputPolicy`` reads the observation dict (ids one-hot or as numbers, the
history, the candidates' durations) and outputs one Gaussian score per candidate slot in
the action box [-1, 1]; the world shows the K best. Four copies of the env run in SB3's
``DummyVecEnv``. After training, ``mmrf.ab`` runs the deterministic policy against random
exposure, the world's logging policy and, with ``--mmrf-run``, a trained MMRF run, paired
over users: how far a generic agent gets in a given number of steps.
"""

import argparse
import time

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import mmrf


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7, help="the world (7: the benchmark's default)")
    ap.add_argument("--ab-users", type=int, default=300, help="users in the A/B test")
    ap.add_argument("--mmrf-run", default=None, help="a trained MMRF run on the same world, as an arm")
    args = ap.parse_args()

    venv = make_vec_env(mmrf.ENV_ID, n_envs=4, seed=args.seed, env_kwargs={"seed": args.seed, "render_mode": None})
    model = PPO("MultiInputPolicy", venv, n_steps=256, batch_size=64, seed=args.seed, verbose=0)
    started = time.time()
    model.learn(args.steps)
    print(f"PPO trained {args.steps} steps in {time.time() - started:.0f} s")

    def ppo(obs):
        action, _ = model.predict(obs, deterministic=True)
        return np.asarray(action, dtype=np.float32).reshape(-1)

    world = venv.envs[0].unwrapped.world
    arms = {"ppo": ppo, "random": "random", "logging": "logging"}
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
