//! Small shared pieces of every network.

use burn::nn::{Embedding, EmbeddingConfig, Linear};
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

/// A linear layer over the last dim of `[.., in]`, run as one `[rows, in] × [in, out]`
/// product. burn's `Linear` keeps a 3-D input's leading dim as a batch when it has few
/// rows per batch (its tiling policy is tuned for large models), so `[321, 20, 39]` ran as
/// 321 separate products of 20 × 39 × 64, in the forward and again in the backward pass.
/// One product instead cut MMRF's actor phase from 7.0 to 5.5 ms (BENCHMARKS.md).
pub fn linear_rows<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let dims = x.dims();
    let rows: usize = dims[..D - 1].iter().product();
    let y = layer.forward(x.reshape([rows, dims[D - 1]]));
    let mut out = dims;
    out[D - 1] = y.dims()[1];
    y.reshape(out)
}
