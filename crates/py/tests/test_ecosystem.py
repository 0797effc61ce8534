"""The world in the RL libraries' hands: finite spaces, `gymnasium.make` and `make_vec`,
Gymnasium's vector wrappers, the per-candidate view, and Stable-Baselines3 where it is
installed (bench/sb3_check.sh runs that part in a venv that has it)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mmrf
from mmrf.wrappers import CANDIDATE_FEATURES, CONTEXT_FEATURES


def leaves(space):
    if isinstance(space, gym.spaces.Dict):
        for sub in space.spaces.values():
            yield from leaves(sub)
    else:
        yield space


def test_every_space_is_finite_and_at_least_one_dimensional(small_world):
    env = mmrf.WorldEnv(small_world)
    for space in [env.action_space, *leaves(env.observation_space)]:
        if isinstance(space, gym.spaces.Box):
            assert space.shape and all(d >= 1 for d in space.shape), space
            assert space.is_bounded("both"), space
            assert np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)), space
        assert isinstance(space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiBinary)), space
    assert env.action_space.is_bounded("both")
    assert env.action_space.low.min() == -mmrf.env.SCORE_BOUND and env.action_space.high.max() == mmrf.env.SCORE_BOUND
    obs, _ = env.reset(seed=1)
    assert obs["time_ms"].shape == (1,) and obs["time_ms"][0] > 0
    assert env.observation_space.contains(obs)


def test_scores_outside_the_box_rank_as_given_and_a_nan_is_refused(small_world):
    env = mmrf.WorldEnv(small_world)
    n = small_world.n_candidates
    inside = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    outside = inside * 1000.0 + 5.0  # the same order, far outside [-1, 1]
    for scores in (inside, outside):
        env.reset(seed=4)
        _, _, _, _, info = env.step(scores)
        viewed = [v for v in info["viewed"].tolist() if v >= 0]
        if scores is inside:
            first = viewed
    assert viewed == first and len(first) >= 1
    env.reset(seed=4)
    bad = inside.copy()
    bad[17] = np.nan
    with pytest.raises(ValueError, match="candidate slot 17 is NaN"):
        env.step(bad)
    venv = mmrf.WorldVectorEnv(2, small_world)
    venv.reset(seed=1)
    bad = np.zeros((2, n), dtype=np.float32)
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="candidate slot 3 of env 1 is NaN"):
        venv.step(bad)


def test_gymnasium_make_and_make_vec_by_id(small_world):
    assert mmrf.ENV_ID in gym.registry
    env = gym.make(mmrf.ENV_ID, seed=3, scale="small")
    obs, _ = env.reset(seed=2)
    assert isinstance(env.unwrapped, mmrf.WorldEnv)
    # The same visit as the class built directly on the same world.
    direct, _ = mmrf.WorldEnv(small_world).reset(seed=2)
    assert np.array_equal(obs["candidates"], direct["candidates"])
    env.step(env.action_space.sample())
    # make_vec uses the vector entry point: the visits stepped together in Rust.
    venv = gym.make_vec(mmrf.ENV_ID, num_envs=4, seed=3, scale="small")
    assert isinstance(venv.unwrapped, mmrf.WorldVectorEnv) and venv.num_envs == 4
    obs, _ = venv.reset(seed=0)
    assert obs["candidates"].shape == (4, small_world.n_candidates)
    assert venv.observation_space.contains(obs)
    for _ in range(3):
        obs, reward, terminated, truncated, _ = venv.step(venv.action_space.sample())
        assert reward.shape == (4,) and venv.observation_space.contains(obs)
    # The single envs, synchronised by Gymnasium, take the same id.
    sync = gym.make_vec(mmrf.ENV_ID, num_envs=2, vectorization_mode="sync", seed=3, scale="small")
    sync.reset(seed=0)
    sync.step(sync.action_space.sample())


def test_render_mode_none_is_the_one_mode(small_world):
    assert mmrf.WorldEnv(small_world, render_mode=None).render_mode is None
    with pytest.raises(TypeError, match="nothing to render"):
        mmrf.WorldEnv(small_world, render_mode="rgb_array")
    with pytest.raises(TypeError, match="nothing to render"):
        mmrf.WorldVectorEnv(2, small_world, render_mode="human")


def test_gymnasium_vector_wrappers_apply(small_world):
    venv = gym.wrappers.vector.RecordEpisodeStatistics(mmrf.WorldVectorEnv(3, small_world))
    venv.reset(seed=1)
    ended = 0
    for _ in range(300):
        _, _, terminated, truncated, info = venv.step(np.zeros((3, small_world.n_candidates), dtype=np.float32))
        if "episode" in info:
            done = info["_episode"]
            assert np.all(info["episode"]["r"][done] > 0) and np.all(info["episode"]["l"][done] >= 1)
            ended += int(done.sum())
        if ended >= 3:
            break
    assert ended >= 3, "no episode ended in 300 steps"


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
def test_the_candidate_view_is_a_fixed_width_vector_per_slot(small_world):
    env = mmrf.CandidateFeatures(mmrf.WorldEnv(small_world))
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=6)
    c = small_world.n_candidates
    assert obs["candidates"].shape == (c, len(CANDIDATE_FEATURES))
    assert obs["context"].shape == (len(CONTEXT_FEATURES),)
    assert env.observation_space.contains(obs)
    mask = obs["mask"] == 1
    assert np.array_equal(obs["candidates"][:, CANDIDATE_FEATURES.index("mask")], obs["mask"])
    # No history yet: nothing matches it.
    assert np.all(obs["candidates"][:, 1:-1] == 0) and obs["context"][CONTEXT_FEATURES.index("history")] == 0
    # The duration feature orders the candidates as their durations do.
    raw_obs, _ = mmrf.WorldEnv(small_world).reset(seed=6)
    order = np.argsort(raw_obs["candidate_duration_s"][mask], kind="stable")
    dur = obs["candidates"][mask, 0]
    assert np.all((dur > 0) & (dur <= 1)) and np.all(np.diff(dur[order]) >= 0)
    # Show the first slots; what was shown is then in the history, so a candidate by a
    # shown video's author matches it, and a video shown again is flagged as seen.
    shown_authors = set()
    for _ in range(3):
        scores = -np.arange(c, dtype=np.float32)
        prev = obs
        obs, _, terminated, truncated, info = env.step(scores)
        authors = dict(zip(prev["candidate_video"].tolist(), prev["candidate_author"].tolist()))
        shown_authors |= {authors[v] for v in info["viewed"].tolist() if v >= 0}
        if terminated or truncated:
            break
    feats = obs["candidates"]
    by_shown_author = np.isin(obs["candidate_author"], list(shown_authors)) & (obs["mask"] == 1)
    if by_shown_author.any():
        assert np.all(feats[by_shown_author, CANDIDATE_FEATURES.index("author_share")] > 0)
    assert np.all(feats[~by_shown_author, CANDIDATE_FEATURES.index("author_share")] == 0)
    assert obs["context"][CONTEXT_FEATURES.index("history")] > 0
    assert np.all((feats >= 0) & (feats <= 1))


def test_stable_baselines3_takes_the_env_as_it_is(small_world):
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env as sb3_check
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check(mmrf.WorldEnv(small_world))
    model = sb3.PPO("MultiInputPolicy", gym.make(mmrf.ENV_ID, seed=3, scale="small"), n_steps=64, batch_size=32, seed=0)
    model.learn(128)
