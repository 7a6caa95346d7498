//! Text no handler should ever see: a NUL byte in the query string or in a form. Postgres cannot
//! store one, so it would end as a 500 deep inside; it is refused here, at the edge, for every
//! route at once so no new form or filter can forget it.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::Error;

/// The largest form body accepted (the CSRF check reads the same body).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// Answers 400 to a request whose query or urlencoded form holds a NUL byte.
pub async fn reject_nul(request: Request, next: Next) -> Response {
    if request.uri().query().is_some_and(|q| has_nul(q.as_bytes())) {
        // The JSON API answers its own way: a problem, not a page.
        if request.uri().path().starts_with("/api/") {
            return crate::web::api::ApiError::BadRequest(
                "A query parameter contains a NUL byte.".into(),
            )
            .into_response();
        }
        return refused();
    }
    let is_form = request.method() == Method::POST
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return Error::BadRequest("This form is too large.".into()).into_response();
    };
    if has_nul(&bytes) {
        return refused();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Whether any decoded name or value of `urlencoded` contains a NUL character.
fn has_nul(urlencoded: &[u8]) -> bool {
    url::form_urlencoded::parse(urlencoded).any(|(k, v)| k.contains('\0') || v.contains('\0'))
}

fn refused() -> Response {
    tracing::info!("request with a NUL byte refused");
    Error::BadRequest(
        "The request contains a character that is not allowed (a NUL byte). Remove it and try again."
            .into(),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::has_nul;

    #[test]
    fn nul_bytes_are_found_however_they_are_encoded() {
        assert!(has_nul(b"q=%00"));
        assert!(has_nul(b"a=1&email=ops%00%40example.com"));
        assert!(has_nul(b"%00=x"));
        assert!(!has_nul(b"q=contoso&page=2"));
        assert!(!has_nul(b"q=%2500"), "an encoded percent sign is just text");
    }
}
