//! Invitations: the list (the console's home), creating one, the link shown once, its detail,
//! resend and revoke.

mod detail;
mod link;
mod list;
mod new;

pub(in crate::web::console) use link::reveal as reveal_link;
pub(super) use list::Row;

use axum::Router;

use crate::invitations::Status;
use crate::web::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .merge(list::router())
        .merge(new::router())
        .merge(detail::router())
        .merge(link::router())
}

/// How a status reads on a badge.
fn status_label(status: Status) -> &'static str {
    match status {
        Status::Pending => "Pending",
        Status::Opened => "Opened",
        Status::Consented => "Consented",
        Status::Declined => "Declined",
        Status::Failed => "Failed",
        Status::Expired => "Expired",
        Status::Revoked => "Revoked",
    }
}

/// A status badge: CSS class and text.
pub(in crate::web::console) struct Badge {
    pub(in crate::web::console) class: &'static str,
    pub(in crate::web::console) label: &'static str,
}

impl From<Status> for Badge {
    fn from(status: Status) -> Self {
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
