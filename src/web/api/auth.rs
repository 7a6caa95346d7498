//! Who calls: a bearer API token, scoped read or write.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::problem::ApiError;
use crate::api_tokens::{self, Caller, Scope};
use crate::audit::Actor;
use crate::web::AppState;
use crate::web::client_addr::ClientAddr;

/// A caller allowed to read (any live token).
pub struct Reader;

/// A caller allowed to change things (a `write` token).
pub struct Writer(pub Caller);

impl Writer {
    /// The caller as the audit trail names it.
    pub fn actor(&self) -> Actor {
        Actor::ApiToken(self.0.name.clone())
    }
}

async fn caller(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
    let presented = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "Send an API token: Authorization: Bearer gw_… (an admin creates one in the console under API tokens)."
                    .into(),
            )
        })?;
    let addr = ClientAddr::from_request_parts(parts, state)
        .await
        .map(|c| c.ip().to_string())
        .unwrap_or_default();
    let caller = api_tokens::authenticate(&state.db, &presented, &addr).await?;
    state
        .limits
        .api_calls
        .check_key(caller.token_id)
        .map_err(ApiError::TooManyRequests)?;
    Ok(caller)
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        caller(parts, state).await?;
        Ok(Self)
    }
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = caller(parts, state).await?;
        if caller.scope < Scope::Write {
            return Err(ApiError::Forbidden(format!(
                "The token {} may only read: this needs a write token.",
                caller.name
            )));
        }
        Ok(Self(caller))
    }
}
