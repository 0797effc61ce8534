"""Environment steps per second of the `mmrf` wheel's world against a NumPy port of it.

    target/py-venv/bin/python bench/env_step_rate.py [--seconds 5] [--envs 64] [--visits 300]

The peer is `bench/numpy_world.py`, the same world's step written in NumPy (as Python
recommendation simulators are), reading the same latent parameters. Each step scores
the request's 400 candidates with standard normal draws (NumPy's time is included: an
agent's loop pays it too) on the default world of seed 7; an ended visit is reset. Best
of three windows per form. Then, to show the port is the same world, both simulators'
mean reward per step (seconds watched) and visit length (requests) under that random
policy over `--visits` visits each.
"""

import argparse
import time

import numpy as np

import mmrf
from numpy_world import NumpyWorldEnv


def rate(env, seconds, batch=1):
    """Steps per second of `env` (a `WorldEnv`, `NumpyWorldEnv` or, with `batch`, a
    `WorldVectorEnv` of `batch` visits) under random scores."""
    rng = np.random.default_rng(0)
    shape = (batch, 400) if batch > 1 else 400
    env.reset(seed=0)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        out = env.step(rng.standard_normal(shape, dtype=np.float32))
        n += batch
        if batch == 1 and (out[2] or out[3]):
            env.reset()
    return n / (time.perf_counter() - start)


def visits(env, count):
    """Mean reward per step and mean requests per visit under random scores."""
    rng = np.random.default_rng(1)
    steps, reward = [], 0.0
    for v in range(count):
        env.reset(seed=1_000 + v)
        n = 0
        while True:
            _, r, terminated, truncated, _ = env.step(rng.standard_normal(400, dtype=np.float32))
            n, reward = n + 1, reward + r
            if terminated or truncated:
                break
        steps.append(n)
    steps = np.array(steps)
    return reward / steps.sum(), steps.mean(), steps.std(ddof=1) / np.sqrt(len(steps))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="length of one timed window")
    p.add_argument("--envs", type=int, default=64, help="visits stepped together")
    p.add_argument("--visits", type=int, default=300, help="visits of the fidelity check")
    a = p.parse_args()
    world = mmrf.World.generate(seed=7, scale="default")
    print(f"{world!r}")
    ours = max(rate(mmrf.WorldEnv(world), a.seconds) for _ in range(3))
    vector = max(rate(mmrf.WorldVectorEnv(a.envs, world), a.seconds, a.envs) for _ in range(3))
    port = max(rate(NumpyWorldEnv(world), a.seconds) for _ in range(3))
    print(f"{'NumPy port':22s} {port:10,.0f} steps/s")
    print(f"{'WorldEnv':22s} {ours:10,.0f} steps/s  {ours / port:6.1f} x the port")
    print(f"{f'WorldVectorEnv({a.envs})':22s} {vector:10,.0f} steps/s  {vector / port:6.1f} x the port")
    for name, env in [("WorldEnv", mmrf.WorldEnv(world)), ("NumPy port", NumpyWorldEnv(world))]:
        per_step, length, se = visits(env, a.visits)
        print(f"{name:22s} {per_step:6.2f} s watched per request, {length:5.2f} ± {se:4.2f} requests per visit")


if __name__ == "__main__":
    main()
