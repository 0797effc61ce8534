//! `mmrf serve`: a trained run behind HTTP, with per-user session state.
//!
//! - [`server`]: the service — [`ServedModel`] (a run and the ids it knows), [`App`] (the
//!   model, the users' states, the counters) and [`router`]: `POST /v1/rank`,
//!   `POST /v1/feedback`, `GET /healthz`, `GET /metrics`.
//! - [`api`]: the JSON bodies and the 4xx error body `{"error", "detail"}`.
//! - [`sessions`]: users' histories under an LRU bound and an idle TTL.
//! - [`metrics`]: Prometheus text for request counts, rank latency and sessions.
//! - [`loadgen`]: `mmrf bench serve`, an open-loop load generator that reports latency
//!   percentiles and throughput.
//!
//! A rank request is scored by the same [`mmrf_train::Ranker`] that evaluation and the
//! online test call, on a state built the same way: the user's last impressions (from the
//! log, then from `/v1/feedback`), the hour and tab, and the position in the session.

pub mod api;
pub mod loadgen;
pub mod metrics;
pub mod server;
pub mod sessions;

pub use server::{router, serve, shutdown_signal, App, ServeConfig, ServeError, ServedModel};
