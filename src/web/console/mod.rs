//! The operator console: sign-in, invitations, tenants, the audit log and (for admins) the
//! operators.
//!
//! Every page but sign-in needs a signed-in operator ([`CurrentOperator`]); whatever changes
//! something needs an admin ([`AdminOperator`]), checked on the server whether or not the page
//! showed the button.
//!
//! [`CurrentOperator`]: crate::web::session::CurrentOperator
//! [`AdminOperator`]: crate::web::session::AdminOperator

mod audit_log;
mod auth;
mod invitations;
mod operators;
mod tenants;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use time::OffsetDateTime;

use crate::audit::{Action, AuditEvent};
use crate::format;
use crate::operators::{Operator, Role};
use crate::web::AppState;
use crate::web::error::Error;
use crate::web::paths;

/// Console routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route(paths::CONSOLE, get(home))
        .merge(auth::router())
        .merge(invitations::router())
        .merge(tenants::router())
        .merge(audit_log::router())
        .merge(operators::router())
}

/// The console's home is the invitations list; signed-out visitors are sent on to sign in.
async fn home() -> Redirect {
    Redirect::to(paths::INVITATIONS)
}

/// Which part of the console a page belongs to, for the highlighted nav entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Invitations,
    Tenants,
    Audit,
    Operators,
}

/// What the console layout needs on every page: the top bar and the CSRF token for its forms.
pub(crate) struct Chrome {
    pub provider: String,
    pub email: String,
    pub is_admin: bool,
    pub csrf: String,
    pub section: Section,
}

impl Chrome {
    pub fn new(state: &AppState, operator: &Operator, csrf: String, section: Section) -> Self {
        Self {
            provider: state.cfg.provider_name.clone(),
            email: operator.email.clone(),
            is_admin: operator.role == Role::Admin,
            csrf,
            section,
        }
    }

    /// Whether the page belongs to the nav entry `name` (`invitations`, `tenants`, `audit`,
    /// `operators`).
    pub fn is(&self, name: &str) -> bool {
        self.section.as_str() == name
    }
}

impl Section {
    fn as_str(self) -> &'static str {
        match self {
            Self::Invitations => "invitations",
            Self::Tenants => "tenants",
            Self::Audit => "audit",
            Self::Operators => "operators",
        }
    }
}

/// A time as pages show it: relative text with the absolute time for the `title` tooltip.
pub(crate) struct When {
    pub relative: String,
    pub absolute: String,
}

impl When {
    pub fn new(at: OffsetDateTime) -> Self {
        Self {
            relative: format::relative(at),
            absolute: format::datetime(at),
        }
    }
}

/// An id from the path; anything that is not a UUID is simply not found.
pub(crate) fn parse_id(raw: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::parse_str(raw.trim()).map_err(|_| Error::NotFound)
}

/// One audit event as the timeline, tenant history and audit log show it.
pub(crate) struct EventRow {
    pub at: When,
    pub actor: String,
    pub actor_kind: &'static str,
    pub action: String,
    pub summary: &'static str,
    pub detail: String,
    pub invitation_url: Option<String>,
    pub invitation_short: String,
    pub tenant_url: Option<String>,
    pub tenant_short: String,
}

impl From<&AuditEvent> for EventRow {
    fn from(event: &AuditEvent) -> Self {
        let (actor_kind, actor) = match event.actor.split_once(':') {
            Some(("operator", who)) => ("operator", who.to_owned()),
            Some(("customer", who)) => ("customer", who.to_owned()),
            Some(("link-holder", from)) => ("link holder", format!("from {from}")),
            Some(("anonymous", from)) => ("not signed in", format!("from {from}")),
            _ if event.actor == "cli" => ("command line", String::new()),
            _ if event.actor == "system" => ("Gangway", String::new()),
            _ => ("", event.actor.clone()),
        };
        Self {
            at: When::new(event.at),
            actor,
            actor_kind,
            action: event.action.clone(),
            summary: action_summary(&event.action),
            detail: event.detail_text(),
            invitation_url: event
                .invitation_id
                .map(|id| paths::with_id(paths::INVITATION, id)),
            invitation_short: event.invitation_id.map(short_id).unwrap_or_default(),
            tenant_url: event.tenant_id.map(|id| paths::with_id(paths::TENANT, id)),
            tenant_short: event.tenant_id.map(short_id).unwrap_or_default(),
        }
    }
}

/// The first eight hex digits of an id, enough to tell rows apart.
fn short_id(id: uuid::Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}

/// Plain words for the actions Gangway records; unknown ones show their code only.
fn action_summary(action: &str) -> &'static str {
    Action::parse(action).map(Action::label).unwrap_or_default()
}

/// Page numbers from `?page=`, tolerant of junk (a bad number means the first page).
pub(crate) fn page_number(raw: Option<&str>) -> i64 {
    raw.and_then(|p| p.trim().parse::<i64>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1)
        .min(100_000)
}

/// A search term, or `None` when blank.
pub(crate) fn search_term(raw: Option<&str>) -> Option<String> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(200).collect())
}

/// "Showing 1–25 of 73" with previous/next links that keep the filters.
pub(crate) struct Pager {
    pub from: i64,
    pub to: i64,
    pub total: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `params` are the active filters (empty values are left out of the links).
    pub fn new(
        base: &str,
        params: &[(&str, &str)],
        page: i64,
        per_page: i64,
        shown: usize,
        total: i64,
    ) -> Self {
        let link = |page: i64| {
            let mut url = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in params.iter().filter(|(_, v)| !v.is_empty()) {
                url.append_pair(k, v);
            }
            if page > 1 {
                url.append_pair("page", &page.to_string());
            }
            let query = url.finish();
            if query.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{query}")
            }
        };
        let offset = (page - 1) * per_page;
        let shown = shown as i64;
        Self {
            from: if shown == 0 { 0 } else { offset + 1 },
            to: offset + shown,
            total,
            prev: (page > 1).then(|| link(page - 1)),
            next: (offset + shown < total).then(|| link(page + 1)),
        }
    }

    /// Whether there is more than one page (or the visitor is past the last one).
    pub fn needed(&self) -> bool {
        self.prev.is_some() || self.next.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pager_keeps_filters_and_counts() {
        let p = Pager::new("/x", &[("status", "pending"), ("q", "a b")], 2, 25, 25, 73);
        assert_eq!((p.from, p.to, p.total), (26, 50, 73));
        assert_eq!(p.prev.as_deref(), Some("/x?status=pending&q=a+b"));
        assert_eq!(p.next.as_deref(), Some("/x?status=pending&q=a+b&page=3"));
        let last = Pager::new("/x", &[("q", "")], 3, 25, 23, 73);
        assert_eq!((last.from, last.to), (51, 73));
        assert!(last.next.is_none());
        assert_eq!(last.prev.as_deref(), Some("/x?page=2"));
        let none = Pager::new("/x", &[], 1, 25, 0, 0);
        assert_eq!((none.from, none.to), (0, 0));
        assert!(!none.needed());
    }

    #[test]
    fn junk_page_numbers_mean_the_first_page() {
        assert_eq!(page_number(None), 1);
        assert_eq!(page_number(Some("abc")), 1);
        assert_eq!(page_number(Some("-3")), 1);
        assert_eq!(page_number(Some("4")), 4);
    }
}
