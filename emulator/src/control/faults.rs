//! Fault injection for Graph calls: 429 with `Retry-After`, 503, 500/502/504, dropped
//! connections and latency, at configurable rates; and delta or skip tokens refused with a 4xx
//! and a resync code, as Graph answers a token it no longer honours. Counts what was injected.

use std::sync::Mutex;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::graph::errors::GraphError;
use crate::rng::Seeded;
use crate::state::AppState;

/// What to inject; rates are probabilities per matching request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Share of requests answered 429 `TooManyRequests`.
    pub rate_429: f64,
    /// Share answered 503 `serviceNotAvailable`.
    pub rate_503: f64,
    /// Share whose connection is dropped before a complete answer.
    pub rate_drop: f64,
    /// Share answered 500, 502 or 504 (drawn evenly) with Graph's `generalException`.
    pub rate_5xx: f64,
    /// The next delta requests that carry a `$deltatoken` or `$skiptoken` are refused so.
    pub stale_token: Option<StaleToken>,
    /// Delay added to every matching request, in milliseconds.
    pub latency_ms: u64,
    /// `Retry-After` seconds on 429/503 (fractions allowed); `null` omits the header.
    pub retry_after: Option<f64>,
    /// Only requests whose path starts with this are affected.
    pub path_prefix: String,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            rate_429: 0.0,
            rate_503: 0.0,
            rate_drop: 0.0,
            rate_5xx: 0.0,
            stale_token: None,
            latency_ms: 0,
            retry_after: Some(1.0),
            path_prefix: "/v1.0/".into(),
        }
    }
}

/// A delta or skip token refused as Graph documents for one it no longer honours: "a
/// 40X-series error with error codes such as `syncStateNotFound`" (delta-query-overview).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StaleToken {
    /// A 4xx status.
    pub status: u16,
    /// One of [`RESYNC_CODES`].
    pub code: String,
    /// How many requests are refused (then tokens work again).
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// The resync codes of Graph's errors page (`syncStateNotFound`, `resyncRequired` as codes;
/// `resyncApplyDifferences`, `resyncUploadDifferences` as detailed codes).
pub const RESYNC_CODES: [&str; 4] = [
    "syncStateNotFound",
    "resyncRequired",
    "resyncApplyDifferences",
    "resyncUploadDifferences",
];

impl StaleToken {
    /// Why this is not an answer Graph documents, if it is not.
    pub fn problem(&self) -> Option<String> {
        if !(400..500).contains(&self.status) {
            return Some("stale_token.status must be a 4xx".into());
        }
        if !RESYNC_CODES.contains(&self.code.as_str()) {
            return Some(format!(
                "stale_token.code must be one of {}",
                RESYNC_CODES.join(", ")
            ));
        }
        None
    }
}

/// Counts of matching requests and of what was injected since the last configuration.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FaultCounts {
    /// Requests under the path prefix.
    pub requests: u64,
    /// Answered 429.
    pub throttled: u64,
    /// Answered 503.
    pub unavailable: u64,
    /// Connections dropped.
    pub dropped: u64,
    /// Answered 500, 502 or 504.
    pub server_errors: u64,
    /// Delta or skip tokens refused with a resync code.
    pub stale_tokens: u64,
    /// Requests delayed by `latency_ms`.
    pub delayed: u64,
}

struct Inner {
    config: FaultConfig,
    counts: FaultCounts,
    rng: Seeded,
}

/// Fault settings and counters, shared by the middleware and the admin API.
pub struct Faults {
    inner: Mutex<Inner>,
    seed: u64,
}

enum Decision {
    Pass,
    Throttle(Option<f64>),
    Unavailable(Option<f64>),
    ServerError(StatusCode),
    Stale(StatusCode, &'static str),
    Drop,
}

impl Faults {
    /// No faults; the random draws are seeded so a run is repeatable.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Mutex::new(Inner {
                config: FaultConfig::default(),
                counts: FaultCounts::default(),
                rng: Seeded::new(seed, u64::MAX),
            }),
            seed,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the configuration and resets the counters and the random sequence.
    pub fn configure(&self, config: FaultConfig) {
        let mut inner = self.lock();
        *inner = Inner {
            config,
            counts: FaultCounts::default(),
            rng: Seeded::new(self.seed, u64::MAX),
        };
    }

    /// Current configuration and counts.
    pub fn report(&self) -> (FaultConfig, FaultCounts) {
        let inner = self.lock();
        (inner.config.clone(), inner.counts.clone())
    }

    fn decide(&self, path: &str, query: &str) -> Option<(Decision, u64)> {
        let mut inner = self.lock();
        if !path.starts_with(&inner.config.path_prefix) {
            return None;
        }
        inner.counts.requests += 1;
        let latency = inner.config.latency_ms;
        if latency > 0 {
            inner.counts.delayed += 1;
        }
        let carries_token = path.contains("delta")
            && (query.contains("$deltatoken=") || query.contains("$skiptoken="));
        if let Some(stale) = inner.config.stale_token.as_mut().filter(|_| carries_token)
            && stale.count > 0
        {
            stale.count -= 1;
            let status = StatusCode::from_u16(stale.status).unwrap_or(StatusCode::BAD_REQUEST);
            let code = RESYNC_CODES
                .into_iter()
                .find(|c| *c == stale.code)
                .unwrap_or(RESYNC_CODES[0]);
            inner.counts.stale_tokens += 1;
            return Some((Decision::Stale(status, code), latency));
        }
        let roll = (inner.rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let c = inner.config.clone();
        let decision = if roll < c.rate_drop {
            inner.counts.dropped += 1;
            Decision::Drop
        } else if roll < c.rate_drop + c.rate_429 {
            inner.counts.throttled += 1;
            Decision::Throttle(c.retry_after)
        } else if roll < c.rate_drop + c.rate_429 + c.rate_503 {
            inner.counts.unavailable += 1;
            Decision::Unavailable(c.retry_after)
        } else if roll < c.rate_drop + c.rate_429 + c.rate_503 + c.rate_5xx {
            inner.counts.server_errors += 1;
            let status = [
                StatusCode::INTERNAL_SERVER_ERROR,
                StatusCode::BAD_GATEWAY,
                StatusCode::GATEWAY_TIMEOUT,
            ][inner.rng.next() as usize % 3];
            Decision::ServerError(status)
        } else {
            Decision::Pass
        };
        Some((decision, latency))
    }
}

fn retry_after(secs: f64) -> String {
    if secs.fract() == 0.0 {
        format!("{}", secs as u64)
    } else {
        format!("{secs}")
    }
}

/// Middleware applying the configured faults.
pub async fn inject(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let query = req.uri().query().unwrap_or_default().to_owned();
    let Some((decision, latency)) = st.faults.decide(req.uri().path(), &query) else {
        return next.run(req).await;
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let with_retry = |e: GraphError, after: Option<f64>| match after {
        Some(s) => e.with_header(header::RETRY_AFTER, retry_after(s)),
        None => e,
    };
    match decision {
        Decision::Pass => next.run(req).await,
        Decision::Throttle(after) => with_retry(
            GraphError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests are being sent. Retry after the time in the Retry-After header.",
            ),
            after,
        )
        .into_response(),
        Decision::Unavailable(after) => with_retry(
            GraphError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "The service is temporarily unavailable. Retry later.",
            ),
            after,
        )
        .into_response(),
        Decision::ServerError(status) => GraphError::new(
            status,
            "generalException",
            "An unspecified error has occurred.",
        )
        .into_response(),
        Decision::Stale(status, code) => GraphError::new(
            status,
            code,
            "The delta token is no longer valid: synchronize again from the start.",
        )
        .into_response(),
        Decision::Drop => {
            // Headers go out, then the body fails: hyper aborts the connection mid-answer.
            let broken = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected fault",
                ))
            });
            (
                StatusCode::OK,
                [(header::CONTENT_LENGTH, "1024")],
                Body::from_stream(broken),
            )
                .into_response()
        }
    }
}
