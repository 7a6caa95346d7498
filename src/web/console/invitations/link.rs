//! The page with a freshly minted link (after creating, resending or a re-consent invitation):
//! the POST keeps the link in the session and redirects here; this page shows it once.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tower_sessions::Session;

use crate::invitations::{self, Issued};
use crate::web::AppState;
use crate::web::console::reveal::{self, Reveal};
use crate::web::console::{Chrome, Section, When, parse_id};
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::paths;
use crate::web::session::AdminOperator;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::INVITATION_LINK, get(show))
}

#[derive(Template, WebTemplate)]
#[template(path = "console/invitation_link.html")]
struct LinkPage {
    chrome: Chrome,
    link: String,
    customer: String,
    email: String,
    expires: When,
    mail_configured: bool,
    resent: bool,
    detail_url: String,
}

/// Keeps the freshly minted link for the page it redirects to, and redirects there.
pub(in crate::web::console) async fn reveal(
    session: &Session,
    issued: Issued,
    resent: bool,
) -> Result<Redirect> {
    let id = issued.invitation.id;
    reveal::keep(
        session,
        Reveal::InvitationLink {
            invitation: id,
            link: issued.link.to_string(),
            resent,
        },
    )
    .await?;
    Ok(Redirect::to(&paths::invitation_link(id)))
}

/// The link, the first time; afterwards (a reload, a bookmark) the invitation's page, which
/// says the link was shown once and offers Resend.
async fn show(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let kept = reveal::take(&session, |r| match r {
        Reveal::InvitationLink {
            invitation,
            link,
            resent,
        } if invitation == id => Some((link, resent)),
        _ => None,
    })
    .await?;
    let Some((link, resent)) = kept else {
        return Ok(
            Redirect::to(&format!("{}?done=link_shown", paths::invitation(id))).into_response(),
        );
    };
    let invitation = invitations::get(&state.db, id).await?;
    Ok(LinkPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Invitations),
        link,
        customer: invitation.customer_name,
        email: invitation.admin_email,
        expires: When::new(invitation.expires_at),
        mail_configured: state.cfg.smtp_url.is_some(),
        resent,
        detail_url: paths::invitation(id),
    }
    .into_response())
}
