//! Fault injection for Graph calls: 429 with `Retry-After`, 503, dropped connections and
//! latency, at configurable rates, with counts of what was injected.

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
            latency_ms: 0,
            retry_after: Some(1.0),
            path_prefix: "/v1.0/".into(),
        }
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

    fn decide(&self, path: &str) -> Option<(Decision, u64)> {
        let mut inner = self.lock();
        if !path.starts_with(&inner.config.path_prefix) {
            return None;
        }
        inner.counts.requests += 1;
        let latency = inner.config.latency_ms;
        if latency > 0 {
            inner.counts.delayed += 1;
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
    let Some((decision, latency)) = st.faults.decide(req.uri().path()) else {
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
