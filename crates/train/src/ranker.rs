//! A trained policy as the rest of mmrf sees it: something that scores candidates.

use mmrf_data::session::RequestState;
use serde::{Deserialize, Serialize};

/// How far eq. 6's factor moved the simulated labels over a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelUncertainty {
    /// Labels drawn (items × signals).
    pub labels: u64,
    /// The share whose factor lies outside [0.99, 1.01]: near 0, eq. 6 changes nothing.
    pub outside_099_101: f64,
}

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

    /// For methods whose ranking actor reads its partners (MMRF and MMRF-CO), per state
    /// the share of candidate pairs its ranking orders the same when the partners' actions
    /// and views come from another state of the batch: 1 means the ranking ignores what it
    /// reads of them. `None` for methods whose actors do not communicate.
    fn collaboration_sensitivity(&self, _states: &[RequestState<'_>], _candidates: &[&[u32]]) -> Option<Vec<f32>> {
        None
    }

    /// For methods that label non-impressions with a feedback simulator (MMRF and
    /// MMRF-CO), how far eq. 6's uncertainty factor moved the labels over training.
    fn label_uncertainty(&self) -> Option<LabelUncertainty> {
        None
    }
}

/// The share of pairs of `a` that `b` orders the same way (pairs tied in either count as
/// agreeing only when tied in both).
pub fn pair_agreement(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (mut same, mut pairs) = (0u64, 0u64);
    for i in 0..n {
        for j in i + 1..n {
            let (x, y) = (a[i].total_cmp(&a[j]), b[i].total_cmp(&b[j]));
            same += (x == y) as u64;
            pairs += 1;
        }
    }
    if pairs == 0 {
        1.0
    } else {
        same as f32 / pairs as f32
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

#[cfg(test)]
mod tests {
    use super::pair_agreement;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pair_agreement_is_one_with_itself_zero_reversed_and_a_share_between(
            v in proptest::collection::vec(-100i32..100, 2..60),
            w in proptest::collection::vec(-100i32..100, 2..60),
        ) {
            let a: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            let b: Vec<f32> = w.iter().map(|&x| x as f32).collect();
            prop_assert_eq!(pair_agreement(&a, &a), 1.0);
            // Negation reverses every untied pair and keeps the ties.
            let neg: Vec<f32> = a.iter().map(|x| -x).collect();
            let n = a.len();
            let ties = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).filter(|&(i, j)| a[i] == a[j]).count();
            let pairs = n * (n - 1) / 2;
            prop_assert!((pair_agreement(&a, &neg) - ties as f32 / pairs as f32).abs() < 1e-6);
            let x = pair_agreement(&a, &b);
            prop_assert!((0.0..=1.0).contains(&x));
            // Symmetric, and blind to a monotone transform.
            prop_assert_eq!(x, pair_agreement(&b, &a));
            let shifted: Vec<f32> = b.iter().map(|y| 3.0 * y + 7.0).collect();
            prop_assert_eq!(x, pair_agreement(&a, &shifted));
        }
    }
}
