//! CSRF protection for every form: a random token, required on every POST.
//!
//! A middleware rather than a per-handler extractor, so a new form cannot forget it. A browser
//! with a session keeps its token in the session (sealed with the rest). A browser without one
//! (a visitor on the sign-in page) gets the token in a cookie of its own instead, which the form
//! field must match (double submit): showing a form stores nothing. Signing in puts a fresh
//! token in the new session and drops that cookie.

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_cookies::{Cookie, Cookies};
use tower_sessions::Session;
use tower_sessions::cookie::SameSite;

use super::error::{Error, ErrorPage};
use super::session::CSRF;
use crate::crypto::{constant_time_eq, random_token};
use crate::web::AppState;

/// The form field every POST carries.
pub const FIELD: &str = "csrf_token";
/// The cookie holding the token of a browser that has no session yet.
pub const COOKIE: &str = "gangway_csrf";

/// This browser's CSRF token, created on first use; templates put it in a hidden field.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

impl FromRequestParts<AppState> for CsrfToken {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, m)| Error::Internal(anyhow::anyhow!(m)))?;
        let cookies = Cookies::from_request_parts(parts, state)
            .await
            .map_err(|(_, m)| Error::Internal(anyhow::anyhow!(m)))?;
        if let Some(token) = session.get::<String>(CSRF).await? {
            return Ok(CsrfToken(token));
        }
        let fresh = random_token();
        if session.is_empty().await {
            let name = cookie_name(state);
            if let Some(existing) = cookies.get(&name).filter(|c| is_token(c.value())) {
                return Ok(CsrfToken(existing.value().to_owned()));
            }
            cookies.add(
                Cookie::build((name, fresh.clone()))
                    .path("/")
                    .http_only(true)
                    .secure(state.cfg.secure_cookies())
                    // Only our own pages post the sign-in form.
                    .same_site(SameSite::Strict)
                    .build(),
            );
        } else {
            session.insert(CSRF, &fresh).await?;
        }
        Ok(CsrfToken(fresh))
    }
}

/// At sign-in: a fresh token in the (new) session, and the pre-session cookie dropped, so no
/// token seen before signing in works after.
pub async fn rotate(state: &AppState, session: &Session, cookies: &Cookies) -> Result<(), Error> {
    session.insert(CSRF, random_token()).await?;
    cookies.remove(Cookie::build(cookie_name(state)).path("/").build());
    Ok(())
}

/// Rejects any POST whose form lacks this browser's token, with 403.
pub async fn protect(
    State(state): State<AppState>,
    session: Session,
    cookies: Cookies,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, super::input::MAX_FORM_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
    };
    let presented = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v.into_owned());
    let expected = match session.get::<String>(CSRF).await {
        Ok(Some(token)) => Some(token),
        // Only a browser without a session may use the cookie's token.
        Ok(None) if session.is_empty().await => cookies
            .get(&cookie_name(&state))
            .map(|c| c.value().to_owned()),
        _ => None,
    };
    let valid = matches!((&presented, &expected), (Some(p), Some(e)) if is_token(e) && constant_time_eq(p.as_bytes(), e.as_bytes()));
    if !valid {
        return ErrorPage::new(
            "This form has expired",
            "The page was open too long or came from elsewhere. Go back, reload the page and try again.",
        )
        .respond(StatusCode::FORBIDDEN);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn cookie_name(state: &AppState) -> String {
    super::session::cookie_name(&state.cfg, COOKIE)
}

/// What [`random_token`] makes: 43 base64url characters.
fn is_token(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
