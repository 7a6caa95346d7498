//! The operator console: sign-in, invitations, tenants, customers, sign-in applications and
//! sign-ins, the audit log and (for admins) the operators and the app-registration doctor.
//!
//! Every page but sign-in needs a signed-in operator ([`CurrentOperator`]); whatever changes
//! something needs an admin ([`AdminOperator`]), checked on the server whether or not the page
//! showed the button.
//!
//! [`CurrentOperator`]: crate::web::session::CurrentOperator
//! [`AdminOperator`]: crate::web::session::AdminOperator

mod api_docs;
mod api_tokens;
mod applications;
mod audit_log;
mod auth;
mod background;
mod certificates;
mod customers;
mod doctor;
mod invitations;
mod join;
mod list;
mod operators;
mod reveal;
mod scim;
mod settings;
mod setup;
mod sign_ins;
pub mod sso;
mod tenants;
mod webhooks;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use time::OffsetDateTime;

use crate::audit::{Action, AuditEvent};
use crate::format;
use crate::operators::{Operator, Role};
use crate::settings::{Expiry, Live};
use crate::web::AppState;
use crate::web::error::Error;
use crate::web::paths;

/// Console routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route(paths::CONSOLE, get(home))
        .merge(auth::router())
        .merge(sso::router())
        .merge(invitations::router())
        .merge(tenants::router())
        .merge(customers::router())
        .merge(audit_log::router())
        .merge(operators::router())
        .merge(join::router())
        .merge(settings::router())
        .merge(api_tokens::router())
        .merge(certificates::router())
        .merge(api_docs::router())
        .merge(webhooks::router())
        .merge(scim::router())
        .merge(doctor::router())
        .merge(setup::router())
        .merge(background::router())
        .merge(applications::router())
        .merge(sign_ins::router())
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
    Customers,
    Audit,
    Operators,
    Settings,
    Doctor,
    Api,
    Webhooks,
    Scim,
    Background,
    Applications,
    SignIns,
}

/// What the console layout needs on every page: the top bar, the CSRF token for its forms and
/// the banners every operator must see (secrets about to expire).
pub(crate) struct Chrome {
    pub provider: String,
    pub email: String,
    pub is_admin: bool,
    pub csrf: String,
    pub section: Section,
    pub banners: Vec<Banner>,
}

/// A console-wide notice: `warn` or `bad`, its text and where to act.
pub(crate) struct Banner {
    pub tone: &'static str,
    pub text: String,
    pub href: String,
    pub action: &'static str,
}

impl Chrome {
    pub fn new(state: &AppState, operator: &Operator, csrf: String, section: Section) -> Self {
        let live = state.settings.peek();
        Self {
            provider: live
                .as_ref()
                .map(|l| l.settings.branding.name.clone())
                .unwrap_or_else(|| state.cfg.provider_name.clone()),
            email: operator.email.clone(),
            is_admin: operator.role == Role::Admin,
            csrf,
            section,
            banners: live.as_deref().map(banners).unwrap_or_default(),
        }
    }

    /// Whether the page belongs to the nav entry `name` (`invitations`, `tenants`,
    /// `customers`, `audit`, `operators`, `settings`, `doctor`, `background`, `applications`, `sign-ins`).
    pub fn is(&self, name: &str) -> bool {
        self.section.as_str() == name
    }
}

impl Section {
    fn as_str(self) -> &'static str {
        match self {
            Self::Invitations => "invitations",
            Self::Tenants => "tenants",
            Self::Customers => "customers",
            Self::Audit => "audit",
            Self::Operators => "operators",
            Self::Settings => "settings",
            Self::Api => "api",
            Self::Webhooks => "webhooks",
            Self::Scim => "scim",
            Self::Doctor => "doctor",
            Self::Background => "background",
            Self::Applications => "applications",
            Self::SignIns => "sign-ins",
        }
    }
}

/// The provider's secret and customer apps' secrets close to expiry, alarm first.
fn banners(live: &Live) -> Vec<Banner> {
    let today = OffsetDateTime::now_utc().date();
    let words = |what: &str, expiry: Expiry, on: time::Date| match expiry {
        Expiry::Expired => Some((
            "bad",
            format!(
                "{what} expired on {on}: nothing that depends on it works until it is replaced."
            ),
        )),
        Expiry::Imminent(d) => Some((
            "bad",
            format!(
                "{what} expires in {}, on {on}. Replace it now.",
                format::count(d, "day")
            ),
        )),
        Expiry::Soon(d) => Some((
            "warn",
            format!("{what} expires in {d} days, on {on}. Plan its replacement."),
        )),
        Expiry::Fine => None,
    };
    let mut out = Vec::new();
    if let Some(on) = live.settings.client_secret_expires {
        if let Some((tone, text)) = words(
            "The provider app's client secret",
            Expiry::of(on, today),
            on,
        ) {
            out.push(Banner {
                tone,
                text: format!("{text} Create a new secret in the Entra admin center (at most 24 months) and enter it in System Settings."),
                href: paths::SETTINGS.into(),
                action: "System Settings",
            });
        }
    }
    for secret in &live.customer_secrets {
        let what = format!(
            "{} own app secret",
            format::possessive(&secret.display_name)
        );
        if let Some((tone, text)) = words(
            &what,
            Expiry::of(secret.expires_on, today),
            secret.expires_on,
        ) {
            out.push(Banner {
                tone,
                text: format!("{text} The customer must create a new one and enter it through a new invitation."),
                href: paths::tenant(secret.tenant_id),
                action: "Open tenant",
            });
        }
    }
    out.sort_by_key(|b| b.tone != "bad");
    out
}

/// A time as pages show it: relative text with the absolute time for the `title` tooltip, and
/// the instant (RFC 3339, UTC) for `<time datetime>`.
pub(crate) struct When {
    pub relative: String,
    pub absolute: String,
    pub iso: String,
}

impl When {
    pub fn new(at: OffsetDateTime) -> Self {
        Self {
            relative: format::relative(at),
            absolute: format::datetime(at),
            iso: format::iso(at),
        }
    }
}

/// An id from the path; anything that is not a UUID is simply not found.
pub(crate) fn parse_id<T: std::str::FromStr>(raw: &str) -> Result<T, Error> {
    raw.trim().parse().map_err(|_| Error::NotFound)
}

/// A form's messages, one per field: the error summary lists them and the first invalid field
/// gets the focus.
pub(crate) trait FormErrors {
    /// Each field id with its message, in the form's order.
    fn fields(&self) -> Vec<(&'static str, &Option<String>)>;

    /// (field id, message) of the invalid fields, in the form's order.
    fn all(&self) -> Vec<(&'static str, &str)> {
        self.fields()
            .into_iter()
            .filter_map(|(field, message)| message.as_deref().map(|m| (field, m)))
            .collect()
    }

    /// Whether any field is invalid.
    fn any(&self) -> bool {
        !self.all().is_empty()
    }

    /// Whether `field` is the first invalid one, which gets the focus.
    fn focus(&self, field: &str) -> bool {
        self.all().first().is_some_and(|(f, _)| *f == field)
    }
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
    /// "Customer (admin email)"; the short id shows on hover.
    pub invitation_name: Option<String>,
    pub tenant_url: Option<String>,
    pub tenant_short: String,
    /// The tenant's display name; the short id shows on hover.
    pub tenant_name: Option<String>,
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
            invitation_url: event.invitation_id.map(paths::invitation),
            invitation_short: event.invitation_id.map(short_id).unwrap_or_default(),
            invitation_name: event.invitation_name.clone(),
            tenant_url: event.tenant_id.map(paths::tenant),
            tenant_short: event.tenant_id.map(short_id).unwrap_or_default(),
            tenant_name: event.tenant_name.clone(),
        }
    }
}

/// Who did something, as a stored actor (`operator:ops@…`, `cli`, `system`) reads to people.
pub(crate) fn actor_name(stored: &str) -> String {
    match stored.split_once(':') {
        Some(("operator" | "customer", who)) => who.to_owned(),
        _ if stored == "cli" => "the command line".into(),
        _ if stored == "system" => "Gangway".into(),
        _ => stored.to_owned(),
    }
}

/// The first eight hex digits of an id, enough to tell rows apart.
fn short_id(id: impl Into<uuid::Uuid>) -> String {
    id.into().simple().to_string()[..8].to_owned()
}

/// Plain words for the actions Gangway records; unknown ones show their code only.
fn action_summary(action: &str) -> &'static str {
    Action::parse(action).map(Action::label).unwrap_or_default()
}
