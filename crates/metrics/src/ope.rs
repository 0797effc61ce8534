//! Off-policy estimates of a target policy's per-impression value from logged data.
//!
//! For each held-out impression: the logged reward `r`, the target policy's probability
//! `π(j|s)` of the shown item and the behaviour policy's `π_β(j|s)` (`DESIGN.md` §6).
//!
//! - **NCIS**: `w = min(c, π/π_β)`, `Σ w·r / Σ w` — capped, then self-normalised;
//! - **IPS**: `Σ (π/π_β)·r / n` — unbiased, high variance;
//! - **SNIPS**: `Σ (π/π_β)·r / Σ (π/π_β)` — self-normalised, uncapped.
//!
//! With NCIS come the effective sample size `(Σw)²/Σw²` and a bootstrap 95 % interval
//! over users (users are the independent units: impressions of one user are not).

use crate::paired::{interval, UserSums};

/// The most bootstrap resamples an interval takes: each costs a pass over the users, and
/// the interval's own error is far below its width long before this.
pub const MAX_BOOTSTRAP: usize = 100_000;

/// Estimator settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OpeConfig {
    /// The cap `c` on importance ratios. 10 keeps any single impression from weighing
    /// more than ten times its logged share — the variance stays bounded even when a
    /// target policy concentrates on items the logger rarely showed — while policies
    /// close to the logger (ratios mostly below 10) are left nearly unbiased. The ESS
    /// reported alongside tells how much the estimate leans on few impressions.
    pub cap: f64,
    /// Bootstrap resamples for the interval.
    pub bootstrap: usize,
    pub seed: u64,
}

impl Default for OpeConfig {
    fn default() -> Self {
        OpeConfig {
            cap: 10.0,
            bootstrap: 500,
            seed: 0,
        }
    }
}

/// The estimates for one signal.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OffPolicy {
    pub ncis: f64,
    /// Bootstrap 95 % interval of NCIS over users.
    pub ncis_ci: [f64; 2],
    /// Effective sample size of the capped weights.
    pub ess: f64,
    pub ips: f64,
    pub snips: f64,
    pub cap: f64,
    pub impressions: usize,
}

/// NCIS (with IPS and SNIPS) over aligned per-impression slices.
///
/// Errors name the first impression whose propensity is not a probability in (0, 1].
pub fn ncis(users: &[u32], rewards: &[f32], pi: &[f32], pi_beta: &[f32], cfg: &OpeConfig) -> Result<OffPolicy, String> {
    ncis_with_sums(users, rewards, pi, pi_beta, cfg).map(|(o, _)| o)
}

/// [`ncis`], and the per-user terms `(Σ w·r, Σ w)` it was computed from, for paired
/// comparisons ([`crate::paired`]) without computing them twice.
pub fn ncis_with_sums(
    users: &[u32],
    rewards: &[f32],
    pi: &[f32],
    pi_beta: &[f32],
    cfg: &OpeConfig,
) -> Result<(OffPolicy, UserSums), String> {
    let n = rewards.len();
    if users.len() != n || pi.len() != n || pi_beta.len() != n {
        return Err("users, rewards, pi and pi_beta must have one value per impression".into());
    }
    if n == 0 {
        return Err("no impressions to evaluate".into());
    }
    if cfg.bootstrap > MAX_BOOTSTRAP {
        return Err(format!(
            "bootstrap {}: at most {MAX_BOOTSTRAP} resamples",
            cfg.bootstrap
        ));
    }
    if let Some(i) = (0..n).find(|&i| !((0.0..=1.0).contains(&pi[i]) && pi_beta[i] > 0.0 && pi_beta[i] <= 1.0)) {
        return Err(format!(
            "impression {i}: pi = {}, pi_beta = {} are not probabilities (pi_beta must be > 0)",
            pi[i], pi_beta[i]
        ));
    }
    if let Some(i) = (0..n).find(|&i| !rewards[i].is_finite()) {
        return Err(format!("impression {i}: reward {} is not finite", rewards[i]));
    }
    let (mut sw, mut sw2, mut s_ratio, mut s_ratio_r) = (0f64, 0f64, 0f64, 0f64);
    // NCIS's per-user terms `(Σ w·r, Σ w)`, `w = min(cap, π/π_β)`.
    let mut terms = Vec::with_capacity(n);
    for i in 0..n {
        let ratio = pi[i] as f64 / pi_beta[i] as f64;
        let w = ratio.min(cfg.cap);
        sw += w;
        sw2 += w * w;
        s_ratio += ratio;
        s_ratio_r += ratio * rewards[i] as f64;
        terms.push((users[i], w * rewards[i] as f64, w));
    }
    let per_user = UserSums::from_terms(terms);
    let ncis = per_user.value();
    let boots = per_user.bootstrap(cfg.bootstrap, cfg.seed);
    let value = |num: f64, den: f64| if den > 0.0 { num / den } else { 0.0 };
    let estimate = OffPolicy {
        ncis,
        ncis_ci: interval(&boots, ncis),
        ess: if sw2 > 0.0 { sw * sw / sw2 } else { 0.0 },
        ips: s_ratio_r / n as f64,
        snips: value(s_ratio_r, s_ratio),
        cap: cfg.cap,
        impressions: n,
    };
    Ok((estimate, per_user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_behaviour_policy_against_itself_is_the_logged_mean() {
        let users: Vec<u32> = (0..1000).map(|i| i / 10).collect();
        let rewards: Vec<f32> = (0..1000).map(|i| ((i * 37) % 101) as f32 / 7.0).collect();
        let p: Vec<f32> = (0..1000).map(|i| 0.001 + (i % 13) as f32 / 20.0).collect();
        let est = ncis(&users, &rewards, &p, &p, &OpeConfig::default()).unwrap();
        let mean = rewards.iter().map(|&r| r as f64).sum::<f64>() / 1000.0;
        assert!((est.ncis - mean).abs() < 1e-9 && (est.ips - mean).abs() < 1e-9 && (est.snips - mean).abs() < 1e-9);
        assert!((est.ess - 1000.0).abs() < 1e-6, "equal weights: ESS = n");
        assert!(est.ncis_ci[0] <= mean && mean <= est.ncis_ci[1]);
    }

    #[test]
    fn capping_and_reweighting() {
        // Two impressions: the target likes the second 30x more than the logger did.
        let est = ncis(&[0, 1], &[0.0, 1.0], &[0.5, 0.3], &[0.5, 0.01], &OpeConfig::default()).unwrap();
        // ratios 1 and 30 → capped 1 and 10 → NCIS = 10/11; SNIPS = 30/31; IPS = 30/2.
        assert!((est.ncis - 10.0 / 11.0).abs() < 1e-9);
        assert!((est.snips - 30.0 / 31.0).abs() < 1e-6);
        assert!((est.ips - 15.0).abs() < 1e-5);
        assert!(ncis(&[0], &[1.0], &[0.5], &[0.0], &OpeConfig::default())
            .unwrap_err()
            .contains("impression 0"));
        assert!(ncis(&[0], &[f32::NAN], &[0.5], &[0.5], &OpeConfig::default()).is_err());
    }

    proptest! {
        #[test]
        fn ncis_lies_within_the_reward_range(data in proptest::collection::vec((0u32..20, -5.0f32..5.0, 0.001f32..1.0, 0.001f32..1.0), 1..200)) {
            let users: Vec<u32> = data.iter().map(|d| d.0).collect();
            let r: Vec<f32> = data.iter().map(|d| d.1).collect();
            let pi: Vec<f32> = data.iter().map(|d| d.2).collect();
            let pb: Vec<f32> = data.iter().map(|d| d.3).collect();
            let est = ncis(&users, &r, &pi, &pb, &OpeConfig { bootstrap: 50, ..OpeConfig::default() }).unwrap();
            let lo = r.iter().copied().fold(f32::INFINITY, f32::min) as f64;
            let hi = r.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            prop_assert!(est.ncis >= lo - 1e-6 && est.ncis <= hi + 1e-6);
            prop_assert!(est.ess >= 1.0 - 1e-9 && est.ess <= data.len() as f64 + 1e-6);
            prop_assert!(est.ncis_ci[0] <= est.ncis_ci[1]);
        }
    }
}
