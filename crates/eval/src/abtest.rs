//! The simulated online A/B test (the paper's Table 2 and Figure 2).
//!
//! Every arm runs on the same users with the same per-user random streams (see
//! `mmrf_world::online`), so arms are paired. Per arm: mean per-session WatchTime, Depth,
//! Follow, Comment, Like and Hate, each a ratio of totals over sessions, with a 95 %
//! bootstrap interval over users; against the control arm: the relative lift with a paired
//! bootstrap interval (the same resampled users in both arms), overall and per day.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use mmrf_world::{run_policy, OnlineConfig, Policy, UserOutcome, WorldModel};

/// The per-session metrics, in report order.
pub const METRICS: [&str; 6] = ["watch_time", "depth", "follow", "comment", "like", "hate"];

fn metric(u: &UserOutcome, m: usize) -> f64 {
    match m {
        0 => u.viewed.watch_time_s,
        1 => u.viewed.views as f64,
        2 => u.viewed.follow as f64,
        3 => u.viewed.comment as f64,
        4 => u.viewed.like as f64,
        _ => u.viewed.hate as f64,
    }
}

/// A value with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub mean: f64,
    pub ci: [f64; 2],
}

impl Estimate {
    /// True when the interval excludes zero.
    pub fn significant(&self) -> bool {
        self.ci[0] > 0.0 || self.ci[1] < 0.0
    }
}

/// One arm's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    pub name: String,
    pub users: usize,
    pub sessions: u64,
    /// Per-session means, keyed as [`METRICS`].
    pub per_session: Vec<(String, Estimate)>,
    /// Relative lift against the control arm (0.05 = +5 %), keyed as [`METRICS`].
    pub lift: Vec<(String, Estimate)>,
    /// Relative lift of per-session WatchTime against the control, per simulated day.
    pub lift_per_day: Vec<Estimate>,
}

impl Arm {
    pub fn per_session(&self, metric: &str) -> Option<Estimate> {
        self.per_session.iter().find(|(k, _)| k == metric).map(|x| x.1)
    }

    pub fn lift(&self, metric: &str) -> Option<Estimate> {
        self.lift.iter().find(|(k, _)| k == metric).map(|x| x.1)
    }
}

/// The A/B report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbReport {
    pub control: String,
    pub days: u32,
    pub arms: Vec<Arm>,
}

/// Settings of the test.
#[derive(Debug, Clone, PartialEq)]
pub struct AbConfig {
    pub online: OnlineConfig,
    pub bootstrap: usize,
    pub seed: u64,
}

impl Default for AbConfig {
    fn default() -> Self {
        AbConfig {
            online: OnlineConfig::default(),
            bootstrap: 500,
            seed: 0,
        }
    }
}

/// Run every arm and compare each with `arms[control]`.
pub fn ab_test(model: &WorldModel, arms: &[&dyn Policy], control: usize, cfg: &AbConfig) -> AbReport {
    let outcomes: Vec<Vec<UserOutcome>> = arms.iter().map(|p| run_policy(model, *p, &cfg.online)).collect();
    let names: Vec<String> = arms.iter().map(|p| p.name().to_string()).collect();
    compare(&names, &outcomes, control, cfg)
}

/// Per-session ratio of metric `m` over users `idx` (with multiplicity).
fn ratio(out: &[UserOutcome], idx: &[usize], m: usize) -> f64 {
    let (num, den) = idx.iter().fold((0.0, 0u64), |(n, d), &i| {
        (n + metric(&out[i], m), d + out[i].sessions as u64)
    });
    num / den.max(1) as f64
}

fn day_ratio(out: &[UserOutcome], idx: &[usize], day: usize) -> f64 {
    let (num, den) = idx.iter().fold((0.0, 0u64), |(n, d), &i| {
        let (s, _, wt) = out[i].per_day.get(day).copied().unwrap_or_default();
        (n + wt, d + s as u64)
    });
    num / den.max(1) as f64
}

fn interval(mut draws: Vec<f64>) -> [f64; 2] {
    draws.retain(|x| x.is_finite());
    if draws.is_empty() {
        return [f64::NAN, f64::NAN];
    }
    draws.sort_by(f64::total_cmp);
    let q = |p: f64| draws[((draws.len() - 1) as f64 * p).round() as usize];
    [q(0.025), q(0.975)]
}

/// The report from already simulated, user-aligned outcomes.
pub fn compare(names: &[String], outcomes: &[Vec<UserOutcome>], control: usize, cfg: &AbConfig) -> AbReport {
    let n = outcomes[control].len();
    let days = outcomes[control].first().map_or(0, |u| u.per_day.len());
    let all: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let samples: Vec<Vec<usize>> = (0..cfg.bootstrap)
        .map(|_| (0..n).map(|_| rng.random_range(0..n.max(1))).collect())
        .collect();
    let lift = |a: f64, c: f64| if c != 0.0 { a / c - 1.0 } else { f64::NAN };
    let arms = names
        .iter()
        .zip(outcomes)
        .map(|(name, out)| {
            let c = &outcomes[control];
            let per_session = (0..METRICS.len())
                .map(|m| {
                    let draws = samples.iter().map(|s| ratio(out, s, m)).collect();
                    (
                        METRICS[m].to_string(),
                        Estimate {
                            mean: ratio(out, &all, m),
                            ci: interval(draws),
                        },
                    )
                })
                .collect();
            let lifts = (0..METRICS.len())
                .map(|m| {
                    let draws = samples.iter().map(|s| lift(ratio(out, s, m), ratio(c, s, m))).collect();
                    let mean = lift(ratio(out, &all, m), ratio(c, &all, m));
                    (
                        METRICS[m].to_string(),
                        Estimate {
                            mean,
                            ci: interval(draws),
                        },
                    )
                })
                .collect();
            let lift_per_day = (0..days)
                .map(|d| {
                    let draws = samples
                        .iter()
                        .map(|s| lift(day_ratio(out, s, d), day_ratio(c, s, d)))
                        .collect();
                    Estimate {
                        mean: lift(day_ratio(out, &all, d), day_ratio(c, &all, d)),
                        ci: interval(draws),
                    }
                })
                .collect();
            Arm {
                name: name.clone(),
                users: out.len(),
                sessions: out.iter().map(|u| u.sessions as u64).sum(),
                per_session,
                lift: lifts,
                lift_per_day,
            }
        })
        .collect();
    AbReport {
        control: names[control].clone(),
        days: days as u32,
        arms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(sessions: u32, wt: f64) -> UserOutcome {
        UserOutcome {
            sessions,
            viewed: mmrf_world::Tally {
                views: sessions * 3,
                watch_time_s: wt,
                ..Default::default()
            },
            per_day: vec![(sessions, sessions * 3, wt)],
            ..Default::default()
        }
    }

    #[test]
    fn ratios_and_lifts_by_hand() {
        let control = vec![user(2, 100.0), user(1, 50.0)];
        let arm = vec![user(2, 120.0), user(1, 60.0)];
        let r = compare(&["c".into(), "a".into()], &[control, arm], 0, &AbConfig::default());
        let a = &r.arms[1];
        assert!((a.per_session("watch_time").unwrap().mean - 60.0).abs() < 1e-9);
        assert!((r.arms[0].per_session("watch_time").unwrap().mean - 50.0).abs() < 1e-9);
        // Every user gains 20 %: every resample does too, the interval is a point.
        let l = a.lift("watch_time").unwrap();
        assert!((l.mean - 0.2).abs() < 1e-9 && (l.ci[0] - 0.2).abs() < 1e-9 && (l.ci[1] - 0.2).abs() < 1e-9);
        assert!(l.significant());
        assert!((a.lift_per_day[0].mean - 0.2).abs() < 1e-9);
        // The control against itself: zero lift, not significant.
        assert_eq!(r.arms[0].lift("watch_time").unwrap().mean, 0.0);
        assert!(!r.arms[0].lift("watch_time").unwrap().significant());
    }
}
