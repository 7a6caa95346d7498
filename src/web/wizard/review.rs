//! `GET /invitation` (the review page) and `POST /invitation/start` (leave for Microsoft).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use time::OffsetDateTime;
use tower_sessions::Session;

use super::link::{self, Closed};
use super::pages::{Chrome, CustomerAppForm, ReviewPage};
use super::{PendingConsent, session_invitation};
use crate::audit::{Action, Actor};
use crate::format;
use crate::invitations::{self, Invitation, InvitationError};
use crate::settings::profiles;
use crate::types::Branding;
use crate::types::ConsentMode;
use crate::types::Profile;
use crate::web::AppState;
use crate::web::client_addr::ClientAddr;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::{paths, session};

/// The middle step's name in customer-app mode.
pub const CUSTOMER_APP_STEP: &str = "Your app's details";

/// How `mode` works, for the admin.
pub fn mode_explained(mode: ConsentMode, provider: &Branding) -> String {
    match mode {
        ConsentMode::Delegated => format!(
            "You sign in with Microsoft as a Global Administrator and consent on behalf of your organisation. {provider} then \
             reads the directory with your delegated consent and keeps it current; you can revoke it at any time under \
             Enterprise applications in the Microsoft Entra admin center."
        ),
        ConsentMode::Application => format!(
            "You sign in with Microsoft as a Global Administrator and grant {provider}'s application read access for your \
             whole organisation (admin consent). No personal sign-in is kept; you can revoke the consent at any time under \
             Enterprise applications in the Microsoft Entra admin center."
        ),
        ConsentMode::CustomerApp => format!(
            "You register an application in your own tenant, give it read permissions, and hand its credentials to {provider} \
             below. You keep full control: delete the app or its secret to end the access."
        ),
    }
}

/// The invitation a wizard step works on, or the page that says why there is none.
pub enum SessionInvitation {
    /// Bound to this session and still usable.
    Usable(Invitation),
    /// None, gone, or closed: the page to show instead.
    Unusable(Response),
}

/// The invitation bound to this session, if it is still usable; otherwise the page to show.
pub async fn current_invitation(state: &AppState, session: &Session) -> Result<SessionInvitation> {
    let live = state.live().await?;
    let provider = &live.settings.branding;
    let Some(id) = session_invitation(session).await? else {
        return Ok(SessionInvitation::Unusable(
            link::no_invitation_page(provider).with_status(StatusCode::BAD_REQUEST),
        ));
    };
    let invitation = match invitations::get(&state.db, id).await {
        Ok(i) => i,
        Err(InvitationError::NotFound) => {
            session.remove::<uuid::Uuid>(session::INVITATION).await?;
            return Ok(SessionInvitation::Unusable(
                link::no_invitation_page(provider).with_status(StatusCode::BAD_REQUEST),
            ));
        }
        Err(e) => return Err(Error::Internal(e.into())),
    };
    if let Some(closed) = Closed::of(invitation.status) {
        return Ok(SessionInvitation::Unusable(
            link::closed_page(closed, Some(&invitation), provider).with_status(closed.status()),
        ));
    }
    Ok(SessionInvitation::Usable(invitation))
}

/// The permission profile `invitation` asks for.
pub async fn invitation_profile(state: &AppState, invitation: &Invitation) -> Result<Profile> {
    Ok(profiles::get(&state.db, invitation.permission_profile_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("invitation {} names a missing profile", invitation.id))?)
}

/// The review page for `invitation`, with the customer-app form state when in that mode and,
/// for a re-consent, why the customer is asked again.
pub fn review_page(
    provider: &Branding,
    profile: &Profile,
    invitation: &Invitation,
    why_again: Option<String>,
    csrf: String,
    form: Option<CustomerAppForm>,
) -> ReviewPage {
    let mode = invitation.consent_mode;
    let mut chrome = Chrome::new(provider, format!("{provider} asks for access"), 1);
    if mode == ConsentMode::CustomerApp {
        chrome.middle_step = CUSTOMER_APP_STEP;
        chrome.wide = true;
    }
    ReviewPage {
        chrome,
        csrf,
        customer_name: invitation.customer_name.clone(),
        admin_email: invitation.admin_email.clone(),
        mode_label: mode.label(),
        mode_explained: mode_explained(mode, provider),
        permissions: profile.for_mode(mode),
        permission_kind: if mode == ConsentMode::Delegated {
            "delegated"
        } else {
            "application"
        },
        tenant_domain: invitation.tenant_domain.clone(),
        why_again,
        scope: invitation
            .scope()
            .map(|s| s.told_to_customer(&provider.name)),
        expires: format::datetime(invitation.expires_at),
        expires_iso: format::iso(invitation.expires_at),
        last_error: invitation.customer_notice.clone(),
        attempts: invitation.attempts,
        start_path: paths::WIZARD_START,
        customer_app_path: paths::WIZARD_CUSTOMER_APP,
        customer_app: (mode == ConsentMode::CustomerApp).then(|| form.unwrap_or_default()),
        button_label: if mode == ConsentMode::Application {
            "Sign in with Microsoft to grant consent"
        } else {
            "Sign in with Microsoft"
        },
    }
}

/// The review page.
#[tracing::instrument(skip_all)]
pub async fn show(
    State(state): State<AppState>,
    session: Session,
    CsrfToken(csrf): CsrfToken,
) -> Result<Response> {
    let invitation = match current_invitation(&state, &session).await? {
        SessionInvitation::Usable(i) => i,
        SessionInvitation::Unusable(page) => return Ok(page),
    };
    let live = state.live().await?;
    let profile = invitation_profile(&state, &invitation).await?;
    let why_again = invitations::reconsent::why_asked_again(&state.db, &invitation).await?;
    Ok(review_page(
        &live.settings.branding,
        &profile,
        &invitation,
        why_again,
        csrf,
        None,
    )
    .into_response())
}

/// Leaves for Microsoft: delegated sign-in or admin consent, with a single-use pending record.
#[tracing::instrument(skip_all)]
pub async fn start(
    State(state): State<AppState>,
    client: ClientAddr,
    session: Session,
) -> Result<Response> {
    state.limits.consent_starts.check(client)?;
    let invitation = match current_invitation(&state, &session).await? {
        SessionInvitation::Usable(i) => i,
        SessionInvitation::Unusable(page) => return Ok(page),
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (url, pending) = match invitation.consent_mode {
        ConsentMode::Delegated => {
            let scopes = invitation_profile(&state, &invitation)
                .await?
                .delegated_scopes();
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let request = state
                .live()
                .await?
                .entra()?
                .delegated_request(&scopes, Some(&invitation.admin_email));
            let pending = PendingConsent {
                mode: ConsentMode::Delegated,
                state: request.state,
                nonce: Some(request.nonce),
                pkce_verifier: Some(request.pkce_verifier),
                authority: Some(request.authority),
                invitation_id: invitation.id,
                created_at: now,
                admin_consent: None,
            };
            (request.url, pending)
        }
        ConsentMode::Application => {
            let request = state.live().await?.entra()?.admin_consent_request();
            let pending = PendingConsent {
                mode: ConsentMode::Application,
                state: request.state,
                nonce: None,
                pkce_verifier: None,
                authority: None,
                invitation_id: invitation.id,
                created_at: now,
                admin_consent: None,
            };
            (request.url, pending)
        }
        ConsentMode::CustomerApp => {
            return Err(Error::BadRequest(
                "This invitation is completed with your own app's details, not a Microsoft sign-in. Go back to the form.".into(),
            ));
        }
    };
    // A new round-trip replaces any earlier one: only the latest state is accepted.
    session.insert(session::PENDING_CONSENT, &pending).await?;
    session.remove::<serde_json::Value>(session::RESULT).await?;
    session
        .remove::<serde_json::Value>(session::CONFIRMING)
        .await?;
    let who = Actor::LinkHolder(client.ip());
    invitations::touch(&state.db, invitation.id, &who, Action::ConsentStarted).await?;
    tracing::info!(invitation_id = %invitation.id, mode = invitation.consent_mode.as_str(), "leaving for Microsoft");
    Ok(Redirect::to(url.as_str()).into_response())
}
