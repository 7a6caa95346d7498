//! Session keys, lifetimes and the signed-in operator extractors.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tower_sessions::Session;
use uuid::Uuid;

use super::error::Error;
use crate::config::Config;
use crate::operators::{self, Operator, Role};
use crate::web::AppState;

/// The signed-in operator's id (never their role: that is read from the database per request).
pub const OPERATOR: &str = "operator_id";
/// The invitation this browser opened by token link.
pub const INVITATION: &str = "invitation_id";
/// The pending Microsoft round-trip (state, nonce, PKCE verifier), single use.
pub const PENDING_CONSENT: &str = "pending_consent";
/// An admin consent being confirmed while Entra ID finishes setting it up.
pub const CONFIRMING: &str = "confirming_consent";
/// The outcome the result page shows (after the callback or the customer-app form).
pub const RESULT: &str = "result";
/// A link, token or secret just made, shown once on the page the POST redirects to.
pub const REVEAL: &str = "reveal";
/// The link token of an operator invitation being used (moved out of the address at once).
pub const OPERATOR_INVITE: &str = "operator_invite";
/// The CSRF token of this session.
pub const CSRF: &str = "csrf_token";
/// The pending sign-in with Entra ID (state, nonce, PKCE verifier, tenant), single use.
pub const PENDING_SSO: &str = "pending_sso";
/// How the operator signed in with Entra ID ([`SsoSession`]); absent after a password sign-in.
pub const SSO: &str = "sso";

/// What a session signed in with Entra ID remembers: enough to sign out there too and to be
/// found by front-channel logout.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SsoSession {
    /// The provider's tenant they signed in to.
    pub tenant: crate::types::TenantId,
    /// Their object id there.
    pub oid: Uuid,
    /// Their Entra session (`sid`), which front-channel logout names.
    pub sid: Option<String>,
}

/// A signed-in operator's session ends after this long without a change.
pub const SIGNED_IN_IDLE: time::Duration = time::Duration::hours(8);
/// A session before sign-in (a token link just opened, a Microsoft round-trip under way) ends
/// sooner: long enough to register an app in customer-app mode, short enough not to pile up.
pub const PRE_LOGIN_IDLE: time::Duration = time::Duration::hours(1);

/// Any signed-in operator, as the database knows them now; others are sent to sign in.
#[derive(Debug, Clone)]
pub struct CurrentOperator(pub Operator);

impl FromRequestParts<AppState> for CurrentOperator {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, m)| Error::Internal(anyhow::anyhow!(m)))?;
        // A page asked for comes back after sign-in; a form post does not replay.
        let sign_in = || Error::SignInRequired {
            next: (parts.method == axum::http::Method::GET)
                .then(|| parts.uri.path_and_query().map(|p| p.as_str().to_owned()))
                .flatten(),
        };
        let Some(id) = session.get::<Uuid>(OPERATOR).await? else {
            return Err(sign_in());
        };
        // One lookup by primary key per request, so a removed operator is out and a demoted
        // one is a viewer at their very next request.
        match operators::get(&state.db, id).await? {
            Some(operator) => Ok(CurrentOperator(operator)),
            None => {
                session.flush().await?;
                Err(sign_in())
            }
        }
    }
}

/// A signed-in operator with the admin role; viewers get 403.
#[derive(Debug, Clone)]
pub struct AdminOperator(pub Operator);

impl FromRequestParts<AppState> for AdminOperator {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let CurrentOperator(operator) = CurrentOperator::from_request_parts(parts, state).await?;
        if operator.role != Role::Admin {
            return Err(Error::Forbidden(
                "Your role is viewer: ask an admin to do this.".into(),
            ));
        }
        Ok(AdminOperator(operator))
    }
}

/// The name of cookie `base`: `__Host-` prefixed when served over https, so it is Secure, set
/// for the whole host only and cannot be planted from a sibling domain.
pub fn cookie_name(cfg: &Config, base: &str) -> String {
    if cfg.secure_cookies() {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}
