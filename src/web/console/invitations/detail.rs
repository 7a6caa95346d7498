//! One invitation: its facts, mail delivery, timeline, what stands in the way of a refused
//! consent, and the Resend and Revoke actions.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use super::{Badge, link};
use crate::audit::{self, Actor};
use crate::invitations::{self, Invitation, InvitationStatus, Setback, mail};
use crate::tenants::{self, TenantStatus};
use crate::types::InvitationId;
use crate::web::AppState;
use crate::web::console::list::link as query_link;
use crate::web::console::{Chrome, EventRow, Section, When, parse_id};
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::paths;
use crate::web::session::{AdminOperator, CurrentOperator};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::INVITATION, get(detail))
        .route(paths::RESEND_INVITATION, post(resend))
        .route(paths::REVOKE_INVITATION, post(revoke))
}

#[derive(Deserialize, Default)]
struct DetailQuery {
    done: Option<String>,
}

struct Delivery {
    sent: Option<String>,
    attempts: i32,
    last_error: Option<String>,
    next_try: When,
}

/// The tenant another customer already connected, which refused this invitation's consent.
struct Conflict {
    tenant: String,
    tenant_url: String,
    owner: String,
    owner_url: String,
    offboard_url: String,
    /// A new invitation for the owning customer, filled in from this one.
    invite_owner_url: String,
}

/// The last decline or failure, kept when the link is opened again.
struct LastSetback {
    class: &'static str,
    label: &'static str,
    at: When,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/invitation.html")]
struct DetailPage {
    chrome: Chrome,
    id: InvitationId,
    customer: String,
    customer_url: String,
    email: String,
    mode: &'static str,
    domain: Option<String>,
    /// What the tenant will be synced of, as the operator chose it.
    scope: String,
    badge: Badge,
    created: When,
    /// Only while the link can be used (or has just expired): a used link has no expiry.
    expires: Option<When>,
    activity: When,
    attempts: String,
    last_outcome: Option<LastSetback>,
    last_error: Option<String>,
    tenant_url: Option<String>,
    conflict: Option<Conflict>,
    delivery: Option<Delivery>,
    /// What became of the mail, said once the link can no longer be used.
    mail_note: Option<&'static str>,
    mail_configured: bool,
    timeline: Vec<EventRow>,
    notice: Option<&'static str>,
    can_resend: bool,
    can_revoke: bool,
    resend_url: String,
    revoke_url: String,
}

/// What the Email card adds once the link is used or dead: mail sent is past its use, mail
/// not sent was dropped (an unsent link that no longer works is never mailed).
fn mail_note(status: InvitationStatus, sent: bool) -> Option<&'static str> {
    match (status, sent) {
        (InvitationStatus::Consented, true) => Some("Link used: the customer consented."),
        (InvitationStatus::Consented, false) => Some(
            "Not sent: the customer consented with the link before the email went out, so it was dropped.",
        ),
        (InvitationStatus::Revoked, true) => {
            Some("Link revoked: the emailed link no longer works.")
        }
        (InvitationStatus::Revoked, false) => {
            Some("Not sent: the invitation was revoked before the email went out.")
        }
        (InvitationStatus::Expired, true) => {
            Some("Link expired: the emailed link no longer works. Resend makes a new one.")
        }
        (InvitationStatus::Expired, false) => Some(
            "Not sent: the link expired before the email went out. Resend makes a new link and emails it.",
        ),
        (_, true) => None,
        (_, false) => Some("No email is waiting for this invitation. Resend queues a new one."),
    }
}

/// Attempts as people count them: a consent is an attempt too (the stored count is of setbacks).
fn attempts_text(invitation: &Invitation) -> String {
    match (invitation.status, invitation.attempts) {
        (InvitationStatus::Consented, 0) => "1 (consented at the first attempt)".into(),
        (InvitationStatus::Consented, n) => format!("{} (consented after {n} unsuccessful)", n + 1),
        (_, n) => n.to_string(),
    }
}

/// The conflict still standing: the tenant is connected, not offboarded, for another customer.
async fn conflict(state: &AppState, invitation: &Invitation) -> Result<Option<Conflict>> {
    let Some(tenant_id) = invitation.conflict_tenant_id else {
        return Ok(None);
    };
    if !invitation.status.is_open() {
        return Ok(None);
    }
    let Some(tenant) = tenants::get(&state.db, tenant_id).await? else {
        return Ok(None);
    };
    if tenant.status == TenantStatus::Offboarded || tenant.customer_id == invitation.customer_id {
        return Ok(None);
    }
    let invite_owner_url = query_link(
        paths::NEW_INVITATION,
        &[
            ("customer_name", tenant.customer_name.clone()),
            ("admin_email", invitation.admin_email.clone()),
            ("mode", invitation.consent_mode.as_str().to_owned()),
            (
                "tenant_domain",
                invitation.tenant_domain.clone().unwrap_or_default(),
            ),
        ],
    );
    Ok(Some(Conflict {
        tenant_url: paths::tenant(tenant.id),
        offboard_url: format!("{}#offboard", paths::tenant(tenant.id)),
        owner_url: paths::customer(tenant.customer_id),
        owner: tenant.customer_name,
        tenant: tenant.display_name,
        invite_owner_url,
    }))
}

async fn detail(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Result<DetailPage> {
    let id = parse_id(&id)?;
    let invitation = invitations::get(&state.db, id).await?;
    let delivery = mail::delivery_state(&state.db, id.into())
        .await?
        .map(|d| Delivery {
            sent: d.sent_at.map(crate::format::datetime),
            attempts: d.attempts,
            last_error: d.last_error,
            next_try: When::new(d.next_attempt_at),
        });
    let timeline = audit::for_invitation(&state.db, id.into())
        .await?
        .iter()
        .map(EventRow::from)
        .collect();
    let notice = match query.done.as_deref() {
        Some("revoked") => Some("Invitation revoked. Its link no longer works."),
        Some("link_shown") => Some(
            "The link was shown once and Gangway keeps only its hash: if it was not saved, Resend makes a new one.",
        ),
        _ => None,
    };
    let conflict = conflict(&state, &invitation).await?;
    // The same rules `invitations::resend` and `revoke` enforce; here they only decide which
    // buttons to offer.
    let status = invitation.status;
    let can_resend = status.is_open() || status == InvitationStatus::Expired;
    let can_revoke = !matches!(
        status,
        InvitationStatus::Consented | InvitationStatus::Revoked
    );
    let last_outcome =
        invitation
            .last_outcome
            .zip(invitation.last_outcome_at)
            .map(|(outcome, at)| LastSetback {
                class: outcome.as_str(),
                label: match outcome {
                    Setback::Declined => "Declined",
                    Setback::Failed => "Failed",
                },
                at: When::new(at),
            });
    let scope = invitation
        .scope()
        .map_or_else(|| "Everyone".to_owned(), |s| s.described());
    Ok(DetailPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Invitations),
        id,
        attempts: attempts_text(&invitation),
        customer_url: paths::customer(invitation.customer_id),
        customer: invitation.customer_name,
        email: invitation.admin_email,
        mode: invitation.consent_mode.label(),
        scope,
        domain: invitation.tenant_domain,
        badge: status.into(),
        created: When::new(invitation.created_at),
        expires: (status.is_open() || status == InvitationStatus::Expired)
            .then(|| When::new(invitation.expires_at)),
        activity: When::new(invitation.last_activity_at),
        last_outcome,
        last_error: invitation.last_error,
        tenant_url: invitation.tenant_id.map(paths::tenant),
        conflict,
        mail_note: mail_note(status, delivery.as_ref().is_some_and(|d| d.sent.is_some())),
        delivery,
        mail_configured: state.cfg.smtp_url.is_some(),
        timeline,
        notice,
        can_resend,
        can_revoke,
        resend_url: paths::resend_invitation(id),
        revoke_url: paths::revoke_invitation(id),
    })
}

async fn resend(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    session: Session,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id = parse_id(&id)?;
    let actor = Actor::Operator(operator.email.clone());
    let live = state.live().await?;
    let issued =
        invitations::resend(&state.db, state.invitation_context(&live), id, &actor).await?;
    link::reveal(&session, issued, true).await
}

async fn revoke(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id = parse_id(&id)?;
    invitations::revoke(&state.db, id, &Actor::Operator(operator.email)).await?;
    Ok(Redirect::to(&format!(
        "{}?done=revoked",
        paths::invitation(id)
    )))
}
