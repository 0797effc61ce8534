//! Supervised rankers scoring (state, candidate) pairs: Wide&Deep, DeepFM and the deep
//! network of the learning-to-rank baseline.
//!
//! Inputs are fields: on the user side the user id, the profile (dense, projected), the
//! hour, the tab and the mean embedding of the recent history; on the item side the video
//! id, author, first tag and the video's features (dense, projected). Every field is an
//! `F`-wide vector.
//!
//! - **Deep**: an MLP over the concatenated fields. Its first layer is split into a user
//!   part and an item part, `W·[u; i] = W_u·u + W_i·i`, which is exact and lets a request's
//!   user part be computed once for all its candidates.
//! - **Wide** (Wide&Deep): first-order weights per id and per dense feature, summed.
//! - **FM** (DeepFM): the factorisation machine's pairwise term
//!   `½[(Σ_f v_f)² − Σ_f v_f²]` over all fields, split exactly into the user-only,
//!   item-only and user·item parts.

use burn::nn::{Embedding, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::bc::VideoBatch;
use crate::features::FeatureShape;
use crate::layers::{embedding, linear_rows, lookup, square};
use crate::mmrf::N_TABS;

/// Which terms the score has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interaction {
    /// Deep + wide (Cheng et al. 2016).
    WideDeep,
    /// Deep + FM (Guo et al. 2017).
    DeepFm,
    /// Deep only (the learning-to-rank network).
    Deep,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisedNetConfig {
    /// Field width `F`.
    pub field: usize,
    pub hidden: usize,
    pub hidden2: usize,
    pub interaction: Interaction,
}

impl Default for SupervisedNetConfig {
    fn default() -> Self {
        SupervisedNetConfig {
            field: 16,
            hidden: 64,
            hidden2: 32,
            interaction: Interaction::WideDeep,
        }
    }
}

/// Fields on the user side: 5 (id, profile, hour, tab, history).
pub const USER_FIELDS: usize = 5;
/// Fields on the item side: 4 (id, author, tag, features).
pub const ITEM_FIELDS: usize = 4;

/// The user side of a batch of requests.
#[derive(Debug, Clone)]
pub struct UserBatch {
    pub users: Tensor<1, Int>,
    pub features: Tensor<2>,
    pub hour: Tensor<1, Int>,
    pub tab: Tensor<1, Int>,
    /// `[B, L]` history video ids (any id where masked) and `[B, L]` mask.
    pub history: Tensor<2, Int>,
    pub mask: Tensor<2>,
}

/// The per-side quantities the score needs: the deep tower's first-layer part, and what
/// the interaction reads.
///
/// Only what the score uses is computed: a branch computed and never used (the wide sums
/// for LTR and DeepFM, the field sums for LTR and Wide&Deep) leaves orphaned nodes in the
/// autodiff graph, which burn sweeps at every backward pass; with them LTR's training took
/// 6.9–39.6 s from run to run, most of it in that sweep (BENCHMARKS.md).
#[derive(Debug, Clone)]
pub struct SidePart {
    pub deep: Tensor<2>,
    pub cross: Cross,
}

/// One side's share of the interaction term.
// Two per forward pass, never stored in bulk: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Cross {
    /// Deep only (LTR's scorer).
    None,
    /// Wide&Deep: the wide (linear) sum `[N, 1]`.
    Wide(Tensor<2>),
    /// DeepFM: the sum of the field embeddings and the sum of their squares, `[N, F]` each.
    Fm { sum: Tensor<2>, sq: Tensor<2> },
}

#[derive(Module, Debug)]
pub struct SupervisedNet {
    user: Embedding,
    user_features: Linear,
    hour: Embedding,
    tab: Embedding,
    video: Embedding,
    author: Embedding,
    tag: Embedding,
    video_features: Linear,
    wide_user: Embedding,
    wide_video: Embedding,
    wide_author: Embedding,
    wide_user_features: Linear,
    wide_video_features: Linear,
    deep_user: Linear,
    deep_item: Linear,
    deep2: Linear,
    deep_out: Linear,
    field: usize,
    interaction_code: usize,
}

impl SupervisedNet {
    pub fn new(shape: &FeatureShape, cfg: &SupervisedNetConfig, device: &Device) -> Self {
        let f = cfg.field;
        SupervisedNet {
            user: embedding(shape.n_users, f, device),
            user_features: LinearConfig::new(shape.user_dim.max(1), f).init(device),
            hour: embedding(24, f, device),
            tab: embedding(N_TABS, f, device),
            video: embedding(shape.n_videos, f, device),
            author: embedding(shape.n_authors, f, device),
            tag: embedding(shape.n_tags, f, device),
            video_features: LinearConfig::new(shape.video_dim.max(1), f).init(device),
            wide_user: embedding(shape.n_users, 1, device),
            wide_video: embedding(shape.n_videos, 1, device),
            wide_author: embedding(shape.n_authors, 1, device),
            wide_user_features: LinearConfig::new(shape.user_dim.max(1), 1).init(device),
            wide_video_features: LinearConfig::new(shape.video_dim.max(1), 1).init(device),
            deep_user: LinearConfig::new(USER_FIELDS * f, cfg.hidden).init(device),
            deep_item: LinearConfig::new(ITEM_FIELDS * f, cfg.hidden)
                .with_bias(false)
                .init(device),
            deep2: LinearConfig::new(cfg.hidden, cfg.hidden2).init(device),
            deep_out: LinearConfig::new(cfg.hidden2, 1).init(device),
            field: f,
            interaction_code: match cfg.interaction {
                Interaction::WideDeep => 0,
                Interaction::DeepFm => 1,
                Interaction::Deep => 2,
            },
        }
    }

    /// DeepFM's side sums of the field embeddings (at least one field).
    fn fm(fields: &[Tensor<2>]) -> Cross {
        let sum = fields.iter().skip(1).fold(fields[0].clone(), |a, x| a + x.clone());
        let sq = fields
            .iter()
            .skip(1)
            .fold(square(fields[0].clone()), |a, x| a + square(x.clone()));
        Cross::Fm { sum, sq }
    }

    /// The user side of requests.
    pub fn user_part(&self, u: UserBatch) -> SidePart {
        let b = u.users.dims()[0];
        let l = u.history.dims()[1];
        let f = self.field;
        let hist = self.video.forward(u.history).reshape([b, l, f]);
        let mask = u.mask.reshape([b, l, 1]);
        let count = mask.clone().sum_dim(1).reshape([b, 1]).clamp_min(1.0);
        let hist = (hist * mask).sum_dim(1).reshape([b, f]) / count;
        let fields = vec![
            lookup(&self.user, u.users.clone()),
            self.user_features.forward(u.features.clone()),
            lookup(&self.hour, u.hour),
            lookup(&self.tab, u.tab),
            hist,
        ];
        let cross = match self.interaction_code {
            0 => Cross::Wide(lookup(&self.wide_user, u.users) + self.wide_user_features.forward(u.features)),
            1 => Self::fm(&fields),
            _ => Cross::None,
        };
        SidePart {
            deep: self.deep_user.forward(Tensor::cat(fields, 1)),
            cross,
        }
    }

    /// The item side of videos.
    pub fn item_part(&self, v: VideoBatch) -> SidePart {
        let fields = vec![
            lookup(&self.video, v.ids.clone()),
            lookup(&self.author, v.authors.clone()),
            lookup(&self.tag, v.tags),
            self.video_features.forward(v.features.clone()),
        ];
        let cross = match self.interaction_code {
            0 => Cross::Wide(
                lookup(&self.wide_video, v.ids)
                    + lookup(&self.wide_author, v.authors)
                    + self.wide_video_features.forward(v.features),
            ),
            1 => Self::fm(&fields),
            _ => Cross::None,
        };
        SidePart {
            deep: self.deep_item.forward(Tensor::cat(fields, 1)),
            cross,
        }
    }

    /// Scores `[B, C]` of candidates (`candidates[b, c]` indexes the item part's rows).
    pub fn scores(&self, user: &SidePart, items: &SidePart, candidates: Tensor<2, Int>) -> Tensor<2> {
        let [b, c] = candidates.dims();
        let flat = candidates.reshape([b * c]);
        let pick = |t: &Tensor<2>| {
            let d = t.dims()[1];
            t.clone().select(0, flat.clone()).reshape([b, c, d])
        };
        let hidden = user.deep.dims()[1];
        let h = relu(user.deep.clone().reshape([b, 1, hidden]) + pick(&items.deep));
        let deep = linear_rows(&self.deep_out, relu(linear_rows(&self.deep2, h))).reshape([b, c]);
        match (&user.cross, &items.cross) {
            (Cross::Wide(u), Cross::Wide(i)) => deep + u.clone().reshape([b, 1]) + pick(i).reshape([b, c]),
            (Cross::Fm { sum: us, sq: usq }, Cross::Fm { sum: is, sq: isq }) => {
                let f = self.field;
                let both = us.clone().reshape([b, 1, f]) + pick(is);
                let total = (both.clone() * both).sum_dim(2).reshape([b, c]);
                let squares = usq.clone().sum_dim(1).reshape([b, 1]) + pick(isq).sum_dim(2).reshape([b, c]);
                deep + (total - squares) * 0.5
            }
            _ => deep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn fm_term_is_the_sum_over_field_pairs() {
        // ½[(Σv)² − Σv²] summed over the dimensions equals Σ_{f<g} ⟨v_f, v_g⟩.
        // burn's generator is process-wide: seed it and hold it while drawing.
        let _seeded = crate::device::seeded(3);
        let device = Device::flex();
        let fields: Vec<Tensor<2>> = (0..4)
            .map(|_| Tensor::random([3, 5], Distribution::Normal(0.0, 1.0), &device))
            .collect();
        let Cross::Fm { sum, sq } = SupervisedNet::fm(&fields) else {
            panic!("fm() gives the FM sums")
        };
        let fm: Vec<f32> = ((sum.powi_scalar(2) - sq).sum_dim(1) * 0.5)
            .into_data()
            .try_to_vec()
            .unwrap();
        let v: Vec<Vec<f32>> = fields
            .iter()
            .map(|t| t.clone().into_data().try_to_vec().unwrap())
            .collect();
        for row in 0..3 {
            let mut want = 0.0;
            for f in 0..4 {
                for g in f + 1..4 {
                    want += (0..5).map(|k| v[f][row * 5 + k] * v[g][row * 5 + k]).sum::<f32>();
                }
            }
            assert!((fm[row] - want).abs() < 1e-4, "{} vs {want}", fm[row]);
        }
    }

    #[test]
    fn each_interaction_computes_only_its_own_terms() {
        // burn's generator is process-wide: seed it and hold it while drawing.
        let _seeded = crate::device::seeded(3);
        let device = Device::flex();
        let shape = FeatureShape {
            n_users: 4,
            user_dim: 2,
            n_videos: 6,
            n_authors: 3,
            n_tags: 3,
            video_dim: 2,
        };
        let videos = VideoBatch {
            ids: Tensor::from_data(TensorData::new(vec![0i64, 5], [2]), &device),
            authors: Tensor::from_data(TensorData::new(vec![1i64, 2], [2]), &device),
            tags: Tensor::from_data(TensorData::new(vec![0i64, 2], [2]), &device),
            features: Tensor::zeros([2, 2], &device),
        };
        for (interaction, want) in [
            (Interaction::WideDeep, "wide"),
            (Interaction::DeepFm, "fm"),
            (Interaction::Deep, "none"),
        ] {
            let cfg = SupervisedNetConfig {
                interaction,
                ..SupervisedNetConfig::default()
            };
            let part = SupervisedNet::new(&shape, &cfg, &device).item_part(videos.clone());
            let got = match part.cross {
                Cross::Wide(_) => "wide",
                Cross::Fm { .. } => "fm",
                Cross::None => "none",
            };
            assert_eq!(got, want, "{interaction:?}");
        }
    }
}
