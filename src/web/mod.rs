//! HTTP only: routes, thin handlers and views. Domain logic lives in the modules below `web`.

pub mod api;
pub mod client_addr;
pub mod console;
pub mod csrf;
pub mod error;
pub mod input;
pub mod limits;
pub mod notifications;
pub mod oidc;
pub mod ops;
pub mod paths;
mod server;
pub mod session;
pub mod session_store;
mod state;
pub mod wizard;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::config::Config;
pub use ops::MetricsServer;
pub use server::Application;
use session::{SIGNED_IN_IDLE, cookie_name};
use session_store::PgSessionStore;
pub use state::{AppState, http_client};

/// Every route: the public wizard, the operator console, probes, metrics (unless they have a
/// listener of their own) and static assets.
fn routes(cfg: &Config) -> Router<AppState> {
    let router = Router::new()
        .merge(wizard::router())
        .merge(console::router())
        .merge(oidc::router())
        .route(paths::HEALTH, get(ops::healthz))
        .route(paths::HEALTHZ, get(ops::healthz))
        .route(paths::READYZ, get(ops::readyz));
    let router = if cfg.metrics.listen.is_none() {
        router.route(paths::METRICS, get(ops::metrics_on_portal))
    } else {
        router
    };
    router
        .route(paths::STATIC_CSS, get(css))
        .route(paths::STATIC_JS, get(js))
        .fallback(not_found)
}

/// Unknown addresses: a page for browsers, JSON for clients that ask for it.
async fn not_found(headers: axum::http::HeaderMap) -> axum::response::Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("json") && !accept.contains("text/html"));
    if wants_json {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "detail": "There is nothing at this address.",
        });
        return (
            axum::http::StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response();
    }
    error::Error::NotFound.into_response()
}

/// Reads the settings again when they are older than their time to live, so that pages built
/// without waiting (the console's top bar) show another process's change within seconds.
async fn fresh_settings(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let live = match state.settings.current().await {
        Ok(live) => Some(live),
        Err(e) => {
            // The handlers that need the settings report it; this one only keeps them fresh.
            tracing::warn!(error = %e, "could not read the settings");
            None
        }
    };
    let response = next.run(request).await;
    match live {
        Some(live) => error::with_contact(response, &live.settings.branding.contact()),
        None => response,
    }
}

/// The whole portal: every route with sessions, CSRF, input checks, security headers and
/// request tracing.
pub fn app(state: AppState) -> Router {
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
    let mut router = routes(&state.cfg)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf::protect,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            fresh_settings,
        ))
        .layer(sessions)
        // The JSON API has no cookies, sessions or CSRF: its callers present tokens.
        .merge(api::router())
        // The OpenID Provider's machine endpoints: client credentials and tokens, no cookies.
        .merge(oidc::machine_router())
        // Graph's change notifications: no cookies, each notification carries its clientState.
        .merge(notifications::router())
        // Outside the sessions: refused input touches no session.
        .layer(axum::middleware::from_fn(input::reject_nul))
        .with_state(state);
    for (name, value) in headers {
        router = router.layer(SetResponseHeaderLayer::overriding(name, value));
    }
    router = router.layer(axum::middleware::map_response(
        move |mut response: Response| {
            let csp = csp.clone();
            async move {
                frame_policy(&mut response, csp);
                response
            }
        },
    ));
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
    // Outermost: the latency counted is the whole response's.
    .layer(axum::middleware::from_fn(ops::track))
}

/// Marks the one response Entra ID may frame (front-channel logout): it brings its own CSP,
/// whose `frame-ancestors` names the authority, and gets no `X-Frame-Options`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FramedByAuthority;

/// The portal's CSP and `X-Frame-Options: DENY` on every response, overriding whatever a
/// handler set, except on a response marked [`FramedByAuthority`].
fn frame_policy(response: &mut Response, csp: HeaderValue) {
    let framed = response.extensions().get::<FramedByAuthority>().is_some()
        && response
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .is_some();
    let headers = response.headers_mut();
    if framed {
        headers.remove(header::X_FRAME_OPTIONS);
        return;
    }
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// Forms post to ourselves and are then redirected to Microsoft; browsers apply `form-action`
/// to that redirect too, so the authority must be allowed.
fn content_security_policy(cfg: &Config) -> HeaderValue {
    let authority = cfg.authority.origin().ascii_serialization();
    HeaderValue::from_str(&format!(
        "default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self' {authority}"
    ))
    .expect("an origin is a valid header value")
}

// Assets are embedded so the binary runs from any directory; the version in the name lets them
// be cached for good.
async fn css() -> impl IntoResponse {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../static/gangway.css"),
    )
}

async fn js() -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/gangway.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
}
