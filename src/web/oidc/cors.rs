//! CORS for single-page applications, which call the machine endpoints from the browser.
//! Discovery, the JWKS and userinfo answer any origin: public documents, or a bearer token and
//! never a cookie. The token and revocation endpoints answer only the origins of single-page
//! applications' registered redirect URIs: no other page needs to redeem codes from a browser.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::signin::applications;
use crate::web::AppState;

/// How long a browser may remember a preflight's answer.
const MAX_AGE: &str = "600";

/// Lets any origin read `response`.
pub(super) fn open(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// A preflight's answer allowing `origin` (`*` for any) to send `methods` with `Authorization`
/// and a form body.
fn preflight(origin: HeaderValue, methods: &'static str) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// `OPTIONS` on discovery, the JWKS and userinfo.
pub(super) async fn open_preflight() -> Response {
    preflight(HeaderValue::from_static("*"), "GET, POST")
}

/// The request's `Origin` when it is the origin of a single-page application's registered
/// redirect URI.
async fn spa_origin(state: &AppState, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let registered = applications::spa_origins(&state.db)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "could not read the applications' origins"))
        .ok()?;
    let wanted = origin.to_str().ok()?;
    registered
        .iter()
        .any(|o| o == wanted)
        .then(|| origin.clone())
}

/// `OPTIONS` on the token and revocation endpoints: 204 allowing a single-page application's
/// origin, 403 for any other.
pub(super) async fn spa_preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match spa_origin(&state, &headers).await {
        Some(origin) => preflight(origin, "POST"),
        None => StatusCode::FORBIDDEN.into_response(),
    }
}

/// Lets a single-page application's origin read `response` (others get no CORS headers, so
/// their browsers keep it from them).
pub(super) async fn for_spa(
    state: &AppState,
    headers: &HeaderMap,
    mut response: Response,
) -> Response {
    if let Some(origin) = spa_origin(state, headers).await {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}
