//! What a process runs and how it stops: the portal with its background tasks (mail and webhook delivery,
//! directory sync workers, session sweeping, rate-limit pruning) under one `select!`, ended by
//! Ctrl-C or SIGTERM with the requests in flight finished and each running sync stopped after
//! the page in hand. `gangway serve`, `gangway worker` and `gangway demo` run through here.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::directory::credentials::TokenSource;
use crate::directory::sync::{RetryPolicy, Syncer};
use crate::directory::worker::{self, WorkerConfig};
use crate::invitations::mail;
use crate::web::{AppState, Application, MetricsServer, limits, session_store};
use crate::webhooks;

/// Builds the portal from `cfg` and runs it.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    run_portal(Application::build(cfg).await?).await
}

/// Runs the portal, the outbox worker (when mail is configured), the session sweeper and the
/// rate-limit pruner until one stops or the process is interrupted.
pub async fn run_portal(application: Application) -> anyhow::Result<()> {
    let state = application.state().clone();
    tracing::info!(port = application.port(), public_url = %state.cfg.public_url, "gangway is listening");
    let mailer = match &state.cfg.smtp_url {
        Some(url) => Some(mail::Mailer::new(url, &state.cfg.mail_from)?),
        None => {
            tracing::warn!("GANGWAY_SMTP_URL is not set: invitation mail stays queued");
            None
        }
    };
    let worker = async {
        match mailer {
            Some(mailer) => {
                mail::run_worker(state.db.clone(), state.cfg.keys.clone(), mailer).await
            }
            None => std::future::pending().await,
        }
    };
    let stop = CancellationToken::new();
    let metrics = spawn_metrics(&state, stop.clone()).await?;
    let syncs = tokio::spawn(run_sync_workers(
        &state,
        state.cfg.sync.workers,
        stop.clone(),
    ));
    tokio::select! {
        result = application.run_until(shutdown_requested()) => {
            result?;
            tracing::info!("stopped; requests in flight were finished");
        }
        () = worker => tracing::error!("mail worker stopped"),
        () = webhooks::delivery::run_worker(state.db.clone(), state.cfg.keys.clone()) => tracing::error!("webhook worker stopped"),
        () = sweep_expired_sessions(state.db.clone()) => tracing::error!("session sweeper stopped"),
        () = limits::prune_idle_clients(state.limits.clone()) => tracing::error!("rate-limit pruner stopped"),
    }
    stop.cancel();
    syncs.await?;
    metrics.abort();
    Ok(())
}

/// `gangway worker`: only sync workers (and the scheduler) and webhook delivery, `concurrency` syncs at once,
/// until Ctrl-C or SIGTERM; each running sync commits the page in hand and gives its job back.
pub async fn run_workers(state: AppState, concurrency: usize) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let metrics = spawn_metrics(&state, stop.clone()).await?;
    let syncs = tokio::spawn(run_sync_workers(&state, concurrency, stop.clone()));
    tokio::select! {
        () = shutdown_requested() => {}
        () = webhooks::delivery::run_worker(state.db.clone(), state.cfg.keys.clone()) => tracing::error!("webhook worker stopped"),
    }
    stop.cancel();
    syncs.await?;
    metrics.abort();
    Ok(())
}

/// Drains the metrics' histograms now and then and, with `GANGWAY_METRICS_LISTEN`, serves
/// `/metrics` there until `stop`.
async fn spawn_metrics(
    state: &AppState,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let server = match state.cfg.metrics.listen {
        Some(addr) => Some(MetricsServer::bind(state.clone(), addr).await?),
        None => None,
    };
    Ok(tokio::spawn(async move {
        let serve = async {
            match server {
                Some(server) => {
                    if let Ok(addr) = server.local_addr() {
                        tracing::info!(%addr, "metrics are served on their own listener");
                    }
                    let stopped = stop.clone();
                    if let Err(e) = server
                        .run_until(async move { stopped.cancelled().await })
                        .await
                    {
                        tracing::error!(error = %e, "the metrics listener stopped");
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = serve => {}
            () = crate::metrics::upkeep() => {}
            () = stop.cancelled() => {}
        }
    }))
}

/// The sync engine over the state's database, Entra ID and Graph clients.
pub fn syncer(state: &AppState) -> Syncer {
    let tokens = TokenSource::new(
        state.db.clone(),
        state.cfg.keys.clone(),
        state.settings.clone(),
    );
    Syncer::new(
        state.db.clone(),
        state.graph.clone(),
        tokens,
        RetryPolicy::default(),
    )
}

/// The future running `concurrency` sync workers (none at 0) until `stop`.
fn run_sync_workers(
    state: &AppState,
    concurrency: usize,
    stop: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let syncer = syncer(state);
    let cfg = WorkerConfig {
        lease: state.cfg.sync.lease,
        ..WorkerConfig::new(concurrency)
    };
    async move {
        if concurrency > 0 {
            tracing::info!(concurrency, "directory sync workers started");
            worker::run(syncer, cfg, stop).await;
        }
    }
}

/// Ctrl-C, or SIGTERM as sent by `docker stop` and process managers.
async fn shutdown_requested() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Deletes expired sessions every hour, so abandoned sign-ins (with their PKCE verifiers) do
/// not pile up.
pub async fn sweep_expired_sessions(db: PgPool) {
    let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every_hour.tick().await;
        match session_store::delete_expired(&db).await {
            Ok(deleted) => tracing::debug!(deleted, "expired sessions deleted"),
            Err(e) => tracing::warn!(error = %e, "deleting expired sessions failed"),
        }
    }
}
