//! What a process runs and how it stops: the portal with its background tasks (mail delivery,
//! session sweeping, rate-limit pruning) under one `select!`, ended by Ctrl-C or SIGTERM with
//! the requests in flight finished. `gangway serve` and `gangway demo` both run through here.

use std::time::Duration;

use sqlx::PgPool;

use crate::config::Config;
use crate::invitations::mail;
use crate::web::{Application, limits, session_store};

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
    tokio::select! {
        result = application.run_until(shutdown_requested()) => {
            result?;
            tracing::info!("stopped; requests in flight were finished");
        }
        () = worker => tracing::error!("mail worker stopped"),
        () = sweep_expired_sessions(state.db.clone()) => tracing::error!("session sweeper stopped"),
        () = limits::prune_idle_clients(state.limits.clone()) => tracing::error!("rate-limit pruner stopped"),
    }
    Ok(())
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
