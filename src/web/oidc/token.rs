//! The token endpoint (authorization code, refresh token), userinfo and RFC 7009 revocation.
//! Errors are OAuth's JSON (`error`, `error_description`), never pages.

use axum::Form;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

use super::cors;
use crate::signin::assertions;
use crate::signin::grants::{self, Issued, TokenError};
use crate::signin::provider::{self, Issue};
use crate::signin::{
    ACCESS_TOKEN_LIFETIME, Application, SigninError, applications, claims, sessions,
};
use crate::web::AppState;
use crate::web::client_addr::ClientAddr;

/// An OAuth error answer.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    no_store(&mut response);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"gangway\""),
        );
    }
    response
}

/// A refused token or revocation request as answered to `client`: once the client's refusals
/// exceed [`crate::web::limits::API_AUTH_FAILURE_RATE`], 429 with `Retry-After` instead (a
/// request that succeeds is never counted), as refused API tokens are.
fn counted(state: &AppState, client: ClientAddr, refused: Response) -> Response {
    match state.limits.token_failures.wait_secs(client) {
        Ok(()) => refused,
        Err(secs) => {
            let mut response = oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_request",
                &format!("Too many refused requests from this address; try again in {secs} s."),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            response
        }
    }
}

fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn internal(e: SigninError) -> Response {
    tracing::error!(error = %e, "the token endpoint failed");
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "Gangway could not answer; try again.",
    )
}

/// The form of a token or revocation request.
#[derive(Deserialize, Default)]
pub(super) struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// The client's id and secret: HTTP Basic (form-urlencoded inside, RFC 6749 §2.3.1) or the
/// form's `client_id`/`client_secret`. `None` when they are missing, garbled or sent twice.
fn client_credentials(headers: &HeaderMap, form: &TokenForm) -> Option<(String, Option<String>)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    match basic {
        Some(encoded) => {
            if form.client_secret.is_some() {
                return None;
            }
            let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
            let (id, secret) = decoded.split_once(':')?;
            let unescape = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            let id = unescape(id)?;
            if form.client_id.as_deref().is_some_and(|c| c != id) {
                return None;
            }
            Some((id, Some(unescape(secret)?)))
        }
        None => Some((form.client_id.clone()?, form.client_secret.clone())),
    }
}

/// The client of a request authenticated by a JWT assertion (`private_key_jwt`): the only
/// credential sent, addressed to this endpoint or the issuer, of the `client_id` given if any.
async fn by_assertion(
    state: &AppState,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<Option<Application>, SigninError> {
    let assertion = match (&form.client_assertion_type, &form.client_assertion) {
        (Some(kind), Some(assertion)) if kind == assertions::ASSERTION_TYPE => assertion,
        _ => return Ok(None),
    };
    if assertion.len() > 8_000
        || form.client_secret.is_some()
        || headers.contains_key(header::AUTHORIZATION)
    {
        return Ok(None);
    }
    let ends = super::endpoints(&state.cfg);
    let audiences = [
        ends.token.as_str(),
        ends.revocation.as_str(),
        ends.issuer.as_str(),
    ];
    let app = assertions::authenticate(&state.db, assertion, &audiences).await?;
    Ok(app.filter(|a| form.client_id.as_ref().is_none_or(|c| *c == a.client_id)))
}

/// Authenticates the client of a request, or answers `invalid_client`.
async fn client(
    state: &AppState,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<Application, Response> {
    let unauthorized = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client is unknown or its credentials are wrong.",
        )
    };
    if form.client_assertion_type.is_some() || form.client_assertion.is_some() {
        return match by_assertion(state, headers, form).await {
            Ok(Some(app)) => Ok(app),
            Ok(None) => Err(unauthorized()),
            Err(e) => Err(internal(e)),
        };
    }
    let Some((id, secret)) = client_credentials(headers, form) else {
        return Err(unauthorized());
    };
    match applications::authenticate(&state.db, &id, secret.as_deref()).await {
        Ok(Some(app)) => Ok(app),
        Ok(None) => {
            tracing::info!(client_id = ?crate::types::Untrusted(&id), "client authentication failed");
            Err(unauthorized())
        }
        Err(e) => Err(internal(e)),
    }
}

/// `POST /oidc/token`.
pub(super) async fn token(
    State(state): State<AppState>,
    caller: ClientAddr,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let response = grant(&state, caller, &headers, &form).await;
    cors::for_spa(&state, &headers, response).await
}

/// The token endpoint's answer to `form`.
async fn grant(
    state: &AppState,
    caller: ClientAddr,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Response {
    let app = match client(state, headers, form).await {
        Ok(app) => app,
        Err(refused) => return counted(state, caller, refused),
    };
    let issued = match form.grant_type.as_deref() {
        Some("authorization_code") => {
            let Some(code) = form.code.as_deref() else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code is missing",
                );
            };
            grants::redeem_code(
                &state.db,
                &app,
                code,
                form.redirect_uri.as_deref(),
                form.code_verifier.as_deref(),
            )
            .await
        }
        Some("refresh_token") => {
            let Some(token) = form.refresh_token.as_deref() else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is missing",
                );
            };
            grants::refresh(&state.db, &app, token).await
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Only authorization_code and refresh_token are supported.",
            );
        }
    };
    match issued {
        Ok(issued) => match respond(state, &app, issued).await {
            Ok(response) => response,
            Err(e) => internal(e),
        },
        Err(TokenError::InvalidGrant(why)) => {
            tracing::info!(application = %app.client_id, why, "token request refused");
            counted(
                state,
                caller,
                oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why),
            )
        }
        Err(TokenError::Internal(e)) => internal(e),
    }
}

/// The token response for tokens just issued.
async fn respond(
    state: &AppState,
    app: &Application,
    issued: Issued,
) -> Result<Response, SigninError> {
    let session = sessions::get(&state.db, issued.session_id)
        .await?
        .ok_or_else(|| SigninError::Key("the session vanished".into()))?;
    let user = claims::for_session(&state.db, app, &session).await?;
    let keys = crate::signin::keys::load(&state.db, &state.cfg.keys).await?;
    let issuer = super::issuer(&state.cfg);
    let body = provider::token_response(
        &keys,
        &Issue {
            issuer: &issuer,
            client_id: &app.client_id,
            user: &user,
            scopes: &issued.scopes,
            nonce: issued.nonce.as_deref(),
            access_token: &issued.access_token,
            refresh_token: issued.refresh_token.as_deref(),
            lifetime: ACCESS_TOKEN_LIFETIME,
        },
    )?;
    let mut response = Json(body).into_response();
    no_store(&mut response);
    Ok(response)
}

/// The bearer token of a request: the `Authorization` header, or a form's `access_token`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// `GET|POST /oidc/userinfo` with a bearer access token.
pub(super) async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    cors::open(claims_of(&state, &headers).await)
}

/// Userinfo's answer to a request with `headers`.
async fn claims_of(state: &AppState, headers: &HeaderMap) -> Response {
    let invalid = || {
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        response
    };
    let Some(token) = bearer(headers) else {
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    let answer = async {
        let Some(grant) = grants::access(&state.db, token).await? else {
            return Ok(None);
        };
        let Some(app) = applications::by_id(&state.db, grant.application_id).await? else {
            return Ok(None);
        };
        let Some(session) = sessions::get(&state.db, grant.session_id).await? else {
            return Ok(None);
        };
        let user = claims::for_session(&state.db, &app, &session).await?;
        Ok::<_, SigninError>(Some(provider::userinfo(&user, &grant.scopes)))
    };
    match answer.await {
        Ok(Some(claims)) => {
            let mut response = Json(claims).into_response();
            no_store(&mut response);
            response
        }
        Ok(None) => invalid(),
        Err(e) => internal(e),
    }
}

/// `POST /oidc/revoke` (RFC 7009): 200 whether or not the token was known.
pub(super) async fn revoke(
    State(state): State<AppState>,
    caller: ClientAddr,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let answer = async {
        let app = match client(&state, &headers, &form).await {
            Ok(app) => app,
            Err(refused) => return counted(&state, caller, refused),
        };
        let Some(token) = form.token.as_deref() else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "token is missing",
            );
        };
        match grants::revoke(&state.db, &app, token).await {
            Ok(()) => StatusCode::OK.into_response(),
            Err(e) => internal(e),
        }
    };
    let response = answer.await;
    cors::for_spa(&state, &headers, response).await
}
