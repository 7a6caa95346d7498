//! The identity platform's error answers: OAuth JSON with `AADSTSnnnn` codes.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

/// Current time as the identity platform prints it: `2024-05-01 12:34:56Z`.
pub fn aad_timestamp() -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// An identity-platform error: `error` plus an `AADSTSnnnn` code and message.
#[derive(Debug, Clone)]
pub struct AadError {
    /// HTTP status of the token endpoint answer.
    pub status: StatusCode,
    /// OAuth `error` value (`invalid_grant`, `invalid_client`, …).
    pub error: &'static str,
    /// The AADSTS number.
    pub code: u32,
    /// Human text after `AADSTSnnnn: `.
    pub message: String,
}

impl AadError {
    /// A 400 error.
    pub fn bad(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            code,
            message: message.into(),
        }
    }

    /// A 401 `invalid_client` error (client authentication failed).
    pub fn client(code: u32, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            code,
            message: message.into(),
        }
    }

    /// A missing required parameter (AADSTS900144).
    pub fn missing(param: &str) -> Self {
        Self::bad(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{param}'."),
        )
    }

    /// `error_description` as Microsoft formats it, with trace and correlation ids.
    pub fn description(&self, trace_id: Uuid, correlation_id: Uuid, timestamp: &str) -> String {
        format!(
            "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
            self.code, self.message
        )
    }

    /// The `error_uri` Microsoft links to.
    pub fn error_uri(&self, base_url: &str) -> String {
        format!("{base_url}/error?code={}", self.code)
    }

    /// Renders the JSON body; the base URL is needed for `error_uri`.
    pub fn into_response_with(self, base_url: &str) -> Response {
        let (trace, corr, ts) = (Uuid::new_v4(), Uuid::new_v4(), aad_timestamp());
        let body = json!({
            "error": self.error,
            "error_description": self.description(trace, corr, &ts),
            "error_codes": [self.code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": self.error_uri(base_url),
        });
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        }
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store, no-cache"),
        );
        resp
    }
}
