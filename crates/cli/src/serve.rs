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
    config.validate().map_err(|e| anyhow::anyhow!("serve: {e}"))?;
    let t = Instant::now();
    let model =
        ServedModel::load(run, data, config.history_from_log).with_context(|| format!("loading {}", run.display()))?;
    let method = model.manifest.method.clone();
    let (users, videos) = (model.n_users(), model.n_videos());
    let max_sessions = config.max_sessions;
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
        eprintln!(
            "session state: at most {max_sessions} users, {:.0} MB",
            mmrf_serve::sessions::state_bytes_bound(max_sessions) as f64 / 1e6
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
    let bodies = Arc::new(loadgen::workload(&ds, 2000, 400, 10, cfg.seed)?);
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

/// `mmrf serve`'s limits: what one user, one client and one shutdown may cost.
#[derive(clap::Args, Debug, Clone)]
pub struct Limits {
    /// Most users whose session state is held (least recently used dropped first).
    #[arg(long, default_value_t = 100_000, value_parser = crate::at_least_one())]
    max_sessions: usize,
    /// Seconds of idleness after which a user's state is dropped.
    #[arg(long, default_value = "1800", value_parser = seconds)]
    session_ttl: Duration,
    /// Largest candidate list accepted.
    #[arg(long, default_value_t = 2000, value_parser = crate::at_least_one())]
    max_candidates: usize,
    /// Start users' histories empty instead of from their logged impressions.
    #[arg(long)]
    no_log_history: bool,
    /// Seconds a client has to send a whole request head before its connection is closed.
    #[arg(long, default_value = "10", value_parser = seconds)]
    header_timeout: Duration,
    /// Seconds a request may take to arrive and be answered (then 408).
    #[arg(long, default_value = "30", value_parser = seconds)]
    request_timeout: Duration,
    /// Seconds the requests in flight get after SIGTERM before every connection is cut.
    #[arg(long, default_value = "10", value_parser = seconds)]
    shutdown_timeout: Duration,
    /// Most connections open at once (further clients wait to be accepted).
    #[arg(long, default_value_t = 4096, value_parser = crate::at_least_one())]
    max_connections: usize,
}

/// A number of seconds above 0.
fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(v > 0.0 && v.is_finite() && v < 1e9) {
        return Err(format!("{s} s: must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

impl Limits {
    /// The service's configuration.
    pub fn config(&self) -> ServeConfig {
        ServeConfig {
            max_sessions: self.max_sessions,
            session_ttl: self.session_ttl,
            max_candidates: self.max_candidates,
            history_from_log: !self.no_log_history,
            header_timeout: self.header_timeout,
            request_timeout: self.request_timeout,
            shutdown_timeout: self.shutdown_timeout,
            max_connections: self.max_connections,
            ..Default::default()
        }
    }
}

/// Where `bench serve` finds the data when not told.
pub fn default_data() -> PathBuf {
    PathBuf::from("results/world")
}
