//! BC: behaviour cloning of the logging policy. Its softmax over a request's candidates is
//! π_β, the behaviour propensity every off-policy estimate divides by.

use std::path::Path;
use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use mmrf_data::{Dataset, LogSplit};
use mmrf_model::{BcNetConfig, BehaviourModel, FeatureSpace};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::{user_tensors, video_batch, Batcher};
use crate::ranker::TwoTowerRanker;
use crate::run::{self, Manifest};
use crate::settings::{at_least_one, positive, Validate};
use crate::{Progress, TrainError, TrainLog};

/// BC's settings (`[config]` of `run.toml`; `--set key=value` overrides).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BcConfig {
    pub net: BcNetConfig,
    pub epochs: usize,
    /// Requests per mini-batch (each with all its candidates).
    pub batch: usize,
    pub lr: f64,
    /// Train on at most this many requests (0: all), for smoke tests.
    pub max_requests: usize,
    /// Log the loss every this many steps.
    pub log_every: usize,
}

impl Default for BcConfig {
    fn default() -> Self {
        BcConfig {
            net: BcNetConfig::default(),
            epochs: 2,
            batch: 128,
            lr: 3e-3,
            max_requests: 0,
            log_every: 50,
        }
    }
}

impl Validate for BcConfig {
    fn validate(&self) -> Result<(), TrainError> {
        for (key, v) in [
            ("net.dim", self.net.dim),
            ("net.hidden", self.net.hidden),
            ("epochs", self.epochs),
            ("batch", self.batch),
        ] {
            at_least_one(key, v)?;
        }
        positive("lr", self.lr)
    }
}

/// Fit BC on the training split and write the run directory.
pub fn train(
    data: &Dataset,
    fs: &FeatureSpace,
    cfg: &BcConfig,
    seed: u64,
    out: &Path,
    progress: &Progress,
) -> Result<TwoTowerRanker, TrainError> {
    let started = Instant::now();
    let _seeded = mmrf_model::device::seeded(seed);
    let device = mmrf_model::device::training();
    let set = data.requests(LogSplit::Train, &Default::default());
    let log = data.log(LogSplit::Train);
    let mut order: Vec<usize> = (0..set.requests.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    order.shuffle(&mut rng);
    if cfg.max_requests > 0 {
        order.truncate(cfg.max_requests);
    }
    if order.is_empty() {
        return Err(TrainError::Data("the training split has no requests".into()));
    }
    let mut model = BehaviourModel::new(&fs.shape(), &cfg.net, &device);
    let mut optim = AdamConfig::new().init();
    let mut batcher = Batcher::new(fs);
    let batch = cfg.batch.max(1);
    let steps_per_epoch = order.len().div_ceil(batch);
    let bar = progress.bar("bc", (steps_per_epoch * cfg.epochs) as u64);
    let mut train_log = TrainLog::create(out)?;
    let mut step = 0usize;
    let mut running = 0.0f64;
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(batch) {
            let b = batcher.build(&set, log, chunk)?;
            let (users, user_feats) = user_tensors(fs, &b.users, &b.user_features, &device);
            let u = model.users(users, user_feats);
            let (v, bias) = model.videos(video_batch(fs, &b.videos, &device));
            let cands = Tensor::<2, Int>::from_data(TensorData::new(b.candidates, [b.b, b.c]), &device);
            let logits = BehaviourModel::logits(u, v, bias, cands);
            let shown = Tensor::<2>::from_data(TensorData::new(b.shown, [b.b, b.c]), &device);
            let valid = Tensor::<2>::from_data(TensorData::new(b.valid, [b.b, b.c]), &device);
            let loss = BehaviourModel::loss(logits, shown, valid);
            let value: f32 = loss.clone().into_scalar();
            crate::check_finite(value, step, "bc", "loss")?;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.lr, model, grads);
            running = if step == 0 {
                value as f64
            } else {
                0.98 * running + 0.02 * value as f64
            };
            if step % cfg.log_every.max(1) == 0 {
                train_log.write(&serde_json::json!({"step": step, "epoch": epoch, "loss": value}))?;
            }
            step += 1;
            bar.inc(1);
            bar.set_message(format!("loss {running:.3}"));
        }
    }
    bar.finish_and_clear();
    let ranker = export(&model.valid(), fs);
    run::save_weights(&model.valid(), &out.join(run::WEIGHTS_FILE))?;
    Manifest::new("bc", seed, data, fs.shape(), started.elapsed().as_secs_f64(), cfg).write(out)?;
    Ok(ranker)
}

/// Load a BC run's network and export its score tables.
pub fn load(dir: &Path, manifest: &Manifest, fs: &FeatureSpace) -> Result<TwoTowerRanker, TrainError> {
    let cfg: BcConfig = manifest.config()?;
    let device = mmrf_model::device::inference();
    let model = run::load_module(
        || BehaviourModel::new(&fs.shape(), &cfg.net, &device),
        &dir.join(run::WEIGHTS_FILE),
    )?;
    Ok(export(&model, fs))
}

/// Every user's and video's vector: BC's score does not depend on the session state.
fn export(model: &BehaviourModel, fs: &FeatureSpace) -> TwoTowerRanker {
    let device = mmrf_model::device::inference();
    let model = model.clone().valid();
    let users: Vec<i64> = (0..fs.n_users() as i64).collect();
    let feats = fs.users.values.clone();
    let (ids, feats) = user_tensors(fs, &users, &feats, &device);
    let u: Vec<f32> = model.users(ids, feats).into_data().try_to_vec().unwrap_or_default();
    let videos: Vec<u32> = (0..fs.n_videos() as u32).collect();
    let (v, bias) = model.videos(video_batch(fs, &videos, &device));
    let dim = v.dims()[1];
    TwoTowerRanker {
        method: "bc".into(),
        dim,
        users: u,
        videos: v.into_data().try_to_vec().unwrap_or_default(),
        bias: bias.into_data().try_to_vec().unwrap_or_default(),
    }
}
