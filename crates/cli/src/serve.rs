//! `mmrf serve` and `mmrf bench serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mmrf_data::Dataset;
use mmrf_serve::loadgen::{self, LoadConfig};
use mmrf_serve::{App, ServeConfig, ServedModel};

/// A tokio runtime with one worker per core (ranking runs on the workers: it takes well
/// under a millisecond, less than handing it to a blocking pool would cost).
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Load `run` and serve it on `addr` until SIGTERM or Ctrl-C.
pub fn serve(run: &Path, data: Option<&Path>, addr: &str, config: ServeConfig) -> Result<()> {
    let t = Instant::now();
    let model =
        ServedModel::load(run, data, config.history_from_log).with_context(|| format!("loading {}", run.display()))?;
    let method = model.manifest.method.clone();
    let (users, videos) = (model.n_users(), model.n_videos());
    let app = App::new(model, config);
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        eprintln!(
            "serving {method} ({users} users, {videos} videos; loaded in {:.1}s) on http://{}",
            t.elapsed().as_secs_f64(),
            listener.local_addr()?
        );
        mmrf_serve::serve(listener, app, mmrf_serve::shutdown_signal()).await?;
        eprintln!("shut down");
        Ok(())
    })
}

/// Send realistic rank requests to a server at `addr` and print the latency percentiles.
pub fn bench(addr: SocketAddr, rps: f64, duration_s: f64, connections: usize, data: &Path, json: bool) -> Result<()> {
    anyhow::ensure!(rps > 0.0 && duration_s > 0.0, "--rps and --duration must be positive");
    let (ds, _) = Dataset::open(data)
        .with_context(|| format!("{} (pass --data: the server's data directory)", data.display()))?;
    let cfg = LoadConfig {
        addr,
        rps,
        duration: Duration::from_secs_f64(duration_s),
        connections,
        seed: 7,
    };
    // 2,000 distinct requests of 400 candidates and k = 10, cycled.
    let bodies = Arc::new(loadgen::workload(&ds, 2000, 400, 10, cfg.seed));
    drop(ds);
    let report = runtime()?.block_on(loadgen::run(&cfg, bodies))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    anyhow::ensure!(
        report.ok > 0,
        "no request succeeded: is `mmrf serve` running on {addr}?"
    );
    Ok(())
}

/// The serve command's settings.
pub fn config(max_sessions: usize, session_ttl_s: u64, max_candidates: usize, no_log_history: bool) -> ServeConfig {
    ServeConfig {
        max_sessions,
        session_ttl: Duration::from_secs(session_ttl_s),
        max_candidates,
        history_from_log: !no_log_history,
        ..Default::default()
    }
}

/// Where `bench serve` finds the data when not told.
pub fn default_data() -> PathBuf {
    PathBuf::from("results/world")
}
