//! Neural building blocks of mmrf, on burn.
//!
//! The networks a reader starts from: [`mmrf::MmrfNet`] (MMRF's encoders, agents and
//! critics), [`simulator::FeedbackSimulator`], [`bc::BehaviourModel`], and the features
//! every method reads, [`FeatureSpace`].
//!
//! - [`features`]: users and videos as dense inputs (plain Rust, shared by every method).
//! - [`bc`]: the behaviour model π_β (behaviour cloning of the logging policy).
//! - [`mmrf`]: MMRF's encoders, agents with attentive collaboration, actors and critics.
//! - [`simulator`]: the user-feedback simulator M (GRU, twin head, uncertainty-shrunk labels).
//! - [`supervised`]: Wide&Deep, DeepFM and the learning-to-rank network (baselines).
//! - [`layers`]: embedding tables, lookups, squares shared by the networks.
//! - [`gradcheck`]: finite-difference gradient checks of every network.
//! - [`device`]: the compute device, chosen by cargo feature (`flex` CPU by default;
//!   `cuda` or `wgpu` switch the whole project without code changes), and seeding.

pub mod bc;
pub mod features;
pub mod gradcheck;
pub mod layers;
pub mod mmrf;
pub mod simulator;
pub mod supervised;

pub use bc::{BcNetConfig, BehaviourModel, VideoBatch};
pub use features::{DenseFeatures, FeatureShape, FeatureSpace};

/// The compute device and reproducible randomness.
pub mod device {
    use std::sync::{Mutex, MutexGuard};

    use burn::tensor::Device;

    /// The inference device of the enabled backend (no autodiff).
    pub fn inference() -> Device {
        #[cfg(feature = "cuda")]
        {
            Device::cuda(0)
        }
        #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
        {
            Device::wgpu(Default::default())
        }
        #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
        {
            Device::flex()
        }
    }

    /// The training device: [`inference`] with autodiff.
    pub fn training() -> Device {
        inference().autodiff()
    }

    /// This machine's single-precision matmul rate on the inference device, in GFLOP/s:
    /// `n × n` by `n × n` products, the result read back each time.
    pub fn sgemm_gflops(n: usize) -> f64 {
        use burn::tensor::{Distribution, Tensor};
        let device = inference();
        let a = Tensor::<2>::random([n, n], Distribution::Default, &device);
        let b = Tensor::<2>::random([n, n], Distribution::Default, &device);
        let _ = a.clone().matmul(b.clone()).into_data();
        let reps = 8;
        let start = std::time::Instant::now();
        for _ in 0..reps {
            let _ = a.clone().matmul(b.clone()).into_data();
        }
        2.0 * (n as f64).powi(3) * reps as f64 / start.elapsed().as_secs_f64() / 1e9
    }

    static SEEDED: Mutex<()> = Mutex::new(());

    /// Seed burn's generator and hold it: burn's parameter initialisers and dropout draw
    /// from one process-wide generator, so two trainings in one process (tests) must not
    /// interleave. Hold the guard for the whole training run.
    pub fn seeded(seed: u64) -> MutexGuard<'static, ()> {
        let guard = SEEDED.lock().unwrap_or_else(|p| p.into_inner());
        training().seed(seed);
        inference().seed(seed);
        guard
    }

    /// Hold burn's generator without seeding it, for building a module whose initial
    /// values are overwritten at once (loading saved weights): its draws must not land
    /// inside another thread's seeded run.
    pub fn held() -> MutexGuard<'static, ()> {
        SEEDED.lock().unwrap_or_else(|p| p.into_inner())
    }
}
