//! A trained policy as the rest of mmrf sees it: something that scores candidates.

use mmrf_data::session::RequestState;

/// A trained ranking policy. Its score is the method's **final ranking score**, the one it
/// ranks by when deployed (`DESIGN.md` §6): evaluation, the online test and the server all
/// call this, so they all rank alike.
pub trait Ranker: Send + Sync {
    /// The method's name (`bc`, `mmrf`, ...).
    fn method(&self) -> &str;

    /// One score per candidate into `scores` (same length as `candidates`).
    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]);

    /// Score many requests at once (`scores[i]` is resized to `candidates[i]`). Networks
    /// override this to run one batched forward pass instead of one per request.
    fn score_batch(&self, states: &[RequestState<'_>], candidates: &[&[u32]], scores: &mut [Vec<f32>]) {
        for ((s, c), out) in states.iter().zip(candidates).zip(scores.iter_mut()) {
            out.resize(c.len(), 0.0);
            self.score(s, c, out);
        }
    }

    /// Per-agent scores for multi-agent methods: `scores[agent][candidate]`, agents in
    /// [`mmrf_data::Signal::ALL`] order. `None` for methods without agents.
    fn agent_scores(&self, _state: &RequestState<'_>, _candidates: &[u32]) -> Option<Vec<Vec<f32>>> {
        None
    }

    /// For actor-critic methods, per state the cosine of the ranking actor's action to the
    /// WatchTime critic's best action: whether the actor ranks by what that critic values
    /// on these states (MMRF's main actor ascends it alone; Pareto's and TSCAC's trade it
    /// against the other signals, so theirs stays below 1 by design). `None` for methods
    /// without a critic. `candidates[i]` are state `i`'s candidates, as in
    /// [`Ranker::score_batch`] (a state may read them).
    fn critic_alignment(&self, _states: &[RequestState<'_>], _candidates: &[&[u32]]) -> Option<Vec<f32>> {
        None
    }
}

/// [`Ranker::score`] for a ranker whose batched pass is its real one: a batch of one.
pub(crate) fn score_one(ranker: &dyn Ranker, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
    let mut out = vec![Vec::new()];
    ranker.score_batch(std::slice::from_ref(state), &[candidates], &mut out);
    scores.copy_from_slice(&out[0]);
}

/// A [`Ranker`] as a policy of the world's online interface: top-K by score when
/// `temperature` is `None` (deployment), else K drawn from `softmax(score/τ)` (the
/// stochastic policy whose propensities off-policy estimates use).
pub struct AsPolicy<'a> {
    pub ranker: &'a dyn Ranker,
    pub temperature: Option<f32>,
}

impl<'a> AsPolicy<'a> {
    pub fn top_k(ranker: &'a dyn Ranker) -> Self {
        AsPolicy {
            ranker,
            temperature: None,
        }
    }
}

impl mmrf_world::Policy for AsPolicy<'_> {
    fn name(&self) -> &str {
        self.ranker.method()
    }

    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        self.ranker.score(state, candidates, scores)
    }

    fn temperature(&self) -> Option<f32> {
        self.temperature
    }
}

/// Uniform scores: under `softmax(score/τ)` every candidate is equally likely.
pub struct UniformRanker;

impl Ranker for UniformRanker {
    fn method(&self) -> &str {
        "uniform"
    }

    fn score(&self, _state: &RequestState<'_>, _candidates: &[u32], scores: &mut [f32]) {
        scores.iter_mut().for_each(|s| *s = 0.0);
    }
}

/// Any ranker under another name and with its scores scaled (a sharper or flatter policy).
pub struct Scaled<'a> {
    pub name: String,
    pub inner: &'a dyn Ranker,
    pub factor: f32,
}

impl Ranker for Scaled<'_> {
    fn method(&self) -> &str {
        &self.name
    }

    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        self.inner.score(state, candidates, scores);
        scores.iter_mut().for_each(|s| *s *= self.factor);
    }
}

/// The world's logging policy as a [`Ranker`], for checks against the ground truth.
pub struct LoggingRanker<'a>(pub &'a mmrf_world::WorldModel);

impl Ranker for LoggingRanker<'_> {
    fn method(&self) -> &str {
        "logging"
    }

    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        for (s, &c) in scores.iter_mut().zip(candidates) {
            *s = self.0.logging_score(state.user, c);
        }
    }
}

/// A factorised scorer: `score(u, j) = ⟨user_u, video_j⟩ + bias_j` from precomputed tables.
/// Methods whose score does not depend on the session state export this after training,
/// so scoring is a dot product, not a network call.
#[derive(Debug, Clone)]
pub struct TwoTowerRanker {
    pub method: String,
    pub dim: usize,
    /// `n_users × dim`.
    pub users: Vec<f32>,
    /// `n_videos × dim`.
    pub videos: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Ranker for TwoTowerRanker {
    fn method(&self) -> &str {
        &self.method
    }

    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        let d = self.dim;
        let u = &self.users[state.user as usize * d..(state.user as usize + 1) * d];
        for (s, &c) in scores.iter_mut().zip(candidates) {
            let v = &self.videos[c as usize * d..(c as usize + 1) * d];
            *s = u.iter().zip(v).map(|(a, b)| a * b).sum::<f32>() + self.bias[c as usize];
        }
    }
}
