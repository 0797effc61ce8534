//! `mmrf_metrics` on NumPy arrays: the functions `mmrf eval` calls.

use numpy::PyReadonlyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn same_len(names: &[&str], lens: &[usize]) -> PyResult<()> {
    if lens.windows(2).any(|w| w[0] != w[1]) {
        let parts: Vec<String> = names.iter().zip(lens).map(|(n, l)| format!("{n}: {l}")).collect();
        return Err(PyValueError::new_err(format!(
            "the arrays must have one entry per impression, but have {}",
            parts.join(", ")
        )));
    }
    Ok(())
}

fn slice<'a, T: numpy::Element>(name: &str, a: &'a PyReadonlyArray1<'_, T>) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|e| PyValueError::new_err(format!("{name}: {e} (pass a contiguous array)")))
}

/// GAUC over impressions grouped by user: `(value, users, impressions)`, or `None` when no
/// user has two impressions with different labels.
#[pyfunction]
pub fn gauc(
    py: Python<'_>,
    users: PyReadonlyArray1<'_, u32>,
    labels: PyReadonlyArray1<'_, f32>,
    scores: PyReadonlyArray1<'_, f32>,
) -> PyResult<Option<(f64, usize, usize)>> {
    let (u, l, s) = (
        slice("users", &users)?,
        slice("labels", &labels)?,
        slice("scores", &scores)?,
    );
    same_len(&["users", "labels", "scores"], &[u.len(), l.len(), s.len()])?;
    Ok(py
        .detach(|| mmrf_metrics::gauc(u, l, s))
        .map(|g| (g.value, g.users, g.impressions)))
}

/// NCIS with IPS, SNIPS, the effective sample size and a bootstrap 95 % interval over
/// users, as `mmrf eval` computes them.
#[pyfunction]
#[pyo3(signature = (users, rewards, pi, pi_beta, cap = 10.0, bootstrap = 500, seed = 0))]
#[allow(clippy::too_many_arguments)]
pub fn ncis<'py>(
    py: Python<'py>,
    users: PyReadonlyArray1<'py, u32>,
    rewards: PyReadonlyArray1<'py, f32>,
    pi: PyReadonlyArray1<'py, f32>,
    pi_beta: PyReadonlyArray1<'py, f32>,
    cap: f64,
    bootstrap: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let (u, r) = (slice("users", &users)?, slice("rewards", &rewards)?);
    let (p, b) = (slice("pi", &pi)?, slice("pi_beta", &pi_beta)?);
    same_len(
        &["users", "rewards", "pi", "pi_beta"],
        &[u.len(), r.len(), p.len(), b.len()],
    )?;
    if !(cap.is_finite() && cap > 0.0) {
        return Err(PyValueError::new_err(format!("cap {cap} must be a positive number")));
    }
    let cfg = mmrf_metrics::OpeConfig { cap, bootstrap, seed };
    let o = py
        .detach(|| mmrf_metrics::ncis(u, r, p, b, &cfg))
        .map_err(PyValueError::new_err)?;
    let d = PyDict::new(py);
    d.set_item("ncis", o.ncis)?;
    d.set_item("ncis_ci", (o.ncis_ci[0], o.ncis_ci[1]))?;
    d.set_item("ess", o.ess)?;
    d.set_item("ips", o.ips)?;
    d.set_item("snips", o.snips)?;
    d.set_item("cap", o.cap)?;
    d.set_item("impressions", o.impressions)?;
    Ok(d)
}
