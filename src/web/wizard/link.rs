//! `GET /authenticate?token=…`: the emailed link. Binds the invitation to a fresh session and
//! redirects to the token-free wizard, or says honestly why the link does not work.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

use super::pages::{Chrome, MessagePage};
use crate::audit::Actor;
use crate::format;
use crate::invitations::{self, Invitation, InvitationStatus, InvitationToken, Opened};
use crate::types::Branding;
use crate::web::AppState;
use crate::web::client_addr::ClientAddr;
use crate::web::error::Result;
use crate::web::{paths, session};

/// The link's query; the token is optional so a bare `/authenticate` gets the same honest page.
#[derive(serde::Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    token: Option<String>,
}

/// Why a link (or the invitation behind a session) cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    Expired,
    Revoked,
    AlreadyUsed,
    Unknown,
}

impl Closed {
    /// The closed state an invitation's status means, if any.
    pub fn of(status: InvitationStatus) -> Option<Self> {
        match status {
            InvitationStatus::Expired => Some(Self::Expired),
            InvitationStatus::Revoked => Some(Self::Revoked),
            InvitationStatus::Consented => Some(Self::AlreadyUsed),
            InvitationStatus::Pending
            | InvitationStatus::Opened
            | InvitationStatus::Declined
            | InvitationStatus::Failed => None,
        }
    }

    /// 410 for links that existed and are done, 404 for links never issued or replaced.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Unknown => StatusCode::NOT_FOUND,
            _ => StatusCode::GONE,
        }
    }
}

/// The honest page for a closed link.
pub fn closed_page(
    closed: Closed,
    invitation: Option<&Invitation>,
    provider: &Branding,
) -> MessagePage {
    let page = |heading: &str,
                tone: &'static str,
                paragraphs: Vec<String>,
                next_steps: Vec<String>| MessagePage {
        chrome: Chrome::new(provider, heading, 0),
        tone,
        heading: heading.into(),
        paragraphs,
        next_steps,
        detail: None,
        action: None,
    };
    match closed {
        Closed::Expired => {
            let when = invitation.map(|i| format!(" on {}", format::datetime(i.expires_at))).unwrap_or_default();
            page(
                "This invitation link has expired",
                "warn",
                vec![format!("The link expired{when}. Links only work for a limited time, for your security.")],
                vec![format!("Ask {provider} for a new link; it will arrive by email and replace this one.")],
            )
        }
        Closed::Revoked => page(
            "This invitation was withdrawn",
            "warn",
            vec![format!("{provider} withdrew this invitation, so the link no longer works.")],
            vec![format!("If you expected to connect your organisation, contact {contact}.", contact = provider.contact())],
        ),
        Closed::AlreadyUsed => {
            let customer = invitation.map(|i| format!(" for {}", i.customer_name)).unwrap_or_default();
            page(
                "This tenant is already connected",
                "ok",
                vec![format!(
                    "Consent was already given through this invitation{customer}: there is nothing more to do. You may close this window."
                )],
                Vec::new(),
            )
        }
        Closed::Unknown => page(
            "This link is not valid",
            "bad",
            vec!["This invitation link is not known. It may have been copied incompletely, or replaced by a newer one.".into()],
            vec![
                "Check that you used the newest invitation email: a resent link replaces older ones.".into(),
                "Make sure the whole link was opened (some mail programs break long links).".into(),
                format!("If it still does not work, ask {provider} to resend the invitation."),
            ],
        ),
    }
}

/// The page for a browser that has no invitation in its session.
pub fn no_invitation_page(provider: &Branding) -> MessagePage {
    MessagePage {
        chrome: Chrome::new(provider, "Open the link from your invitation email", 0),
        tone: "warn",
        heading: "Open the link from your invitation email".into(),
        paragraphs: vec![format!(
            "This page continues an invitation from {provider}, but this browser has none open (or the session ended)."
        )],
        next_steps: vec!["Open the link in the invitation email again, in this browser.".into()],
        detail: None,
        action: None,
    }
}

/// The success page.
pub fn done_page(provider: &Branding, tenant_name: &str, middle_step: &'static str) -> MessagePage {
    let heading = format!("Done — {tenant_name} is connected");
    let mut chrome = Chrome::new(provider, heading.clone(), 3);
    chrome.middle_step = middle_step;
    MessagePage {
        chrome,
        tone: "ok",
        heading,
        paragraphs: vec![
            format!("{provider} now has read access to your directory, as you approved."),
            format!(
                "{provider} will copy your users and groups shortly and keep the copy current; you do not need to do anything else."
            ),
            "You may close this window.".into(),
        ],
        next_steps: Vec::new(),
        detail: None,
        action: None,
    }
}

/// Opens a token link.
#[tracing::instrument(skip_all)]
pub async fn open(
    State(state): State<AppState>,
    client: ClientAddr,
    session: Session,
    Query(query): Query<LinkQuery>,
) -> Result<Response> {
    state
        .limits
        .links
        .check(client)
        .inspect_err(|_| tracing::info!("token link rate limit hit"))?;
    let live = state.live().await?;
    let provider = &live.settings.branding;
    // Junk never reaches the database.
    let Some(token) = query.token.as_deref().and_then(InvitationToken::parse) else {
        return Ok(
            closed_page(Closed::Unknown, None, provider).with_status(Closed::Unknown.status())
        );
    };
    let opened = invitations::open(&state.db, &token, &Actor::LinkHolder(client.ip())).await?;
    let (closed, invitation) = match opened {
        Opened::Ready(invitation) => {
            // A fresh session id: whoever held the old one (a fixation attempt) gets nothing.
            session.cycle_id().await?;
            // A new journey: no earlier round-trip or outcome carries over.
            for key in [session::PENDING_CONSENT, session::RESULT] {
                session.remove::<serde_json::Value>(key).await?;
            }
            session.insert(session::INVITATION, invitation.id).await?;
            tracing::info!(invitation_id = %invitation.id, "invitation link opened");
            return Ok(Redirect::to(paths::WIZARD).into_response());
        }
        Opened::Expired(i) => (Closed::Expired, Some(i)),
        Opened::Revoked(i) => (Closed::Revoked, Some(i)),
        Opened::AlreadyUsed(i) => (Closed::AlreadyUsed, Some(i)),
        Opened::Unknown => (Closed::Unknown, None),
    };
    tracing::info!(?closed, "closed invitation link opened");
    Ok(closed_page(closed, invitation.as_ref(), provider).with_status(closed.status()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> Branding {
        Branding {
            name: "Acme".into(),
            ..Branding::default()
        }
    }

    #[test]
    fn statuses_map_to_honest_pages() {
        assert_eq!(Closed::of(InvitationStatus::Expired), Some(Closed::Expired));
        assert_eq!(Closed::of(InvitationStatus::Revoked), Some(Closed::Revoked));
        assert_eq!(
            Closed::of(InvitationStatus::Consented),
            Some(Closed::AlreadyUsed)
        );
        for open in [
            InvitationStatus::Pending,
            InvitationStatus::Opened,
            InvitationStatus::Declined,
            InvitationStatus::Failed,
        ] {
            assert_eq!(Closed::of(open), None, "{open:?} must stay usable");
        }
        assert_eq!(Closed::Unknown.status(), StatusCode::NOT_FOUND);
        assert_eq!(Closed::Expired.status(), StatusCode::GONE);
        let unknown = closed_page(Closed::Unknown, None, &acme());
        assert!(unknown.next_steps.join(" ").contains("newest"));
        let used = closed_page(Closed::AlreadyUsed, None, &acme());
        assert!(used.paragraphs.join(" ").contains("nothing more to do"));
    }
}
