"""Views of the world's observation for ranking policies written in PyTorch, JAX or NumPy.

:class:`CandidateFeatures` turns a request into what a ranking policy wants: one
fixed-width feature vector per candidate slot (so one network applies to every candidate)
and one context vector for the request. The features are the candidate's duration and its
match with what the user watched earlier in the visit, by author and by tag; the context
summarises the visit so far. Every feature lies in [0, 1].
"""

from typing import Dict, Tuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: Per candidate slot, in this order.
CANDIDATE_FEATURES = (
    "duration",  # log(1 + seconds) / log(1 + 600), capped at 1
    "seen",  # the video is in the visit's history already
    "author_share",  # share of the history by the candidate's author
    "author_watched",  # mean watched share of those videos (0 without one)
    "author_click",  # their click (valid play) rate
    "tag_share",  # share of the history sharing a tag with the candidate
    "tag_watched",  # mean watched share of those videos
    "tag_click",  # their click rate
    "tag_like",  # their like rate
    "mask",  # 1 for a real candidate, 0 for a padded slot
)

#: Of the request, in this order.
CONTEXT_FEATURES = (
    "hour",  # hour / 23
    "tab",  # tab / 14
    "position",  # log(1 + requests so far) / log(200)
    "history",  # share of the history window filled
    "watched",  # mean watched share over the history
    "click",  # rates over the history
    "like",
    "long_view",
    "hate",
    "last_watched",  # watched share of the latest video
)

_LOG_DURATION = np.log1p(600.0)
_LOG_POSITION = np.log(200.0)


class CandidateFeatures(gym.ObservationWrapper):
    """A :class:`mmrf.WorldEnv` seen a candidate at a time.

    The observation becomes a dict of ``candidates`` (``(n_candidates, F)`` float32, the
    :data:`CANDIDATE_FEATURES`), ``context`` (``(G,)`` float32, the
    :data:`CONTEXT_FEATURES`), ``mask`` and the candidates' ids (``candidates``' video ids
    as ``candidate_video``, ``candidate_author``, ``candidate_tags``) for policies that
    embed them. The action is unchanged: a score per slot.

    A history video's author and tags are those it had as a candidate: every video in a
    visit's history was a candidate of an earlier request of the same visit, so the
    wrapper remembers every candidate's author and tags from the observations it has seen
    (they never change within a world). :func:`features` does the same for any
    observation, with a memory the caller keeps (for a callable arm of :func:`mmrf.ab`).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        inner = env.observation_space
        c = inner["candidates"].shape[0]
        self.observation_space = spaces.Dict(
            {
                "candidates": spaces.Box(0.0, 1.0, shape=(c, len(CANDIDATE_FEATURES)), dtype=np.float32),
                "context": spaces.Box(0.0, 1.0, shape=(len(CONTEXT_FEATURES),), dtype=np.float32),
                "mask": inner["mask"],
                "candidate_video": inner["candidates"],
                "candidate_author": inner["candidate_author"],
                "candidate_tags": inner["candidate_tags"],
            }
        )
        self.known: Dict[int, Tuple[int, np.ndarray]] = {}

    def observation(self, obs: dict) -> dict:
        return features(obs, self.known)


def features(obs: dict, known: Dict[int, Tuple[int, np.ndarray]]) -> dict:
    """:class:`CandidateFeatures`' view of one ``WorldEnv`` observation. ``known`` maps a
    video to its author and tags; the observation's candidates are added to it first."""
    cands, mask = obs["candidates"], obs["mask"].astype(bool)
    authors, tags = obs["candidate_author"], obs["candidate_tags"]
    for v, a, t in zip(cands[mask], authors[mask], np.asarray(tags).reshape(len(cands), -1)[mask]):
        if int(v) not in known:
            known[int(v)] = (int(a), t.copy())
    return {
        "candidates": candidate_features(obs, known),
        "context": context_features(obs),
        "mask": obs["mask"],
        "candidate_video": cands,
        "candidate_author": authors,
        "candidate_tags": tags,
    }


def _history(obs: dict):
    videos = obs["history_video"]
    real = videos >= 0
    # Rows of play s, duration s, click, like, follow, comment, hate, long view.
    fb = np.asarray(obs["history_feedback"]).reshape(len(videos), -1)[real]
    watched = np.minimum(fb[:, 0] / np.maximum(fb[:, 1], 1e-3), 1.0) if len(fb) else np.zeros(0, np.float32)
    return videos[real], fb, watched


def candidate_features(obs: dict, known: Dict[int, Tuple[int, np.ndarray]]) -> np.ndarray:
    """The :data:`CANDIDATE_FEATURES` of every slot of one observation, ``(n_candidates, F)``."""
    cands, mask = obs["candidates"], obs["mask"].astype(np.float32)
    c = len(cands)
    tags = np.asarray(obs["candidate_tags"]).reshape(c, -1)
    t = tags.shape[1]
    out = np.zeros((c, len(CANDIDATE_FEATURES)), dtype=np.float32)
    out[:, 0] = np.minimum(np.log1p(np.maximum(obs["candidate_duration_s"], 0.0)) / _LOG_DURATION, 1.0)
    out[:, -1] = mask
    videos, fb, watched = _history(obs)
    if len(videos):
        out[:, 1] = np.isin(cands, videos)
        hist_author = np.array([known.get(int(v), (-1, None))[0] for v in videos], dtype=np.int64)
        hist_tags = np.full((len(videos), t), -1, dtype=np.int64)
        for i, v in enumerate(videos):
            entry = known.get(int(v))
            if entry is not None:
                hist_tags[i, : len(entry[1])] = entry[1][:t]
        same_author = (obs["candidate_author"][:, None] == hist_author[None, :]) & (hist_author[None, :] >= 0)
        tag_hit = tags[:, :, None, None] == hist_tags[None, None, :, :]
        tag_hit &= (hist_tags >= 0)[None, None, :, :]
        same_tag = tag_hit.any(axis=(1, 3))  # (C, H)
        n = float(len(videos))
        for col, match in ((2, same_author), (5, same_tag)):
            count = match.sum(axis=1)
            out[:, col] = count / n
            safe = np.maximum(count, 1)
            out[:, col + 1] = (match @ watched) / safe
            out[:, col + 2] = (match @ fb[:, 2]) / safe
        out[:, 8] = (same_tag @ fb[:, 3]) / np.maximum(same_tag.sum(axis=1), 1)
    out[:, :-1] *= mask[:, None]
    return np.clip(out, 0.0, 1.0)


def context_features(obs: dict) -> np.ndarray:
    """The :data:`CONTEXT_FEATURES` of one observation, ``(G,)``."""
    videos, fb, watched = _history(obs)
    h = obs["history_video"].shape[0]
    out = np.zeros(len(CONTEXT_FEATURES), dtype=np.float32)
    out[0] = float(obs["hour"]) / 23.0
    out[1] = min(float(obs["tab"]) / 14.0, 1.0)
    out[2] = min(np.log1p(float(obs["position"])) / _LOG_POSITION, 1.0)
    out[3] = len(videos) / max(h, 1)
    if len(videos):
        out[4] = watched.mean()
        out[5], out[6], out[7], out[8] = fb[:, 2].mean(), fb[:, 3].mean(), fb[:, 7].mean(), fb[:, 6].mean()
        out[9] = watched[-1]
    return np.clip(out, 0.0, 1.0)
