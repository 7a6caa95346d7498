//! The customer's invitation wizard: the token link, the review page, the Microsoft round-trip
//! (delegated sign-in or admin consent), the OAuth2 callback and the customer-app form.
//!
//! Handlers stay thin: what a Microsoft answer means, which page a link state gets and how a
//! customer-app form is validated are plain functions in [`outcome`], [`link`] and
//! [`customer_app`], unit-tested there.

mod callback;
mod confirming;
mod customer_app;
mod link;
mod outcome;
mod pages;
mod result;
mod review;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::Session;

use super::error::Error;
use super::{paths, session};
use crate::audit::Actor;
use crate::crypto::constant_time_eq;
use crate::identity::SignedInAdmin;
use crate::onboarding::CodeRedemption;
use crate::types::TenantId;
use crate::types::{ConsentMode, InvitationId};
use crate::web::AppState;

/// Wizard routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::AUTHENTICATE, get(link::open))
        .route(paths::WIZARD, get(review::show))
        .route(paths::WIZARD_START, post(review::start))
        .route(paths::WIZARD_CUSTOMER_APP, post(customer_app::submit))
        .route(paths::WIZARD_RESULT, get(result::show))
        .route(paths::CALLBACK, get(callback::callback))
}

/// How long a Microsoft round-trip may take before its state is refused.
pub const PENDING_MAX_AGE: time::Duration = time::Duration::minutes(15);

/// A Microsoft round-trip in flight, kept in the session under [`session::PENDING_CONSENT`]
/// and removed by the first callback that presents (or fails to present) its state.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct PendingConsent {
    pub mode: ConsentMode,
    pub state: String,
    /// Delegated only: the nonce the ID token must carry.
    pub nonce: Option<String>,
    /// Delegated only: the PKCE verifier that redeems the code.
    pub pkce_verifier: Option<String>,
    /// Delegated only: the `{tenant}` path the sign-in went to, where its code is redeemed.
    #[serde(default)]
    pub authority: Option<String>,
    pub invitation_id: InvitationId,
    /// Unix seconds.
    pub created_at: i64,
    /// Application mode, second leg: the admin consent Microsoft answered, waiting for the
    /// administrator's sign-in that binds it to a person.
    #[serde(default)]
    pub admin_consent: Option<AdminConsented>,
}

/// An admin-consent answer not yet trusted: the tenant it named and the scopes it listed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AdminConsented {
    pub tenant: TenantId,
    pub scopes: Vec<String>,
    /// Whether the sign-in was sent with `prompt=none` (one interactive retry is left).
    pub silent: bool,
}

impl std::fmt::Debug for PendingConsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingConsent")
            .field("mode", &self.mode)
            .field("invitation_id", &self.invitation_id)
            .field("created_at", &self.created_at)
            .field("admin_consent", &self.admin_consent)
            .finish_non_exhaustive()
    }
}

/// Why a callback's `state` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateProblem {
    /// No round-trip is pending in this session: replayed, already used, or another browser.
    NothingPending,
    /// The presented state is missing or differs from the pending one.
    Mismatch,
    /// The pending round-trip is for another invitation than the session's.
    OtherInvitation,
    /// The round-trip took longer than [`PENDING_MAX_AGE`].
    Expired,
}

impl PendingConsent {
    /// Checks a callback's `state` against this pending round-trip (constant-time compare),
    /// the session's invitation and the clock.
    pub fn check(
        &self,
        presented: Option<&str>,
        session_invitation: Option<InvitationId>,
        now: OffsetDateTime,
    ) -> Result<(), StateProblem> {
        let Some(presented) = presented else {
            return Err(StateProblem::Mismatch);
        };
        if !constant_time_eq(presented.as_bytes(), self.state.as_bytes()) {
            return Err(StateProblem::Mismatch);
        }
        if session_invitation != Some(self.invitation_id) {
            return Err(StateProblem::OtherInvitation);
        }
        let age = now.unix_timestamp() - self.created_at;
        if !(0..=PENDING_MAX_AGE.whole_seconds()).contains(&age) {
            return Err(StateProblem::Expired);
        }
        Ok(())
    }

    /// What redeems `code` for this round-trip: where its sign-in went, its PKCE verifier and
    /// nonce.
    pub fn redemption<'a>(&'a self, code: &'a str) -> Result<CodeRedemption<'a>, Error> {
        match (
            self.authority.as_deref(),
            self.pkce_verifier.as_deref(),
            self.nonce.as_deref(),
        ) {
            (Some(authority), Some(pkce_verifier), Some(nonce)) => Ok(CodeRedemption {
                authority,
                code,
                pkce_verifier,
                nonce,
            }),
            _ => Err(Error::Internal(anyhow::anyhow!(
                "a code arrived for a round-trip without authority, verifier or nonce"
            ))),
        }
    }
}

/// The audit trail's name for someone Microsoft signed in.
fn verified_actor(admin: &SignedInAdmin) -> Actor {
    Actor::Customer {
        upn: admin.username.clone(),
        oid: admin.object_id,
    }
}

/// The invitation this browser opened, if any.
async fn session_invitation(session: &Session) -> Result<Option<InvitationId>, Error> {
    Ok(session.get::<InvitationId>(session::INVITATION).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn pending(created_at: i64) -> PendingConsent {
        PendingConsent {
            mode: ConsentMode::Delegated,
            state: "s3cr3t-state".into(),
            nonce: Some("n".into()),
            pkce_verifier: Some("v".into()),
            authority: Some("organizations".into()),
            invitation_id: Uuid::from_u128(7).into(),
            created_at,
            admin_consent: None,
        }
    }

    #[test]
    fn state_must_match_belong_to_the_invitation_and_be_fresh() {
        let now = OffsetDateTime::now_utc();
        let p = pending(now.unix_timestamp() - 60);
        let inv = Some(Uuid::from_u128(7).into());
        assert_eq!(p.check(Some("s3cr3t-state"), inv, now), Ok(()));
        assert_eq!(
            p.check(Some("s3cr3t-statf"), inv, now),
            Err(StateProblem::Mismatch)
        );
        assert_eq!(
            p.check(Some("s3cr3t"), inv, now),
            Err(StateProblem::Mismatch)
        );
        assert_eq!(p.check(None, inv, now), Err(StateProblem::Mismatch));
        assert_eq!(
            p.check(Some("s3cr3t-state"), Some(Uuid::from_u128(8).into()), now),
            Err(StateProblem::OtherInvitation)
        );
        assert_eq!(
            p.check(Some("s3cr3t-state"), None, now),
            Err(StateProblem::OtherInvitation)
        );
        let old = pending(now.unix_timestamp() - 16 * 60);
        assert_eq!(
            old.check(Some("s3cr3t-state"), inv, now),
            Err(StateProblem::Expired)
        );
    }

    #[test]
    fn pending_debug_hides_state_nonce_and_verifier() {
        let text = format!("{:?}", pending(0));
        assert!(!text.contains("s3cr3t"));
        assert!(!text.contains("pkce_verifier"));
    }
}
