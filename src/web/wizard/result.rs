//! `GET /invitation/result`: where a finished attempt lands (post/redirect/get). The callback and
//! the customer-app form keep what they showed in the session and redirect here, so a refresh or
//! the back button shows the real outcome again instead of a stale, token-bearing request.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::confirming::{self, Confirming, Step};
use super::link;
use super::pages::{Action, Chrome, MessagePage};
use super::review::CUSTOMER_APP_STEP;
use crate::invitations;
use crate::types::Branding;
use crate::web::client_addr::ClientAddr;
use crate::web::error::Result;
use crate::web::{AppState, paths, session};
use axum::extract::State;

/// A shown outcome, as kept in the session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Finished {
    status: u16,
    title: String,
    step: u8,
    customer_app: bool,
    tone: String,
    heading: String,
    paragraphs: Vec<String>,
    next_steps: Vec<String>,
    detail: Option<String>,
    action: Option<(String, String)>,
}

impl Finished {
    fn of(page: MessagePage, status: StatusCode) -> Self {
        Self {
            status: status.as_u16(),
            title: page.chrome.title,
            step: page.chrome.step,
            customer_app: page.chrome.middle_step == CUSTOMER_APP_STEP,
            tone: page.tone.to_owned(),
            heading: page.heading,
            paragraphs: page.paragraphs,
            next_steps: page.next_steps,
            detail: page.detail,
            action: page.action.map(|a| (a.href, a.label)),
        }
    }

    fn page(self, provider: &Branding) -> Response {
        let mut chrome = Chrome::new(provider, self.title, self.step);
        if self.customer_app {
            chrome.middle_step = CUSTOMER_APP_STEP;
        }
        let tone = match self.tone.as_str() {
            "ok" => "ok",
            "warn" => "warn",
            _ => "bad",
        };
        let page = MessagePage {
            chrome,
            tone,
            heading: self.heading,
            paragraphs: self.paragraphs,
            next_steps: self.next_steps,
            detail: self.detail,
            action: self.action.map(|(href, label)| Action { href, label }),
        };
        page.with_status(StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK))
    }
}

/// Keeps `page` as this browser's latest outcome and sends it to the result page.
pub async fn show_after_redirect(
    session: &Session,
    page: MessagePage,
    status: StatusCode,
) -> Result<Response> {
    session
        .insert(session::RESULT, Finished::of(page, status))
        .await?;
    Ok(Redirect::to(paths::WIZARD_RESULT).into_response())
}

/// Whether this browser has an outcome to show.
pub async fn has_result(session: &Session) -> Result<bool> {
    Ok(session.get::<Finished>(session::RESULT).await?.is_some())
}

/// The result page: the latest outcome of this browser, as often as it is asked for; while an
/// admin consent is being confirmed, the next attempt when it is due, else the finishing page.
pub async fn show(
    State(state): State<AppState>,
    client: ClientAddr,
    session: Session,
) -> Result<Response> {
    let live = state.live().await?;
    let provider = &live.settings.branding;
    if let Some(confirming) = session.get::<Confirming>(session::CONFIRMING).await? {
        if !confirming.due() {
            return Ok(confirming::finishing_page(provider, &confirming));
        }
        let invitation = invitations::get(&state.db, confirming.invitation_id).await?;
        let step = confirming::attempt(&state, &session, &invitation, confirming, client).await?;
        if let Step::Waiting(waiting) = step {
            return Ok(confirming::finishing_page(provider, &waiting));
        }
        // Finished: the outcome is kept in the session; show it here, no further redirect.
    }
    Ok(match session.get::<Finished>(session::RESULT).await? {
        Some(finished) => finished.page(provider),
        None => link::no_invitation_page(provider).with_status(StatusCode::BAD_REQUEST),
    })
}
