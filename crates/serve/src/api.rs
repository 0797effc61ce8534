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

impl SessionId {
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
    #[serde(default)]
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

/// `POST /v1/feedback`: how the user responded to one shown video. Omitted flags are false.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub user_id: i64,
    pub session_id: SessionId,
    pub video_id: i64,
    pub play_time_ms: u32,
    #[serde(default)]
    pub duration_ms: Option<u32>,
    #[serde(default)]
    pub is_click: bool,
    #[serde(default)]
    pub is_like: bool,
    #[serde(default)]
    pub is_follow: bool,
    #[serde(default)]
    pub is_comment: bool,
    #[serde(default)]
    pub is_hate: bool,
    #[serde(default)]
    pub long_view: bool,
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
