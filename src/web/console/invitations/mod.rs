//! Invitations: the list (the console's home), creating one, the link shown once, its detail,
//! resend and revoke.

mod detail;
mod link;
mod list;
mod new;

pub(in crate::web::console) use link::reveal as reveal_link;
pub(super) use list::Row;

use axum::Router;

use crate::invitations::InvitationStatus;
use crate::web::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .merge(list::router())
        .merge(new::router())
        .merge(detail::router())
        .merge(link::router())
}

/// How a status reads on a badge.
fn status_label(status: InvitationStatus) -> &'static str {
    match status {
        InvitationStatus::Pending => "Pending",
        InvitationStatus::Opened => "Opened",
        InvitationStatus::Consented => "Consented",
        InvitationStatus::Declined => "Declined",
        InvitationStatus::Failed => "Failed",
        InvitationStatus::Expired => "Expired",
        InvitationStatus::Revoked => "Revoked",
    }
}

/// A status badge: CSS class and text.
pub(in crate::web::console) struct Badge {
    pub(in crate::web::console) class: &'static str,
    pub(in crate::web::console) label: &'static str,
}

impl From<InvitationStatus> for Badge {
    fn from(status: InvitationStatus) -> Self {
        Self {
            class: status.as_str(),
            label: status_label(status),
        }
    }
}

/// An option of a `<select>`.
struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}
