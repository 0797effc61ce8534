//! Small shared pieces of every network.

use burn::nn::{Embedding, EmbeddingConfig};
use burn::prelude::*;

/// An id embedding table with small initial values (N(0, 0.05²)), so that ids start
/// nearly alike and the dense features lead early training. At least one row.
pub fn embedding(n: usize, d: usize, device: &Device) -> Embedding {
    EmbeddingConfig::new(n.max(1), d)
        .with_initializer(burn::nn::Initializer::Normal { mean: 0.0, std: 0.05 })
        .init(device)
}

/// Rows of an embedding table for ids `[N]`: `[N, d]`.
pub fn lookup(e: &Embedding, ids: Tensor<1, Int>) -> Tensor<2> {
    let n = ids.dims()[0];
    let d = e.weight.dims()[1];
    e.forward(ids.reshape([n, 1])).reshape([n, d])
}

/// `x²` elementwise. (A product, not `powi_scalar(2)`: on burn-flex with autodiff the
/// latter made DeepFM's training 2.4× slower, 38.6 s against 15.8 s for 1,500 updates.)
pub fn square<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() * x
}
