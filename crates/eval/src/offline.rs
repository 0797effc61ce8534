//! Offline evaluation of a trained method on a held-out split (`DESIGN.md` §6).
//!
//! Every held-out request is scored by the method's final ranking score; each shown
//! impression gets its score, the target propensity `π(j|s) = softmax_C(score/τ)_j` and the
//! behaviour propensity `π_β(j|s)` (the BC model's softmax, or the world's true one). From
//! those, per signal: GAUC and NCIS (with IPS, SNIPS, ESS and a bootstrap CI).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use mmrf_data::session::Timelines;
use mmrf_data::{Dataset, LogSplit, Signal};
use mmrf_train::Ranker;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{gauc_sums, ncis_with_sums, paired_difference, request_gauc_sums, Difference, OpeConfig, UserSums};

/// Where `π_β` comes from.
#[derive(Clone, Copy)]
pub enum Behaviour<'a> {
    /// A behaviour model (BC): `softmax_C(score)` at temperature 1, the scale it was
    /// fitted at.
    Model(&'a dyn Ranker),
    /// The logging policy's true propensities from the data's side file (worlds only).
    True,
}

/// Offline evaluation settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OfflineConfig {
    /// Temperature τ of the target policy `softmax_C(score/τ)`; `None` (the default)
    /// matches the behaviour model: τ is set per method so that its softmax has the same
    /// mean entropy over training requests as π_β's.
    ///
    /// Why: methods score on their own scales (BC's logits, MMRF's inner products of unit
    /// vectors), and one fixed τ would read a small-scale method as a near-uniform policy
    /// and a large-scale one as a near-deterministic one — NCIS would then rank scales,
    /// not rankings. At matched entropy every method is read as a stochastic policy as
    /// concentrated as the logger, so importance weights stay in the same range and NCIS
    /// compares which videos each method favours. BC against itself gets τ = 1 exactly,
    /// weighs every impression equally and gives the logged mean, the anchor of the table.
    pub tau: Option<f32>,
    pub ope: OpeConfig,
    /// Impressions of history in the state handed to the ranker.
    pub history_len: usize,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig {
            tau: None,
            ope: OpeConfig::default(),
            history_len: 20,
        }
    }
}

/// Held-out requests are scored in batches of this many (one forward pass each).
const SCORE_BATCH: usize = 256;

/// [`ScoredImpressions::alignment`] is read on every this-many-th batch of requests.
const ALIGNMENT_EVERY: usize = 8;

/// One row per held-out impression (the `--dump-scores` rows).
#[derive(Debug, Clone, Default)]
pub struct ScoredImpressions {
    pub split: Option<LogSplit>,
    /// The temperature the target propensities `pi` were computed at.
    pub tau: f32,
    /// Log row of each impression in its split.
    pub row: Vec<u32>,
    pub user: Vec<u32>,
    pub video: Vec<u32>,
    pub request: Vec<u32>,
    pub score: Vec<f32>,
    pub pi: Vec<f32>,
    pub pi_beta: Vec<f32>,
    /// For actor-critic methods, one per request of a fixed eighth of the held-out ones
    /// (every 8th batch of 256): the cosine of the ranking actor's action to the WatchTime
    /// critic's best action ([`Ranker::critic_alignment`]); empty for other methods.
    pub alignment: Vec<f32>,
    /// The same requests' [`Ranker::collaboration_sensitivity`]; empty for methods whose
    /// actors do not communicate.
    pub collaboration: Vec<f32>,
    /// The ranker's [`Ranker::label_uncertainty`].
    pub uncertainty: Option<mmrf_train::ranker::LabelUncertainty>,
}

impl ScoredImpressions {
    pub fn len(&self) -> usize {
        self.row.len()
    }

    pub fn is_empty(&self) -> bool {
        self.row.is_empty()
    }

    /// The same scores with the world's true logging propensities as π_β (what
    /// `Behaviour::True` gives), for checking an estimate made with a fitted π_β.
    pub fn with_true_propensities(&self, data: &Dataset) -> Result<ScoredImpressions, String> {
        let split = self.split.ok_or("scores without a split have no logged propensities")?;
        if data.propensities.is_none() {
            return Err(format!(
                "{}: no true propensities (mmrf_propensities.csv)",
                data.dir.display()
            ));
        }
        let pi_beta = self
            .row
            .iter()
            .map(|&r| data.true_propensity(split, r as usize).unwrap_or(f32::NAN))
            .collect();
        Ok(ScoredImpressions {
            pi_beta,
            ..self.clone()
        })
    }
}

fn softmax_into(scores: &[f32], tau: f32, out: &mut Vec<f32>) {
    out.clear();
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for &s in scores {
        let e = (((s - max) / tau) as f64).exp();
        sum += e;
        out.push(e as f32);
    }
    let inv = (1.0 / sum) as f32;
    out.iter_mut().for_each(|p| *p *= inv);
}

fn entropy(p: &[f32]) -> f64 {
    p.iter()
        .filter(|&&x| x > 0.0)
        .map(|&x| -(x as f64) * (x as f64).ln())
        .sum()
}

/// The τ at which `softmax(score/τ)` of `ranker` has the mean entropy of `behaviour`'s
/// softmax, over up to 2,000 training requests (seeded sample; scores only, no labels).
pub fn match_entropy(
    data: &Dataset,
    timelines: &Timelines,
    ranker: &dyn Ranker,
    behaviour: &dyn Ranker,
    history_len: usize,
) -> Result<f32, String> {
    let set = data.requests(LogSplit::Train, &Default::default());
    let log = data.log(LogSplit::Train);
    let n = set.requests.len();
    let step = (n / 2000).max(1);
    let idx: Vec<usize> = (0..n).step_by(step).take(2000).collect();
    let mut cands = Vec::new();
    let mut pairs: Vec<(Vec<f32>, Vec<f32>)> = Vec::with_capacity(idx.len());
    let states: Vec<_> = idx
        .iter()
        .map(|&i| timelines.state(&set, log, i, history_len))
        .collect();
    let cand_lists: Vec<Vec<u32>> = idx
        .iter()
        .map(|&i| {
            set.candidates(i, log, &mut cands).map_err(|e| e.to_string())?;
            Ok(cands.clone())
        })
        .collect::<Result<_, String>>()?;
    let refs: Vec<&[u32]> = cand_lists.iter().map(|c| c.as_slice()).collect();
    let mut ours = vec![Vec::new(); idx.len()];
    let mut theirs = vec![Vec::new(); idx.len()];
    ranker.score_batch(&states, &refs, &mut ours);
    behaviour.score_batch(&states, &refs, &mut theirs);
    for (o, t) in ours.into_iter().zip(theirs) {
        pairs.push((o, t));
    }
    let mut p = Vec::new();
    let target: f64 = pairs
        .iter()
        .map(|(_, t)| {
            softmax_into(t, 1.0, &mut p);
            entropy(&p)
        })
        .sum::<f64>()
        / pairs.len().max(1) as f64;
    let mean_entropy = |tau: f32, p: &mut Vec<f32>| {
        pairs
            .iter()
            .map(|(o, _)| {
                softmax_into(o, tau, p);
                entropy(p)
            })
            .sum::<f64>()
            / pairs.len().max(1) as f64
    };
    // Entropy grows with τ: bisect on ln τ.
    let (mut lo, mut hi) = (-12f32, 12f32);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if mean_entropy(mid.exp(), &mut p) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok((0.5 * (lo + hi)).exp())
}

/// Score every impression of `split` with `ranker`.
pub fn score_split(
    data: &Dataset,
    timelines: &Timelines,
    split: LogSplit,
    ranker: &dyn Ranker,
    behaviour: Behaviour<'_>,
    cfg: &OfflineConfig,
) -> Result<ScoredImpressions, String> {
    if data.log(split).is_empty() {
        return Err(format!(
            "{}: the {} log has no rows: nothing to evaluate",
            data.dir.display(),
            split.name()
        ));
    }
    if matches!(behaviour, Behaviour::True) && data.propensities.is_none() {
        return Err(format!(
            "{}: no true propensities (mmrf_propensities.csv); use a BC run for pi_beta",
            data.dir.display()
        ));
    }
    let tau = match (cfg.tau, behaviour) {
        (Some(t), _) => t,
        (None, Behaviour::Model(b)) if std::ptr::addr_eq(b as *const dyn Ranker, ranker as *const dyn Ranker) => 1.0,
        (None, Behaviour::Model(b)) => match_entropy(data, timelines, ranker, b, cfg.history_len)?,
        (None, Behaviour::True) => {
            return Err("matching the behaviour entropy needs a behaviour model; pass an explicit temperature".into())
        }
    };
    if !(tau > 0.0 && tau.is_finite()) {
        return Err(format!("temperature {tau} must be positive"));
    }
    let set = data.requests(split, &Default::default());
    let log = data.log(split);
    type Row = (u32, u32, u32, u32, f32, f32, f32);
    type Chunk = (Vec<Row>, Option<Vec<f32>>, Option<Vec<f32>>);
    let chunks: Vec<Result<Chunk, String>> = (0..set.requests.len())
        .into_par_iter()
        .chunks(SCORE_BATCH)
        .map(|idx| {
            let (mut pi, mut pib) = (Vec::new(), Vec::new());
            let cands: Vec<Vec<u32>> = idx
                .iter()
                .map(|&i| {
                    let mut c = Vec::new();
                    set.candidates(i, log, &mut c).map_err(|e| e.to_string())?;
                    Ok(c)
                })
                .collect::<Result<_, String>>()?;
            let states: Vec<_> = idx
                .iter()
                .map(|&i| timelines.state(&set, log, i, cfg.history_len))
                .collect();
            let cand_refs: Vec<&[u32]> = cands.iter().map(|c| c.as_slice()).collect();
            let mut scores = vec![Vec::new(); idx.len()];
            ranker.score_batch(&states, &cand_refs, &mut scores);
            // A fixed eighth of the requests: the cosine is a diagnostic, and on every
            // request it would add a third to an actor-critic method's evaluation.
            let diagnosed = idx[0] / SCORE_BATCH % ALIGNMENT_EVERY == 0;
            let alignment = diagnosed
                .then(|| ranker.critic_alignment(&states, &cand_refs))
                .flatten();
            let sensitivity = diagnosed
                .then(|| ranker.collaboration_sensitivity(&states, &cand_refs))
                .flatten();
            let mut behaviour_scores = vec![Vec::new(); idx.len()];
            if let Behaviour::Model(b) = behaviour {
                b.score_batch(&states, &cand_refs, &mut behaviour_scores);
            }
            let mut out = Vec::new();
            for (x, &i) in idx.iter().enumerate() {
                let (cands, scores) = (&cands[x], &scores[x]);
                if let Some(k) = scores.iter().position(|s| !s.is_finite()) {
                    return Err(format!(
                        "request {i}: {} scored candidate {} as {}",
                        ranker.method(),
                        cands[k],
                        scores[k]
                    ));
                }
                softmax_into(scores, tau, &mut pi);
                if let Behaviour::Model(_) = behaviour {
                    softmax_into(&behaviour_scores[x], 1.0, &mut pib);
                }
                let r = &set.requests[i];
                for &row in set.shown_rows(r) {
                    let video = log.video[row as usize];
                    let j = cands
                        .iter()
                        .position(|&c| c == video)
                        .ok_or_else(|| format!("request {i}: shown video {video} is not among its candidates"))?;
                    let pb = match behaviour {
                        Behaviour::Model(_) => pib[j],
                        Behaviour::True => data.true_propensity(split, row as usize).unwrap_or(f32::NAN),
                    };
                    out.push((row, r.user, video, i as u32, scores[j], pi[j], pb));
                }
            }
            Ok((out, alignment, sensitivity))
        })
        .collect();
    let mut s = ScoredImpressions {
        split: Some(split),
        tau,
        uncertainty: ranker.label_uncertainty(),
        ..Default::default()
    };
    for chunk in chunks {
        let (rows, alignment, sensitivity) = chunk?;
        s.alignment.extend(alignment.unwrap_or_default());
        s.collaboration.extend(sensitivity.unwrap_or_default());
        for (row, user, video, req, score, p, pb) in rows {
            s.row.push(row);
            s.user.push(user);
            s.video.push(video);
            s.request.push(req);
            s.score.push(score);
            s.pi.push(p);
            s.pi_beta.push(pb);
        }
    }
    Ok(s)
}

/// The metrics of one signal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SignalMetrics {
    /// `None` when no user has an ordered pair.
    pub gauc: Option<f64>,
    /// GAUC over the pairs within one request only ([`mmrf_metrics::request_gauc`]): the
    /// order a top-K ranker decides, without the comparisons across a user's requests.
    /// `None` when no request has an ordered pair (and in reports written before it).
    #[serde(default)]
    pub gauc_within_request: Option<f64>,
    pub ncis: f64,
    pub ncis_ci: [f64; 2],
    pub ess: f64,
    pub ips: f64,
    pub snips: f64,
    /// The logged per-impression mean, for reference.
    pub logged: f64,
}

/// `mmrf eval --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflineReport {
    pub method: String,
    pub split: String,
    pub impressions: usize,
    pub tau: f32,
    pub cap: f64,
    /// Keyed by the signal's name: Click, Like, Follow, Comment, Hate, LongView, WatchTime.
    pub signals: BTreeMap<String, SignalMetrics>,
    /// Actor-critic methods: how closely the ranking actor follows the WatchTime critic on
    /// the held-out requests (a fixed eighth of them). `None` for other methods (and in
    /// reports written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critic_alignment: Option<Alignment>,
    /// MMRF and MMRF-CO: the ranking's pair agreement with itself when the main actor's
    /// partners (their actions and views) come from another request
    /// ([`Ranker::collaboration_sensitivity`]); 1 means collaboration changes no ranking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collaboration_sensitivity: Option<Alignment>,
    /// MMRF and MMRF-CO: the share of the run's simulated labels that eq. 6's factor
    /// `exp(λ·KL)` moved by more than 1 % ([`Ranker::label_uncertainty`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertainty: Option<mmrf_train::ranker::LabelUncertainty>,
    /// Per signal, the per-user terms of GAUC and NCIS, for paired comparisons between
    /// methods ([`compare`]); not written out.
    #[serde(skip)]
    pub per_user: BTreeMap<String, SignalSums>,
}

/// A per-request diagnostic over held-out requests (the cosine of an actor's action to a
/// critic's best action, a ranking's pair agreement): its mean and 1st percentile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Alignment {
    pub requests: usize,
    pub mean: f64,
    /// The 1st percentile: the requests where the actor strays furthest.
    pub p01: f64,
}

impl Alignment {
    /// `None` for no values (a method without a critic).
    pub fn of(values: &[f32]) -> Option<Alignment> {
        if values.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
        v.sort_by(f64::total_cmp);
        Some(Alignment {
            requests: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            p01: v[(v.len() - 1) / 100],
        })
    }
}

/// The per-user terms of one signal's GAUC and NCIS.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignalSums {
    pub gauc: UserSums,
    pub gauc_within_request: UserSums,
    pub ncis: UserSums,
}

/// Method A against method B on one signal, paired over users.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// A's GAUC minus B's (`None` when no user has an ordered pair).
    pub gauc: Option<Difference>,
    /// The same for GAUC within a request.
    #[serde(default)]
    pub gauc_within_request: Option<Difference>,
    /// A's NCIS minus B's.
    pub ncis: Difference,
}

/// A against B, per signal: the differences of their GAUC and NCIS with paired bootstrap
/// intervals over users (both must come from [`metrics`] on the same split and `π_β`).
pub fn compare(a: &OfflineReport, b: &OfflineReport, ope: &OpeConfig) -> Result<BTreeMap<String, Comparison>, String> {
    if a.split != b.split || a.impressions != b.impressions {
        return Err(format!(
            "{} and {} were not evaluated on the same impressions ({} on {}, {} on {})",
            a.method, b.method, a.impressions, a.split, b.impressions, b.split
        ));
    }
    a.per_user
        .iter()
        .map(|(signal, x)| {
            let y = b
                .per_user
                .get(signal)
                .ok_or_else(|| format!("{} has no per-user terms for {signal}", b.method))?;
            let pair = |a: &UserSums, b: &UserSums| -> Result<Option<Difference>, String> {
                Ok(if a.is_empty() {
                    None
                } else {
                    Some(paired_difference(a, b, ope.bootstrap, ope.seed)?)
                })
            };
            let gauc = pair(&x.gauc, &y.gauc)?;
            let gauc_within_request = pair(&x.gauc_within_request, &y.gauc_within_request)?;
            let ncis = paired_difference(&x.ncis, &y.ncis, ope.bootstrap, ope.seed)?;
            Ok((
                signal.clone(),
                Comparison {
                    gauc,
                    gauc_within_request,
                    ncis,
                },
            ))
        })
        .collect()
}

/// GAUC and NCIS per signal over scored impressions.
pub fn metrics(
    method: &str,
    data: &Dataset,
    s: &ScoredImpressions,
    cfg: &OfflineConfig,
) -> Result<OfflineReport, String> {
    let split = s.split.unwrap_or(LogSplit::Test);
    let log = data.log(split);
    let per_signal: Result<Vec<(String, SignalMetrics, SignalSums)>, String> = Signal::ALL
        .par_iter()
        .map(|&signal| {
            let labels: Vec<f32> = s.row.iter().map(|&r| log.label(signal, r as usize)).collect();
            let g = gauc_sums(&s.user, &labels, &s.score);
            let g_rq = request_gauc_sums(&s.user, &s.request, &labels, &s.score);
            let (o, ncis_terms) = ncis_with_sums(&s.user, &labels, &s.pi, &s.pi_beta, &cfg.ope)
                .map_err(|e| format!("{}: {e}", signal.name()))?;
            let logged = labels.iter().map(|&x| x as f64).sum::<f64>() / labels.len().max(1) as f64;
            let metrics = SignalMetrics {
                gauc: (!g.is_empty()).then(|| g.value()),
                gauc_within_request: (!g_rq.is_empty()).then(|| g_rq.value()),
                ncis: o.ncis,
                ncis_ci: o.ncis_ci,
                ess: o.ess,
                ips: o.ips,
                snips: o.snips,
                logged,
            };
            let sums = SignalSums {
                gauc: g,
                gauc_within_request: g_rq,
                ncis: ncis_terms,
            };
            Ok((signal.name().to_string(), metrics, sums))
        })
        .collect();
    let mut signals = BTreeMap::new();
    let mut per_user = BTreeMap::new();
    for (name, m, sums) in per_signal? {
        signals.insert(name.clone(), m);
        per_user.insert(name, sums);
    }
    Ok(OfflineReport {
        method: method.to_string(),
        split: split.name().to_string(),
        impressions: s.len(),
        tau: s.tau,
        cap: cfg.ope.cap,
        signals,
        critic_alignment: Alignment::of(&s.alignment),
        collaboration_sensitivity: Alignment::of(&s.collaboration),
        uncertainty: s.uncertainty,
        per_user,
    })
}

/// Write the scored impressions as CSV: ids as in the data files, every label under its
/// KuaiRand log name, so anyone can recompute the metrics outside mmrf. Atomic.
pub fn write_dump(path: &Path, data: &Dataset, s: &ScoredImpressions) -> std::io::Result<()> {
    let split = s.split.unwrap_or(LogSplit::Test);
    let log = data.log(split);
    let mut out = Vec::with_capacity(s.len() * 80);
    out.extend_from_slice(
        b"user_id,video_id,request_id,score,pi,pi_beta,is_click,is_like,is_follow,is_comment,is_hate,long_view,play_time_ms\n",
    );
    for i in 0..s.len() {
        let r = s.row[i] as usize;
        // `{:e}`-free shortest round-trip floats: parsing them back gives the same f32.
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            data.users.ids.raw(s.user[i]),
            data.videos.ids.raw(s.video[i]),
            s.request[i],
            s.score[i],
            s.pi[i],
            s.pi_beta[i],
            log.is_click[r],
            log.is_like[r],
            log.is_follow[r],
            log.is_comment[r],
            log.is_hate[r],
            log.long_view[r],
            log.play_time_ms[r]
        )?;
    }
    mmrf_data::write_atomic(path, &out)
}

/// How far a behaviour model's propensities are from the true ones, over the impressions
/// of `s` (whose `pi_beta` came from the model).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PropensityError {
    pub impressions: usize,
    /// Mean |π̂_β − π_β|.
    pub mean_abs_error: f64,
    /// Mean |π̂_β − π_β| / π_β.
    pub mean_rel_error: f64,
    /// Pearson correlation of log π̂_β and log π_β.
    pub log_correlation: f64,
    /// Mean true propensity, for scale.
    pub mean_true: f64,
}

/// Compare `s.pi_beta` (a model's) with the data's true propensities.
pub fn propensity_error(data: &Dataset, s: &ScoredImpressions) -> Option<PropensityError> {
    let split = s.split?;
    let n = s.len();
    if n == 0 {
        return None;
    }
    let truth: Vec<f64> = s
        .row
        .iter()
        .map(|&r| data.true_propensity(split, r as usize).map(|p| p as f64))
        .collect::<Option<_>>()?;
    let est: Vec<f64> = s.pi_beta.iter().map(|&p| p as f64).collect();
    let mae = est.iter().zip(&truth).map(|(e, t)| (e - t).abs()).sum::<f64>() / n as f64;
    let mre = est.iter().zip(&truth).map(|(e, t)| ((e - t) / t).abs()).sum::<f64>() / n as f64;
    let (le, lt): (Vec<f64>, Vec<f64>) = est
        .iter()
        .zip(&truth)
        .map(|(e, t)| (e.max(1e-12).ln(), t.max(1e-12).ln()))
        .unzip();
    let (me, mt) = (le.iter().sum::<f64>() / n as f64, lt.iter().sum::<f64>() / n as f64);
    let cov: f64 = le.iter().zip(&lt).map(|(a, b)| (a - me) * (b - mt)).sum();
    let ve: f64 = le.iter().map(|a| (a - me).powi(2)).sum();
    let vt: f64 = lt.iter().map(|b| (b - mt).powi(2)).sum();
    Some(PropensityError {
        impressions: n,
        mean_abs_error: mae,
        mean_rel_error: mre,
        log_correlation: cov / (ve * vt).sqrt(),
        mean_true: truth.iter().sum::<f64>() / n as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_summarises_the_cosines() {
        assert_eq!(Alignment::of(&[]), None, "a method without a critic");
        // 200 cosines: two strays at -0.5 and 0.1, the rest 1; the 1st percentile is the
        // second lowest (index 1 of 200), whatever the input order.
        let mut v = vec![1.0f32; 198];
        v.insert(57, 0.1);
        v.push(-0.5);
        let a = Alignment::of(&v).unwrap();
        assert_eq!(a.requests, 200);
        assert!((a.mean - (198.0 + 0.1 - 0.5) / 200.0).abs() < 1e-7, "{a:?}");
        assert!((a.p01 - 0.1).abs() < 1e-7, "{a:?}");
    }
}
