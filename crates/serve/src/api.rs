//! The JSON bodies of the HTTP API, and its errors.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// A session id as clients send it: a string or a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SessionId {
    Text(String),
    Number(i64),
}

/// The longest `session_id` accepted, in bytes (longer ones get a 400): a user's state
/// keeps its session id, so this bounds what one client can make the service hold.
pub const MAX_SESSION_ID_BYTES: usize = 256;

impl SessionId {
    /// Refuse a session id longer than [`MAX_SESSION_ID_BYTES`].
    pub fn check(&self) -> Result<(), ApiError> {
        match self {
            SessionId::Text(s) if s.len() > MAX_SESSION_ID_BYTES => Err(ApiError::bad_request(
                "session_id_too_long",
                format!(
                    "session_id has {} bytes; at most {MAX_SESSION_ID_BYTES} are accepted",
                    s.len()
                ),
            )),
            _ => Ok(()),
        }
    }

    pub fn key(&self) -> String {
        match self {
            SessionId::Text(s) => s.clone(),
            SessionId::Number(n) => n.to_string(),
        }
    }
}

/// The request's context.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// Hour of day, 0..=23.
    #[serde(default)]
    pub hour: u8,
    /// KuaiRand's tab, 0..=15.
    #[serde(default)]
    pub tab: u8,
}

/// `POST /v1/rank`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankRequest {
    pub user_id: i64,
    pub session_id: SessionId,
    #[serde(default)]
    pub context: Context,
    pub candidates: Vec<i64>,
    pub k: usize,
    /// Add each agent's score per item (multi-agent methods).
    #[serde(default, deserialize_with = "flag")]
    pub explain: bool,
}

/// One ranked item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RankedItem {
    pub video_id: i64,
    pub score: f32,
    /// The model does not know this video: it is placed at the median score of the known
    /// candidates.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cold: bool,
    /// Each agent's score (`explain`), by signal name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<BTreeMap<String, f32>>,
}

/// The answer to `POST /v1/rank`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankResponse {
    pub items: Vec<RankedItem>,
    /// The method of the served run.
    pub model: String,
    pub latency_us: u64,
    /// The model does not know this user: it is scored with the most typical known
    /// profile and its own in-session history.
    pub cold_user: bool,
    /// Rank requests before this one in the session.
    pub position: u16,
    /// Impressions in the state the ranking used.
    pub history: usize,
    /// Why `explain` gave nothing, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain_note: Option<String>,
}

/// `POST /v1/feedback`: how the user responded to one shown video. Omitted flags are false;
/// a flag is `true`/`false` or, as KuaiRand's logs write them, `1`/`0`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub user_id: i64,
    pub session_id: SessionId,
    pub video_id: i64,
    pub play_time_ms: u32,
    #[serde(default)]
    pub duration_ms: Option<u32>,
    #[serde(default, deserialize_with = "flag")]
    pub is_click: bool,
    #[serde(default, deserialize_with = "flag")]
    pub is_like: bool,
    #[serde(default, deserialize_with = "flag")]
    pub is_follow: bool,
    #[serde(default, deserialize_with = "flag")]
    pub is_comment: bool,
    #[serde(default, deserialize_with = "flag")]
    pub is_hate: bool,
    #[serde(default, deserialize_with = "flag")]
    pub long_view: bool,
}

/// A boolean flag written as `true`/`false` or `1`/`0` (KuaiRand's encoding).
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct Flag;
    impl serde::de::Visitor<'_> for Flag {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a flag: true/false or 1/0")
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<bool, E> {
            match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::invalid_value(serde::de::Unexpected::Unsigned(v), &self)),
            }
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<bool, E> {
            u64::try_from(v)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
                .and_then(|v| self.visit_u64(v))
        }
    }
    d.deserialize_any(Flag)
}

/// The answer to `POST /v1/feedback`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedbackResponse {
    /// Whether the impression entered the user's history (an unknown video cannot: the
    /// model has no embedding for it).
    pub stored: bool,
    pub cold_user: bool,
    pub cold_video: bool,
    pub history: usize,
}

/// A 4xx (or 5xx) with a JSON body `{"error": code, "detail": reason}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "detail": self.detail });
        (self.status, axum::Json(body)).into_response()
    }
}
