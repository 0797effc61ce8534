//! # mmrf-py — the Python front of mmrf
//!
//! The native module `mmrf._native` of the `mmrf` wheel (built by maturin from
//! `pyproject.toml`). The Python package around it (`python/mmrf`) defines the Gymnasium
//! environments and the Pythonic wrappers; this crate gives them the same Rust code the
//! CLI runs:
//!
//! - [`world`]: [`World`], a world generated from a seed (in memory, or written as a
//!   KuaiRand file set) or loaded from a generated directory; [`Episode`] and
//!   [`EpisodeBatch`], one visit or many side by side, driven a request at a time by
//!   scores from Python ([`mmrf_world::Episode`]);
//! - [`metrics`]: [`gauc`] and [`ncis`], `mmrf_metrics` on NumPy arrays;
//! - [`run`]: [`Run`], a trained run that scores observations, and [`ab`], the online A/B
//!   test of `mmrf ab` with Python callables among its arms.
//!
//! Every error reaches Python as an exception whose message is the CLI's; no panic
//! crosses into Python (PyO3 turns one into `PanicException`, and none is expected).

pub mod metrics;
pub mod run;
pub mod world;

use pyo3::prelude::*;

pub use metrics::{gauc, ncis};
pub use run::{ab, Run};
pub use world::{Episode, EpisodeBatch, World};

/// The signals in the order of every per-signal array, WatchTime last.
#[pyfunction]
pub fn signals() -> Vec<&'static str> {
    mmrf_data::Signal::ALL.iter().map(|s| s.name()).collect()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<World>()?;
    m.add_class::<Episode>()?;
    m.add_class::<EpisodeBatch>()?;
    m.add_function(wrap_pyfunction!(gauc, m)?)?;
    m.add_function(wrap_pyfunction!(ncis, m)?)?;
    m.add_class::<Run>()?;
    m.add_function(wrap_pyfunction!(ab, m)?)?;
    m.add_function(wrap_pyfunction!(signals, m)?)?;
    Ok(())
}
