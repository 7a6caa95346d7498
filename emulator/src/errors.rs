//! Error answers in Microsoft's shapes: the identity platform's OAuth JSON and Graph's error object.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// Current time as RFC 3339, as Microsoft prints timestamps.
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

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

/// A Microsoft Graph error: `{"error":{"code","message","innerError":{…}}}`.
#[derive(Debug, Clone)]
pub struct GraphError {
    /// HTTP status.
    pub status: StatusCode,
    /// Graph's `code` string.
    pub code: &'static str,
    /// Graph's `message`.
    pub message: String,
    /// Extra headers (`Location` on 410, `Retry-After` on 429/503).
    pub headers: Vec<(header::HeaderName, String)>,
}

impl GraphError {
    /// An error with no extra headers.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// 401 `InvalidAuthenticationToken`.
    pub fn unauthenticated(message: &str) -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        );
        e.headers.push((
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"\", client_id=\"00000003-0000-0000-c000-000000000000\"".into(),
        ));
        e
    }

    /// 403 `Authorization_RequestDenied`.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    /// 400 for a query option the emulator (or Graph) does not accept.
    pub fn bad_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", message)
    }

    /// 404 `Request_ResourceNotFound`.
    pub fn not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    /// Adds a header to the answer.
    pub fn with_header(mut self, name: header::HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let request_id = Uuid::new_v4();
        let body = json!({"error": {
            "code": self.code,
            "message": self.message,
            "innerError": {
                "date": now_rfc3339(),
                "request-id": request_id,
                "client-request-id": request_id,
            }
        }});
        let mut resp = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }
}
