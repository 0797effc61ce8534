//! The supervised baselines (paper §3.1.3), trained on impressions only:
//!
//! - **Wide&Deep** and **DeepFM**: each shown item is a sample with label "valid play"
//!   (`is_click`) and sample weight `1 + Σ_s c_s·feedback_s`, the weighted sum of its
//!   feedback (weights in [`FeedbackWeights`]); weighted logistic loss. This is the
//!   standard reading of "supervised on impressions, weighted by feedback" (as in weighted
//!   logistic regression for watch time, Covington et al. 2016).
//! - **LTR**: learning to rank with a listwise loss (ListNet, Cao et al. 2007) over each
//!   request's shown items, the target distribution `softmax(watch time / T)`; the control
//!   arm of the online test.
//!
//! All three score a (state, candidate) pair with [`SupervisedNet`]; the score is the
//! network's output (the logit).

use std::path::Path;
use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, log_softmax, softmax};
use mmrf_data::session::{RequestState, Timelines};
use mmrf_data::{Dataset, LogSplit};
use mmrf_model::supervised::{Interaction, SidePart, SupervisedNet, SupervisedNetConfig, UserBatch};
use mmrf_model::FeatureSpace;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::video_batch;
use crate::ranker::Ranker;
use crate::run::{self, Manifest};
use crate::settings::{at_least_one, non_negative, positive, Validate};
use crate::state::{StateInputs, PAD};
use crate::{check_finite, Progress, TrainError, TrainLog};

/// The training objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Weighted logistic loss on valid play (Wide&Deep, DeepFM).
    Weighted,
    /// ListNet over the shown items with a watch-time target (LTR).
    Listwise,
}

/// Coefficients of the sample weight `1 + Σ_s c_s·feedback_s`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackWeights {
    pub like: f32,
    pub follow: f32,
    pub comment: f32,
    pub long_view: f32,
    /// Per second of play time: the sample weight's bet on watch time (the largest term
    /// for a typical play of 10–30 s).
    pub watch_s: f32,
}

impl Default for FeedbackWeights {
    fn default() -> Self {
        FeedbackWeights {
            like: 2.0,
            follow: 5.0,
            comment: 3.0,
            long_view: 1.0,
            watch_s: 0.5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisedConfig {
    pub net: SupervisedNetConfig,
    pub loss: Loss,
    pub weights: FeedbackWeights,
    /// Temperature of LTR's target `softmax(watch seconds / T)`: 0.3 s puts nearly all the
    /// target on the longest play of the request (chosen by `mmrf tune` on worlds 7–9).
    pub listwise_temperature_s: f32,
    pub steps: usize,
    /// Requests per step (all their shown items).
    pub batch: usize,
    pub lr: f64,
    pub history: usize,
    pub log_every: usize,
}

impl Default for SupervisedConfig {
    fn default() -> Self {
        SupervisedConfig {
            net: SupervisedNetConfig::default(),
            loss: Loss::Weighted,
            weights: FeedbackWeights::default(),
            listwise_temperature_s: 0.3,
            steps: 1500,
            batch: 256,
            lr: 2e-3,
            history: 20,
            log_every: 25,
        }
    }
}

impl Validate for SupervisedConfig {
    fn validate(&self) -> Result<(), TrainError> {
        for (key, v) in [
            ("net.field", self.net.field),
            ("net.hidden", self.net.hidden),
            ("net.hidden2", self.net.hidden2),
            ("steps", self.steps),
            ("batch", self.batch),
            ("history", self.history),
        ] {
            at_least_one(key, v)?;
        }
        positive("lr", self.lr)?;
        positive("listwise_temperature_s", self.listwise_temperature_s as f64)?;
        let w = &self.weights;
        for (key, v) in [
            ("weights.like", w.like),
            ("weights.follow", w.follow),
            ("weights.comment", w.comment),
            ("weights.long_view", w.long_view),
            ("weights.watch_s", w.watch_s),
        ] {
            non_negative(key, v as f64)?;
        }
        Ok(())
    }
}

impl SupervisedConfig {
    /// `wide-deep`, `deepfm` or `ltr`.
    pub fn for_method(method: &str) -> SupervisedConfig {
        let mut c = SupervisedConfig::default();
        // The weight of play time in the sample weight, chosen per method by `mmrf tune`
        // on worlds 7–9 (`docs/baselines.md`): 0.5 per second for DeepFM, 1 for Wide&Deep.
        match method {
            "wide-deep" => c.weights.watch_s = 1.0,
            "deepfm" => c.net.interaction = Interaction::DeepFm,
            "ltr" => {
                c.net.interaction = Interaction::Deep;
                c.loss = Loss::Listwise;
            }
            _ => {}
        }
        c
    }
}

/// The user side of states as tensors, packed by the shared [`StateInputs`].
fn user_batch(fs: &FeatureSpace, states: &[RequestState<'_>], history: usize, device: &Device) -> UserBatch {
    let mut s = StateInputs::new(history);
    for state in states {
        s.push(fs, state);
    }
    let (b, l) = (s.len, history.max(1));
    // Padded history slots read video 0; the mask removes them.
    let (hist, mask): (Vec<i64>, Vec<f32>) = if history == 0 {
        (vec![0; b], vec![0.0; b])
    } else {
        (
            s.videos.iter().map(|&v| if v == PAD { 0 } else { v as i64 }).collect(),
            s.mask,
        )
    };
    UserBatch {
        users: Tensor::from_data(TensorData::new(s.users, [b]), device),
        features: Tensor::from_data(TensorData::new(s.user_features, [b, fs.users.dim.max(1)]), device),
        hour: Tensor::from_data(TensorData::new(s.hour, [b]), device),
        tab: Tensor::from_data(TensorData::new(s.tab, [b]), device),
        history: Tensor::from_data(TensorData::new(hist, [b, l]), device),
        mask: Tensor::from_data(TensorData::new(mask, [b, l]), device),
    }
}

/// Train a supervised baseline and write the run directory.
#[allow(clippy::too_many_arguments)]
pub fn train(
    data: &Dataset,
    fs: &FeatureSpace,
    method: &str,
    cfg: &SupervisedConfig,
    seed: u64,
    out: &Path,
    progress: &Progress,
) -> Result<SupervisedRanker, TrainError> {
    let started = Instant::now();
    let _seeded = mmrf_model::device::seeded(seed);
    let device = mmrf_model::device::training();
    let timelines = Timelines::build(data);
    let set = data.requests(LogSplit::Train, &Default::default());
    let log = data.log(LogSplit::Train);
    if set.requests.is_empty() {
        return Err(TrainError::Data("the training split has no requests".into()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..set.requests.len()).collect();
    order.shuffle(&mut rng);
    let mut cursor = 0;
    let mut net = SupervisedNet::new(&fs.shape(), &cfg.net, &device);
    let mut optim = AdamConfig::new().init();
    let mut curve = TrainLog::create(out)?;
    let bar = progress.bar(method, cfg.steps as u64);
    // Every request padded to the most items any request shows.
    let width = set.max_shown().max(1);
    let w = cfg.weights;
    for step in 0..cfg.steps {
        let mut idx = Vec::with_capacity(cfg.batch);
        while idx.len() < cfg.batch {
            if cursor == order.len() {
                order.shuffle(&mut rng);
                cursor = 0;
            }
            idx.push(order[cursor]);
            cursor += 1;
        }
        let b = idx.len();
        let states: Vec<RequestState<'_>> = idx
            .iter()
            .map(|&i| timelines.state(&set, log, i, cfg.history))
            .collect();
        let mut videos: Vec<u32> = Vec::new();
        let mut slot = std::collections::HashMap::new();
        let (mut cand, mut mask, mut label, mut weight, mut watch) = (
            vec![0i64; b * width],
            vec![0f32; b * width],
            vec![0f32; b * width],
            vec![0f32; b * width],
            vec![0f32; b * width],
        );
        for (x, &i) in idx.iter().enumerate() {
            for (k, &row) in set.shown_rows(&set.requests[i]).iter().enumerate() {
                let r = row as usize;
                let v = log.video[r];
                let j = *slot.entry(v).or_insert_with(|| {
                    videos.push(v);
                    videos.len() as i64 - 1
                });
                let at = x * width + k;
                cand[at] = j;
                mask[at] = 1.0;
                label[at] = log.is_click[r] as f32;
                let play_s = log.play_time_ms[r] as f32 / 1000.0;
                watch[at] = play_s;
                weight[at] = 1.0
                    + w.like * log.is_like[r] as f32
                    + w.follow * log.is_follow[r] as f32
                    + w.comment * log.is_comment[r] as f32
                    + w.long_view * log.long_view[r] as f32
                    + w.watch_s * play_s;
            }
        }
        let user = net.user_part(user_batch(fs, &states, cfg.history, &device));
        let items = net.item_part(video_batch(fs, &videos, &device));
        let scores = net.scores(
            &user,
            &items,
            Tensor::from_data(TensorData::new(cand, [b, width]), &device),
        );
        let mask_t = Tensor::<2>::from_data(TensorData::new(mask, [b, width]), &device);
        let loss = match cfg.loss {
            Loss::Weighted => {
                let y = Tensor::<2>::from_data(TensorData::new(label, [b, width]), &device);
                let wt = Tensor::<2>::from_data(TensorData::new(weight, [b, width]), &device) * mask_t.clone();
                // −[y log σ(s) + (1 − y) log σ(−s)], weighted.
                let nll = (y.clone() * log_sigmoid(scores.clone()) + (y.neg() + 1.0) * log_sigmoid(scores.neg())).neg();
                (nll * wt.clone()).sum() / wt.sum().clamp_min(1e-6)
            }
            Loss::Listwise => {
                let pad = (mask_t.clone() - 1.0) * 1e9;
                let t = Tensor::<2>::from_data(TensorData::new(watch, [b, width]), &device)
                    / cfg.listwise_temperature_s as f64;
                let target = softmax(t + pad.clone(), 1);
                let logp = log_softmax(scores + pad, 1);
                (target * logp * mask_t).sum().neg() / b as f64
            }
        };
        let value: f32 = loss.clone().into_scalar();
        check_finite(value, step, method, "loss")?;
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(cfg.lr, net, grads);
        if step % cfg.log_every.max(1) == 0 || step + 1 == cfg.steps {
            curve.write(&serde_json::json!({"step": step, "loss": value}))?;
        }
        bar.inc(1);
        bar.set_message(format!("loss {value:.3}"));
    }
    bar.finish_and_clear();
    let valid = net.valid();
    run::save_weights(&valid, &out.join(run::WEIGHTS_FILE))?;
    Manifest::new(method, seed, data, fs.shape(), started.elapsed().as_secs_f64(), cfg).write(out)?;
    Ok(SupervisedRanker::new(method, valid, fs.clone(), cfg.history))
}

/// Load a supervised run.
pub fn load(dir: &Path, manifest: &Manifest, fs: &FeatureSpace) -> Result<SupervisedRanker, TrainError> {
    let cfg: SupervisedConfig = manifest.config()?;
    let net = run::load_module(
        || SupervisedNet::new(&fs.shape(), &cfg.net, &mmrf_model::device::inference()),
        &dir.join(run::WEIGHTS_FILE),
    )?;
    Ok(SupervisedRanker::new(&manifest.method, net, fs.clone(), cfg.history))
}

/// A trained supervised baseline as a [`Ranker`]: the item side of every video is
/// computed once, a request's user side once per request.
pub struct SupervisedRanker {
    method: String,
    net: SupervisedNet,
    items: SidePart,
    fs: FeatureSpace,
    history: usize,
}

impl SupervisedRanker {
    pub fn new(method: &str, net: SupervisedNet, fs: FeatureSpace, history: usize) -> Self {
        let device = mmrf_model::device::inference();
        let all: Vec<u32> = (0..fs.n_videos() as u32).collect();
        let items = net.item_part(video_batch(&fs, &all, &device));
        SupervisedRanker {
            method: method.to_string(),
            net,
            items,
            fs,
            history,
        }
    }
}

impl Ranker for SupervisedRanker {
    fn method(&self) -> &str {
        &self.method
    }

    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        crate::ranker::score_one(self, state, candidates, scores)
    }

    fn score_batch(&self, states: &[RequestState<'_>], candidates: &[&[u32]], scores: &mut [Vec<f32>]) {
        let device = mmrf_model::device::inference();
        let b = states.len();
        let c = candidates.iter().map(|x| x.len()).max().unwrap_or(0).max(1);
        let mut idx = vec![0i64; b * c];
        for (x, cands) in candidates.iter().enumerate() {
            for (k, &v) in cands.iter().enumerate() {
                idx[x * c + k] = v as i64;
            }
        }
        let user = self.net.user_part(user_batch(&self.fs, states, self.history, &device));
        let s: Vec<f32> = self
            .net
            .scores(
                &user,
                &self.items,
                Tensor::from_data(TensorData::new(idx, [b, c]), &device),
            )
            .into_data()
            .try_to_vec()
            .unwrap_or_default();
        for (x, (cands, out)) in candidates.iter().zip(scores.iter_mut()).enumerate() {
            out.clear();
            out.extend_from_slice(&s[x * c..x * c + cands.len()]);
        }
    }
}
