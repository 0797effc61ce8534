//! NCIS fidelity: how well do the offline estimates predict what a policy really does?
//!
//! On a world the truth is available: run each policy online (as the stochastic policy
//! `softmax(score/τ)` whose propensities NCIS uses) and take the per-impression value of
//! every signal. Against it, NCIS on the held-out log with π_β from BC and with the world's
//! true propensities. Reported per signal: Spearman's rank correlation across the policies
//! (does NCIS order them right?) and the mean relative error (is it on the right scale?).
//!
//! Two truths, because a request shows K videos. The first video of a request is one draw
//! from the policy's `softmax(score/τ)` (Gumbel-top-K's first pick); the later ones are
//! drawn without replacement from what is left, so for a sharp policy the value per shown
//! video (`online`) is well below the first draw's (`online_first`). NCIS weighs an
//! impression by `π(j|s)/π_β(j|s)` with one draw's probabilities; uncapped, that would
//! estimate the first draw's value if the logger's slates held each video K times as often
//! as one draw picks it (a flat logger). With a sharper logger, and with the cap `c`
//! clipping the ratios of the videos a sharp policy wants and the logger rarely showed,
//! the estimate lands between the two truths, so each row also gives the uncapped
//! estimate (SNIPS) to show how far the cap moves it.

use mmrf_data::session::{RequestState, Timelines};
use mmrf_data::{Dataset, LogSplit, Signal};
use mmrf_train::{AsPolicy, Ranker};
use mmrf_world::{run_policy, OnlineConfig, Policy, Tally, UserOutcome, UserState, WorldModel};
use serde::{Deserialize, Serialize};

use crate::offline::{metrics, score_split, Behaviour, OfflineConfig, OfflineReport};
use crate::{paired_difference, Difference, UserSums};

/// A policy to check: a ranker read at temperature `tau`.
pub struct Candidate<'a> {
    pub ranker: &'a dyn Ranker,
    pub tau: f32,
    /// Its offline reports at this `tau` where already computed (Table 1's), so the check
    /// reuses them instead of scoring the split twice more.
    pub known: Option<Known<'a>>,
    /// The policy run in the world in the ranker's place, read at the same `tau`: for a
    /// ranker that scores logged requests only, such as the world's oracle, whose online
    /// counterpart reads the user's live state instead.
    pub online: Option<&'a dyn Policy>,
    /// Its online outcomes where already run (by another check on the same online
    /// configuration), so the world need not run it again.
    pub outcomes: Option<&'a [UserOutcome]>,
}

/// A policy's offline reports on the test split at its temperature.
#[derive(Clone, Copy)]
pub struct Known<'a> {
    /// With BC's π_β (Table 1's).
    pub bc: &'a OfflineReport,
    /// With the world's true π_β: the same scores,
    /// [`crate::offline::ScoredImpressions::with_true_propensities`].
    pub truth: &'a OfflineReport,
}

impl<'a> Candidate<'a> {
    pub fn new(ranker: &'a dyn Ranker, tau: f32) -> Self {
        Candidate {
            ranker,
            tau,
            known: None,
            online: None,
            outcomes: None,
        }
    }

    /// A policy whose reports are already computed: read at their temperature, checked
    /// with their NCIS.
    pub fn with_reports(ranker: &'a dyn Ranker, bc: &'a OfflineReport, truth: &'a OfflineReport) -> Self {
        Candidate {
            ranker,
            tau: bc.tau,
            known: Some(Known { bc, truth }),
            online: None,
            outcomes: None,
        }
    }

    /// Reuse `outcomes`, this policy's run in the world on the check's online
    /// configuration (see [`Candidate::outcomes`]).
    pub fn with_outcomes(self, outcomes: &'a [UserOutcome]) -> Self {
        Candidate {
            outcomes: Some(outcomes),
            ..self
        }
    }

    /// Run `policy` in the world in the ranker's place (see [`Candidate::online`]).
    pub fn run_as(self, policy: &'a dyn Policy) -> Self {
        Candidate {
            online: Some(policy),
            ..self
        }
    }
}

/// A policy's scores read as the stochastic policy `softmax(score/τ)`.
struct Tempered<'a> {
    inner: &'a dyn Policy,
    tau: f32,
}

impl Policy for Tempered<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        self.inner.score(state, candidates, scores)
    }

    fn score_in(&self, truth: &UserState, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        self.inner.score_in(truth, state, candidates, scores)
    }

    fn temperature(&self) -> Option<f32> {
        Some(self.tau)
    }
}

/// One policy × signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FidelityRow {
    pub policy: String,
    pub tau: f32,
    pub signal: String,
    /// The true online value per shown video (all K videos of every request).
    pub online: f64,
    /// The true value of the first video of a request alone: one draw from the policy's
    /// softmax, the distribution its propensities describe ([`first_slot_value`]).
    #[serde(default)]
    pub online_first: f64,
    pub ncis_true: f64,
    pub ncis_true_ci: [f64; 2],
    pub ncis_bc: f64,
    pub ncis_bc_ci: [f64; 2],
    /// The same estimates with the ratios uncapped (SNIPS): beside NCIS, how much the cap
    /// moves the figure.
    #[serde(default)]
    pub snips_true: f64,
    #[serde(default)]
    pub snips_bc: f64,
}

/// Agreement of the estimates with the truth for one signal, across policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalFidelity {
    pub signal: String,
    /// Against the value per shown video (`online`).
    pub spearman_true: f64,
    pub spearman_bc: f64,
    pub mean_rel_error_true: f64,
    pub mean_rel_error_bc: f64,
    /// Against the value of one draw (`online_first`), which NCIS's propensities describe.
    #[serde(default)]
    pub spearman_first_true: f64,
    #[serde(default)]
    pub spearman_first_bc: f64,
    #[serde(default)]
    pub mean_rel_error_first_true: f64,
    #[serde(default)]
    pub mean_rel_error_first_bc: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FidelityReport {
    pub rows: Vec<FidelityRow>,
    pub signals: Vec<SignalFidelity>,
    /// Each policy's online outcomes, by name in the order checked, for comparing the
    /// truths of two policies ([`paired_truths`]); not written out.
    #[serde(skip)]
    pub outcomes: Vec<(String, Vec<UserOutcome>)>,
}

/// One policy's true WatchTime against another's, paired over users: every policy ran
/// on the same users, visits and first candidates, so resampling users once for both
/// cancels who happens to be simulated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthDifference {
    /// The policy compared with (B in `A − B`).
    pub policy: String,
    /// Seconds per shown video, A − B.
    pub per_video: Difference,
    /// Seconds of the first draw, A − B.
    pub first_draw: Difference,
}

/// `focus` against every other policy of `report` by the true WatchTime, per shown video
/// and of the first draw, with paired bootstrap intervals over users (`draws` resamples).
pub fn paired_truths(
    report: &FidelityReport,
    focus: &str,
    draws: usize,
    seed: u64,
) -> Result<Vec<TruthDifference>, String> {
    // Per user: (seconds of play, views), per shown video and of the first draw.
    let sums = |out: &[UserOutcome]| {
        let of = |tally: fn(&UserOutcome) -> &Tally| {
            UserSums::from_terms(
                out.iter()
                    .map(|u| (u.user, tally(u).watch_time_s, tally(u).views as f64))
                    .collect(),
            )
        };
        (of(|u| &u.viewed), of(|u| &u.first_slot))
    };
    let Some((_, a)) = report.outcomes.iter().find(|(name, _)| name == focus) else {
        return Err(format!("no online outcomes of {focus} in the fidelity report"));
    };
    let (a_video, a_first) = sums(a);
    report
        .outcomes
        .iter()
        .filter(|(name, _)| name != focus)
        .map(|(name, b)| {
            let (b_video, b_first) = sums(b);
            Ok(TruthDifference {
                policy: name.clone(),
                per_video: paired_difference(&a_video, &b_video, draws, seed)?,
                first_draw: paired_difference(&a_first, &b_first, draws, seed)?,
            })
        })
        .collect()
}

/// The true value of a signal per shown video from online outcomes.
pub fn online_value(out: &[UserOutcome], signal: Signal) -> f64 {
    per_view(out.iter().map(|u| &u.viewed), signal)
}

/// The true per-view value of a signal over the first video of each request: for a
/// stochastic policy, one draw from `softmax(score/τ)`, whose probability is the `π(j|s)`
/// NCIS weighs by.
pub fn first_slot_value(out: &[UserOutcome], signal: Signal) -> f64 {
    per_view(out.iter().map(|u| &u.first_slot), signal)
}

/// A signal's total over all users' tallies per view (0 without views).
fn per_view<'a>(tallies: impl Iterator<Item = &'a Tally>, signal: Signal) -> f64 {
    let (total, views) = tallies.fold((0.0, 0.0), |(t, v), x| (t + x.total(signal), v + x.views as f64));
    total / f64::max(views, 1.0)
}

/// Mean of `|estimate − truth| / truth` over policies.
fn mean_rel_error(estimates: &[f64], truths: &[f64]) -> f64 {
    estimates
        .iter()
        .zip(truths)
        .map(|(e, o)| ((e - o) / o).abs())
        .sum::<f64>()
        / truths.len().max(1) as f64
}

/// Spearman's rank correlation (average ranks for ties); NaN under two points.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    fn ranks(x: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..x.len()).collect();
        idx.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
        let mut r = vec![0.0; x.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
                j += 1;
            }
            for k in i..=j {
                r[idx[k]] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        r
    }
    if a.len() < 2 {
        return f64::NAN;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// The online run a held-out estimate is checked against: the test split's own period
/// (4_22–5_08, 17 days), so both sides see the same days, with online streams from `seed`.
pub fn test_period(seed: u64) -> OnlineConfig {
    let days = mmrf_data::time::yyyymmdd_to_days(mmrf_data::schema::TEST_LAST_DAY)
        - mmrf_data::time::yyyymmdd_to_days(mmrf_data::schema::TEST_FIRST_DAY)
        + 1;
    OnlineConfig {
        start_day: mmrf_data::schema::TEST_FIRST_DAY,
        days: days as u32,
        seed,
        users: None,
    }
}

/// Check NCIS against the truth for `policies` on the held-out test split.
pub fn fidelity(
    data: &Dataset,
    timelines: &Timelines,
    model: &WorldModel,
    policies: &[Candidate<'_>],
    bc: &dyn Ranker,
    offline: &OfflineConfig,
    online: &OnlineConfig,
) -> Result<FidelityReport, String> {
    let mut rows = Vec::new();
    let mut outcomes = Vec::new();
    for p in policies {
        let cfg = OfflineConfig {
            tau: Some(p.tau),
            ..*offline
        };
        let (truth, est) = match p.known {
            Some(k) => {
                for r in [k.bc, k.truth] {
                    if r.tau != p.tau || r.method != p.ranker.method() {
                        return Err(format!(
                            "the report given for {} at τ = {} is {}'s at τ = {}",
                            p.ranker.method(),
                            p.tau,
                            r.method,
                            r.tau
                        ));
                    }
                }
                (k.truth.clone(), k.bc.clone())
            }
            None => {
                let scored = score_split(data, timelines, LogSplit::Test, p.ranker, Behaviour::Model(bc), &cfg)?;
                let truth = metrics(p.ranker.method(), data, &scored.with_true_propensities(data)?, &cfg)?;
                (truth, metrics(p.ranker.method(), data, &scored, &cfg)?)
            }
        };
        let out = match (p.outcomes, p.online) {
            (Some(known), _) => known.to_vec(),
            (None, Some(inner)) => run_policy(model, &Tempered { inner, tau: p.tau }, online),
            (None, None) => run_policy(
                model,
                &AsPolicy {
                    ranker: p.ranker,
                    temperature: Some(p.tau),
                },
                online,
            ),
        };
        for signal in Signal::ALL {
            let (t, b) = (&truth.signals[signal.name()], &est.signals[signal.name()]);
            rows.push(FidelityRow {
                policy: p.ranker.method().to_string(),
                tau: p.tau,
                signal: signal.name().to_string(),
                online: online_value(&out, signal),
                online_first: first_slot_value(&out, signal),
                ncis_true: t.ncis,
                ncis_true_ci: t.ncis_ci,
                ncis_bc: b.ncis,
                ncis_bc_ci: b.ncis_ci,
                snips_true: t.snips,
                snips_bc: b.snips,
            });
        }
        outcomes.push((p.ranker.method().to_string(), out));
    }
    let signals = Signal::ALL
        .iter()
        .map(|s| {
            let r: Vec<&FidelityRow> = rows.iter().filter(|r| r.signal == s.name()).collect();
            let online: Vec<f64> = r.iter().map(|r| r.online).collect();
            let first: Vec<f64> = r.iter().map(|r| r.online_first).collect();
            let t: Vec<f64> = r.iter().map(|r| r.ncis_true).collect();
            let b: Vec<f64> = r.iter().map(|r| r.ncis_bc).collect();
            SignalFidelity {
                signal: s.name().to_string(),
                spearman_true: spearman(&t, &online),
                spearman_bc: spearman(&b, &online),
                mean_rel_error_true: mean_rel_error(&t, &online),
                mean_rel_error_bc: mean_rel_error(&b, &online),
                spearman_first_true: spearman(&t, &first),
                spearman_first_bc: spearman(&b, &first),
                mean_rel_error_first_true: mean_rel_error(&t, &first),
                mean_rel_error_first_bc: mean_rel_error(&b, &first),
            }
        })
        .collect();
    Ok(FidelityReport {
        rows,
        signals,
        outcomes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(user: u32, first: (u32, f64), all: (u32, f64)) -> UserOutcome {
        let tally = |(views, watch_time_s): (u32, f64)| Tally {
            views,
            watch_time_s,
            ..Default::default()
        };
        UserOutcome {
            user,
            viewed: tally(all),
            first_slot: tally(first),
            ..Default::default()
        }
    }

    #[test]
    fn paired_truths_are_differences_of_the_truths() {
        // B's first draws are 1 s shorter for every view; per shown video it is level.
        let a: Vec<UserOutcome> = (0..50)
            .map(|u| outcome(u, (3 + u % 4, 10.0 + u as f64), (12, 100.0 + u as f64)))
            .collect();
        let b: Vec<UserOutcome> = a
            .iter()
            .map(|x| {
                outcome(
                    x.user,
                    (
                        x.first_slot.views,
                        x.first_slot.watch_time_s - x.first_slot.views as f64,
                    ),
                    (x.viewed.views, x.viewed.watch_time_s),
                )
            })
            .collect();
        let report = FidelityReport {
            rows: Vec::new(),
            signals: Vec::new(),
            outcomes: vec![("a".into(), a.clone()), ("b".into(), b.clone())],
        };
        let d = paired_truths(&report, "a", 200, 1).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].policy, "b");
        let want = first_slot_value(&a, Signal::WatchTime) - first_slot_value(&b, Signal::WatchTime);
        assert!((d[0].first_draw.value - want).abs() < 1e-12 && (want - 1.0).abs() < 1e-12);
        // Every resample sees the same 1 s gap: the paired interval is that point.
        assert!(d[0].first_draw.ci.iter().all(|x| (x - 1.0).abs() < 1e-9));
        assert_eq!(d[0].per_video.value, 0.0);
        assert!(paired_truths(&report, "c", 10, 1)
            .unwrap_err()
            .contains("no online outcomes of c"));
    }

    #[test]
    fn spearman_by_hand() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // Ranks 0,1,2 against 0.5,0.5,2: cov 1.5, var 2 and 1.5.
        let want = 1.5 / (2.0f64 * 1.5).sqrt();
        assert!((spearman(&[1.0, 2.0, 3.0], &[5.0, 5.0, 9.0]) - want).abs() < 1e-12);
    }
}
