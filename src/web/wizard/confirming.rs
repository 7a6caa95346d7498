//! The last step of an admin consent: the administrator has signed in, and Gangway confirms the
//! consent with a client-credentials token. Right after a consent Entra ID may not know the
//! new service principal yet (AADSTS700016, 65001), so the confirmation is tried again with
//! backoff for a bounded time while the admin sees a calm "finishing" page that looks again by
//! itself; only then is the real reason shown. Nothing secret is kept: each attempt asks Entra
//! ID for a new app token.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::Session;
use uuid::Uuid;

use super::callback::{Recorded, consented_by, record, refuse, refused};
use super::pages::Chrome;
use super::{link, result};
use crate::identity::SignedInAdmin;
use crate::invitations::Invitation;
use crate::onboarding;
use crate::types::{ConsentMode, InvitationId};
use crate::web::AppState;
use crate::web::client_addr::ClientAddr;
use crate::web::error::Result;
use crate::web::{paths, session};

/// The longest wait between two attempts.
const MAX_BACKOFF_SECS: i64 = 8;

/// An admin consent being confirmed, kept in the session under [`session::CONFIRMING`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Confirming {
    pub invitation_id: InvitationId,
    /// The verified administrator who consented.
    pub admin: SignedInAdmin,
    /// The scopes the admin-consent answer listed (shown if the token names none).
    pub scopes: Vec<String>,
    /// Unix seconds of the first attempt.
    pub since: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Unix seconds before which no attempt is made.
    pub next_at: i64,
}

impl Confirming {
    /// A confirmation not yet tried.
    pub fn new(invitation_id: InvitationId, admin: SignedInAdmin, scopes: Vec<String>) -> Self {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        Self {
            invitation_id,
            admin,
            scopes,
            since: now,
            attempts: 0,
            next_at: now,
        }
    }

    /// After a failed attempt at `now`: wait 1, 2, 4, 8, 8… seconds before the next.
    fn backed_off(mut self, now: i64) -> Self {
        self.attempts += 1;
        let wait = 1_i64 << self.attempts.saturating_sub(1).min(3);
        self.next_at = now + wait.min(MAX_BACKOFF_SECS);
        self
    }

    /// Whether the next attempt is due.
    pub fn due(&self) -> bool {
        OffsetDateTime::now_utc().unix_timestamp() >= self.next_at
    }
}

/// Where an attempt left the confirmation.
pub enum Step {
    /// Entra ID is not ready yet: show the finishing page, try again when due.
    Waiting(Confirming),
    /// Recorded or refused: send the browser on with this.
    Finished(Response),
}

/// Makes one attempt; once there is an outcome it is kept for the result page.
pub async fn attempt(
    state: &AppState,
    session: &Session,
    invitation: &Invitation,
    confirming: Confirming,
    client: ClientAddr,
) -> Result<Step> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let live = state.live().await?;
    let provider = live.settings.branding.clone();
    let outcome = onboarding::confirm_admin_consent(
        live.entra()?,
        &state.graph,
        &confirming.admin,
        confirming.scopes.clone(),
    )
    .await;
    let within = now - confirming.since < state.cfg.consent_propagation.as_secs() as i64;
    let consent = match outcome {
        Ok(consent) => consent,
        Err(r) if r.may_be_propagating() && within => {
            tracing::info!(
                attempts = confirming.attempts + 1,
                "consent not usable yet; trying again shortly"
            );
            let waiting = confirming.backed_off(now);
            session.insert(session::CONFIRMING, &waiting).await?;
            return Ok(Step::Waiting(waiting));
        }
        Err(r) => {
            session.remove::<Confirming>(session::CONFIRMING).await?;
            let refusal = refused(&r, ConsentMode::Application, &provider, client);
            return Ok(Step::Finished(
                refuse(state, session, invitation, refusal).await?,
            ));
        }
    };
    session.remove::<Confirming>(session::CONFIRMING).await?;
    let actor = consented_by(&consent, client);
    let response = match record(state, invitation, &consent, &actor).await? {
        Recorded::Connected(tenant_name) => {
            session.remove::<Uuid>(session::INVITATION).await?;
            tracing::info!(invitation_id = %invitation.id, "consent recorded");
            let done = link::done_page(&provider, &tenant_name, "Sign in with Microsoft");
            result::show_after_redirect(session, done, StatusCode::OK).await?
        }
        Recorded::Refused(refused) => refuse(state, session, invitation, (refused, actor)).await?,
    };
    Ok(Step::Finished(response))
}

/// The page shown while the consent is being confirmed; it looks again by itself after
/// `reload_after` seconds (and offers a link for browsers without script).
#[derive(Template, WebTemplate)]
#[template(path = "wizard/finishing.html")]
pub struct FinishingPage {
    pub chrome: Chrome,
    pub reload_after: i64,
    pub check_path: &'static str,
}

/// The finishing page for `confirming`.
pub fn finishing_page(provider: &crate::types::Branding, confirming: &Confirming) -> Response {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let page = FinishingPage {
        chrome: Chrome::new(provider, "Finishing the connection", 2),
        reload_after: (confirming.next_at - now).clamp(1, MAX_BACKOFF_SECS),
        check_path: paths::WIZARD_RESULT,
    };
    page.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_back_off_to_a_few_seconds_apart() {
        let admin = SignedInAdmin {
            tenant_id: crate::types::TenantId::parse("72f988bf-86f1-41af-91ab-2d7cd011db47")
                .unwrap(),
            object_id: Uuid::from_u128(1),
            username: "ada@contoso.com".into(),
            name: None,
            global_admin: crate::identity::RoleClaim::Holds,
        };
        let mut c = Confirming::new(Uuid::from_u128(7).into(), admin, Vec::new());
        let waits: Vec<i64> = (0..6)
            .map(|_| {
                c = c.clone().backed_off(100);
                c.next_at - 100
            })
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 8, 8]);
    }
}
