//! The service: a loaded run, the users' states, the routes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use mmrf_data::session::{Impression, RequestState, Timelines};
use mmrf_data::table::IdMap;
use mmrf_data::{Dataset, Signal};
use mmrf_model::DenseFeatures;
use mmrf_train::{Manifest, Ranker};

use crate::api::*;
use crate::metrics::Metrics;
use crate::sessions::SessionStore;

/// How the service behaves.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Most users whose state is held (least recently used dropped first).
    pub max_sessions: usize,
    /// A user idle this long starts afresh.
    pub session_ttl: Duration,
    /// Largest candidate list accepted.
    pub max_candidates: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Start a known user's history from their logged impressions (as evaluation does);
    /// otherwise from nothing.
    pub history_from_log: bool,
    /// A connection that has not sent a whole request head within this is closed.
    pub header_timeout: Duration,
    /// A request (its body read and its answer) that takes longer gets a 408.
    pub request_timeout: Duration,
    /// After a shutdown signal, requests in flight get this long; then the rest are cut.
    pub shutdown_timeout: Duration,
    /// Most connections open at once (further clients wait to be accepted).
    pub max_connections: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_sessions: 100_000,
            session_ttl: Duration::from_secs(30 * 60),
            max_candidates: 2000,
            max_body_bytes: 1 << 20,
            history_from_log: true,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            max_connections: 4096,
        }
    }
}

impl ServeConfig {
    /// Refuse a configuration the service cannot run with, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("max_sessions", self.max_sessions),
            ("max_candidates", self.max_candidates),
            ("max_body_bytes", self.max_body_bytes),
            ("max_connections", self.max_connections),
        ] {
            if v == 0 {
                return Err(format!("{name} = 0: must be at least 1"));
            }
        }
        for (name, v) in [
            ("session_ttl", self.session_ttl),
            ("header_timeout", self.header_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if v.is_zero() {
                return Err(format!("{name} = 0: must be longer than 0"));
            }
        }
        Ok(())
    }
}

/// A trained run ready to rank: the ranker and the id maps of the data it was trained on.
pub struct ServedModel {
    pub manifest: Manifest,
    pub ranker: Box<dyn Ranker>,
    users: IdMap,
    videos: IdMap,
    timelines: Option<Timelines>,
    /// The dense index scored for users the model does not know: the user whose profile
    /// features are nearest the mean profile.
    cold_user: u32,
}

impl ServedModel {
    /// Load the run in `run_dir` over `data` (by default the directory it was trained on).
    pub fn load(run_dir: &Path, data: Option<&Path>, history_from_log: bool) -> Result<ServedModel, ServeError> {
        let manifest = Manifest::read(run_dir)?;
        let data_dir = data.map(Path::to_path_buf).unwrap_or_else(|| manifest.data_dir.clone());
        let (ds, _) = Dataset::open(&data_dir).map_err(|e| ServeError::Data(format!("{}: {e}", data_dir.display())))?;
        let (manifest, ranker) = mmrf_train::load(run_dir, &ds)?;
        Ok(ServedModel::new(manifest, ranker, &ds, history_from_log))
    }

    /// Serve `ranker` (trained on `ds`).
    pub fn new(manifest: Manifest, ranker: Box<dyn Ranker>, ds: &Dataset, history_from_log: bool) -> ServedModel {
        ServedModel {
            manifest,
            ranker,
            users: ds.users.ids.clone(),
            videos: ds.videos.ids.clone(),
            timelines: history_from_log.then(|| Timelines::build(ds)),
            cold_user: typical_user(ds),
        }
    }

    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    pub fn n_videos(&self) -> usize {
        self.videos.len()
    }

    /// The dense index of a raw video id, if the model knows it.
    pub fn video(&self, raw: i64) -> Option<u32> {
        self.videos.get(raw)
    }

    /// The dense index of a raw user id, if the model knows it.
    pub fn user(&self, raw: i64) -> Option<u32> {
        self.users.get(raw)
    }

    /// The user's last logged impressions (as many as a session keeps).
    fn logged_history(&self, user: Option<u32>) -> Vec<Impression> {
        match (user, &self.timelines) {
            (Some(u), Some(t)) => {
                let all = t.user(u);
                all[all.len().saturating_sub(crate::sessions::HISTORY_CAP)..].to_vec()
            }
            _ => Vec::new(),
        }
    }
}

/// Why a run could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Run(#[from] mmrf_train::TrainError),
    #[error("{0}")]
    Data(String),
}

/// The user whose encoded profile (the model's own user features, [`DenseFeatures`]) is
/// nearest the mean profile.
fn typical_user(ds: &Dataset) -> u32 {
    let n = ds.users.len();
    let f = DenseFeatures::encode(&ds.users, &(0..n).map(Some).collect::<Vec<_>>());
    if n == 0 || f.dim == 0 {
        return 0;
    }
    let mean: Vec<f64> = (0..f.dim)
        .map(|c| (0..n).map(|u| f.row(u)[c] as f64).sum::<f64>() / n as f64)
        .collect();
    let distance = |u: usize| -> f64 { f.row(u).iter().zip(&mean).map(|(&x, m)| (x as f64 - m).powi(2)).sum() };
    (0..n).min_by(|&a, &b| distance(a).total_cmp(&distance(b))).unwrap_or(0) as u32
}

/// Everything the handlers share.
pub struct App {
    pub model: ServedModel,
    pub sessions: Mutex<SessionStore>,
    pub metrics: Metrics,
    pub config: ServeConfig,
}

impl App {
    pub fn new(model: ServedModel, config: ServeConfig) -> Arc<App> {
        Arc::new(App {
            model,
            sessions: Mutex::new(SessionStore::new(config.max_sessions, config.session_ttl)),
            metrics: Metrics::default(),
            config,
        })
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, SessionStore> {
        // A panic while holding the lock cannot leave the store inconsistent (every
        // mutation is a single call), so a poisoned lock is still usable.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state of user `raw_user` (dense index `user` when known) in `session`, started
    /// from their logged history when new.
    fn enter<'s>(
        &self,
        store: &'s mut SessionStore,
        raw_user: i64,
        session: &SessionId,
        user: Option<u32>,
    ) -> &'s mut crate::sessions::UserState {
        store.enter(
            raw_user,
            &session.key(),
            || self.model.logged_history(user),
            Instant::now(),
        )
    }

    /// Rank a parsed request.
    pub fn rank(&self, req: &RankRequest, started: Instant) -> Result<RankResponse, ApiError> {
        req.session_id.check()?;
        let n = req.candidates.len();
        if n == 0 {
            return Err(ApiError::bad_request("empty_candidates", "`candidates` is empty"));
        }
        if n > self.config.max_candidates {
            return Err(ApiError::bad_request(
                "too_many_candidates",
                format!("{n} candidates; at most {} are accepted", self.config.max_candidates),
            ));
        }
        if req.k == 0 || req.k > n {
            return Err(ApiError::bad_request(
                "k_out_of_range",
                format!("k = {} must be between 1 and the number of candidates ({n})", req.k),
            ));
        }
        if req.context.hour > 23 {
            return Err(ApiError::bad_request(
                "bad_context",
                format!("context.hour = {} must be 0..=23", req.context.hour),
            ));
        }
        if req.context.tab as usize >= mmrf_train::N_TABS {
            return Err(ApiError::bad_request(
                "bad_context",
                format!(
                    "context.tab = {} must be 0..={}",
                    req.context.tab,
                    mmrf_train::N_TABS - 1
                ),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(n);
        if let Some(dup) = req.candidates.iter().find(|v| !seen.insert(**v)) {
            return Err(ApiError::bad_request(
                "duplicate_candidate",
                format!("video {dup} appears more than once in `candidates`"),
            ));
        }
        let user = self.model.user(req.user_id);
        let dense: Vec<Option<u32>> = req.candidates.iter().map(|&v| self.model.video(v)).collect();
        let known: Vec<u32> = dense.iter().flatten().copied().collect();
        // The user's state: history and position, taken and advanced under the lock.
        let (history, position) = {
            let mut store = self.sessions();
            let st = self.enter(&mut store, req.user_id, &req.session_id, user);
            let p = st.position;
            st.position = st.position.saturating_add(1);
            (st.history.iter().copied().collect::<Vec<Impression>>(), p)
        };
        let state = RequestState {
            user: user.unwrap_or(self.model.cold_user),
            time_ms: 0,
            hour: req.context.hour,
            tab: req.context.tab,
            position,
            history: &history,
        };
        let mut scores = vec![0f32; known.len()];
        if !known.is_empty() {
            self.model.ranker.score(&state, &known, &mut scores);
        }
        let agents = if req.explain && !known.is_empty() {
            self.model.ranker.agent_scores(&state, &known)
        } else {
            None
        };
        // Unknown videos sit at the lower median of the known ones' scores (no evidence
        // either way) and after the known videos of the same score, so an unknown video
        // never ties for first place with a known one.
        let cold_score = lower_median(&scores);
        let mut items: Vec<(usize, RankedItem)> = Vec::with_capacity(n);
        let mut k = 0;
        for (j, (&raw, d)) in req.candidates.iter().zip(&dense).enumerate() {
            let item = match d {
                Some(_) => {
                    let agent_map = agents.as_ref().map(|a| {
                        Signal::ALL
                            .iter()
                            .zip(a)
                            .map(|(s, v)| (s.name().to_string(), v[k]))
                            .collect::<BTreeMap<_, _>>()
                    });
                    let it = RankedItem {
                        video_id: raw,
                        score: scores[k],
                        cold: false,
                        agents: agent_map,
                    };
                    k += 1;
                    it
                }
                None => RankedItem {
                    video_id: raw,
                    score: cold_score,
                    cold: true,
                    agents: None,
                },
            };
            items.push((j, item));
        }
        // Best first; at equal scores known videos first, then the request's order (a
        // stable, documented tie-break).
        items.sort_by(|a, b| {
            b.1.score
                .total_cmp(&a.1.score)
                .then(a.1.cold.cmp(&b.1.cold))
                .then(a.0.cmp(&b.0))
        });
        items.truncate(req.k);
        let cold_videos = dense.iter().filter(|d| d.is_none()).count();
        self.metrics.cold(user.is_none() as u64, cold_videos as u64);
        Ok(RankResponse {
            items: items.into_iter().map(|x| x.1).collect(),
            model: self.model.manifest.method.clone(),
            latency_us: started.elapsed().as_micros() as u64,
            cold_user: user.is_none(),
            position,
            history: history.len(),
            explain_note: (req.explain && agents.is_none())
                .then(|| format!("{} has no agents to explain", self.model.manifest.method)),
        })
    }

    /// Record a parsed feedback event.
    pub fn feedback(&self, req: &FeedbackRequest) -> Result<FeedbackResponse, ApiError> {
        req.session_id.check()?;
        let user = self.model.user(req.user_id);
        let video = self.model.video(req.video_id);
        let mut store = self.sessions();
        let st = self.enter(&mut store, req.user_id, &req.session_id, user);
        if let Some(v) = video {
            st.push(Impression {
                video: v,
                play_time_ms: req.play_time_ms,
                duration_ms: req.duration_ms.unwrap_or(0),
                click: req.is_click,
                like: req.is_like,
                follow: req.is_follow,
                comment: req.is_comment,
                hate: req.is_hate,
                long_view: req.long_view,
            });
        }
        Ok(FeedbackResponse {
            stored: video.is_some(),
            cold_user: user.is_none(),
            cold_video: video.is_none(),
            history: st.history.len(),
        })
    }
}

/// The lower median of the finite scores (0 when there are none).
fn lower_median(scores: &[f32]) -> f32 {
    let mut s: Vec<f32> = scores.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f32::total_cmp);
    s.get(s.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
}

/// Parse a JSON body, or say precisely why not.
fn parse<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|r| ApiError {
        status: r.status(),
        code: if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "bad_body"
        },
        detail: r.body_text(),
    })?;
    serde_json::from_slice(&body).map_err(|e| {
        let code = if e.is_data() {
            "invalid_request"
        } else {
            "malformed_json"
        };
        ApiError::bad_request(code, e.to_string())
    })
}

fn respond<T: serde::Serialize>(app: &App, route: &str, r: Result<T, ApiError>) -> Response {
    let resp = match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    };
    app.metrics.count(route, resp.status().as_u16());
    resp
}

async fn rank(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Response {
    let started = Instant::now();
    let r = parse::<RankRequest>(body).and_then(|req| app.rank(&req, started));
    if r.is_ok() {
        app.metrics.observe_rank(started.elapsed().as_secs_f64());
    }
    respond(&app, "rank", r)
}

async fn feedback(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Response {
    let r = parse::<FeedbackRequest>(body).and_then(|req| app.feedback(&req));
    respond(&app, "feedback", r)
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let sessions = app.sessions().len();
    let body = serde_json::json!({
        "status": "ok",
        "model": app.model.manifest.method,
        "users": app.model.n_users(),
        "videos": app.model.n_videos(),
        "sessions": sessions,
    });
    respond(&app, "healthz", Ok::<_, ApiError>(body))
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let (len, (evicted, expired)) = {
        let s = app.sessions();
        (s.len(), s.dropped())
    };
    let text = app.metrics.render(len, app.config.max_sessions, evicted, expired);
    app.metrics.count("metrics", 200);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn not_found(State(app): State<Arc<App>>, uri: axum::http::Uri) -> Response {
    let e = ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        detail: format!("no route {uri}; the API is POST /v1/rank, POST /v1/feedback, GET /healthz, GET /metrics"),
    };
    respond(&app, "other", Err::<(), _>(e))
}

async fn method_not_allowed(State(app): State<Arc<App>>, method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let allowed = match uri.path() {
        "/v1/rank" | "/v1/feedback" => "POST",
        _ => "GET",
    };
    let e = ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        detail: format!("{method} {uri}: this route takes {allowed}"),
    };
    let mut resp = respond(&app, "other", Err::<(), _>(e));
    resp.headers_mut()
        .insert(axum::http::header::ALLOW, axum::http::HeaderValue::from_static(allowed));
    resp
}

/// Answer 408 to a request (its body read and its handling) that outlasts the timeout, so
/// a client that trickles its body cannot hold a connection and a task for ever.
async fn request_timeout(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let limit = app.config.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            let e = ApiError {
                status: StatusCode::REQUEST_TIMEOUT,
                code: "request_timeout",
                detail: format!("the request was not read and answered within {} s", limit.as_secs_f64()),
            };
            respond(&app, "other", Err::<(), _>(e))
        }
    }
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.max_body_bytes;
    Router::new()
        .route("/v1/rank", post(rank))
        .route("/v1/feedback", post(feedback))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(app.clone(), request_timeout))
        .with_state(app)
}

/// Serve on `listener` until `shutdown` resolves, then give the requests in flight
/// `shutdown_timeout` to finish and close every connection. Idle users are swept every
/// quarter TTL.
///
/// Each connection is hyper's HTTP/1.1 with a header-read timeout, so a client that sends
/// part of a request head and stalls is closed after `header_timeout` and cannot hold the
/// shutdown open; at most `max_connections` are open at once.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let sweeper = {
        let app = app.clone();
        let every = (app.config.session_ttl / 4).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                app.sessions().sweep(Instant::now());
            }
        })
    };
    let cfg = app.config.clone();
    let routes = router(app);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors or a connection reset before it was accepted: the
                // listener is fine; wait a moment rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(routes.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(cfg.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    // Requests in flight finish (bounded); idle and stalled connections are closed.
    let _ = tokio::time::timeout(cfg.shutdown_timeout, graceful.shutdown()).await;
    connections.abort_all();
    sweeper.abort();
    Ok(())
}

/// Resolve on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
