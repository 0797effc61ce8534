//! Request states as network inputs: the user, the last L impressions with their feedback,
//! and the context. Shared by training and scoring, so a state means the same thing in both.

use burn::prelude::*;
use mmrf_data::session::{Impression, RequestState};
use mmrf_model::mmrf::{StateBatch, FEEDBACK_DIM, N_TABS};
use mmrf_model::FeatureSpace;

/// Play time at which the watch-time feedback of a history impression saturates.
const WATCH_SATURATION_MS: f32 = 60_000.0;

/// The feedback vector of a history impression: the six binary signals and the watch time
/// scaled into [0, 1].
pub fn feedback_vector(i: &Impression) -> [f32; FEEDBACK_DIM] {
    [
        i.click as u8 as f32,
        i.like as u8 as f32,
        i.follow as u8 as f32,
        i.comment as u8 as f32,
        i.hate as u8 as f32,
        i.long_view as u8 as f32,
        (i.play_time_ms as f32 / WATCH_SATURATION_MS).min(1.0),
    ]
}

/// States packed row-major; history videos are `u32::MAX` where padded.
#[derive(Debug, Clone, Default)]
pub struct StateInputs {
    pub len: usize,
    pub history: usize,
    pub users: Vec<i64>,
    pub user_features: Vec<f32>,
    pub videos: Vec<u32>,
    pub feedback: Vec<f32>,
    pub mask: Vec<f32>,
    pub hour: Vec<i64>,
    pub tab: Vec<i64>,
    pub position: Vec<f32>,
}

pub const PAD: u32 = u32::MAX;

impl StateInputs {
    pub fn new(history: usize) -> Self {
        StateInputs {
            history,
            ..Default::default()
        }
    }

    /// Append one state (the last `history` impressions of its history are used).
    pub fn push(&mut self, fs: &FeatureSpace, s: &RequestState<'_>) {
        self.len += 1;
        self.users.push(s.user as i64);
        if fs.users.dim == 0 {
            self.user_features.push(0.0);
        } else {
            self.user_features.extend_from_slice(fs.users.row(s.user as usize));
        }
        let h = &s.history[s.history.len().saturating_sub(self.history)..];
        for i in h {
            self.videos.push(i.video);
            self.feedback.extend_from_slice(&feedback_vector(i));
            self.mask.push(1.0);
        }
        for _ in h.len()..self.history {
            self.videos.push(PAD);
            self.feedback.extend_from_slice(&[0.0; FEEDBACK_DIM]);
            self.mask.push(0.0);
        }
        self.hour.push(s.hour.min(23) as i64);
        self.tab.push((s.tab as usize).min(N_TABS - 1) as i64);
        self.position.push((1.0 + s.position as f32).ln());
    }

    /// The batch tensors. History embeddings are rows of `table` (`[M, D]`) picked by
    /// `row_of(video)`; padding picks row `pad_row` (masked out anyway).
    pub fn to_batch(
        &self,
        user_dim: usize,
        table: Tensor<2>,
        row_of: impl Fn(u32) -> i64,
        pad_row: i64,
        device: &Device,
    ) -> StateBatch {
        let (b, l) = (self.len, self.history.max(1));
        let d = table.dims()[1];
        let idx: Vec<i64> = if self.history == 0 {
            vec![pad_row; b]
        } else {
            self.videos
                .iter()
                .map(|&v| if v == PAD { pad_row } else { row_of(v) })
                .collect()
        };
        let history = table
            .select(0, Tensor::from_data(TensorData::new(idx, [b * l]), device))
            .reshape([b, l, d]);
        let (feedback, mask) = if self.history == 0 {
            (vec![0.0; b * FEEDBACK_DIM], vec![0.0; b])
        } else {
            (self.feedback.clone(), self.mask.clone())
        };
        let ud = user_dim.max(1);
        StateBatch {
            users: Tensor::from_data(TensorData::new(self.users.clone(), [b]), device),
            user_features: Tensor::from_data(TensorData::new(self.user_features.clone(), [b, ud]), device),
            history,
            feedback: Tensor::from_data(TensorData::new(feedback, [b, l, FEEDBACK_DIM]), device),
            mask: Tensor::from_data(TensorData::new(mask, [b, l]), device),
            hour: Tensor::from_data(TensorData::new(self.hour.clone(), [b]), device),
            tab: Tensor::from_data(TensorData::new(self.tab.clone(), [b]), device),
            position: Tensor::from_data(TensorData::new(self.position.clone(), [b, 1]), device),
        }
    }
}
