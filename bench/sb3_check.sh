#!/usr/bin/env bash
# The world against Stable-Baselines3, in a fresh venv with only the wheel and SB3 (which
# brings PyTorch: several GB, which is why the test suite's own venv does without it).
#
#   bench/sb3_check.sh [VENV]      (default: target/sb3-venv)
#
# Checks what a new user would run first: SB3's check_env on
# `mmrf.WorldEnv(seed=7)` with every warning an error, PPO's MultiInputPolicy learning 2048
# steps on `gymnasium.make("mmrf/World-v0")`, and `gymnasium.make_vec(..., num_envs=4)`
# stepping; then the Python suite's ecosystem tests, whose SB3 test runs here.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$here/target/sb3-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$here/crates/py" stable-baselines3 pytest
"$venv/bin/python" - <<'PY'
import time, warnings
import gymnasium as gym
import numpy as np
import mmrf
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env

with warnings.catch_warnings():
    warnings.simplefilter("error")
    check_env(mmrf.WorldEnv(seed=7))
print("check_env(mmrf.WorldEnv(seed=7)): passed, no warning")
t = time.time()
PPO("MultiInputPolicy", gym.make("mmrf/World-v0"), seed=0).learn(2048)
print(f"PPO('MultiInputPolicy', gym.make('mmrf/World-v0')).learn(2048): {time.time() - t:.1f} s")
venv = gym.make_vec("mmrf/World-v0", num_envs=4)
obs, _ = venv.reset(seed=0)
for _ in range(10):
    obs, reward, *_ = venv.step(venv.action_space.sample())
print(f"gym.make_vec('mmrf/World-v0', num_envs=4): {type(venv.unwrapped).__name__}, 10 steps, rewards {np.round(reward, 1)}")
PY
cd "$here/crates/py/tests" && "$venv/bin/python" -m pytest -q test_ecosystem.py
