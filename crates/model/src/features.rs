//! Feature tables → dense model inputs (plain Rust, no tensors).
//!
//! Every method reads users and videos through the same [`FeatureSpace`], so a run trained
//! on a directory sees exactly the same inputs when it is evaluated or served from it.
//! The encoding is generic over KuaiRand's schema, real or generated:
//! - numeric and date columns: `sign(x)·ln(1 + |x|)` (counts are heavy-tailed), then
//!   standardised; a missing value (`-124`, blank) becomes 0 plus a 1 in a per-column
//!   "missing" indicator when the column has any missing cell;
//! - categorical columns with at most [`MAX_ONEHOT`] categories: one-hot (code 0, missing,
//!   is a category of its own);
//! - wide categoricals (author, music, ...) are left to learned embeddings: the item side
//!   keeps the author code and the first tag for that.

use mmrf_data::{Column, Dataset, FeatureTable};

/// Categorical columns with at most this many categories are one-hot encoded.
pub const MAX_ONEHOT: usize = 40;

/// A row-major `rows × dim` matrix of encoded features.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseFeatures {
    pub rows: usize,
    pub dim: usize,
    pub values: Vec<f32>,
}

impl DenseFeatures {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// Encode every usable column of `table`, rows in `order` (`order[i]` is the table row
    /// of output row `i`, `None` for an entity the table lacks: all features missing).
    pub fn encode(table: &FeatureTable, order: &[Option<usize>]) -> DenseFeatures {
        let mut blocks: Vec<Vec<f32>> = Vec::new(); // column-major blocks, each `rows` long
        for column in &table.columns {
            match column {
                Column::Numeric(v) => {
                    let vals: Vec<f32> = order
                        .iter()
                        .map(|r| r.map_or(f32::NAN, |r| v[r]))
                        .map(|x| {
                            if x.is_finite() {
                                x.signum() * x.abs().ln_1p()
                            } else {
                                f32::NAN
                            }
                        })
                        .collect();
                    let present: Vec<f32> = vals.iter().copied().filter(|x| !x.is_nan()).collect();
                    if present.is_empty() {
                        continue;
                    }
                    let mean = present.iter().sum::<f32>() / present.len() as f32;
                    let var = present.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / present.len() as f32;
                    let sd = var.sqrt().max(1e-6);
                    let any_missing = present.len() < vals.len();
                    blocks.push(
                        vals.iter()
                            .map(|x| if x.is_nan() { 0.0 } else { (x - mean) / sd })
                            .collect(),
                    );
                    if any_missing {
                        blocks.push(vals.iter().map(|x| x.is_nan() as u8 as f32).collect());
                    }
                }
                Column::Categorical { codes, vocab } if vocab.len() <= MAX_ONEHOT => {
                    for c in 0..vocab.len() as u32 {
                        let block: Vec<f32> = order
                            .iter()
                            .map(|r| (r.map_or(0, |r| codes[r]) == c) as u8 as f32)
                            .collect();
                        // A category nobody has carries no information.
                        if block.iter().any(|&x| x != 0.0) {
                            blocks.push(block);
                        }
                    }
                }
                _ => {}
            }
        }
        let rows = order.len();
        let dim = blocks.len();
        let mut values = vec![0.0; rows * dim];
        for (j, b) in blocks.iter().enumerate() {
            for (i, &x) in b.iter().enumerate() {
                values[i * dim + j] = x;
            }
        }
        DenseFeatures { rows, dim, values }
    }
}

/// Encoded features of every user and every video of a dataset, indexed by the logs'
/// dense ids.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpace {
    pub users: DenseFeatures,
    /// Basic and statistics features of each video, side by side.
    pub videos: DenseFeatures,
    /// Author code of each video (0: unknown), for an author embedding.
    pub author: Vec<u32>,
    pub n_authors: usize,
    /// First tag of each video (0: none), for a tag embedding.
    pub tag: Vec<u32>,
    pub n_tags: usize,
}

impl FeatureSpace {
    pub fn from_dataset(data: &Dataset) -> FeatureSpace {
        let n_users = data.users.len();
        let n_videos = data.videos.len();
        let users = DenseFeatures::encode(&data.users, &(0..n_users).map(Some).collect::<Vec<_>>());
        let basic = DenseFeatures::encode(&data.videos, &(0..n_videos).map(Some).collect::<Vec<_>>());
        // The statistics table has its own ids: look each video up by raw id.
        let stat_rows: Vec<Option<usize>> = (0..n_videos)
            .map(|v| {
                data.video_stats
                    .ids
                    .get(data.videos.ids.raw(v as u32))
                    .map(|r| r as usize)
            })
            .collect();
        let stats = DenseFeatures::encode(&data.video_stats, &stat_rows);
        let dim = basic.dim + stats.dim;
        let mut values = Vec::with_capacity(n_videos * dim);
        for v in 0..n_videos {
            values.extend_from_slice(basic.row(v));
            values.extend_from_slice(stats.row(v));
        }
        let videos = DenseFeatures {
            rows: n_videos,
            dim,
            values,
        };
        let (author, n_authors) = match data.videos.categorical("author_id") {
            Some((codes, vocab)) => (codes.to_vec(), vocab.len()),
            None => (vec![0; n_videos], 1),
        };
        let (tag, n_tags) = match data.videos.column("tag") {
            Some(Column::MultiCategorical { offsets, codes, vocab }) => (
                (0..n_videos)
                    .map(|v| {
                        let (a, b) = (offsets[v] as usize, offsets[v + 1] as usize);
                        if a < b {
                            codes[a]
                        } else {
                            0
                        }
                    })
                    .collect(),
                vocab.len(),
            ),
            _ => (vec![0; n_videos], 1),
        };
        FeatureSpace {
            users,
            videos,
            author,
            n_authors,
            tag,
            n_tags,
        }
    }

    pub fn n_users(&self) -> usize {
        self.users.rows
    }

    pub fn n_videos(&self) -> usize {
        self.videos.rows
    }

    /// The sizes a trained network depends on; a run refuses data whose shape differs.
    pub fn shape(&self) -> FeatureShape {
        FeatureShape {
            n_users: self.users.rows,
            user_dim: self.users.dim,
            n_videos: self.videos.rows,
            video_dim: self.videos.dim,
            n_authors: self.n_authors,
            n_tags: self.n_tags,
        }
    }
}

/// Sizes of a [`FeatureSpace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeatureShape {
    pub n_users: usize,
    pub user_dim: usize,
    pub n_videos: usize,
    pub video_dim: usize,
    pub n_authors: usize,
    pub n_tags: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmrf_data::{IdMap, Vocab};

    fn table(columns: Vec<Column>) -> FeatureTable {
        FeatureTable {
            ids: IdMap::from_raw(vec![10, 11, 12]).unwrap(),
            names: (0..columns.len()).map(|i| format!("c{i}")).collect(),
            columns,
            missing_markers: 0,
            blank_cells: 0,
        }
    }

    #[test]
    fn numeric_is_standardised_with_a_missing_flag() {
        let t = table(vec![Column::Numeric(vec![0.0, f32::NAN, (std::f32::consts::E - 1.0)])]);
        let f = DenseFeatures::encode(&t, &[Some(0), Some(1), Some(2)]);
        assert_eq!(f.dim, 2);
        // log1p gives 0 and 1 for the present values: standardised to -1 and +1.
        assert!((f.row(0)[0] + 1.0).abs() < 1e-5 && (f.row(2)[0] - 1.0).abs() < 1e-5);
        assert_eq!(f.row(1), &[0.0, 1.0]);
        assert_eq!(f.row(0)[1], 0.0);
    }

    #[test]
    fn small_categoricals_are_one_hot_and_unknown_rows_are_missing() {
        let mut vocab = Vocab::default();
        let a = vocab.code("a");
        let b = vocab.code("b");
        let t = table(vec![Column::Categorical {
            codes: vec![a, b, a],
            vocab,
        }]);
        let f = DenseFeatures::encode(&t, &[Some(0), Some(1), None]);
        // Categories: missing (row 2), a (row 0), b (row 1): each row exactly one 1.
        assert_eq!(f.dim, 3);
        for i in 0..3 {
            assert_eq!(f.row(i).iter().sum::<f32>(), 1.0);
        }
        assert_ne!(f.row(0), f.row(1));
        assert_ne!(f.row(0), f.row(2));
    }
}
