//! Who calls: a bearer API token (`gw_…`), scoped read or write, or an access token Entra ID
//! issued for the API the provider exposes on its own app registration.
//!
//! Entra-issued tokens: a user's (delegated, `scp` holding `Gangway.Manage`) gets the role its
//! groups and app roles map to in the operator sign-in settings — admin writes, viewer reads;
//! a daemon's (client credentials, `roles`) writes with the app role `Gangway.Write` and reads
//! with `Gangway.Read`.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use uuid::Uuid;

use super::problem::ApiError;
use crate::api_tokens::{self, Caller, Scope};
use crate::audit::Actor;
use crate::identity::{
    API_ROLE_READ, API_ROLE_WRITE, API_SCOPE, ApiIdentity, ApiTokenError, ApiTokenProblem,
};
use crate::operators::{Role, RoleMapping};
use crate::settings::Live;
use crate::web::AppState;
use crate::web::client_addr::ClientAddr;

/// A caller allowed to read (any live token).
pub struct Reader;

/// A caller allowed to change things (a `write` token, or an Entra caller mapped to write).
pub struct Writer(pub Caller, Origin);

/// Which kind of bearer a caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A Gangway API token (`gw_…`).
    ApiToken,
    /// An access token Entra ID issued; the caller's name is a UPN or an app id.
    Entra,
}

impl Writer {
    /// The caller as the audit trail names it.
    pub fn actor(&self) -> Actor {
        match self.1 {
            Origin::ApiToken => Actor::ApiToken(self.0.name.clone()),
            Origin::Entra => Actor::ApiUser {
                upn: self.0.name.clone(),
            },
        }
    }
}

/// Whether `token` has a JWT's shape: three dot-separated base64url parts.
fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The rate-limit key of an Entra caller: stable per tenant and object id, apart from token ids.
fn entra_key(who: &ApiIdentity) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("entra:{}:{}", who.tid, who.oid).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

async fn caller(parts: &mut Parts, state: &AppState) -> Result<(Caller, Origin), ApiError> {
    let presented = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "Send an API token: Authorization: Bearer gw_… (an admin creates one in the console under API tokens), or an access token Entra ID issued for this API."
                    .into(),
            )
        })?;
    let client = ClientAddr::from_request_parts(parts, state).await.ok();
    let checked = if !presented.starts_with("gw_") && looks_like_jwt(&presented) {
        entra_caller(state, &presented)
            .await
            .map(|c| (c, Origin::Entra))
    } else {
        let addr = client.map(|c| c.ip().to_string()).unwrap_or_default();
        api_tokens::authenticate(&state.db, &state.api_tokens, &presented, &addr)
            .await
            .map(|c| (c, Origin::ApiToken))
            .map_err(ApiError::from)
    };
    let (caller, origin) = match (checked, client) {
        // A client presenting tokens that let nobody in is slowed down per address; one that
        // works is never counted.
        (Err(refused @ ApiError::Unauthorized(_)), Some(client)) => {
            return Err(match state.limits.api_auth_failures.wait_secs(client) {
                Ok(()) => refused,
                Err(secs) => ApiError::TooManyRequests(secs),
            });
        }
        (checked, _) => checked?,
    };
    let per_second = match caller.calls_per_second {
        Some(own) => own,
        None => {
            state
                .live()
                .await
                .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?
                .settings
                .api_calls_per_second
        }
    };
    state
        .limits
        .api_calls
        .check_key(caller.token_id, per_second)
        .map_err(ApiError::TooManyRequests)?;
    Ok((caller, origin))
}

/// Verifies an Entra-issued access token and maps its caller to read or write.
async fn entra_caller(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let live = state
        .live()
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?;
    let Some(tenant) = live.settings.provider_tenant_id else {
        return Err(ApiError::Unauthorized(
            "Entra ID access tokens are accepted once your tenant ID (provider_tenant_id) is set in System Settings; until then send an API token (gw_…)."
                .into(),
        ));
    };
    let (Ok(entra), Ok(client_id)) = (live.entra(), live.client_id()) else {
        return Err(ApiError::Unauthorized(
            "Entra ID access tokens are accepted once Gangway's app registration is set up; until then send an API token (gw_…)."
                .into(),
        ));
    };
    let client_id = client_id.to_string();
    let who = match entra.verify_api_token(token, &tenant, &client_id).await {
        Ok(who) => who,
        Err(ApiTokenError::Invalid(ApiTokenProblem::MissingScope)) => {
            return Err(ApiError::Forbidden(format!(
                "The access token carries neither the scope {API_SCOPE} (api://{client_id}/{API_SCOPE}) nor an app role of this API."
            )));
        }
        Err(ApiTokenError::Invalid(problem)) => {
            tracing::info!(%problem, "Entra access token refused");
            return Err(ApiError::Unauthorized(format!(
                "The access token was refused: {problem}."
            )));
        }
        Err(ApiTokenError::Keys(e)) => {
            return Err(ApiError::Internal(
                anyhow::Error::new(e).context("fetching Entra ID signing keys"),
            ));
        }
    };
    let scope = entra_scope(&live, &who)?;
    Ok(Caller {
        token_id: entra_key(&who),
        name: who.name,
        scope,
        calls_per_second: None,
    })
}

/// Read or write for a verified Entra caller, or 403 saying why neither.
fn entra_scope(live: &Live, who: &ApiIdentity) -> Result<Scope, ApiError> {
    if !who.is_delegated() {
        return if who.roles.iter().any(|r| r == API_ROLE_WRITE) {
            Ok(Scope::Write)
        } else if who.roles.iter().any(|r| r == API_ROLE_READ) {
            Ok(Scope::Read)
        } else {
            Err(ApiError::Forbidden(format!(
                "The application {} holds none of this API's app roles {API_ROLE_READ} or {API_ROLE_WRITE}.",
                who.name
            )))
        };
    }
    let sso = &live.settings.sso;
    let mapping = RoleMapping {
        admin_groups: &sso.admin_groups,
        viewer_groups: &sso.viewer_groups,
        admin_roles: &sso.admin_roles,
        viewer_roles: &sso.viewer_roles,
    };
    match mapping.role_for(&who.groups, &who.roles) {
        Some(Role::Admin) => Ok(Scope::Write),
        Some(Role::Viewer) => Ok(Scope::Read),
        None if who.groups_overage => Err(ApiError::Forbidden(format!(
            "{} is in too many groups for the token to name them: map an app role they hold to admin or viewer in the sign-in settings.",
            who.name
        ))),
        None => Err(ApiError::Forbidden(format!(
            "None of {}'s groups or app roles is mapped to admin or viewer in the sign-in settings, so the API grants them nothing.",
            who.name
        ))),
    }
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
        let (caller, origin) = caller(parts, state).await?;
        if caller.scope < Scope::Write {
            return Err(ApiError::Forbidden(match origin {
                Origin::ApiToken => format!(
                    "The token {} may only read: this needs a write token.",
                    caller.name
                ),
                Origin::Entra => format!(
                    "{} may only read: this needs the admin mapping (a user) or the app role {API_ROLE_WRITE} (an application).",
                    caller.name
                ),
            }));
        }
        Ok(Self(caller, origin))
    }
}
