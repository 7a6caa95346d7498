//! What is shown once — an invitation link, an operator's link, an API token, a webhook secret, a client secret. The POST that makes
//! it keeps it in the session (sealed at rest, like every session payload) and redirects; the
//! page the redirect leads to takes it out. A reload of that page repeats nothing and shows the
//! value no more.

use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::types::{ApplicationId, InvitationId, WebhookId};
use crate::web::error::Result;
use crate::web::session::REVEAL;

/// A value to show on the next page, once. No `Debug`: it holds a secret.
#[derive(Serialize, Deserialize)]
pub(crate) enum Reveal {
    /// A freshly minted invitation link (created, resent or a re-consent invitation).
    InvitationLink {
        invitation: InvitationId,
        link: String,
        resent: bool,
    },
    /// An invited operator's link to set their password.
    OperatorLink { email: String, link: String },
    /// A freshly created API token.
    ApiToken { token: String },
    /// A webhook endpoint's new signing secret (added or rotated).
    WebhookSecret { endpoint: WebhookId, secret: String },
    /// A web application's new client secret (registered or rotated).
    ClientSecret {
        application: ApplicationId,
        secret: String,
    },
}

/// Keeps `reveal` for the page the redirect leads to (replacing one not yet shown).
pub(crate) async fn keep(session: &Session, reveal: Reveal) -> Result<()> {
    session.insert(REVEAL, reveal).await?;
    Ok(())
}

/// Takes what was kept, if `pick` wants it. Whatever was kept is gone afterwards either way: a
/// value not shown on the page it was meant for is not shown later elsewhere.
pub(crate) async fn take<T>(
    session: &Session,
    pick: impl FnOnce(Reveal) -> Option<T>,
) -> Result<Option<T>> {
    Ok(session.remove::<Reveal>(REVEAL).await?.and_then(pick))
}
