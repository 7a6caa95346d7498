//! HTTP only: routes, thin handlers and views. Domain logic lives in the modules below `web`.

pub mod client_addr;
pub mod console;
pub mod csrf;
pub mod error;
pub mod input;
pub mod limits;
pub mod paths;
pub mod session;
pub mod session_store;
pub mod wizard;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::app::AppState;

/// Every route: the public wizard, the operator console, health and static assets.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(wizard::router())
        .merge(console::router())
        .route(paths::HEALTH, get(|| async { "ok" }))
        .route(paths::STATIC_CSS, get(css))
        .route(paths::STATIC_JS, get(js))
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
