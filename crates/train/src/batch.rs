//! Mini-batches of requests as tensors: candidates, what was shown, the videos involved.

use burn::prelude::*;
use mmrf_data::session::RequestSet;
use mmrf_data::LogColumns;
use mmrf_model::{FeatureSpace, VideoBatch};

/// Requests packed for the networks. Candidates index the batch's unique videos.
pub struct RequestBatch {
    pub b: usize,
    /// Widest candidate set of the batch; narrower ones are padded.
    pub c: usize,
    pub users: Vec<i64>,
    pub user_features: Vec<f32>,
    /// Unique videos of the batch.
    pub videos: Vec<u32>,
    /// `[b × c]` indices into `videos`.
    pub candidates: Vec<i64>,
    /// `[b × c]` 1 where the candidate was shown.
    pub shown: Vec<f32>,
    /// `[b × c]` 0 on padding.
    pub valid: Vec<f32>,
}

/// Builds [`RequestBatch`]es, reusing its buffers.
pub struct Batcher<'a> {
    pub features: &'a FeatureSpace,
    slot: Vec<u32>,
    cands: Vec<u32>,
}

const NONE: u32 = u32::MAX;

impl<'a> Batcher<'a> {
    pub fn new(features: &'a FeatureSpace) -> Self {
        Batcher {
            features,
            slot: vec![NONE; features.n_videos()],
            cands: Vec::new(),
        }
    }

    pub fn build(
        &mut self,
        set: &RequestSet<'_>,
        log: &LogColumns,
        requests: &[usize],
    ) -> mmrf_data::Result<RequestBatch> {
        let fs = self.features;
        let mut lists: Vec<Vec<u32>> = Vec::with_capacity(requests.len());
        let mut videos = Vec::new();
        for &i in requests {
            set.candidates(i, log, &mut self.cands)?;
            for &v in &self.cands {
                if self.slot[v as usize] == NONE {
                    self.slot[v as usize] = videos.len() as u32;
                    videos.push(v);
                }
            }
            lists.push(self.cands.clone());
        }
        let b = requests.len();
        let c = lists.iter().map(|l| l.len()).max().unwrap_or(0).max(1);
        let mut candidates = vec![0i64; b * c];
        let mut shown = vec![0f32; b * c];
        let mut valid = vec![0f32; b * c];
        let mut users = Vec::with_capacity(b);
        let mut user_features = Vec::with_capacity(b * fs.users.dim);
        for (k, (&i, list)) in requests.iter().zip(&lists).enumerate() {
            let r = &set.requests[i];
            users.push(r.user as i64);
            user_features.extend_from_slice(fs.users.row(r.user as usize));
            let shown_videos = set.shown_videos(i, log);
            for (j, &v) in list.iter().enumerate() {
                candidates[k * c + j] = self.slot[v as usize] as i64;
                valid[k * c + j] = 1.0;
                if shown_videos.contains(&v) {
                    shown[k * c + j] = 1.0;
                }
            }
        }
        for &v in &videos {
            self.slot[v as usize] = NONE;
        }
        Ok(RequestBatch {
            b,
            c,
            users,
            user_features,
            videos,
            candidates,
            shown,
            valid,
        })
    }
}

/// Videos as the video tower reads them.
pub fn video_batch(fs: &FeatureSpace, videos: &[u32], device: &Device) -> VideoBatch {
    let m = videos.len();
    let ids: Vec<i64> = videos.iter().map(|&v| v as i64).collect();
    let authors: Vec<i64> = videos.iter().map(|&v| fs.author[v as usize] as i64).collect();
    let tags: Vec<i64> = videos.iter().map(|&v| fs.tag[v as usize] as i64).collect();
    let d = fs.videos.dim.max(1);
    let mut feats = Vec::with_capacity(m * d);
    for &v in videos {
        if fs.videos.dim == 0 {
            feats.push(0.0);
        } else {
            feats.extend_from_slice(fs.videos.row(v as usize));
        }
    }
    VideoBatch {
        ids: Tensor::from_data(TensorData::new(ids, [m]), device),
        authors: Tensor::from_data(TensorData::new(authors, [m]), device),
        tags: Tensor::from_data(TensorData::new(tags, [m]), device),
        features: Tensor::from_data(TensorData::new(feats, [m, d]), device),
    }
}

/// Users' ids and profile features as tensors.
pub fn user_tensors(
    fs: &FeatureSpace,
    users: &[i64],
    features: &[f32],
    device: &Device,
) -> (Tensor<1, Int>, Tensor<2>) {
    let b = users.len();
    let d = fs.users.dim.max(1);
    let feats = if fs.users.dim == 0 {
        vec![0.0; b]
    } else {
        features.to_vec()
    };
    (
        Tensor::from_data(TensorData::new(users.to_vec(), [b]), device),
        Tensor::from_data(TensorData::new(feats, [b, d]), device),
    )
}
