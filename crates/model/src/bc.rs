//! The behaviour model π_β: which candidates did the logging policy show?
//!
//! A two-tower softmax model. The user tower embeds the user id and profile features; the
//! video tower embeds the video id, author, first tag and the video's features, plus a
//! per-video bias (popularity). A request's logits are `⟨u, v_j⟩ + b_j` over its candidate
//! set `C`, and `π_β(j|s) = softmax_C(logit)_j`. It is fitted by the log-likelihood of the
//! shown items: each shown item as the first pick among the request's candidates, which is
//! exactly the quantity the propensity is defined by (`DESIGN.md` §6).
//!
//! The user tower ignores the history and context: a production ranker of this kind scores
//! a (user, video) pair, and BC's job is to imitate it, not to improve on it.

use burn::nn::{Embedding, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu};
use serde::{Deserialize, Serialize};

use crate::features::FeatureShape;
use crate::layers::{embedding, lookup};

/// Sizes of the behaviour model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BcNetConfig {
    /// Width of the user and video embeddings.
    pub dim: usize,
    /// Width of the towers' hidden layer.
    pub hidden: usize,
}

impl Default for BcNetConfig {
    fn default() -> Self {
        BcNetConfig { dim: 32, hidden: 64 }
    }
}

/// A batch of videos, as the video tower reads them.
#[derive(Debug, Clone)]
pub struct VideoBatch {
    /// `[M]` video ids.
    pub ids: Tensor<1, Int>,
    pub authors: Tensor<1, Int>,
    pub tags: Tensor<1, Int>,
    /// `[M, video_dim]`.
    pub features: Tensor<2>,
}

#[derive(Module, Debug)]
pub struct BehaviourModel {
    user_id: Embedding,
    user_features: Linear,
    user_out: Linear,
    video_id: Embedding,
    author: Embedding,
    tag: Embedding,
    video_features: Linear,
    video_out: Linear,
    video_bias: Embedding,
}

impl BehaviourModel {
    pub fn new(shape: &FeatureShape, cfg: &BcNetConfig, device: &Device) -> Self {
        let (d, h) = (cfg.dim, cfg.hidden);
        BehaviourModel {
            user_id: embedding(shape.n_users, h, device),
            user_features: LinearConfig::new(shape.user_dim.max(1), h).init(device),
            user_out: LinearConfig::new(h, d).init(device),
            video_id: embedding(shape.n_videos, h, device),
            author: embedding(shape.n_authors, h, device),
            tag: embedding(shape.n_tags, h, device),
            video_features: LinearConfig::new(shape.video_dim.max(1), h).init(device),
            video_out: LinearConfig::new(h, d).init(device),
            video_bias: embedding(shape.n_videos, 1, device),
        }
    }

    /// `[B, dim]` user vectors from ids `[B]` and profile features `[B, user_dim]`.
    pub fn users(&self, ids: Tensor<1, Int>, features: Tensor<2>) -> Tensor<2> {
        let h = lookup(&self.user_id, ids) + self.user_features.forward(features);
        self.user_out.forward(relu(h))
    }

    /// `([M, dim], [M])`: video vectors and biases.
    pub fn videos(&self, v: VideoBatch) -> (Tensor<2>, Tensor<1>) {
        let bias = lookup(&self.video_bias, v.ids.clone());
        let m = bias.dims()[0];
        let h = lookup(&self.video_id, v.ids)
            + lookup(&self.author, v.authors)
            + lookup(&self.tag, v.tags)
            + self.video_features.forward(v.features);
        (self.video_out.forward(relu(h)), bias.reshape([m]))
    }

    /// Logits `[B, C]` of each request's candidates; `candidates[b, c]` indexes the rows of
    /// `videos`.
    pub fn logits(users: Tensor<2>, videos: Tensor<2>, bias: Tensor<1>, candidates: Tensor<2, Int>) -> Tensor<2> {
        let [b, c] = candidates.dims();
        let d = users.dims()[1];
        let flat = candidates.reshape([b * c]);
        let v = videos.select(0, flat.clone()).reshape([b, c, d]);
        let dot = (users.reshape([b, 1, d]) * v).sum_dim(2).reshape([b, c]);
        dot + bias.select(0, flat).reshape([b, c])
    }

    /// Mean negative log-likelihood of the shown items as first picks: `shown[b, c]` is 1
    /// for a shown candidate, `valid[b, c]` is 0 for padding.
    pub fn loss(logits: Tensor<2>, shown: Tensor<2>, valid: Tensor<2>) -> Tensor<1> {
        let masked = logits + (valid - 1.0) * 1e9;
        let logp = log_softmax(masked, 1);
        let n = shown.clone().sum();
        (logp * shown).sum().neg() / n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> FeatureShape {
        FeatureShape {
            n_users: 3,
            user_dim: 2,
            n_videos: 5,
            video_dim: 3,
            n_authors: 2,
            n_tags: 2,
        }
    }

    #[test]
    fn loss_is_the_shown_items_log_likelihood() {
        let device = Device::flex();
        // Two candidates with logits 0 and ln 3: probabilities 1/4 and 3/4.
        let logits = Tensor::<2>::from_floats([[0.0, 3f32.ln(), 5.0]], &device);
        let shown = Tensor::<2>::from_floats([[0.0, 1.0, 0.0]], &device);
        let valid = Tensor::<2>::from_floats([[1.0, 1.0, 0.0]], &device);
        let loss: f32 = BehaviourModel::loss(logits, shown, valid).into_scalar();
        assert!((loss - -(0.75f32.ln())).abs() < 1e-5, "{loss}");
    }

    #[test]
    fn logits_are_dot_products_plus_bias() {
        // burn's generator is process-wide: seed it and hold it while drawing.
        let _seeded = crate::device::seeded(3);
        let device = Device::flex();
        let m = BehaviourModel::new(&shape(), &BcNetConfig { dim: 4, hidden: 8 }, &device);
        let u = m.users(
            Tensor::from_data(TensorData::new(vec![1i64], [1]), &device),
            Tensor::from_floats([[0.5, -1.0]], &device),
        );
        let (v, b) = m.videos(VideoBatch {
            ids: Tensor::from_data(TensorData::new(vec![0i64, 4], [2]), &device),
            authors: Tensor::from_data(TensorData::new(vec![1i64, 0], [2]), &device),
            tags: Tensor::from_data(TensorData::new(vec![0i64, 1], [2]), &device),
            features: Tensor::from_floats([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]], &device),
        });
        let uv: Vec<f32> = u.clone().into_data().try_to_vec().unwrap();
        let vv: Vec<f32> = v.clone().into_data().try_to_vec().unwrap();
        let bv: Vec<f32> = b.clone().into_data().try_to_vec().unwrap();
        let cands = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 0], [1, 2]), &device);
        let l: Vec<f32> = BehaviourModel::logits(u, v, b, cands).into_data().try_to_vec().unwrap();
        for (c, &row) in [1usize, 0].iter().enumerate() {
            let want: f32 = (0..4).map(|k| uv[k] * vv[row * 4 + k]).sum::<f32>() + bv[row];
            assert!((l[c] - want).abs() < 1e-5);
        }
    }
}
