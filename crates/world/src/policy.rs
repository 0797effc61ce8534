//! The online interface's ranker contract and its first two implementations.

use mmrf_data::session::RequestState;

use crate::model::{UserState, WorldModel};

/// A ranking policy: given a request's state and candidates, score every candidate.
///
/// The top-K by score are shown. A stochastic policy returns a [`Policy::temperature`]:
/// the world then shows K candidates drawn without replacement from
/// `softmax(score / temperature)` (Plackett–Luce, via Gumbel-top-K).
pub trait Policy: Sync {
    /// A short name for reports.
    fn name(&self) -> &str;

    /// Write one score per candidate into `scores` (same length as `candidates`).
    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]);

    /// [`Policy::score`] inside the world, which also hands over its own state of the user
    /// (`truth`). Only the world's oracles read it; every other policy ranks by what it
    /// can observe, and the default ignores it.
    fn score_in(&self, truth: &UserState, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        let _ = truth;
        self.score(state, candidates, scores);
    }

    /// `Some(τ)` for a stochastic policy that samples from `softmax(score / τ)`.
    fn temperature(&self) -> Option<f32> {
        None
    }
}

/// The world's production ranker: a noisy estimate of interest and quality plus
/// popularity, sampled with the world's logging temperature. Its softmax over a
/// request's candidates is the true propensity `π_β(j|s)` written to the side file.
pub struct LoggingPolicy<'a> {
    pub model: &'a WorldModel,
}

impl Policy for LoggingPolicy<'_> {
    fn name(&self) -> &str {
        "logging"
    }

    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        for (s, &c) in scores.iter_mut().zip(candidates) {
            *s = self.model.logging_score(state.user, c);
        }
    }

    fn temperature(&self) -> Option<f32> {
        Some(self.model.config.logging_temperature)
    }
}

/// Uniformly random exposure: every K-subset of the candidates equally likely.
pub struct RandomPolicy;

impl Policy for RandomPolicy {
    fn name(&self) -> &str {
        "random"
    }

    fn score(&self, _state: &RequestState<'_>, _candidates: &[u32], scores: &mut [f32]) {
        scores.iter_mut().for_each(|s| *s = 0.0);
    }

    fn temperature(&self) -> Option<f32> {
        Some(1.0)
    }
}

/// `softmax(scores / τ)` into `out` (numerically stable).
pub fn softmax(scores: &[f32], temperature: f32, out: &mut Vec<f32>) {
    out.clear();
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    out.extend(scores.iter().map(|s| ((s - max) / temperature).exp()));
    let sum: f32 = out.iter().sum();
    out.iter_mut().for_each(|p| *p /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn softmax_is_a_distribution(scores in proptest::collection::vec(-50.0f32..50.0, 1..400), t in 0.05f32..5.0) {
            let mut p = Vec::new();
            softmax(&scores, t, &mut p);
            let sum: f32 = p.iter().sum();
            prop_assert!((sum - 1.0).abs() < 1e-4);
            prop_assert!(p.iter().all(|&x| (0.0..=1.0).contains(&x)));
            // Order preserved: a higher score never gets a lower probability.
            for i in 0..scores.len() {
                for j in 0..scores.len() {
                    if scores[i] > scores[j] { prop_assert!(p[i] >= p[j]); }
                }
            }
        }
    }
}
