//! Sample selection bias, measured: how well does the feedback simulator predict what users
//! would do with the candidates the logger never showed?
//!
//! On a world the truth is known. For held-out requests, the simulator's predictions for the
//! shown items and for as many never-shown candidates are compared with the world's expected
//! feedback for the same user on the same day (at the start of a visit: the world's
//! within-visit drift and fatigue are not in the logs). A model fitted on impressions only
//! is typically worse off the logged distribution; this report says by how much.

use mmrf_data::session::Timelines;
use mmrf_data::{Dataset, LogSplit, Signal};
use mmrf_train::actor_critic::SimulatorScorer;
use mmrf_world::WorldModel;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Predictions against the truth over a set of (user, item) pairs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub items: usize,
    /// Pearson correlation of predicted and true expected feedback.
    pub pearson: f64,
    pub rmse: f64,
    pub mean_predicted: f64,
    /// Mean of the labels the agents train on (eq. 6: the heads' mean discounted by their
    /// disagreement). Below `mean_predicted` by what the uncertainty discount takes off.
    #[serde(default)]
    pub mean_label: f64,
    pub mean_true: f64,
}

/// One signal, on shown and on never-shown items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalAgreement {
    pub signal: String,
    pub impressed: Agreement,
    pub non_impressed: Agreement,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SsbReport {
    pub requests: usize,
    /// World draws per (user, item) for its expected feedback.
    pub samples: usize,
    pub signals: Vec<SignalAgreement>,
}

fn agreement(pred: &[f64], label: &[f64], truth: &[f64]) -> Agreement {
    let n = pred.len().max(1) as f64;
    let (mp, mt) = (pred.iter().sum::<f64>() / n, truth.iter().sum::<f64>() / n);
    let cov: f64 = pred.iter().zip(truth).map(|(p, t)| (p - mp) * (t - mt)).sum();
    let vp: f64 = pred.iter().map(|p| (p - mp).powi(2)).sum();
    let vt: f64 = truth.iter().map(|t| (t - mt).powi(2)).sum();
    Agreement {
        items: pred.len(),
        pearson: cov / (vp * vt).sqrt(),
        rmse: (pred.iter().zip(truth).map(|(p, t)| (p - t).powi(2)).sum::<f64>() / n).sqrt(),
        mean_predicted: mp,
        mean_label: label.iter().sum::<f64>() / n,
        mean_true: mt,
    }
}

/// Compare the simulator with the world on up to `n_requests` held-out requests.
pub fn simulator_vs_world(
    data: &Dataset,
    timelines: &Timelines,
    world: &WorldModel,
    sim: &SimulatorScorer,
    n_requests: usize,
    samples: usize,
    seed: u64,
) -> mmrf_data::Result<SsbReport> {
    let set = data.requests(LogSplit::Test, &Default::default());
    let log = data.log(LogSplit::Test);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx: Vec<usize> = (0..set.requests.len()).collect();
    idx.shuffle(&mut rng);
    idx.truncate(n_requests);
    let first = mmrf_data::time::yyyymmdd_to_days(world.config.first_day);
    let (mut shown_lists, mut other_lists, mut states) = (Vec::new(), Vec::new(), Vec::new());
    let mut cands = Vec::new();
    for &i in &idx {
        let shown = set.shown_videos(i, log);
        set.candidates(i, log, &mut cands)?;
        let mut others: Vec<u32> = cands.iter().copied().filter(|c| !shown.contains(c)).collect();
        others.shuffle(&mut rng);
        others.truncate(shown.len());
        states.push(timelines.state(&set, log, i, 20));
        shown_lists.push(shown);
        other_lists.push(others);
    }
    let (mut p_in, mut p_out, mut l_in, mut l_out) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for chunk in (0..idx.len()).collect::<Vec<_>>().chunks(256) {
        let st: Vec<_> = chunk.iter().map(|&x| states[x]).collect();
        let a: Vec<&[u32]> = chunk.iter().map(|&x| shown_lists[x].as_slice()).collect();
        let b: Vec<&[u32]> = chunk.iter().map(|&x| other_lists[x].as_slice()).collect();
        let ((pa, la), (pb, lb)) = (sim.predict_and_label(&st, &a), sim.predict_and_label(&st, &b));
        p_in.extend(pa);
        p_out.extend(pb);
        l_in.extend(la);
        l_out.extend(lb);
    }
    // The truth: the user's state on the request's day, at the start of a visit.
    let mut truth = |x: usize, items: &[u32]| -> Vec<[f64; 7]> {
        let s = &states[x];
        let day = mmrf_data::time::yyyymmdd_to_days(mmrf_data::time::date_hourmin(s.time_ms).0) - first;
        let mut state = world.initial_state(s.user, day);
        world.start_session(&mut state, &mut rng);
        items
            .iter()
            .map(|&v| world.expected_feedback(&state, v, samples, &mut rng))
            .collect()
    };
    let (mut t_in, mut t_out) = (Vec::new(), Vec::new());
    for x in 0..idx.len() {
        t_in.push(truth(x, &shown_lists[x]));
        t_out.push(truth(x, &other_lists[x]));
    }
    let flat = |p: &[Vec<[f32; 7]>], t: &[Vec<[f64; 7]>], a: usize| -> (Vec<f64>, Vec<f64>) {
        p.iter()
            .zip(t)
            .flat_map(|(p, t)| p.iter().zip(t).map(move |(p, t)| (p[a] as f64, t[a])))
            .unzip()
    };
    let signals = Signal::ALL
        .iter()
        .enumerate()
        .map(|(a, sig)| {
            let (pi, ti) = flat(&p_in, &t_in, a);
            let (po, to) = flat(&p_out, &t_out, a);
            let (li, _) = flat(&l_in, &t_in, a);
            let (lo, _) = flat(&l_out, &t_out, a);
            SignalAgreement {
                signal: sig.name().to_string(),
                impressed: agreement(&pi, &li, &ti),
                non_impressed: agreement(&po, &lo, &to),
            }
        })
        .collect();
    Ok(SsbReport {
        requests: idx.len(),
        samples,
        signals,
    })
}
