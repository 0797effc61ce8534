"""A NumPy port of the mmrf world's step, the peer simulator of `env_step_rate.py`.

It reads the world's latent parameters from `mmrf.World.parameters()` and follows
`crates/world/src/model.rs` equation by equation: a visit's start (`sim.rs`, the day drawn
from the online test's week), the two-channel candidate retrieval (60 % from the user's
interest clusters, the rest by popularity, distinct), the response to each shown video
(relevance with noise, hate, like, comment, forward, engagement, play time, click, long
view, follow, the profile and comment visits), and the session dynamics (interest drift
toward what was watched, fatigue, satisfaction, the leave hazard). The observation is the
dict `mmrf.WorldEnv` returns. Random numbers come from NumPy's generator, so a visit is
the world's in distribution, not draw for draw: `env_step_rate.py` prints both
simulators' mean reward and visit length under the same random policy to show it.

This is how such a simulator is commonly written in Python (KuaiSim, EasyRL4Rec, RecSim
are NumPy or PyTorch loops of this shape): vectorised where the data allow, a Python loop
over the shown videos, whose responses depend on one another through the user's state.
"""

import datetime

import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _normalize(v):
    return v / max(float(np.sqrt(v @ v)), 1e-6)


def _is_valid_play(play, dur):
    return play >= dur if dur <= 7_000 else play > 7_000


def _is_long_view(play, dur):
    return play >= dur if dur <= 18_000 else play >= 18_000


class NumpyWorldEnv:
    """`reset(seed)` and `step(scores)` with the meaning of `mmrf.WorldEnv`'s."""

    DAY_MS = 86_400_000
    TEST_FIRST_DAY = datetime.date(2022, 4, 22)

    def __init__(self, world):
        p = world.parameters()
        self.p = p
        self.dim = p["dim"]
        self.n_candidates, self.k, self.history_len = world.n_candidates, world.k, world.history_len
        self.topic = p["item_topic"].astype(np.float32)
        self.duration = p["item_duration_ms"].astype(np.int64)
        self.author = p["item_author"].astype(np.int64)
        self.tags = p["item_tags"]
        self.pop_p = p["item_popularity"] / p["item_popularity"].sum()
        self.cluster_items = p["cluster_items"].astype(np.int64)
        self.cluster_offsets = p["cluster_offsets"].astype(np.int64)
        self.cluster_sizes = np.diff(self.cluster_offsets)
        hours = np.asarray(p["visit_hour_weight"], dtype=np.float64)
        tabs = np.asarray(p["visit_tab_weight"], dtype=np.float64)
        self.hour_p, self.tab_p = hours / hours.sum(), tabs / tabs.sum()
        first = datetime.datetime.strptime(str(p["first_day"]), "%Y%m%d").date()
        self.test_day_index = (self.TEST_FIRST_DAY - first).days
        self.rng = np.random.default_rng()

    # -- a visit ---------------------------------------------------------------------

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        r, p, dim = self.rng, self.p, self.dim
        self.user = int(r.integers(len(p["user_patience"])))
        day = int(r.integers(7))
        base = p["user_interest"][self.user].astype(np.float32)
        for _ in range(self.test_day_index + day):
            base = _normalize(base + r.normal(0.0, 0.06 / np.sqrt(dim), dim).astype(np.float32))
        self.base = base
        retrieval = np.exp(5.0 * (p["cluster_center"] @ base))
        self.retrieval_p = retrieval / retrieval.sum()
        hour = int(r.choice(24, p=self.hour_p))
        self.tab = int(r.choice(15, p=self.tab_p))
        self.t = hour * 3_600_000 + int(r.integers(3_600_000))
        # start_session
        self.interest = _normalize(base + r.normal(0.0, 0.25 / np.sqrt(dim), dim).astype(np.float32))
        self.fatigue, self.satisfaction = 0.0, 0.4
        self.recent = np.zeros(dim, dtype=np.float32)
        self.followed = set()
        self.history = []
        self.position = 0
        self._draw_candidates()
        return self._observation(), {}

    def _draw_candidates(self):
        r, n = self.rng, self.n_candidates
        interest_n = int(n * 0.6)
        out, seen = [], set()
        while len(out) < interest_n:
            clusters = r.choice(len(self.retrieval_p), size=interest_n, p=self.retrieval_p)
            sizes = self.cluster_sizes[clusters]
            clusters, sizes = clusters[sizes > 0], sizes[sizes > 0]
            picks = self.cluster_items[self.cluster_offsets[clusters] + (r.random(len(sizes)) * sizes).astype(np.int64)]
            for v in picks.tolist():
                if v not in seen and len(out) < interest_n:
                    seen.add(v)
                    out.append(v)
        while len(out) < n:
            for v in r.choice(len(self.pop_p), size=n - len(out), p=self.pop_p).tolist():
                if v not in seen and len(out) < n:
                    seen.add(v)
                    out.append(v)
        self.candidates = np.array(out, dtype=np.int64)

    def _observation(self):
        h = self.history[-self.history_len :]
        history_video = np.full(self.history_len, -1, dtype=np.int64)
        history_feedback = np.zeros((self.history_len, 8), dtype=np.float32)
        if h:
            history_video[-len(h) :] = [x[0] for x in h]
            history_feedback[-len(h) :] = [x[1:] for x in h]
        c = self.candidates
        return {
            "user": np.int64(self.user),
            "time_ms": np.asarray(self.t, dtype=np.int64),
            "hour": np.int64(self.t // 3_600_000),
            "tab": np.int64(self.tab),
            "position": np.int64(self.position),
            "history_video": history_video,
            "history_feedback": history_feedback,
            "candidates": c,
            "candidate_duration_s": (self.duration[c] / 1000.0).astype(np.float32),
            "candidate_author": self.author[c],
            "candidate_tags": self.tags[c],
            "mask": np.ones(len(c), dtype=np.int8),
        }

    # -- a request -------------------------------------------------------------------

    def _respond(self, j):
        p, r, u = self.p, self.rng, self.user
        topic = self.topic[j]
        rel = (
            2.3 * float(self.interest @ topic)
            + 0.7 * float(p["item_quality"][j])
            + float(p["user_patience"][u])
            - 1.1 * self.fatigue
            + float(p["relevance_noise"]) * r.standard_normal()
        )
        author = int(self.author[j])
        aff = float(self.base @ p["author_topic"][author]) + (1.0 if author in self.followed else 0.0)
        hate = r.random() < _sigmoid(-6.8 + p["user_hate"][u] - 1.1 * rel + p["item_hate_risk"][j])
        like = r.random() < _sigmoid(-7.2 + p["user_like"][u] + rel + p["item_like_appeal"][j])
        comment = r.random() < _sigmoid(-8.9 + p["user_comment"][u] + rel + p["item_comment_appeal"][j])
        r.random()  # forward
        like = like and not hate
        dur = int(self.duration[j])
        z = -3.0 + 1.25 * rel - 0.45 * np.log(dur / 24_000.0) + 1.1 * comment + 0.5 * like - 3.0 * hate
        if r.random() < _sigmoid(p["engagement_slope"] * z):
            frac = _sigmoid(z + 2.2 + p["fraction_noise"] * r.standard_normal())
            if frac > 0.85 and r.random() < _sigmoid(z - 1.5):
                frac += r.random() * (2.0 if dur < 20_000 else 0.5)
            play = int(round(dur * frac))
        else:
            lo, hi = p["swipe_ms"]
            share = (1.0 - p["swipe_relevance_share"]) * r.random() + p["swipe_relevance_share"] * _sigmoid(rel)
            play = min(int(lo + (hi - lo) * share), dur)
        click, long_view = _is_valid_play(play, dur), _is_long_view(play, dur)
        follow = False
        if author not in self.followed:
            follow = r.random() < _sigmoid(-9.9 + p["user_follow"][u] + 2.2 * aff + 0.5 * rel + comment)
        if follow or r.random() < _sigmoid(-5.2 + 1.5 * aff + 0.4 * rel):
            r.random()  # profile stay
        if comment or r.random() < 0.01:
            r.random()  # comment stay
        if follow:
            self.followed.add(author)
        # Session dynamics.
        watched = min(play / max(dur, 1), 1.0)
        repetition = max(float(self.recent @ topic), 0.0)
        self.fatigue += 0.02 + 0.10 * repetition * repetition
        self.interest = _normalize(self.interest + 0.10 * watched * (topic - self.interest))
        self.recent = 0.6 * self.recent + 0.4 * topic
        joy = watched + 0.6 * like + 0.8 * comment + 0.5 * follow - 3.0 * hate
        self.satisfaction = 0.75 * self.satisfaction + 0.25 * joy
        hazard = _sigmoid(-2.9 + p["user_leave"][u] - 3.2 * (self.satisfaction - 0.4) + 1.3 * self.fatigue)
        if hate:
            hazard = max(hazard, 0.45)
        leave = r.random() < hazard
        self.history.append(
            (j, play / 1000.0, dur / 1000.0, click, like, follow, comment, hate, long_view)
        )
        return play, leave

    def step(self, scores):
        order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")[: self.k]
        watch, end = 0.0, None
        for i in order.tolist():
            if self.t >= self.DAY_MS:
                end = "cut"
                break
            play, leave = self._respond(int(self.candidates[i]))
            watch += play / 1000.0
            self.t += play + int(self.rng.integers(500, 3_000))
            if leave:
                end = "left"
                break
        self.position += 1
        if end is None and self.position >= self.p["max_requests_per_visit"]:
            end = "cut"
        if end is None:
            self._draw_candidates()
        return self._observation(), watch, end == "left", end == "cut", {}
