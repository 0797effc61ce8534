//! `mmrf bench serve`: an open-loop load generator for `POST /v1/rank`.
//!
//! Requests are due on a fixed schedule (`rps` per second), whatever the server's speed;
//! a request that finds its connection still busy has its latency measured from the
//! moment it was due, not from when the connection got round to sending it, so a slow
//! server's queueing shows in the percentiles (no coordinated omission). Bodies are real requests: logged users and, per request, a
//! logged candidate set topped up to `candidates` videos.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use mmrf_data::{Dataset, LogSplit};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub addr: SocketAddr,
    /// Requests due per second.
    pub rps: f64,
    pub duration: Duration,
    /// Keep-alive connections sending in parallel.
    pub connections: usize,
    /// Seed of the workload's draws ([`workload`]).
    pub seed: u64,
}

/// What the server did under the load.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Successful responses per second of wall time.
    pub throughput: f64,
    pub seconds: f64,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50={:.2}ms p95={:.2}ms p99={:.2}ms max={:.2}ms throughput={:.0} req/s sent={} errors={}",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms, self.throughput, self.sent, self.errors
        )
    }
}

/// `n` rank request bodies from `ds`'s held-out requests, `candidates` videos each.
pub fn workload(ds: &Dataset, n: usize, candidates: usize, k: usize, seed: u64) -> mmrf_data::Result<Vec<Bytes>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let set = ds.requests(LogSplit::Test, &Default::default());
    let log = ds.log(LogSplit::Test);
    let n_videos = ds.videos.len().max(1);
    let mut cands = Vec::new();
    (0..n)
        .map(|i| {
            let (user, mut list): (i64, Vec<i64>) = if set.requests.is_empty() {
                (
                    ds.users.ids.raw(rng.random_range(0..ds.users.len().max(1)) as u32),
                    Vec::new(),
                )
            } else {
                let r = rng.random_range(0..set.requests.len());
                set.candidates(r, log, &mut cands)?;
                let u = log.user[set.shown_rows(&set.requests[r])[0] as usize];
                (
                    ds.users.ids.raw(u),
                    cands.iter().map(|&v| ds.videos.ids.raw(v)).collect(),
                )
            };
            let mut seen: std::collections::HashSet<i64> = list.iter().copied().collect();
            while list.len() < candidates.min(n_videos) {
                let v = ds.videos.ids.raw(rng.random_range(0..n_videos) as u32);
                if seen.insert(v) {
                    list.push(v);
                }
            }
            list.truncate(candidates);
            let body = serde_json::json!({
                "user_id": user,
                "session_id": format!("load-{i}"),
                "context": {"hour": rng.random_range(0..24), "tab": rng.random_range(0..4)},
                "candidates": list,
                "k": k.min(list.len()).max(1),
            });
            Ok(Bytes::from(body.to_string()))
        })
        .collect()
}

/// Run the load against a server.
pub async fn run(cfg: &LoadConfig, bodies: Arc<Vec<Bytes>>) -> std::io::Result<LoadReport> {
    let total = (cfg.rps * cfg.duration.as_secs_f64()).round().max(1.0) as u64;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(50);
    let period = Duration::from_secs_f64(1.0 / cfg.rps.max(1e-3));
    let mut tasks = Vec::new();
    for _ in 0..cfg.connections.max(1) {
        let (next, bodies, addr) = (next.clone(), bodies.clone(), cfg.addr);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut sender = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let due = start + period.mul_f64(i as f64);
                // Latency counts from when the request was due, or, when this connection
                // was idle and waiting for it, from when the timer woke it: tokio's timer
                // has millisecond resolution, and that lateness is the generator's, not
                // the server's. A connection behind schedule (slow answers) counts from
                // `due`, so queueing behind a slow server is measured.
                let from = if Instant::now() < due {
                    tokio::time::sleep_until(due.into()).await;
                    Instant::now()
                } else {
                    due
                };
                if sender.is_none() {
                    sender = Client::connect(addr).await.ok();
                }
                let Some(s) = sender.as_mut() else {
                    errors += 1;
                    continue;
                };
                let body = bodies[(i as usize) % bodies.len()].clone();
                match s.request("POST", "/v1/rank", body).await {
                    Ok((200..=299, _)) => lat.push(from.elapsed().as_secs_f64()),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        sender = None;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.map_err(std::io::Error::other)?;
        lat.extend(l);
        errors += e;
    }
    let seconds = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] * 1e3
    };
    Ok(LoadReport {
        sent: total,
        ok: lat.len() as u64,
        errors,
        p50_ms: q(0.50),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        max_ms: lat.last().map_or(f64::NAN, |x| x * 1e3),
        throughput: lat.len() as f64 / seconds.max(1e-9),
        seconds,
    })
}

/// A keep-alive HTTP/1.1 connection to a server (the load generator's, and the tests').
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client { sender, addr })
    }

    /// Send `method path` with `body`; the status and the whole response body.
    pub async fn request(&mut self, method: &str, path: &str, body: Bytes) -> Result<(u16, Bytes), hyper::Error> {
        self.sender.ready().await?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.addr.to_string())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .expect("a valid request");
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
