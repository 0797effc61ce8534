"""The world as a Gymnasium environment: the checker, reproducibility, agents, errors."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mmrf


def play(env, seed, policy, max_steps=500):
    """Run one episode; returns (observations' first candidates, rewards, how it ended)."""
    obs, _ = env.reset(seed=seed)
    firsts, rewards = [obs["candidates"][:5].tolist()], []
    for _ in range(max_steps):
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        firsts.append(obs["candidates"][:5].tolist())
        rewards.append(reward)
        if terminated or truncated:
            return firsts, rewards, "left" if terminated else "cut"
    raise AssertionError("the episode did not end")


def by_index(obs):
    return -np.arange(obs["candidates"].shape[0], dtype=np.float32)


@pytest.mark.filterwarnings("error")
def test_the_gymnasium_checker_passes(small_world):
    check_env(mmrf.WorldEnv(small_world), skip_render_check=True)


def test_the_default_world_starts_in_three_lines():
    env = mmrf.WorldEnv(seed=7)
    obs, info = env.reset(seed=1)
    assert env.world.n_candidates == 400 and obs["candidates"].shape == (400,)
    assert env.observation_space.contains(obs)


def test_the_same_seed_gives_the_same_episode_and_another_seed_another(small_world):
    env = mmrf.WorldEnv(small_world)
    a = play(env, 5, by_index)
    assert a == play(env, 5, by_index)
    assert a != play(env, 6, by_index)
    # A reset without a seed continues the seeded generator: reproducible too.
    env.reset(seed=9)
    first = env.reset()[0]["candidates"]
    env.reset(seed=9)
    assert np.array_equal(first, env.reset()[0]["candidates"])


def test_the_shown_videos_are_the_best_scored(small_world):
    env = mmrf.WorldEnv(small_world)
    obs, _ = env.reset(seed=2)
    scores = np.zeros(small_world.n_candidates, dtype=np.float32)
    scores[[7, 3, 11]] = [3.0, 2.0, 1.0]
    _, _, _, _, info = env.step(scores)
    # The three scored first, best first; then ties at zero in the candidates' order.
    order = [7, 3, 11] + [i for i in range(small_world.n_candidates) if i not in (7, 3, 11)]
    assert info["viewed"].shape == (small_world.k,)
    viewed = info["viewed"][info["viewed"] >= 0]
    expected = obs["candidates"][order][: len(viewed)]
    assert 1 <= len(viewed) <= small_world.k
    assert np.array_equal(viewed, expected)
    # Slots after the last video viewed are -1.
    assert np.all(info["viewed"][len(viewed):] == -1)


def test_random_and_greedy_agents_run_episodes_with_every_signal(small_world):
    env = mmrf.WorldEnv(small_world)
    env.action_space.seed(0)
    watched = {}
    for name, policy in {
        "random": lambda obs: env.action_space.sample(),
        "greedy": duration_taste,
    }.items():
        total, ends = 0.0, set()
        for seed in range(8):
            _, rewards, end = play(env, seed, policy)
            assert all(np.isfinite(r) and r >= 0 for r in rewards)
            total += sum(rewards)
            ends.add(end)
        watched[name] = total
        assert "left" in ends
    assert watched["random"] > 0 and watched["greedy"] > 0
    obs, _ = env.reset(seed=0)
    _, reward, _, _, info = env.step(by_index(obs))
    assert set(info["feedback"]) == set(mmrf.signals())
    assert info["feedback"]["WatchTime"] == reward


def duration_taste(obs):
    """Greedy on the history: the candidates whose duration is nearest the durations the
    user played longest (the shortest first, before any history)."""
    feedback = obs["history_feedback"].reshape(len(obs["history_video"]), 8)
    played = feedback[:, 0]
    seen = obs["history_video"] >= 0
    if not seen.any():
        return -obs["candidate_duration_s"]
    taste = float(np.average(feedback[seen, 1], weights=played[seen] + 1e-3))
    return -np.abs(obs["candidate_duration_s"] - taste)


def test_another_reward_signal_and_a_temperature(small_world):
    env = mmrf.WorldEnv(small_world, reward="Click", temperature=0.5)
    obs, _ = env.reset(seed=4)
    _, reward, _, _, info = env.step(by_index(obs))
    assert reward == info["feedback"]["Click"]
    # With a temperature the K shown are drawn: another seed shows other videos.
    shown = set()
    for seed in range(5):
        obs, _ = env.reset(seed=4)
        env.unwrapped._episode.reset(seed + 100, int(obs["user"]))
        _, _, _, _, info = env.step(by_index(obs))
        shown.add(tuple(info["viewed"].tolist()))
    assert len(shown) > 1


def test_bad_input_raises_with_a_reason(small_world, tmp_path):
    env = mmrf.WorldEnv(small_world)
    with pytest.raises(ValueError, match="call reset first"):
        env.step(np.zeros(small_world.n_candidates, dtype=np.float32))
    env.reset(seed=1)
    with pytest.raises(ValueError, match="one score per slot"):
        env.step(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="positive"):
        mmrf.WorldEnv(small_world, temperature=-1.0)
    with pytest.raises(ValueError, match="reward"):
        mmrf.WorldEnv(small_world, reward="Watchtime")
    with pytest.raises(ValueError, match="scale"):
        mmrf.World.generate(seed=1, scale="huge")
    with pytest.raises(ValueError, match="not in this world"):
        env.reset(seed=1, options={"user": 10**6})
    with pytest.raises(OSError, match="mmrf_world.json"):
        mmrf.World.load(str(tmp_path))


def test_a_loaded_world_is_the_generated_one(small_world, small_world_dir):
    loaded = mmrf.World.load(str(small_world_dir))
    assert (loaded.seed, loaded.n_users, loaded.n_videos) == (3, small_world.n_users, small_world.n_videos)
    a = play(mmrf.WorldEnv(loaded), 3, by_index)
    assert a == play(mmrf.WorldEnv(small_world), 3, by_index)


def test_the_vector_env_steps_the_same_visits_and_autoresets(small_world):
    venv = mmrf.WorldVectorEnv(4, small_world)
    obs, info = venv.reset(seed=11)
    assert venv.observation_space.contains(obs)
    single = mmrf._native.Episode(small_world)
    firsts = [single.reset(int(s))["candidates"][0] for s in info["episode_seed"]]
    assert np.array_equal(np.stack(firsts), obs["candidates"])
    # The same visit stepped alone and in the batch gives the same feedback.
    scores = np.tile(-np.arange(small_world.n_candidates, dtype=np.float32), (4, 1))
    single.reset(int(info["episode_seed"][2]))
    _, feedback, _, _ = single.step(scores[2])
    obs, reward, terminated, truncated, _ = venv.step(scores)
    assert reward[2] == feedback["WatchTime"]
    done_before = np.zeros(4, dtype=bool)
    restarted = 0
    for _ in range(400):
        obs, reward, terminated, truncated, _ = venv.step(scores)
        # A visit that ended at the last step starts afresh now, with no reward.
        assert np.all(reward[done_before] == 0.0)
        assert np.all(obs["position"][done_before] == 0)
        restarted += int(done_before.sum())
        done_before = terminated | truncated
    assert restarted > 4


def test_the_parameters_are_the_worlds_that_the_observations_show(small_world):
    p = small_world.parameters()
    assert p["item_topic"].shape == (small_world.n_videos, p["dim"])
    assert p["user_interest"].shape == (small_world.n_users, p["dim"])
    assert p["cluster_offsets"][-1] == len(p["cluster_items"])
    assert np.allclose(np.linalg.norm(p["item_topic"], axis=1), 1.0, atol=1e-4)
    obs, _ = mmrf.WorldEnv(small_world).reset(seed=8)
    c = obs["candidates"][obs["mask"] == 1]
    assert np.array_equal(obs["candidate_duration_s"][: len(c)], (p["item_duration_ms"][c] / 1000).astype(np.float32))
    assert np.array_equal(obs["candidate_author"][: len(c)], p["item_author"][c])
    tags = obs["candidate_tags"].reshape(len(obs["candidates"]), -1)
    assert np.array_equal(tags[: len(c)], p["item_tags"][c])
    assert len(p["visit_hour_weight"]) == 24 and p["swipe_ms"][0] < p["swipe_ms"][1]


def test_a_world_file_is_checked_before_anything_is_built_from_it(small_world_dir, tmp_path):
    import json
    import shutil

    for key, value, message in [
        (("config", "n_users"), 10**12, "n_users = 1000000000000 is above its bound"),
        (("format",), 99, "format 99 is not one this version reads"),
    ]:
        copy = tmp_path / f"w-{key[-1]}"
        shutil.copytree(small_world_dir, copy)
        meta = json.loads((copy / "mmrf_world.json").read_text())
        target = meta
        for k in key[:-1]:
            target = target[k]
        target[key[-1]] = value
        (copy / "mmrf_world.json").write_text(json.dumps(meta))
        with pytest.raises(ValueError, match=message):
            mmrf.World.load(str(copy))
