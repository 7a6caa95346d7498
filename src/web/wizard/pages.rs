//! The wizard's views: the review page (with the customer-app form) and one message page for
//! every outcome, both in the customer-facing layout.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::types::Branding;
use crate::types::profile::Permission;

/// What every wizard page's layout needs: whose portal this is and where in the steps we are.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// Who asks: name, logo, support contact, terms and privacy links (every page shows them).
    pub provider: Branding,
    pub title: String,
    /// 1 Review, 2 Microsoft (or app details), 3 Done; 0 hides the steps.
    pub step: u8,
    /// The middle step's name: "Sign in with Microsoft" or "Your app's details".
    pub middle_step: &'static str,
    /// A wider page (the customer-app form beside its instructions).
    pub wide: bool,
}

impl Chrome {
    /// The chrome of a page titled `title` at `step`.
    pub fn new(provider: &Branding, title: impl Into<String>, step: u8) -> Self {
        Self {
            provider: provider.clone(),
            title: title.into(),
            step,
            middle_step: "Sign in with Microsoft",
            wide: false,
        }
    }
}

/// A link under a message, styled as a button.
#[derive(Debug, Clone)]
pub struct Action {
    pub href: String,
    pub label: String,
}

/// The one page for outcomes: link states, declines, failures, success.
#[derive(Template, WebTemplate)]
#[template(path = "wizard/message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    /// `ok`, `warn` or `bad` (the notice colour).
    pub tone: &'static str,
    pub heading: String,
    pub paragraphs: Vec<String>,
    /// What to do next, as a list.
    pub next_steps: Vec<String>,
    /// Microsoft's error code and summary, when there is one.
    pub detail: Option<String>,
    pub action: Option<Action>,
}

impl MessagePage {
    /// The page with `status`.
    pub fn with_status(self, status: StatusCode) -> Response {
        (status, self).into_response()
    }
}

/// The customer-app form's values and messages (the secret is never echoed back).
#[derive(Debug, Clone, Default)]
pub struct CustomerAppForm {
    pub tenant_id: String,
    pub client_id: String,
    pub tenant_id_error: Option<String>,
    pub client_id_error: Option<String>,
    pub secret_error: Option<String>,
    /// When the secret expires, as typed (optional).
    pub secret_expires: String,
    pub expires_error: Option<String>,
    /// What the proof found wrong, shown above the form.
    pub problem: Option<String>,
}

/// The review page: who asks, what for, and the way to consent.
#[derive(Template, WebTemplate)]
#[template(path = "wizard/review.html")]
pub struct ReviewPage {
    pub chrome: Chrome,
    pub csrf: String,
    pub customer_name: String,
    pub admin_email: String,
    pub mode_label: &'static str,
    pub mode_explained: String,
    pub permissions: Vec<Permission>,
    /// Where the permissions apply: "delegated" or "application".
    pub permission_kind: &'static str,
    pub tenant_domain: Option<String>,
    /// Why the customer is asked again, for a re-consent (completes "… stopped working: ").
    pub why_again: Option<String>,
    /// Who of the directory the provider will copy, when the invitation narrows it.
    pub scope: Option<String>,
    pub expires: String,
    /// The same instant for `<time datetime>`, which the page shows in the viewer's zone.
    pub expires_iso: String,
    pub last_error: Option<String>,
    /// Earlier attempts (declined or failed).
    pub attempts: i32,
    pub start_path: &'static str,
    pub customer_app_path: &'static str,
    /// `Some` in customer-app mode: the form to show instead of the Microsoft button.
    pub customer_app: Option<CustomerAppForm>,
    pub button_label: &'static str,
}
