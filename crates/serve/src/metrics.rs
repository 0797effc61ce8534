//! The `/metrics` endpoint's figures, in the Prometheus text exposition format: request
//! counts per route and status, the rank latency histogram, and the sessions held.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency histogram's buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The routes counted.
pub const ROUTES: [&str; 5] = ["rank", "feedback", "healthz", "metrics", "other"];
/// The status classes counted.
const CLASSES: [&str; 3] = ["2xx", "4xx", "5xx"];

/// Lock-free counters shared by every handler.
#[derive(Default)]
pub struct Metrics {
    requests: [[AtomicU64; 3]; 5],
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    /// Sum of rank latencies in nanoseconds.
    latency_sum_ns: AtomicU64,
    cold_users: AtomicU64,
    cold_videos: AtomicU64,
}

impl Metrics {
    /// Count one response of `route` with `status`.
    pub fn count(&self, route: &str, status: u16) {
        let r = ROUTES.iter().position(|x| *x == route).unwrap_or(ROUTES.len() - 1);
        let c = match status {
            200..=299 => 0,
            400..=499 => 1,
            _ => 2,
        };
        self.requests[r][c].fetch_add(1, Ordering::Relaxed);
    }

    /// Record a rank request's latency.
    pub fn observe_rank(&self, seconds: f64) {
        for (b, &le) in self.buckets.iter().zip(&LATENCY_BUCKETS) {
            if seconds <= le {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ns.fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    }

    pub fn cold(&self, users: u64, videos: u64) {
        self.cold_users.fetch_add(users, Ordering::Relaxed);
        self.cold_videos.fetch_add(videos, Ordering::Relaxed);
    }

    /// The exposition text, with the session store's current figures.
    pub fn render(&self, sessions: usize, capacity: usize, evicted: u64, expired: u64) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# HELP mmrf_requests_total HTTP requests by route and status class.");
        let _ = writeln!(s, "# TYPE mmrf_requests_total counter");
        for (r, route) in ROUTES.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                let n = self.requests[r][c].load(Ordering::Relaxed);
                let _ = writeln!(s, "mmrf_requests_total{{route=\"{route}\",status=\"{class}\"}} {n}");
            }
        }
        let _ = writeln!(
            s,
            "# HELP mmrf_rank_latency_seconds Time to rank a request, parse to response."
        );
        let _ = writeln!(s, "# TYPE mmrf_rank_latency_seconds histogram");
        for (b, le) in self.buckets.iter().zip(&LATENCY_BUCKETS) {
            let _ = writeln!(
                s,
                "mmrf_rank_latency_seconds_bucket{{le=\"{le}\"}} {}",
                b.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(s, "mmrf_rank_latency_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.latency_sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(s, "mmrf_rank_latency_seconds_sum {sum}");
        let _ = writeln!(s, "mmrf_rank_latency_seconds_count {count}");
        let gauges = [
            (
                "mmrf_sessions_held",
                "Users whose session state is held.",
                sessions as u64,
                "gauge",
            ),
            (
                "mmrf_sessions_capacity",
                "Most users held at once.",
                capacity as u64,
                "gauge",
            ),
            (
                "mmrf_sessions_evicted_total",
                "Users dropped for room (LRU).",
                evicted,
                "counter",
            ),
            (
                "mmrf_sessions_expired_total",
                "Users dropped after the idle TTL.",
                expired,
                "counter",
            ),
            (
                "mmrf_cold_users_total",
                "Rank requests for users the model does not know.",
                self.cold_users.load(Ordering::Relaxed),
                "counter",
            ),
            (
                "mmrf_cold_videos_total",
                "Candidates the model does not know.",
                self.cold_videos.load(Ordering::Relaxed),
                "counter",
            ),
        ];
        for (name, help, v, kind) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} {kind}");
            let _ = writeln!(s, "{name} {v}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe_rank(0.0003);
        m.observe_rank(0.003);
        m.count("rank", 200);
        m.count("rank", 400);
        m.count("nope", 500);
        let text = m.render(3, 10, 1, 2);
        assert!(text.contains("mmrf_rank_latency_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("mmrf_rank_latency_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("mmrf_rank_latency_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("mmrf_rank_latency_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("mmrf_requests_total{route=\"rank\",status=\"4xx\"} 1"));
        assert!(text.contains("mmrf_requests_total{route=\"other\",status=\"5xx\"} 1"));
        assert!(text.contains("mmrf_sessions_held 3"));
    }
}
