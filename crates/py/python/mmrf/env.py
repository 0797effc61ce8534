"""Gymnasium environments over the mmrf world: one user's visit per episode.

Each step is one request: the agent scores the request's candidates, the world shows the
K best (or, with ``temperature``, K draws from ``softmax(score / temperature)``), and the
user responds to each shown video in turn, possibly leaving. The reward is the chosen
signal's total over the shown videos (WatchTime in seconds by default); ``info`` carries
every signal's total. The episode terminates when the user leaves and is truncated when
the visit's day ends or it reaches the world's longest visit.
"""

from typing import Optional

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mmrf import _native

_SEED_BOUND = 2**63

#: The action box's bound: scores in [-1, 1] are what libraries sample and clip to. Only
#: the scores' order matters to the K best shown, so any finite score (or ``-inf``, never
#: shown) is accepted and ranked as given, outside the box too; with ``temperature`` the
#: draws follow ``softmax(score / temperature)`` of the scores as given.
SCORE_BOUND = 1.0

# The bound of every field in seconds (play and duration): a day, so that every box is
# finite; no video of a world lasts or plays a fraction of it.
_SECONDS_BOUND = 86_400.0


def _observation_space(world: "_native.World") -> spaces.Dict:
    h, c, t = world.history_len, world.n_candidates, max(world.max_tags, 1)
    videos = world.n_videos
    return spaces.Dict(
        {
            "user": spaces.Discrete(world.n_users),
            "time_ms": spaces.Box(0, np.iinfo(np.int64).max, shape=(1,), dtype=np.int64),
            "hour": spaces.Discrete(24),
            "tab": spaces.Discrete(15),
            "position": spaces.Discrete(200),
            "history_video": spaces.Box(-1, videos - 1, shape=(h,), dtype=np.int64),
            "history_feedback": spaces.Box(0.0, _SECONDS_BOUND, shape=(h * 8,), dtype=np.float32),
            "candidates": spaces.Box(-1, videos - 1, shape=(c,), dtype=np.int64),
            "candidate_duration_s": spaces.Box(0.0, _SECONDS_BOUND, shape=(c,), dtype=np.float32),
            "candidate_author": spaces.Box(-1, np.iinfo(np.int32).max, shape=(c,), dtype=np.int64),
            "candidate_tags": spaces.Box(-1, np.iinfo(np.int16).max, shape=(c * t,), dtype=np.int64),
            "mask": spaces.MultiBinary(c),
        }
    )


def _setup(env, world, seed: int, scale: str, reward: str, temperature: Optional[float], render_mode=None):
    """The settings both environments share, checked; returns one visit's action space."""
    if render_mode is not None:
        # A TypeError, as for a keyword the environment does not take: libraries that try
        # a render mode first (Stable-Baselines3's make_vec_env) then make it without one.
        raise TypeError(f"render_mode {render_mode!r}: the world has nothing to render (render_mode=None)")
    env.render_mode = None
    if reward not in _native.signals():
        raise ValueError(f"reward {reward!r}: expected one of {_native.signals()}")
    if temperature is not None and not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature {temperature} must be a positive number")
    env.world = world if world is not None else _native.World.generate(seed=seed, scale=scale)
    env.reward_signal = reward
    env.temperature = temperature
    return spaces.Box(-SCORE_BOUND, SCORE_BOUND, shape=(env.world.n_candidates,), dtype=np.float32)


def _scores(action, rows: int) -> np.ndarray:
    """The action as float32 scores, ``rows`` of them; a NaN score is refused, naming its
    slot (it would rank nowhere in particular)."""
    scores = np.ascontiguousarray(action, dtype=np.float32).reshape(rows, -1)
    nan = np.argwhere(np.isnan(scores))
    if len(nan):
        where = f"candidate slot {nan[0][1]}" + (f" of env {nan[0][0]}" if rows > 1 else "")
        raise ValueError(f"the score of {where} is NaN: give a number (or -inf to never show it)")
    return scores


def _user(user, world) -> Optional[int]:
    """``user`` as an id of ``world``'s users (``None``: drawn per episode), or a
    ``ValueError`` naming it."""
    if user is None:
        return None
    if isinstance(user, (bool, np.bool_)) or not float(user).is_integer() or not 0 <= int(user) < world.n_users:
        raise ValueError(f"user {user!r} is not in this world (its users are 0..{world.n_users - 1})")
    return int(user)


_DISCRETE = ("user", "hour", "tab", "position")


def _unbatch(obs: dict, i: int) -> dict:
    """Row ``i`` of a stacked observation, with Gymnasium's types for the scalars (an
    integer for a ``Discrete`` space)."""
    return {
        key: np.int64(value[i]) if key in _DISCRETE else value[i]
        for key, value in obs.items()
    }


class WorldEnv(gym.Env):
    """One user's visit in the mmrf world, a request per step.

    Parameters
    ----------
    world:
        A :class:`mmrf.World` (generated or loaded); by default the world of ``seed``.
    seed, scale:
        The world generated when ``world`` is not given (``scale`` "small", "default",
        "1k" or "27k"; the default world is the one ``mmrf benchmark`` uses).
    reward:
        The signal whose total over the shown videos is the reward: one of
        :func:`mmrf.signals` ("WatchTime", in seconds, by default).
    user:
        Always this user's visits (by default each episode draws its user).
    temperature:
        Show K draws from ``softmax(action / temperature)`` instead of the K best.
    render_mode:
        ``None``, the one mode (the world has nothing to render).

    The action is one score per candidate slot (``Box(-1, 1)`` of ``n_candidates``); the
    world shows the K best, so any finite score ranks as given, inside the box or not
    (:data:`SCORE_BOUND`); scores of padded slots (``mask == 0``) are ignored and a NaN is
    refused.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        world: Optional["_native.World"] = None,
        *,
        seed: int = 7,
        scale: str = "default",
        reward: str = "WatchTime",
        user: Optional[int] = None,
        temperature: Optional[float] = None,
        render_mode: Optional[str] = None,
    ):
        self.action_space = _setup(self, world, seed, scale, reward, temperature, render_mode)
        self.user = _user(user, self.world)
        self.observation_space = _observation_space(self.world)
        self._episode = _native.Episode(self.world)

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed)
        # The visit is drawn by a seed from the environment's generator, so that
        # `reset(seed=s)` fixes this episode and every later one.
        episode_seed = int(self.np_random.integers(_SEED_BOUND))
        user = _user((options or {}).get("user", self.user), self.world)
        obs = self._episode.reset(episode_seed, user)
        return _unbatch(obs, 0), {"episode_seed": episode_seed}

    def step(self, action):
        scores = _scores(action, 1).reshape(-1)
        obs, feedback, viewed, end = self._episode.step(scores, self.temperature)
        reward = float(feedback[self.reward_signal])
        # K slots, -1 after the last video viewed: infos of one shape stack across envs.
        padded = np.full(self.world.k, -1, dtype=np.int64)
        padded[: len(viewed)] = viewed
        info = {"feedback": feedback, "viewed": padded}
        return _unbatch(obs, 0), reward, end == "left", end == "cut", info


class WorldVectorEnv(VectorEnv):
    """``num_envs`` visits stepped together in Rust (in parallel, outside the GIL).

    The same visits, actions and rewards as :class:`WorldEnv`, stacked; an episode that
    ends is restarted at the next step (Gymnasium's next-step autoreset: that step's
    action is ignored, its reward is 0 and it returns the new visit's first observation).
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int,
        world: Optional["_native.World"] = None,
        *,
        seed: int = 7,
        scale: str = "default",
        reward: str = "WatchTime",
        temperature: Optional[float] = None,
        render_mode: Optional[str] = None,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs {num_envs} must be at least 1")
        self.single_action_space = _setup(self, world, seed, scale, reward, temperature, render_mode)
        self.num_envs = num_envs
        self.single_observation_space = _observation_space(self.world)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._batch = _native.EpisodeBatch(self.world)
        self._restart = np.zeros(num_envs, dtype=bool)

    def _seeds(self, n: int):
        return [int(s) for s in self.np_random.integers(_SEED_BOUND, size=n)]

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        elif not hasattr(self, "_np_random") or self._np_random is None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random()
        seeds = self._seeds(self.num_envs)
        obs = self._batch.reset(seeds)
        self._restart[:] = False
        return obs, {"episode_seed": np.array(seeds, dtype=np.uint64)}

    def step(self, actions):
        scores = _scores(actions, self.num_envs)
        restart = [int(i) for i in np.flatnonzero(self._restart)]
        obs, feedback, ends = self._batch.step(
            scores.reshape(-1), self.temperature, restart, self._seeds(len(restart))
        )
        reward = np.asarray(feedback[self.reward_signal], dtype=np.float64)
        terminated = ends == 1
        truncated = ends == 2
        self._restart = terminated | truncated
        return obs, reward, terminated, truncated, {"feedback": feedback}
