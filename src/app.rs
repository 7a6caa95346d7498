//! Application state, router assembly and middleware; `Application` runs the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::FromRef;
use axum::http::{HeaderName, HeaderValue, header};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::config::Config;
use crate::graph::GraphClient;
use crate::identity::{EntraClient, EntraConfig};
use crate::invitations;
use crate::web;
use crate::web::limits::Limits;
use crate::web::session::{SIGNED_IN_IDLE, cookie_name};
use crate::web::session_store::{self, PgSessionStore};

/// What handlers share. Cheap to clone.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: PgPool,
    pub cfg: Arc<Config>,
    pub entra: EntraClient,
    pub graph: GraphClient,
    pub limits: Arc<Limits>,
}

impl AppState {
    /// State for `cfg` over `db`.
    pub fn new(cfg: Config, db: PgPool) -> anyhow::Result<Self> {
        let http = http_client(&cfg)?;
        let entra = EntraClient::new(
            EntraConfig {
                authority: cfg.authority.clone(),
                graph_url: cfg.graph_url.clone(),
                client_id: cfg.client_id.clone(),
                client_secret: cfg.client_secret.clone(),
                redirect_uri: cfg.redirect_uri(),
            },
            http.clone(),
        );
        let graph = GraphClient::new(cfg.graph_url.clone(), http);
        Ok(Self {
            db,
            entra,
            graph,
            limits: Arc::new(Limits::new(&cfg)),
            cfg: Arc::new(cfg),
        })
    }

    /// What invitation links and mail need.
    pub fn invitation_context(&self) -> invitations::Context<'_> {
        invitations::Context {
            public_url: &self.cfg.public_url,
            provider_name: &self.cfg.provider_name,
            keys: &self.cfg.keys,
        }
    }
}

/// The HTTP client for Entra ID and Graph: it follows no redirects (no SSRF through a
/// redirecting endpoint) and trusts an extra CA when one is configured.
pub fn http_client(cfg: &Config) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("Gangway/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &cfg.extra_ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem)
            .context("GANGWAY_EXTRA_CA_FILE holds no PEM certificate")?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}

/// The full router with sessions, CSRF, security headers and tracing.
pub fn router(state: AppState) -> Router {
    let store = PgSessionStore::new(state.db.clone(), state.cfg.keys.clone());
    // Lax, not Strict: the admin comes back from Microsoft by a top-level redirect, which must
    // carry the session cookie. Path `/` and no Domain, as the `__Host-` prefix requires; the
    // store shortens the lifetime of sessions nobody signed in to.
    let sessions = SessionManagerLayer::new(store)
        .with_name(cookie_name(&state.cfg, "gangway_session"))
        .with_secure(state.cfg.secure_cookies())
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(SIGNED_IN_IDLE));
    let csp = content_security_policy(&state.cfg);
    let request_id = HeaderName::from_static("x-request-id");
    let mut headers = vec![
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    if state.cfg.secure_cookies() {
        headers.push((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    let mut router = web::router()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            web::csrf::protect,
        ))
        .layer(sessions)
        // Outside the sessions: refused input touches no session.
        .layer(axum::middleware::from_fn(web::input::reject_nul))
        .with_state(state);
    for (name, value) in headers {
        router = router.layer(SetResponseHeaderLayer::overriding(name, value));
    }
    // Pages hold invitation details, links and form tokens: never cached, unless a response
    // says otherwise (the versioned static assets do).
    router = router.layer(SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ));
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::extract::Request| {
                // The path only: query strings may carry tokens or codes.
                let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }))
            .layer(PropagateRequestIdLayer::new(request_id)),
    )
}

/// Forms post to ourselves and are then redirected to Microsoft; browsers apply `form-action`
/// to that redirect too, so the authority must be allowed.
fn content_security_policy(cfg: &Config) -> HeaderValue {
    let authority = cfg.authority.origin().ascii_serialization();
    HeaderValue::from_str(&format!(
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self' {authority}"
    ))
    .expect("an origin is a valid header value")
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

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Connects to the database, migrates it and binds `cfg.listen`.
    pub async fn build(cfg: Config) -> anyhow::Result<Self> {
        let db = crate::db::connect(&cfg.database_url)
            .await
            .context("cannot connect to DATABASE_URL")?;
        crate::db::migrate(&db)
            .await
            .context("migrating the database failed")?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        Self::with_listener(cfg, db, listener)
    }

    /// Builds on an already-bound listener and migrated pool (tests bind port 0 first).
    pub fn with_listener(cfg: Config, db: PgPool, listener: TcpListener) -> anyhow::Result<Self> {
        let state = AppState::new(cfg, db)?;
        Ok(Self {
            router: router(state.clone()),
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
