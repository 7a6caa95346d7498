//! A bound, ready-to-run portal server.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;

use super::state::AppState;
use crate::config::Config;

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Connects to the database, migrates it and binds `cfg.listen`.
    pub async fn build(cfg: Config) -> anyhow::Result<Self> {
        let db = crate::db::connect(&cfg.database_url, cfg.pool_size(cfg.sync.workers))
            .await
            .context("cannot connect to DATABASE_URL")?;
        crate::db::migrate(&db)
            .await
            .context("migrating the database failed")?;
        crate::settings::prepare(&db, &cfg.keys, &cfg.settings_seed())
            .await
            .context("preparing the stored settings failed")?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        Self::with_listener(cfg, db, listener)
    }

    /// Builds on an already-bound listener and migrated pool (tests bind port 0 first).
    pub fn with_listener(cfg: Config, db: PgPool, listener: TcpListener) -> anyhow::Result<Self> {
        let state = AppState::new(cfg, db)?;
        Ok(Self {
            router: super::app(state.clone()),
            listener,
            state,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// The shared state (for the mail worker).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the task is dropped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}
