"""Trained runs from Python, and the online A/B test with Python arms."""

import json
from typing import Callable, Dict, Iterable, Optional, Sequence, Union

import numpy as np

from mmrf import _native
from mmrf.env import _unbatch


class Run:
    """A run directory written by ``mmrf train`` (any method), loaded with the data
    directory it was trained on (its feature space and id maps come from there).

    ``score(obs)`` scores the candidates of a ``WorldEnv`` observation (or of a stacked
    ``WorldVectorEnv`` one), ``-inf`` in padded slots, so ``env.step(run.score(obs))``
    lets the trained ranker act in the world. Ids are those of the data files.
    """

    def __init__(self, native: "_native.Run"):
        self._native = native

    @classmethod
    def load(cls, run, data=None) -> "Run":
        """The run in ``run``, with the data directory ``data`` (by default the one it
        was trained on, as its ``run.toml`` records)."""
        return cls(_native.Run.load(str(run), None if data is None else str(data)))

    @property
    def method(self) -> str:
        return self._native.method

    @property
    def name(self) -> str:
        return self._native.name

    def score(self, obs: Optional[dict] = None, **request) -> np.ndarray:
        """Scores of the candidates of ``obs`` (a ``WorldEnv`` observation, or a stack of
        them), or of one request given by keywords: ``user``, ``candidates`` (video ids),
        and optionally ``hour``, ``tab``, ``position``, ``time_ms`` and the history as
        ``history_video`` (ids, oldest first) with ``history_feedback`` (one row of the
        eight ``World.history_columns`` per video)."""
        if obs is None:
            obs = self._request(**request)
        elif request:
            raise TypeError("give an observation or the request's keywords, not both")
        candidates = np.asarray(obs["candidates"], dtype=np.int64)
        stacked = candidates.ndim == 2
        n = candidates.shape[0] if stacked else 1
        if "candidate_duration_s" in obs:
            self._check_world(candidates.reshape(-1), np.asarray(obs["candidate_duration_s"]).reshape(-1))

        def col(key, dtype):
            return np.ascontiguousarray(np.asarray(obs[key], dtype=dtype).reshape(-1))

        scores = self._native.score_columns(
            col("user", np.int64),
            col("time_ms", np.int64),
            col("hour", np.int64),
            col("tab", np.int64),
            col("position", np.int64),
            col("history_video", np.int64),
            col("history_feedback", np.float32),
            col("candidates", np.int64),
        )
        return scores.reshape(n, -1) if stacked else scores

    def _check_world(self, candidates: np.ndarray, durations: np.ndarray) -> None:
        """Refuse an observation of another world: its candidates' durations must be those
        of the same videos in the run's data (two worlds of one size share ids, not videos)."""
        real = candidates >= 0
        mine = self._native.video_durations(np.ascontiguousarray(candidates[real]))
        theirs = durations[real].astype(np.float32)
        known = np.isfinite(mine)
        bad = known & (np.abs(mine - theirs) > 1e-3 * np.maximum(1.0, np.abs(mine)))
        if bad.any():
            i = int(np.argmax(bad))
            video = int(candidates[real][i])
            raise ValueError(
                f"the observation is not of the run's world: video {video} lasts {theirs[i]:.3f} s in it "
                f"and {mine[i]:.3f} s in the run's data; score observations of the world the run was trained on"
            )

    @staticmethod
    def _request(user, candidates, hour=0, tab=1, position=0, time_ms=0, history_video=(), history_feedback=None):
        history_video = np.asarray(history_video, dtype=np.int64).reshape(-1)
        if history_feedback is None:
            history_feedback = np.zeros((len(history_video), 8), dtype=np.float32)
        history_feedback = np.asarray(history_feedback, dtype=np.float32).reshape(len(history_video), 8)
        return {
            "user": user,
            "time_ms": time_ms,
            "hour": hour,
            "tab": tab,
            "position": position,
            "history_video": history_video,
            "history_feedback": history_feedback,
            "candidates": np.asarray(candidates, dtype=np.int64).reshape(-1),
        }

    def __repr__(self):
        return f"Run(name={self.name!r}, method={self.method!r})"


Arm = Union[Run, str, Callable[[dict], Sequence[float]]]


def ab(
    world: "_native.World",
    arms: Dict[str, Arm],
    control: Optional[str] = None,
    days: int = 7,
    seed: int = 1,
    users: Optional[Sequence[int]] = None,
    bootstrap: int = 500,
) -> dict:
    """The online A/B test of ``mmrf ab``: every arm faces the same users on the same
    visits over ``days`` days from the test period's first day, and each is compared with
    ``control`` (the first arm by default), paired over users.

    An arm is a :class:`Run`, one of the world's own policies by name (``"logging"``,
    ``"random"``, ``"oracle"``, ``"oracle-session"``), or a callable that takes one
    request's observation (the dict ``WorldEnv`` returns) and returns a score per
    candidate slot; the world shows the K best. Returns the report ``mmrf ab --json``
    prints: per arm, the per-session means with 95 % intervals, and the lift over the
    control, overall and per day. ``users`` is a sequence of distinct user ids (each user
    is one paired unit); a :class:`Run` must have been loaded with this world's data; a
    callable's NaN score is refused, naming its slot.
    """
    if not arms:
        raise ValueError("give at least one arm")
    control = control if control is not None else next(iter(arms))

    def native(arm):
        if isinstance(arm, Run):
            return arm._native
        if isinstance(arm, str) or not callable(arm):
            return arm

        def scores(obs):
            out = np.ascontiguousarray(np.asarray(arm(_unbatch(obs, 0)), dtype=np.float32).reshape(-1))
            return out

        return scores

    if users is not None:
        if isinstance(users, (str, bytes)) or not isinstance(users, Iterable):
            raise TypeError(f"users: expected a sequence of user ids, got {type(users).__name__} {users!r}")
        ids = []
        for u in users:
            if isinstance(u, (bool, np.bool_)) or not float(u).is_integer() or int(u) < 0:
                raise ValueError(f"users: {u!r} is not a user id (a whole number from 0)")
            ids.append(int(u))
        users = ids
    report = _native.ab(
        world,
        [(name, native(arm)) for name, arm in arms.items()],
        control,
        days=int(days),
        seed=int(seed),
        users=users,
        bootstrap=int(bootstrap),
    )
    return json.loads(report)
