//! The page with a freshly minted link, shown once (after creating or resending).

use askama::Template;
use askama_web::WebTemplate;
use axum::response::{IntoResponse, Response};

use crate::invitations::Issued;
use crate::web::AppState;
use crate::web::console::{Chrome, When};
use crate::web::paths;

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

/// The page with a freshly minted link. Rendered directly (never a redirect carrying the link)
/// and never cached: after this response only the link's hash exists.
pub(in crate::web::console) fn page(
    state: &AppState,
    chrome: Chrome,
    issued: Issued,
    resent: bool,
) -> Response {
    let Issued { invitation, link } = issued;
    let page = LinkPage {
        chrome,
        link: link.to_string(),
        customer: invitation.customer_name,
        email: invitation.admin_email,
        expires: When::new(invitation.expires_at),
        mail_configured: state.cfg.smtp_url.is_some(),
        resent,
        detail_url: paths::with_id(paths::INVITATION, invitation.id),
    };
    page.into_response()
}
