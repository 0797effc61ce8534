//! Request states as network inputs: the user, the last L impressions with their feedback,
//! the context and, for networks that read them, a subset of the request's candidates.
//! Shared by training and scoring, so a state means the same thing in both.

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
    /// Candidates read per state (0: none), and theirs, `PAD` where a request has fewer.
    pub candidates: usize,
    pub candidate_videos: Vec<u32>,
}

pub const PAD: u32 = u32::MAX;

impl StateInputs {
    pub fn new(history: usize) -> Self {
        StateInputs {
            history,
            ..Default::default()
        }
    }

    /// States that also read `candidates` of each request's candidates.
    pub fn with_candidates(history: usize, candidates: usize) -> Self {
        StateInputs {
            history,
            candidates,
            ..Default::default()
        }
    }

    /// The candidates of the state pushed last: an evenly spaced subset of `cands` (all of
    /// them when there are fewer), so every caller reads the same ones for a request.
    pub fn push_candidates(&mut self, cands: &[u32]) {
        let m = self.candidates;
        if m == 0 {
            return;
        }
        let n = cands.len();
        for i in 0..m {
            if n >= m {
                self.candidate_videos.push(cands[i * n / m]);
            } else if i < n {
                self.candidate_videos.push(cands[i]);
            } else {
                self.candidate_videos.push(PAD);
            }
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
            .clone()
            .select(0, Tensor::from_data(TensorData::new(idx, [b * l]), device))
            .reshape([b, l, d]);
        let (feedback, mask) = if self.history == 0 {
            (vec![0.0; b * FEEDBACK_DIM], vec![0.0; b])
        } else {
            (self.feedback.clone(), self.mask.clone())
        };
        let ud = user_dim.max(1);
        let cm = self.candidates.max(1);
        let (cidx, cmask): (Vec<i64>, Vec<f32>) = if self.candidates == 0 {
            (vec![pad_row; b], vec![0.0; b])
        } else {
            assert_eq!(self.candidate_videos.len(), b * cm, "every state's candidates pushed");
            self.candidate_videos
                .iter()
                .map(|&v| if v == PAD { (pad_row, 0.0) } else { (row_of(v), 1.0) })
                .unzip()
        };
        let candidates = table
            .select(0, Tensor::from_data(TensorData::new(cidx, [b * cm]), device))
            .reshape([b, cm, d]);
        StateBatch {
            users: Tensor::from_data(TensorData::new(self.users.clone(), [b]), device),
            user_features: Tensor::from_data(TensorData::new(self.user_features.clone(), [b, ud]), device),
            history,
            feedback: Tensor::from_data(TensorData::new(feedback, [b, l, FEEDBACK_DIM]), device),
            mask: Tensor::from_data(TensorData::new(mask, [b, l]), device),
            hour: Tensor::from_data(TensorData::new(self.hour.clone(), [b]), device),
            tab: Tensor::from_data(TensorData::new(self.tab.clone(), [b]), device),
            position: Tensor::from_data(TensorData::new(self.position.clone(), [b, 1]), device),
            candidates,
            candidate_mask: Tensor::from_data(TensorData::new(cmask, [b, cm]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_reads_an_evenly_spaced_subset_of_its_candidates() {
        let mut s = StateInputs::with_candidates(4, 4);
        let pool: Vec<u32> = (100..110).collect();
        s.push_candidates(&pool);
        // Spread over the whole list, so a list ordered by retrieval channel (interest
        // first, then popularity) is read from both channels.
        assert_eq!(s.candidate_videos, vec![100, 102, 105, 107]);
        s.push_candidates(&[7, 8]);
        assert_eq!(&s.candidate_videos[4..], &[7, 8, PAD, PAD]);
        let mut none = StateInputs::new(4);
        none.push_candidates(&pool);
        assert!(none.candidate_videos.is_empty());
    }

    #[test]
    fn padded_candidates_are_masked_out_of_the_batch() {
        let fs_user_dim = 0;
        let device = Device::flex();
        let mut s = StateInputs::with_candidates(2, 3);
        // Two states by hand (no history): user, context; then their candidates.
        for (user, pool) in [(0i64, vec![1u32, 2, 0]), (1, vec![2])] {
            s.len += 1;
            s.users.push(user);
            s.user_features.push(0.0);
            s.videos.extend([PAD, PAD]);
            s.feedback.extend([0.0; 2 * FEEDBACK_DIM]);
            s.mask.extend([0.0, 0.0]);
            s.hour.push(3);
            s.tab.push(1);
            s.position.push(0.0);
            s.push_candidates(&pool);
        }
        // Row v of the table is video v's embedding (v, 10 v); row 3 is padding.
        let table = Tensor::<2>::from_floats([[0.0, 0.0], [1.0, 10.0], [2.0, 20.0], [0.0, 0.0]], &device);
        let b = s.to_batch(fs_user_dim, table, |v| v as i64, 3, &device);
        let c: Vec<f32> = b.candidates.into_data().try_to_vec().unwrap();
        assert_eq!(c, vec![1.0, 10.0, 2.0, 20.0, 0.0, 0.0, 2.0, 20.0, 0.0, 0.0, 0.0, 0.0]);
        let m: Vec<f32> = b.candidate_mask.into_data().try_to_vec().unwrap();
        assert_eq!(m, vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    }
}
