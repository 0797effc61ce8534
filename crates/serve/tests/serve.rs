//! The service over a real loopback socket: rank, feedback, state, bad input, metrics,
//! bounds, shutdown; and the served ranking against the ranker evaluation calls.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use mmrf_data::session::{Impression, RequestState};
use mmrf_data::Dataset;
use mmrf_serve::api::RankResponse;
use mmrf_serve::loadgen::Client;
use mmrf_serve::{App, ServeConfig, ServedModel};
use mmrf_train::{Method, Progress, TrainOptions};
use mmrf_world::{generate, Scale, WorldConfig, WorldModel};
use serde_json::json;

/// A small world and a briefly trained MMRF run on it.
fn fixture() -> &'static (tempfile::TempDir, Dataset) {
    static F: OnceLock<(tempfile::TempDir, Dataset)> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("world");
        generate(&WorldModel::new(WorldConfig::new(Scale::Small, 5)), &dir, &|_| {}).unwrap();
        let (data, _) = Dataset::open(&dir).unwrap();
        let opts = TrainOptions {
            seed: 1,
            sets: ["steps=30", "batch=32", "sim_pretrain_steps=10", "history=8"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            progress: Progress::hidden(),
            ..Default::default()
        };
        mmrf_train::train(Method::Mmrf, &data, &tmp.path().join("run"), &opts).unwrap();
        (tmp, data)
    })
}

fn model(history_from_log: bool) -> ServedModel {
    let (tmp, data) = fixture();
    let (manifest, ranker) = mmrf_train::load(&tmp.path().join("run"), data).unwrap();
    ServedModel::new(manifest, ranker, data, history_from_log)
}

/// A server on a free loopback port in its own runtime; dropping the handle stops it.
struct Server {
    addr: SocketAddr,
    rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    fn start(config: ServeConfig) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = App::new(model(config.history_from_log), config);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr, done) = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let done = tokio::spawn(mmrf_serve::serve(listener, app, async {
                let _ = rx.await;
            }));
            (addr, done)
        });
        Server {
            addr,
            rt,
            stop: Some(tx),
            done: Some(done),
        }
    }

    fn call(&self, method: &str, path: &str, body: impl Into<Bytes>) -> (u16, serde_json::Value) {
        let body = body.into();
        self.rt.block_on(async {
            let mut c = Client::connect(self.addr).await.unwrap();
            let (status, bytes) = c.request(method, path, body).await.unwrap();
            let v = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            (status, v)
        })
    }

    fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call("POST", path, body.to_string())
    }

    /// Stop gracefully; the serve future must end cleanly.
    fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let done = self.done.take().unwrap();
        let r = self
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), done).await });
        assert!(matches!(r, Ok(Ok(Ok(())))), "the server did not shut down cleanly");
    }
}

fn videos(n: usize) -> Vec<i64> {
    let (_, data) = fixture();
    data.videos.ids.raw_ids()[..n].to_vec()
}

fn user() -> i64 {
    fixture().1.users.ids.raw(3)
}

fn no_log() -> ServeConfig {
    ServeConfig {
        history_from_log: false,
        ..Default::default()
    }
}

#[test]
fn rank_feedback_rank_sees_the_state_change() {
    let s = Server::start(no_log());
    let cands = videos(400);
    let req = json!({"user_id": user(), "session_id": "s1", "context": {"hour": 20, "tab": 1},
                     "candidates": cands, "k": 10});
    let (status, first) = s.post("/v1/rank", req.clone());
    assert_eq!(status, 200, "{first}");
    let first: RankResponse = serde_json::from_value(first).unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!((first.position, first.history, first.cold_user), (0, 0, false));
    assert_eq!(first.model, "mmrf");
    assert!(first.items.windows(2).all(|w| w[0].score >= w[1].score), "best first");
    // The user watches the top item to the end and likes it.
    let top = first.items[0].video_id;
    let (status, fb) = s.post(
        "/v1/feedback",
        json!({"user_id": user(), "session_id": "s1", "video_id": top, "play_time_ms": 30000,
               "is_click": true, "is_like": true, "long_view": true}),
    );
    assert_eq!(status, 200, "{fb}");
    assert_eq!(fb["stored"], true);
    assert_eq!(fb["history"], 1);
    let (_, second) = s.post("/v1/rank", req.clone());
    let second: RankResponse = serde_json::from_value(second).unwrap();
    assert_eq!((second.position, second.history), (1, 1));
    let scores = |r: &RankResponse| r.items.iter().map(|i| (i.video_id, i.score)).collect::<Vec<_>>();
    assert_ne!(scores(&first), scores(&second), "the state changed, so must the scores");
    // A new session keeps the history and restarts the position.
    let mut other = req;
    other["session_id"] = json!(2);
    let (_, third) = s.post("/v1/rank", other);
    assert_eq!(
        (third["position"].as_u64(), third["history"].as_u64()),
        (Some(0), Some(1))
    );
    // explain: every agent's score per item; the WatchTime agent's is the ranking score.
    let (_, ex) = s.post(
        "/v1/rank",
        json!({"user_id": user(), "session_id": "s1", "candidates": videos(20), "k": 3, "explain": true}),
    );
    let item = &ex["items"][0];
    assert_eq!(item["agents"].as_object().unwrap().len(), 7, "{ex}");
    assert!((item["agents"]["WatchTime"].as_f64().unwrap() - item["score"].as_f64().unwrap()).abs() < 1e-6);
    s.shutdown();
}

#[test]
fn the_served_ranking_is_the_evaluated_ranking() {
    // The state evaluation would build: the user's last impressions, the context and the
    // position. The server reaches it through /v1/feedback and two earlier ranks.
    let (tmp, data) = fixture();
    let (_, ranker) = mmrf_train::load(&tmp.path().join("run"), data).unwrap();
    let tl = mmrf_data::session::Timelines::build(data);
    let u = 7u32;
    let raw_user = data.users.ids.raw(u);
    let history: Vec<Impression> = tl.user(u).iter().take(12).copied().collect();
    assert!(history.len() >= 8, "the fixture user has a history");
    let s = Server::start(no_log());
    for i in &history {
        let (status, _) = s.post(
            "/v1/feedback",
            json!({"user_id": raw_user, "session_id": "e", "video_id": data.videos.ids.raw(i.video),
                   "play_time_ms": i.play_time_ms, "duration_ms": i.duration_ms, "is_click": i.click,
                   "is_like": i.like, "is_follow": i.follow, "is_comment": i.comment, "is_hate": i.hate,
                   "long_view": i.long_view}),
        );
        assert_eq!(status, 200);
    }
    let cands: Vec<u32> = (0..300u32).map(|v| (v * 7) % data.videos.len() as u32).collect();
    let mut uniq = cands.clone();
    uniq.sort();
    uniq.dedup();
    let raw: Vec<i64> = uniq.iter().map(|&v| data.videos.ids.raw(v)).collect();
    let req = json!({"user_id": raw_user, "session_id": "e", "context": {"hour": 9, "tab": 2},
                     "candidates": raw, "k": raw.len()});
    s.post("/v1/rank", req.clone());
    s.post("/v1/rank", req.clone());
    let (_, served) = s.post("/v1/rank", req);
    let served: RankResponse = serde_json::from_value(served).unwrap();
    assert_eq!(served.position, 2);
    // What evaluation computes: `score_batch` on the same state.
    let state = RequestState {
        user: u,
        time_ms: 0,
        hour: 9,
        tab: 2,
        position: 2,
        history: &history,
    };
    let mut out = vec![Vec::new()];
    ranker.score_batch(&[state], &[&uniq], &mut out);
    let mut order: Vec<usize> = (0..uniq.len()).collect();
    order.sort_by(|&a, &b| out[0][b].total_cmp(&out[0][a]).then(a.cmp(&b)));
    let expected: Vec<i64> = order.iter().map(|&j| raw[j]).collect();
    let got: Vec<i64> = served.items.iter().map(|i| i.video_id).collect();
    assert_eq!(got, expected);
    for (item, &j) in served.items.iter().zip(&order) {
        assert!((item.score - out[0][j]).abs() < 1e-5);
    }
    s.shutdown();
}

#[test]
fn bad_input_gets_a_4xx_with_a_reason() {
    let config = ServeConfig {
        max_candidates: 50,
        ..no_log()
    };
    let s = Server::start(config);
    let ok = |c: Vec<i64>, k: usize| json!({"user_id": user(), "session_id": "b", "candidates": c, "k": k});
    let cases: Vec<(&str, Bytes, u16, &str)> = vec![
        (
            "empty candidates",
            ok(vec![], 1).to_string().into(),
            400,
            "empty_candidates",
        ),
        (
            "oversized",
            ok(videos(51), 5).to_string().into(),
            400,
            "too_many_candidates",
        ),
        ("k = 0", ok(videos(5), 0).to_string().into(), 400, "k_out_of_range"),
        ("k > n", ok(videos(5), 6).to_string().into(), 400, "k_out_of_range"),
        (
            "duplicate",
            ok(vec![videos(1)[0]; 2], 1).to_string().into(),
            400,
            "duplicate_candidate",
        ),
        (
            "hour",
            json!({"user_id": 1, "session_id": "b", "context": {"hour": 24}, "candidates": videos(3), "k": 1})
                .to_string()
                .into(),
            400,
            "bad_context",
        ),
        (
            "malformed",
            Bytes::from_static(b"{\"user_id\": 1,"),
            400,
            "malformed_json",
        ),
        ("not json", Bytes::from_static(b"hello"), 400, "malformed_json"),
        (
            "missing field",
            json!({"user_id": 1, "candidates": [1], "k": 1}).to_string().into(),
            400,
            "invalid_request",
        ),
        (
            "unknown field",
            json!({"user_id": 1, "session_id": 1, "candidates": [1], "k": 1, "kk": 2})
                .to_string()
                .into(),
            400,
            "invalid_request",
        ),
        (
            "wrong type",
            json!({"user_id": "x", "session_id": 1, "candidates": [1], "k": 1})
                .to_string()
                .into(),
            400,
            "invalid_request",
        ),
        (
            "over 1 MB",
            Bytes::from(vec![b' '; (1 << 20) + 10]),
            413,
            "body_too_large",
        ),
    ];
    for (name, body, status, code) in cases {
        let (got, v) = s.call("POST", "/v1/rank", body);
        assert_eq!(got, status, "{name}: {v}");
        assert_eq!(v["error"], code, "{name}: {v}");
        assert!(!v["detail"].as_str().unwrap_or("").is_empty(), "{name}: a reason");
    }
    let (got, v) = s.post("/v1/feedback", json!({"user_id": 1, "session_id": 1}));
    assert_eq!((got, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
    let (got, v) = s.call("GET", "/v2/nothing", Bytes::new());
    assert_eq!((got, v["error"].as_str()), (404, Some("not_found")));
    // Unknown users and videos are served, and flagged.
    let mut cands = videos(5);
    cands.push(-42);
    let (got, v) = s.post(
        "/v1/rank",
        json!({"user_id": 987_654_321, "session_id": 1, "candidates": cands, "k": 6}),
    );
    assert_eq!(got, 200, "{v}");
    assert_eq!(v["cold_user"], true);
    let cold: Vec<&serde_json::Value> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["cold"] == true)
        .collect();
    assert_eq!(cold.len(), 1);
    assert_eq!(cold[0]["video_id"], -42);
    let (got, v) = s.post(
        "/v1/feedback",
        json!({"user_id": 987_654_321, "session_id": 1, "video_id": -42, "play_time_ms": 10}),
    );
    assert_eq!(got, 200);
    assert_eq!(
        (v["stored"].as_bool(), v["cold_video"].as_bool()),
        (Some(false), Some(true))
    );
    // Every one of those was counted, and nothing was a 5xx.
    let (_, m) = s.call("GET", "/metrics", Bytes::new());
    let m = m.as_str().unwrap().to_string();
    assert!(
        m.contains("mmrf_requests_total{route=\"rank\",status=\"4xx\"} 12"),
        "{m}"
    );
    assert!(
        m.contains("mmrf_requests_total{route=\"rank\",status=\"5xx\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("mmrf_cold_users_total 1") && m.contains("mmrf_cold_videos_total 1"),
        "{m}"
    );
    let (got, h) = s.call("GET", "/healthz", Bytes::new());
    assert_eq!((got, h["status"].as_str()), (200, Some("ok")));
    s.shutdown();
}

#[test]
fn sessions_are_bounded() {
    let config = ServeConfig {
        max_sessions: 3,
        ..no_log()
    };
    let s = Server::start(config);
    let (_, data) = fixture();
    for u in 0..5u32 {
        let (status, _) = s.post(
            "/v1/rank",
            json!({"user_id": data.users.ids.raw(u), "session_id": 1, "candidates": videos(4), "k": 2}),
        );
        assert_eq!(status, 200);
    }
    let (_, m) = s.call("GET", "/metrics", Bytes::new());
    let m = m.as_str().unwrap().to_string();
    assert!(m.contains("\nmmrf_sessions_held 3\n"), "{m}");
    assert!(m.contains("mmrf_sessions_evicted_total 2"), "{m}");
    s.shutdown();
}

#[test]
fn hostile_requests_get_a_4xx_and_hold_nothing() {
    let s = Server::start(no_log());
    // A wrong method is a JSON 405 that names the method to use, and is counted.
    let (got, v) = s.call("GET", "/v1/rank", Bytes::new());
    assert_eq!((got, v["error"].as_str()), (405, Some("method_not_allowed")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("POST"), "{v}");
    let (_, m) = s.call("GET", "/metrics", Bytes::new());
    assert!(
        m.as_str()
            .unwrap()
            .contains("mmrf_requests_total{route=\"other\",status=\"4xx\"} 1"),
        "{m}"
    );
    // Long session ids are refused, on both routes, and never held.
    let long = "s".repeat(100 * 1024);
    for _ in 0..50 {
        for (path, body) in [
            (
                "/v1/rank",
                json!({"user_id": user(), "session_id": long, "candidates": videos(4), "k": 2}),
            ),
            (
                "/v1/feedback",
                json!({"user_id": user(), "session_id": long, "video_id": videos(1)[0], "play_time_ms": 5}),
            ),
        ] {
            let (got, v) = s.post(path, body);
            assert_eq!((got, v["error"].as_str()), (400, Some("session_id_too_long")), "{path}");
        }
    }
    let (_, h) = s.call("GET", "/healthz", Bytes::new());
    assert_eq!(h["sessions"], 0, "{h}");
    let edge = "s".repeat(mmrf_serve::api::MAX_SESSION_ID_BYTES);
    let (got, _) = s.post(
        "/v1/rank",
        json!({"user_id": user(), "session_id": edge, "candidates": videos(4), "k": 2}),
    );
    assert_eq!(got, 200);
    // KuaiRand's 0/1 flags are accepted wherever a boolean is; other numbers are not.
    let fb = |like: serde_json::Value| {
        s.post(
            "/v1/feedback",
            json!({"user_id": user(), "session_id": 1, "video_id": videos(1)[0], "play_time_ms": 5,
                   "is_click": 1, "is_like": like, "long_view": 0}),
        )
    };
    assert_eq!(fb(json!(1)).0, 200);
    assert_eq!(fb(json!(false)).0, 200);
    let (got, v) = fb(json!(2));
    assert_eq!((got, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("true/false or 1/0"), "{v}");
    let (got, _) = s.post(
        "/v1/rank",
        json!({"user_id": user(), "session_id": 2, "candidates": videos(4), "k": 2, "explain": 1}),
    );
    assert_eq!(got, 200);
    // An unknown video never ranks first: it takes the lower median of the known scores
    // and follows the known videos of that score.
    for known in [1, 2, 4] {
        let mut cands = videos(known);
        cands.push(-7);
        let (got, v) = s.post(
            "/v1/rank",
            json!({"user_id": user(), "session_id": 3, "candidates": cands, "k": known + 1}),
        );
        assert_eq!(got, 200, "{v}");
        let items = v["items"].as_array().unwrap();
        assert_eq!(items[0]["cold"], serde_json::Value::Null, "{known} known: {v}");
        let mut known_scores: Vec<f64> = items
            .iter()
            .filter(|i| i["cold"] != true)
            .map(|i| i["score"].as_f64().unwrap())
            .collect();
        known_scores.sort_by(f64::total_cmp);
        let cold = items.iter().find(|i| i["cold"] == true).unwrap();
        assert_eq!(cold["score"].as_f64().unwrap(), known_scores[(known - 1) / 2], "{v}");
    }
    s.shutdown();
}

#[test]
fn a_stalled_client_is_cut_off_and_cannot_hold_the_shutdown() {
    use std::io::{Read, Write};
    let s = Server::start(ServeConfig {
        header_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(500),
        ..no_log()
    });
    // Half a request head, then nothing: the connection is closed after the header timeout,
    // and other clients are served meanwhile.
    let mut head = std::net::TcpStream::connect(s.addr).unwrap();
    head.write_all(b"POST /v1/rank HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert_eq!(s.call("GET", "/healthz", Bytes::new()).0, 200);
    head.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = head.read_to_end(&mut buf);
    assert!(t.elapsed() < Duration::from_secs(5), "held for {:?}", t.elapsed());
    // A whole head and a body that never arrives: a 408 after the request timeout.
    let mut body = std::net::TcpStream::connect(s.addr).unwrap();
    body.write_all(b"POST /v1/rank HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"user\"")
        .unwrap();
    body.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = [0u8; 512];
    let n = body.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    s.shutdown();

    // A stalled client under a long header timeout still cannot hold the shutdown past
    // its own timeout.
    let s = Server::start(ServeConfig {
        header_timeout: Duration::from_secs(60),
        shutdown_timeout: Duration::from_millis(500),
        ..no_log()
    });
    let mut stalled = std::net::TcpStream::connect(s.addr).unwrap();
    stalled.write_all(b"POST /v1/rank HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert_eq!(s.call("GET", "/healthz", Bytes::new()).0, 200);
    let t = std::time::Instant::now();
    s.shutdown();
    assert!(t.elapsed() < Duration::from_secs(3), "shutdown took {:?}", t.elapsed());
}

#[test]
fn a_configuration_with_a_zero_bound_is_refused() {
    for (config, name) in [
        (
            ServeConfig {
                max_sessions: 0,
                ..no_log()
            },
            "max_sessions",
        ),
        (
            ServeConfig {
                max_candidates: 0,
                ..no_log()
            },
            "max_candidates",
        ),
        (
            ServeConfig {
                header_timeout: Duration::ZERO,
                ..no_log()
            },
            "header_timeout",
        ),
    ] {
        let err = config.validate().unwrap_err();
        assert!(err.starts_with(name), "{err}");
    }
    assert!(no_log().validate().is_ok());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// Arbitrary bodies — random JSON values and random bytes — never get a 5xx, and the
    /// server keeps answering.
    #[test]
    fn random_bodies_never_get_a_5xx(
        value in json_value(),
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
    ) {
        let s = shared();
        for body in [Bytes::from(value.to_string()), Bytes::from(bytes.clone())] {
            for path in ["/v1/rank", "/v1/feedback"] {
                let (status, v) = s.call("POST", path, body.clone());
                proptest::prop_assert!(status == 200 || (400..500).contains(&status), "{path} {status} {v}");
            }
        }
    }
}

fn shared() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| Server::start(no_log()))
}

/// JSON values shaped like (and often almost) rank and feedback requests.
fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (-1e6f64..1e6).prop_map(serde_json::Value::from),
        "[a-z_]{0,8}".prop_map(serde_json::Value::from),
    ];
    let keys = prop_oneof![
        Just("user_id".to_string()),
        Just("session_id".to_string()),
        Just("candidates".to_string()),
        Just("k".to_string()),
        Just("context".to_string()),
        Just("video_id".to_string()),
        Just("play_time_ms".to_string()),
        "[a-z]{1,6}",
    ];
    leaf.prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
