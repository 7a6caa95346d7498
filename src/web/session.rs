//! Session keys and the signed-in operator extractors.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tower_sessions::Session;

use super::error::Error;
use crate::operators::{Operator, Role};

/// The signed-in operator.
pub const OPERATOR: &str = "operator";
/// The invitation this browser opened by token link.
pub const INVITATION: &str = "invitation_id";
/// The pending Microsoft round-trip (state, nonce, PKCE verifier), single use.
pub const PENDING_CONSENT: &str = "pending_consent";
/// The CSRF token of this session.
pub const CSRF: &str = "csrf_token";

/// Any signed-in operator; others are sent to sign in.
#[derive(Debug, Clone)]
pub struct CurrentOperator(pub Operator);

impl<S: Send + Sync> FromRequestParts<S> for CurrentOperator {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, m)| Error::Internal(anyhow::anyhow!(m)))?;
        let operator: Option<Operator> = session
            .get(OPERATOR)
            .await
            .map_err(|e| Error::Internal(e.into()))?;
        operator.map(CurrentOperator).ok_or(Error::SignInRequired)
    }
}

/// A signed-in operator with the admin role; viewers get 403.
#[derive(Debug, Clone)]
pub struct AdminOperator(pub Operator);

impl<S: Send + Sync> FromRequestParts<S> for AdminOperator {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CurrentOperator(operator) = CurrentOperator::from_request_parts(parts, state).await?;
        if operator.role != Role::Admin {
            return Err(Error::Forbidden(
                "Your role is viewer: ask an admin to do this.".into(),
            ));
        }
        Ok(AdminOperator(operator))
    }
}
