//! Probes and metrics: `/healthz` (the process answers), `/readyz` (the database answers and its
//! schema is this binary's; its detail lists every process's background tasks), `/metrics`
//! (Prometheus) and the middleware counting requests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::client_addr::ClientAddr;
use super::{AppState, paths};
use crate::background::status::{self, TaskState};
use crate::config::Config;

/// How long each readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: the process is up and serving.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: `select 1` answers within [`CHECK_TIMEOUT`] and every embedded migration is
/// applied; 503 otherwise, naming what failed.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = match tokio::time::timeout(
        CHECK_TIMEOUT,
        sqlx::query_scalar!(r#"select 1 as "one!""#).fetch_one(&state.db),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
    };
    let migrations = match &database {
        Err(_) => Err("not checked: the database is unreachable".to_owned()),
        Ok(()) => {
            match tokio::time::timeout(CHECK_TIMEOUT, crate::db::missing_migrations(&state.db))
                .await
            {
                Ok(Ok(missing)) => Ok(missing),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
            }
        }
    };
    let database_json = match &database {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e }),
    };
    let migrations_json = match &migrations {
        Ok(missing) => json!({ "ok": missing.is_empty(), "missing": missing }),
        Err(e) => json!({ "ok": false, "error": e }),
    };
    let background_json = match &database {
        Err(_) => json!({ "ok": false, "error": "not checked: the database is unreachable" }),
        Ok(()) => match tokio::time::timeout(CHECK_TIMEOUT, status::list(&state.db)).await {
            Ok(Ok(tasks)) => background_detail(&tasks),
            Ok(Err(e)) => json!({ "ok": false, "error": e.to_string() }),
            Err(_) => {
                json!({ "ok": false, "error": format!("no answer within {}s", CHECK_TIMEOUT.as_secs()) })
            }
        },
    };
    let ready = database.is_ok() && matches!(&migrations, Ok(m) if m.is_empty());
    if !ready {
        tracing::warn!(database = %database_json, migrations = %migrations_json, "not ready");
    }
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "database": database_json, "migrations": migrations_json },
        // Detail for people and alerts: a failing task does not take the portal out of service.
        "background": background_json,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Every process's background tasks with their health; `ok` is false when any errored, is
/// overdue or belongs to a silent process.
fn background_detail(tasks: &[TaskState]) -> serde_json::Value {
    let now = OffsetDateTime::now_utc();
    let rfc3339 = |at: Option<OffsetDateTime>| at.and_then(|at| at.format(&Rfc3339).ok());
    let rows: Vec<_> = tasks
        .iter()
        .map(|t| {
            let health = t.health(now);
            json!({
                "name": t.name,
                "process": t.process,
                "state": health.as_str(),
                "ok": !health.is_problem(),
                "period_seconds": t.period.as_secs_f64(),
                "doing": t.doing,
                "runs": t.runs,
                "last_started_at": rfc3339(t.last_started_at),
                "last_finished_at": rfc3339(t.last_finished_at),
                "last_error": t.last_error,
                "heartbeat_at": rfc3339(Some(t.heartbeat_at)),
            })
        })
        .collect();
    json!({
        "ok": tasks.iter().all(|t| !t.health(now).is_problem()),
        "tasks": rows,
    })
}

/// `/metrics` on the portal's listener (routed only when no separate metrics listener is
/// configured): with a token configured, the bearer token; without one, loopback clients only.
pub async fn metrics_on_portal(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
) -> Response {
    if state.cfg.metrics.token.is_none() && !client.ip().is_loopback() {
        return (
            StatusCode::FORBIDDEN,
            "metrics are served to loopback clients only; set GANGWAY_METRICS_TOKEN or GANGWAY_METRICS_LISTEN\n",
        )
            .into_response();
    }
    scrape(&state, &headers).await
}

/// `/metrics` on its own listener: the bind address restricts it, and the token when set.
async fn metrics_on_own_listener(State(state): State<AppState>, headers: HeaderMap) -> Response {
    scrape(&state, &headers).await
}

async fn scrape(state: &AppState, headers: &HeaderMap) -> Response {
    if !token_accepted(&state.cfg, headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required\n",
        )
            .into_response();
    }
    let mut body = crate::metrics::render();
    match crate::metrics::database_gauges(&state.db).await {
        Ok(gauges) => {
            body.push_str(&gauges);
            body.push_str("# HELP gangway_database_up The database answered this scrape\n# TYPE gangway_database_up gauge\ngangway_database_up 1\n");
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database gauges could not be read");
            body.push_str("# HELP gangway_database_up The database answered this scrape\n# TYPE gangway_database_up gauge\ngangway_database_up 0\n");
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Without `GANGWAY_METRICS_TOKEN`, always; with it, when `Authorization: Bearer <token>`
/// matches, compared in constant time (both sides hashed first, so neither content nor length
/// leaks).
fn token_accepted(cfg: &Config, headers: &HeaderMap) -> bool {
    let Some(token) = &cfg.metrics.token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = Sha256::digest(token.expose().as_bytes());
    let given = Sha256::digest(given.as_bytes());
    expected
        .iter()
        .zip(given.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Counts every request by method, matched route template (`unmatched` when none matched:
/// never the raw path) and status, with its latency.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = match *request.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    crate::metrics::record_request(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `/metrics` alone, for `GANGWAY_METRICS_LISTEN`, bound and ready to run.
pub struct MetricsServer {
    listener: TcpListener,
    router: Router,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks one).
    pub async fn bind(state: AppState, addr: SocketAddr) -> anyhow::Result<Self> {
        use anyhow::Context;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (GANGWAY_METRICS_LISTEN)"))?;
        let router = Router::new()
            .route(paths::METRICS, get(metrics_on_own_listener))
            .with_state(state);
        Ok(Self { listener, router })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
