"""Environment steps per second of the `mmrf` wheel's world, single and vectorised.

    target/py-venv/bin/python bench/env_step_rate.py [--seconds 5] [--envs 64]

Each step scores the request's 400 candidates with standard normal draws (NumPy's time
is included: it is what an agent's loop pays too) on the default world of seed 7; an
ended visit is reset. Best of three windows per form.
"""

import argparse
import time

import numpy as np

import mmrf


def single(world, seconds):
    env = mmrf.WorldEnv(world)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(rng.standard_normal(world.n_candidates, dtype=np.float32))
        n += 1
        if terminated or truncated:
            env.reset()
    return n / (time.perf_counter() - start)


def vector(world, seconds, envs):
    env = mmrf.WorldVectorEnv(envs, world)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step(rng.standard_normal((envs, world.n_candidates), dtype=np.float32))
        n += envs
    return n / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="length of one timed window")
    p.add_argument("--envs", type=int, default=64, help="visits stepped together")
    a = p.parse_args()
    world = mmrf.World.generate(seed=7, scale="default")
    print(f"{world!r}")
    print(f"WorldEnv:            {max(single(world, a.seconds) for _ in range(3)):10,.0f} steps/s")
    rate = max(vector(world, a.seconds, a.envs) for _ in range(3))
    print(f"WorldVectorEnv({a.envs}): {rate:10,.0f} steps/s")


if __name__ == "__main__":
    main()
