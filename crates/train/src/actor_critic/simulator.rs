//! The feedback simulator M (paper eq. 5–6) while training: its fit on logged
//! impressions, its labels for never-shown candidates with eq. 6's uncertainty factor
//! (the twin head under Monte-Carlo dropout), its held-out fit, and a trained run's
//! simulator as a scorer ([`SimulatorScorer`]).

use std::path::Path;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use mmrf_data::session::{RequestState, Timelines};
use mmrf_data::{Dataset, LogSplit, Signal};
use mmrf_model::mmrf::{square, N_AGENTS};
use mmrf_model::simulator::{simulated_reward, FeedbackSimulator};
use mmrf_model::FeatureSpace;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::buffer::Transitions;
use super::config::ActorCriticConfig;
use crate::batch::video_batch;
use crate::distributed::{average, Group};
use crate::ranker::{LabelUncertainty, Ranker};
use crate::run::{self, Manifest};
use crate::state::{StateInputs, PAD};
use crate::TrainError;

/// The feedback simulator's weights in a run directory (full MMRF only).
pub const SIMULATOR_FILE: &str = "simulator.safetensors";

/// The simulator's fit on held-out impressions, per signal.
pub const SIMULATOR_FIT_FILE: &str = "simulator_fit.json";

/// How well M predicts held-out feedback: AUC for the binary signals, RMSE (seconds, of
/// play time capped at `sim_watch_cap_s` as M's target is) for WatchTime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulatorFit {
    pub impressions: usize,
    /// `(signal, AUC)`; `None` when the held-out sample has one class only.
    pub auc: Vec<(String, Option<f64>)>,
    pub watch_time_rmse_s: f64,
    /// RMSE of always predicting the training mean, for scale.
    pub watch_time_rmse_baseline_s: f64,
    /// Eq. 6's factor `exp(λ·KL)` over every label the run drew for a non-impression
    /// (per item and signal). Absent in fits written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertainty: Option<LabelUncertainty>,
}

/// M's targets for a logged impression: the state's feedback vector, except that play time
/// saturates at `cap_s` seconds instead of the state's 60 s.
fn simulator_target(imp: &mmrf_data::session::Impression, cap_s: f64) -> [f32; N_AGENTS] {
    let mut y = crate::state::feedback_vector(imp);
    y[N_AGENTS - 1] = (imp.play_time_ms as f64 / (1000.0 * cap_s)).min(1.0) as f32;
    y
}

/// The feedback simulator M while training: the model, its optimizer and a no-grad copy
/// for labelling.
pub(super) struct Sim {
    pub(super) model: FeedbackSimulator,
    pub(super) optim: burn::optim::ModuleOptimizer,
    pub(super) plain: FeedbackSimulator,
    pub(super) device: Device,
}

impl Sim {
    pub(super) fn new(fs: &FeatureSpace, cfg: &ActorCriticConfig, device: &Device) -> Sim {
        let model = FeedbackSimulator::new(&fs.shape(), &cfg.sim, device);
        let plain = model.valid();
        Sim {
            model,
            optim: AdamConfig::new().init(),
            plain,
            device: device.clone(),
        }
    }

    pub(super) fn refresh(&mut self) {
        self.plain = self.model.valid();
    }

    /// Seed burn's generator (the twin head's dropout) from (seed, step), so every step's
    /// masks are the same whether or not the run was interrupted and resumed.
    pub(super) fn reseed(&self, seed: u64, step: usize) {
        self.device
            .seed(seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }

    /// The states of logged requests `idx` and their shown videos.
    pub(super) fn logged<'t>(
        timelines: &'t Timelines,
        tr: &Transitions<'_>,
        log: &mmrf_data::LogColumns,
        idx: &[usize],
        history: usize,
    ) -> (Vec<RequestState<'t>>, Vec<Vec<u32>>) {
        let states = idx.iter().map(|&i| timelines.state(&tr.set, log, i, history)).collect();
        let shown = idx.iter().map(|&i| tr.set.shown_videos(i, log)).collect();
        (states, shown)
    }

    /// One MSE step of both heads on the shown items of logged requests `idx` (its
    /// gradients averaged over `group`, when training data-parallel).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn step(
        &mut self,
        fs: &FeatureSpace,
        timelines: &Timelines,
        tr: &Transitions<'_>,
        log: &mmrf_data::LogColumns,
        idx: &[usize],
        cfg: &ActorCriticConfig,
        group: Option<&Group>,
    ) -> Result<f32, TrainError> {
        let (states, shown) = Sim::logged(timelines, tr, log, idx, cfg.history);
        let refs: Vec<&[u32]> = shown.iter().map(|s| s.as_slice()).collect();
        let (state, items) = simulator_inputs(&self.model, fs, &states, &refs, cfg.history, &self.device);
        let (b, width) = (idx.len(), items.dims()[1]);
        let mut y = vec![0f32; b * width * N_AGENTS];
        let mut mask = vec![0f32; b * width];
        for (x, &i) in idx.iter().enumerate() {
            for (k, &row) in tr.set.shown_rows(&tr.set.requests[i]).iter().take(width).enumerate() {
                let imp = mmrf_data::session::Impression::from_log(log, row as usize);
                y[(x * width + k) * N_AGENTS..(x * width + k + 1) * N_AGENTS]
                    .copy_from_slice(&simulator_target(&imp, cfg.sim_watch_cap_s));
                mask[x * width + k] = 1.0;
            }
        }
        let y = Tensor::<3>::from_data(TensorData::new(y, [b, width, N_AGENTS]), &self.device);
        let mask = Tensor::<3>::from_data(TensorData::new(mask, [b, width, 1]), &self.device);
        let ctx = self.model.context(state);
        let (r, r2) = self.model.predict(ctx, items);
        let n = mask.clone().sum().clamp_min(1.0) * N_AGENTS as f64;
        let loss = ((square(r - y.clone()) + square(r2 - y)) * mask).sum() / n;
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        let grads = match group {
            Some(g) => average(grads, &self.model, g.0.as_ref()),
            None => grads,
        };
        self.model = self.optim.step(cfg.sim_lr, self.model.clone(), grads);
        Ok(value)
    }

    /// Fit on up to 4,000 held-out test requests (every one of their shown impressions).
    pub(super) fn fit(
        &self,
        data: &Dataset,
        fs: &FeatureSpace,
        timelines: &Timelines,
        cfg: &ActorCriticConfig,
        seed: u64,
    ) -> SimulatorFit {
        let test = Transitions::build_split(data, LogSplit::Test);
        let log = data.log(LogSplit::Test);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED);
        let mut idx: Vec<usize> = (0..test.set.requests.len()).collect();
        idx.shuffle(&mut rng);
        idx.truncate(4000);
        let device = mmrf_model::device::inference();
        let (mut preds, mut labels): (Vec<[f32; N_AGENTS]>, Vec<[f32; N_AGENTS]>) = (Vec::new(), Vec::new());
        for chunk in idx.chunks(256) {
            let (states, shown) = Sim::logged(timelines, &test, log, chunk, cfg.history);
            let refs: Vec<&[u32]> = shown.iter().map(|s| s.as_slice()).collect();
            let (state, items) = simulator_inputs(&self.plain, fs, &states, &refs, cfg.history, &device);
            let width = items.dims()[1];
            let ctx = self.plain.context(state);
            let (r, _) = self.plain.predict(ctx, items);
            let v: Vec<f32> = r.into_data().try_to_vec().unwrap_or_default();
            for (x, &i) in chunk.iter().enumerate() {
                for (k, &row) in test
                    .set
                    .shown_rows(&test.set.requests[i])
                    .iter()
                    .take(width)
                    .enumerate()
                {
                    let imp = mmrf_data::session::Impression::from_log(log, row as usize);
                    labels.push(simulator_target(&imp, cfg.sim_watch_cap_s));
                    preds.push(std::array::from_fn(|a| v[(x * width + k) * N_AGENTS + a]));
                }
            }
        }
        let auc = (0..N_AGENTS - 1)
            .map(|a| {
                let l: Vec<f32> = labels.iter().map(|x| x[a]).collect();
                let p: Vec<f32> = preds.iter().map(|x| x[a]).collect();
                (Signal::ALL[a].name().to_string(), mmrf_metrics::auc(&l, &p))
            })
            .collect();
        let w = N_AGENTS - 1;
        let n = labels.len().max(1) as f64;
        let mean = labels.iter().map(|x| x[w] as f64).sum::<f64>() / n;
        let rmse = (labels
            .iter()
            .zip(&preds)
            .map(|(l, p)| ((l[w] - p[w]) as f64).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        let base = (labels.iter().map(|l| (l[w] as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        SimulatorFit {
            impressions: labels.len(),
            auc,
            watch_time_rmse_s: rmse * cfg.sim_watch_cap_s,
            watch_time_rmse_baseline_s: base * cfg.sim_watch_cap_s,
            uncertainty: None,
        }
    }

    /// Simulated rewards of `(request, items)` pairs: per item, per signal, in the agents'
    /// standardised units (Hate negated, WatchTime in seconds before scaling).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn label(
        &self,
        fs: &FeatureSpace,
        timelines: &Timelines,
        tr: &Transitions<'_>,
        log: &mmrf_data::LogColumns,
        pairs: &[(usize, &[u32])],
        cfg: &ActorCriticConfig,
        (seed, step): (u64, usize),
    ) -> (Vec<Vec<[f32; N_AGENTS]>>, f32, [u64; 2]) {
        if pairs.is_empty() {
            return (Vec::new(), f32::NAN, [0, 0]);
        }
        let device = mmrf_model::device::inference();
        let states: Vec<RequestState<'_>> = pairs
            .iter()
            .map(|(i, _)| timelines.state(&tr.set, log, *i, cfg.history))
            .collect();
        let items: Vec<&[u32]> = pairs.iter().map(|(_, v)| *v).collect();
        let (state, items) = simulator_inputs(&self.plain, fs, &states, &items, cfg.history, &device);
        let width = items.dims()[1];
        let ctx = self.plain.context(state);
        let (r, r2) = if cfg.sim_mc_dropout {
            let mask = twin_mask(&self.plain, &items.dims(), seed ^ MC_STREAM, step, &device);
            self.plain.predict_with_twin_mask(ctx, items, mask)
        } else {
            self.plain.predict(ctx, items)
        };
        let kl_items = mmrf_model::simulator::bernoulli_kl(r.clone(), r2.clone());
        let kl = kl_items.clone().mean().into_scalar::<f32>();
        // Eq. 6's factor exp(λ·KL) of each real item and signal: how many leave [0.99, 1.01].
        let factors: Vec<f32> = (kl_items * cfg.sim_lambda)
            .exp()
            .into_data()
            .try_to_vec()
            .unwrap_or_default();
        let mut counts = [0u64; 2];
        for (x, (_, items)) in pairs.iter().enumerate() {
            for k in 0..items.len().min(width) {
                let at = (x * width + k) * N_AGENTS;
                for f in &factors[at..at + N_AGENTS] {
                    counts[0] += !(0.99..=1.01).contains(f) as u64;
                    counts[1] += 1;
                }
            }
        }
        let v: Vec<f32> = simulated_reward(r, r2, cfg.sim_lambda)
            .into_data()
            .try_to_vec()
            .unwrap_or_default();
        let labels = pairs
            .iter()
            .enumerate()
            .map(|(x, (_, items))| {
                (0..items.len().min(width))
                    .map(|k| {
                        std::array::from_fn(|a| {
                            let p = v[(x * width + k) * N_AGENTS + a];
                            let raw = match Signal::ALL[a] {
                                Signal::WatchTime => p * cfg.sim_watch_cap_s as f32,
                                Signal::Hate => -p,
                                _ => p,
                            };
                            raw * tr.item_scale[a]
                        })
                    })
                    .collect()
            })
            .collect();
        (labels, kl, counts)
    }
}

/// Mixed into the run's seed for the labelling masks' stream.
const MC_STREAM: u64 = 0x6D63_2D64_726F_706F;

/// A Monte-Carlo dropout mask for the twin head's input over items `[B, K, D]`: each
/// entry 0 with the twin's dropout probability p, else `1/(1 − p)`; drawn from (seed, step)
/// so a resumed run draws the same masks.
fn twin_mask(model: &FeedbackSimulator, dims: &[usize; 3], seed: u64, step: usize, device: &Device) -> Tensor<3> {
    let [b, k, _] = *dims;
    let w = model.input_width();
    let p = model.dropout_p();
    let keep = 1.0 / (1.0 - p) as f32;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let v: Vec<f32> = (0..b * k * w)
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
        .collect();
    Tensor::from_data(TensorData::new(v, [b, k, w]), device)
}

/// A trained run's feedback simulator, for checking what it predicts (MMRF and MMRF-CO runs).
///
/// As a [`Ranker`] it scores a candidate by M's predicted play time: how well the model
/// that labels the non-impression samples orders videos by WatchTime itself
/// (`mmrf eval --simulator`).
pub struct SimulatorScorer {
    method: String,
    model: FeedbackSimulator,
    fs: FeatureSpace,
    history: usize,
    watch_cap_s: f32,
    lambda: f64,
    /// Label with the twin's dropout on, as the run was trained.
    mc_dropout: bool,
}

impl SimulatorScorer {
    /// The simulator of the run in `dir` (an error when the run has none).
    pub fn load(dir: &Path, data: &Dataset) -> Result<SimulatorScorer, TrainError> {
        let manifest = Manifest::read(dir)?;
        let path = dir.join(SIMULATOR_FILE);
        if !path.exists() {
            return Err(TrainError::Run(format!(
                "{}: this {} run has no feedback simulator (MMRF and MMRF-CO runs have one)",
                dir.display(),
                manifest.method
            )));
        }
        let fs = FeatureSpace::from_dataset(data);
        manifest.check_shape(&fs.shape())?;
        let cfg: ActorCriticConfig = manifest.config()?;
        let model = run::load_module(
            || FeedbackSimulator::new(&fs.shape(), &cfg.sim, &mmrf_model::device::inference()),
            &path,
        )?;
        Ok(SimulatorScorer {
            method: format!("{}-simulator", manifest.method),
            model,
            fs,
            history: cfg.history,
            watch_cap_s: cfg.sim_watch_cap_s as f32,
            lambda: cfg.sim_lambda,
            mc_dropout: cfg.sim_mc_dropout,
        })
    }

    /// For `items[i]` in state `states[i]`: the main head's predictions (rates of click,
    /// like, follow, comment, hate and long view, then play time in seconds, which M
    /// cannot predict above its cap, `sim_watch_cap_s`) and, from the same forward pass,
    /// the labels the agents train on for non-impression samples (eq. 6): the two heads'
    /// mean discounted by their disagreement, `mean(r, r')·exp(λ·KL)`, on the same scale.
    #[allow(clippy::type_complexity)]
    pub fn predict_and_label(
        &self,
        states: &[RequestState<'_>],
        items: &[&[u32]],
    ) -> (Vec<Vec<[f32; N_AGENTS]>>, Vec<Vec<[f32; N_AGENTS]>>) {
        let device = mmrf_model::device::inference();
        let (batch, it) = simulator_inputs(&self.model, &self.fs, states, items, self.history, &device);
        let width = it.dims()[1];
        let ctx = self.model.context(batch);
        let (r, r2) = if self.mc_dropout {
            let mask = twin_mask(&self.model, &it.dims(), MC_STREAM, 0, &device);
            self.model.predict_with_twin_mask(ctx, it, mask)
        } else {
            self.model.predict(ctx, it)
        };
        let label = simulated_reward(r.clone(), r2, self.lambda);
        let unpack = |t: Tensor<3>| -> Vec<Vec<[f32; N_AGENTS]>> {
            let v: Vec<f32> = t.into_data().try_to_vec().unwrap_or_default();
            items
                .iter()
                .enumerate()
                .map(|(x, its)| {
                    (0..its.len().min(width))
                        .map(|k| {
                            let mut r: [f32; N_AGENTS] = std::array::from_fn(|a| v[(x * width + k) * N_AGENTS + a]);
                            r[N_AGENTS - 1] *= self.watch_cap_s;
                            r
                        })
                        .collect()
                })
                .collect()
        };
        (unpack(r), unpack(label))
    }
}

impl Ranker for SimulatorScorer {
    fn method(&self) -> &str {
        &self.method
    }

    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        crate::ranker::score_one(self, state, candidates, scores)
    }

    fn score_batch(&self, states: &[RequestState<'_>], candidates: &[&[u32]], scores: &mut [Vec<f32>]) {
        let (predicted, _) = self.predict_and_label(states, candidates);
        for (out, items) in scores.iter_mut().zip(predicted) {
            out.clear();
            out.extend(items.iter().map(|r| r[N_AGENTS - 1]));
        }
    }
}

/// The simulator's inputs for states and their items: the state batch and the items'
/// embeddings `[B, K, D]`, `K` the most items of any state (padding rows zero), from `m`'s
/// own item encoder. Shared by training, labelling, the fit report and [`SimulatorScorer`].
pub(super) fn simulator_inputs(
    m: &FeedbackSimulator,
    fs: &FeatureSpace,
    states: &[RequestState<'_>],
    items: &[&[u32]],
    history: usize,
    device: &Device,
) -> (mmrf_model::mmrf::StateBatch, Tensor<3>) {
    let mut s_in = StateInputs::new(history);
    let mut videos: Vec<u32> = Vec::new();
    let mut slot = std::collections::HashMap::new();
    let mut add = |v: u32, videos: &mut Vec<u32>| {
        *slot.entry(v).or_insert_with(|| {
            videos.push(v);
            videos.len() as i64 - 1
        })
    };
    for (state, its) in states.iter().zip(items) {
        s_in.push(fs, state);
        its.iter().for_each(|&v| {
            add(v, &mut videos);
        });
    }
    for &v in &s_in.videos {
        if v != PAD {
            add(v, &mut videos);
        }
    }
    let row: std::collections::HashMap<u32, i64> = videos.iter().enumerate().map(|(i, &v)| (v, i as i64)).collect();
    let m_n = videos.len();
    let e = m.items().forward(video_batch(fs, &videos, device));
    let d = e.dims()[1];
    let e_pad = Tensor::cat(vec![e, Tensor::zeros([1, d], device)], 0);
    let state = s_in.to_batch(fs.users.dim, e_pad.clone(), |v| row[&v], m_n as i64, device);
    let (b, width) = (states.len(), items.iter().map(|i| i.len()).max().unwrap_or(0).max(1));
    let mut idx = vec![m_n as i64; b * width];
    for (x, its) in items.iter().enumerate() {
        for (k, v) in its.iter().enumerate() {
            idx[x * width + k] = row[v];
        }
    }
    let items = e_pad
        .select(0, Tensor::from_data(TensorData::new(idx, [b * width]), device))
        .reshape([b, width, d]);
    (state, items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulator_target_saturates_play_time_at_its_own_cap() {
        let imp = mmrf_data::session::Impression {
            video: 3,
            click: true,
            like: false,
            follow: false,
            comment: true,
            hate: false,
            long_view: true,
            play_time_ms: 90_000,
            duration_ms: 120_000,
        };
        let state = crate::state::feedback_vector(&imp);
        // The state's feedback vector saturates at 60 s; M's target at its cap.
        assert_eq!(state[N_AGENTS - 1], 1.0);
        let y = simulator_target(&imp, 180.0);
        assert_eq!(&y[..N_AGENTS - 1], &state[..N_AGENTS - 1]);
        assert!((y[N_AGENTS - 1] - 0.5).abs() < 1e-6, "{y:?}");
        assert_eq!(simulator_target(&imp, 60.0), state);
        assert_eq!(simulator_target(&imp, 30.0)[N_AGENTS - 1], 1.0);
    }
}
