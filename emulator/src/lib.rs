//! Entra ID + Microsoft Graph emulator: a real HTTP server on loopback that answers, multi-tenant,
//! what Gangway uses of login.microsoftonline.com and graph.microsoft.com.
//!
//! Login endpoints live under `/{tenant}/…`, Graph under `/v1.0/…` and the test-only admin API
//! under `/_emulator/…`, all on one port.

mod apps;
mod certificates;
pub mod client;
mod control;
mod directory;
mod graph;
mod login;
mod options;
mod rng;
mod scopes;
mod state;
mod tls;

use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context;
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use client::{EmulatedLogin, EmulatedTenant, EmulatorAdmin, RegisteredApp};
pub use options::Options;
use state::AppState;

/// A running emulator; the server stops when this is dropped or [`Emulator::shutdown`] is awaited.
pub struct Emulator {
    base_url: String,
    ca_pem: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Delivers change notifications; aborted with the server.
    notifier: JoinHandle<()>,
}

impl Emulator {
    /// Seeds the directory, binds `opts.listen` and serves on a spawned tokio task.
    pub async fn start(opts: Options) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(opts.listen)
            .with_context(|| format!("binding {}", opts.listen))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let host = match addr.ip() {
            _ if opts.tls => "localhost".to_string(),
            ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST).to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let scheme = if opts.tls { "https" } else { "http" };
        let base_url = format!("{scheme}://{host}:{}", addr.port());

        let state = AppState::new(&opts, base_url.clone()).await?;
        tracing::warn!(
            "the admin API under {base_url}/_emulator/ is for tests and demos only: it hands out passwords and changes the directory without authentication"
        );
        let notifier = tokio::spawn(graph::subscriptions::notify(state.clone()));
        let app = router(state);
        let (stop, stopped) = oneshot::channel::<()>();

        let (task, ca_pem) = if opts.tls {
            let certs = tls::generate()?;
            if let Some(path) = &opts.ca_out {
                std::fs::write(path, &certs.ca_pem)
                    .with_context(|| format!("writing CA certificate to {}", path.display()))?;
                tracing::info!(path = %path.display(), "wrote CA certificate");
            }
            let task = tls::serve(listener, &certs, app, stopped).await?;
            (task, Some(certs.ca_pem))
        } else {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let task = tokio::spawn(async move {
                let server =
                    axum::serve(listener, app.into_make_service()).with_graceful_shutdown(async {
                        let _ = stopped.await;
                    });
                if let Err(err) = server.await {
                    tracing::error!(%err, "emulator server failed");
                }
            });
            (task, None)
        };
        tracing::info!(%base_url, "entra emulator listening");
        Ok(Self {
            base_url,
            ca_pem,
            stop: Some(stop),
            task: Some(task),
            notifier,
        })
    }

    /// Base URL of both the authority and Graph, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// PEM of the CA that signed the server certificate, when TLS is on.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        self.notifier.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.notifier.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // Graceful shutdown would wait for idle keep-alive connections; a dropped emulator must end now.
            task.abort();
        }
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .merge(login::router())
        .merge(graph::router(&state))
        .merge(control::router())
        .merge(graph::subscriptions::admin_router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            control::faults::inject,
        ))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// Logs method, path and status at debug level; query strings and bodies may carry codes and
/// secrets, so they are never logged.
async fn log_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}
