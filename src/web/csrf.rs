//! CSRF protection for every form: one random token per session, required on every POST.
//!
//! A middleware rather than a per-handler extractor, so a new form cannot forget it.

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use super::error::{Error, ErrorPage};
use super::session::CSRF;
use crate::crypto::{constant_time_eq, random_token};

/// The form field every POST carries.
pub const FIELD: &str = "csrf_token";
const MAX_FORM_BYTES: usize = 64 * 1024;

/// This session's CSRF token, created on first use; templates put it in a hidden field.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, m)| Error::Internal(anyhow::anyhow!(m)))?;
        token(&session).await.map(CsrfToken)
    }
}

async fn token(session: &Session) -> Result<String, Error> {
    if let Some(existing) = session
        .get::<String>(CSRF)
        .await
        .map_err(|e| Error::Internal(e.into()))?
    {
        return Ok(existing);
    }
    let fresh = random_token();
    session
        .insert(CSRF, &fresh)
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    Ok(fresh)
}

/// Rejects any POST whose form lacks this session's token, with 403.
pub async fn protect(session: Session, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
    };
    let presented = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v.into_owned());
    let expected: Option<String> = session.get(CSRF).await.ok().flatten();
    let valid = matches!((&presented, &expected), (Some(p), Some(e)) if constant_time_eq(p.as_bytes(), e.as_bytes()));
    if !valid {
        let page = ErrorPage {
            title: "This form has expired".into(),
            message: "The page was open too long or came from elsewhere. Go back, reload the page and try again."
                .into(),
            reference: None,
        };
        return (StatusCode::FORBIDDEN, page).into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
