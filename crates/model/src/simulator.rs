//! The user-feedback simulator M (paper eq. 5–6): labels the candidates the logger never
//! showed, so the agents also learn from non-impression samples (sample selection bias).
//!
//! A GRU reads the user's impression sequence (item embedding ⊕ feedback vector, oldest
//! first) and, with the user's profile, gives a context; a head per signal predicts the
//! feedback `r ∈ [0, 1]^N` of a candidate from the context and the candidate's embedding,
//! fitted by MSE. A siamese twin head of the same shape, trained on the same targets
//! through dropout, gives `r'`; where the two disagree the simulator is unsure. The
//! uncertainty is `KL(P‖P')` with `P = (r, 1 − r)`, and the simulated reward is
//! `r̃ = mean(r, r')·exp(λ·KL)` (λ < 0 shrinks uncertain labels, λ > 0 favours them). When
//! labelling, burn's dropout is off; [`FeedbackSimulator::predict_with_twin_mask`] keeps the
//! twin's dropout on with a mask the caller draws (Monte-Carlo dropout).

use burn::nn::gru::{Gru, GruConfig};
use burn::nn::{Dropout, DropoutConfig, Embedding, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use serde::{Deserialize, Serialize};

use crate::features::FeatureShape;
use crate::layers::linear_rows;
use crate::mmrf::{ItemEncoder, MmrfNetConfig, StateBatch, FEEDBACK_DIM, N_AGENTS};

/// Sizes of the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorNetConfig {
    /// Item-embedding width.
    pub dim: usize,
    /// GRU state width.
    pub hidden: usize,
    /// Hidden width of the heads.
    pub head: usize,
    /// Dropout of the twin head.
    pub dropout: f64,
}

impl Default for SimulatorNetConfig {
    fn default() -> Self {
        SimulatorNetConfig {
            dim: 32,
            hidden: 32,
            head: 64,
            dropout: 0.2,
        }
    }
}

#[derive(Module, Debug)]
pub struct FeedbackSimulator {
    items: ItemEncoder,
    user: Embedding,
    user_features: Linear,
    gru: Gru,
    head_hidden: Linear,
    head_out: Linear,
    twin_hidden: Linear,
    twin_out: Linear,
    dropout: Dropout,
    hidden: usize,
    dim: usize,
}

impl FeedbackSimulator {
    pub fn new(shape: &FeatureShape, cfg: &SimulatorNetConfig, device: &Device) -> Self {
        let item_cfg = MmrfNetConfig {
            dim: cfg.dim,
            hidden: cfg.head,
            ..MmrfNetConfig::default()
        };
        let ctx = 2 * cfg.hidden + cfg.dim;
        FeedbackSimulator {
            items: ItemEncoder::new(shape, &item_cfg, device),
            user: crate::layers::embedding(shape.n_users, cfg.hidden, device),
            user_features: LinearConfig::new(shape.user_dim.max(1), cfg.hidden).init(device),
            gru: GruConfig::new(cfg.dim + FEEDBACK_DIM, cfg.hidden, true).init(device),
            head_hidden: LinearConfig::new(ctx, cfg.head).init(device),
            head_out: LinearConfig::new(cfg.head, N_AGENTS).init(device),
            twin_hidden: LinearConfig::new(ctx, cfg.head).init(device),
            twin_out: LinearConfig::new(cfg.head, N_AGENTS).init(device),
            dropout: DropoutConfig::new(cfg.dropout).init(),
            hidden: cfg.hidden,
            dim: cfg.dim,
        }
    }

    /// The simulator's own item embeddings.
    pub fn items(&self) -> &ItemEncoder {
        &self.items
    }

    /// Context `[B, 2·hidden]`: the GRU's state after the last real impression, and the user.
    pub fn context(&self, s: StateBatch) -> Tensor<2> {
        let [b, l, _] = s.history.dims();
        let h = self.hidden;
        let seq = self.gru.forward(Tensor::cat(vec![s.history, s.feedback], 2), None); // [B, L, H]
                                                                                       // Histories are left-aligned: the last real step is at `len − 1` (none: zeros).
        let len = s.mask.clone().sum_dim(1).reshape([b]);
        let has = len.clone().clamp_max(1.0).reshape([b, 1]);
        let last = (len - 1.0).clamp_min(0.0).int().reshape([b, 1, 1]).repeat_dim(2, h);
        let state = seq.gather(1, last).reshape([b, h]) * has;
        let u =
            self.user.forward(s.users.reshape([b, 1])).reshape([b, h]) + self.user_features.forward(s.user_features);
        let _ = l;
        Tensor::cat(vec![state, relu(u)], 1)
    }

    /// `(r, r')`: `[B, K, N]` predictions of the main and twin heads for items `[B, K, D]`.
    /// The twin's input goes through burn's dropout, which acts in training only.
    pub fn predict(&self, context: Tensor<2>, items: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let x = Self::inputs(context, items);
        let twin = self.dropout.forward(x.clone());
        self.heads(x, twin)
    }

    /// [`FeedbackSimulator::predict`] with the twin's dropout drawn from `mask`
    /// (`[B, K, W]`, W = [`FeedbackSimulator::input_width`], each entry 0 or `1/(1 − p)`)
    /// instead of by burn: Monte-Carlo dropout when labelling, where burn's dropout is off,
    /// so the two heads' disagreement (eq. 6's KL) measures the twin's uncertainty.
    pub fn predict_with_twin_mask(
        &self,
        context: Tensor<2>,
        items: Tensor<3>,
        mask: Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        let x = Self::inputs(context, items);
        let twin = x.clone() * mask;
        self.heads(x, twin)
    }

    /// The width W of the heads' input: the context and the item embedding.
    pub fn input_width(&self) -> usize {
        2 * self.hidden + self.dim
    }

    /// The twin head's dropout probability.
    pub fn dropout_p(&self) -> f64 {
        self.dropout.prob
    }

    /// The heads' input `[B, K, C + D]`: the context beside each item.
    fn inputs(context: Tensor<2>, items: Tensor<3>) -> Tensor<3> {
        let [b, k, _] = items.dims();
        let c = context.dims()[1];
        Tensor::cat(vec![context.reshape([b, 1, c]).repeat_dim(1, k), items], 2)
    }

    fn heads(&self, x: Tensor<3>, twin: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let r = sigmoid(linear_rows(&self.head_out, relu(linear_rows(&self.head_hidden, x))));
        let r2 = sigmoid(linear_rows(&self.twin_out, relu(linear_rows(&self.twin_hidden, twin))));
        (r, r2)
    }
}

/// `KL(P‖P')` of two Bernoulli predictions, elementwise (clamped away from 0 and 1).
pub fn bernoulli_kl<const D: usize>(r: Tensor<D>, r2: Tensor<D>) -> Tensor<D> {
    let (p, q) = (r.clamp(1e-4, 1.0 - 1e-4), r2.clamp(1e-4, 1.0 - 1e-4));
    let (p1, q1) = (p.clone().neg() + 1.0, q.clone().neg() + 1.0);
    p.clone() * (p / q).log() + p1.clone() * (p1 / q1).log()
}

/// The simulated reward `mean(r, r')·exp(λ·KL(P‖P'))`, elementwise.
pub fn simulated_reward<const D: usize>(r: Tensor<D>, r2: Tensor<D>, lambda: f64) -> Tensor<D> {
    let kl = bernoulli_kl(r.clone(), r2.clone());
    (r + r2) * 0.5 * (kl * lambda).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_is_zero_for_agreement_and_grows_with_disagreement() {
        let device = Device::flex();
        let r = Tensor::<1>::from_floats([0.3, 0.3, 0.3], &device);
        let r2 = Tensor::<1>::from_floats([0.3, 0.5, 0.9], &device);
        let kl: Vec<f32> = bernoulli_kl(r.clone(), r2.clone()).into_data().try_to_vec().unwrap();
        assert!(kl[0].abs() < 1e-6 && kl[1] > 0.0 && kl[2] > kl[1]);
        // By hand: 0.3 ln(0.3/0.5) + 0.7 ln(0.7/0.5).
        let want = 0.3f32 * (0.6f32).ln() + 0.7 * (1.4f32).ln();
        assert!((kl[1] - want).abs() < 1e-5);
        let sim: Vec<f32> = simulated_reward(r, r2, -2.0).into_data().try_to_vec().unwrap();
        assert!((sim[0] - 0.3).abs() < 1e-6);
        assert!((sim[1] - 0.4 * (-2.0 * want).exp()).abs() < 1e-5);
    }
}
