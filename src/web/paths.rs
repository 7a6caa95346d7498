//! Every route path, in one place: handlers, redirects and templates use these.

use uuid::Uuid;

pub const HEALTH: &str = "/health";
pub const STATIC_CSS: &str = "/static/gangway-1.css";
pub const STATIC_JS: &str = "/static/gangway-1.js";

pub const LOGIN: &str = "/console/login";
pub const LOGOUT: &str = "/console/logout";
pub const CONSOLE: &str = "/console";
pub const INVITATIONS: &str = "/console/invitations";
pub const NEW_INVITATION: &str = "/console/invitations/new";
pub const INVITATION: &str = "/console/invitations/{id}";
pub const RESEND_INVITATION: &str = "/console/invitations/{id}/resend";
pub const REVOKE_INVITATION: &str = "/console/invitations/{id}/revoke";
pub const TENANTS: &str = "/console/tenants";
pub const TENANT: &str = "/console/tenants/{id}";
pub const OFFBOARD_TENANT: &str = "/console/tenants/{id}/offboard";
pub const CUSTOMERS: &str = "/console/customers";
pub const NEW_CUSTOMER: &str = "/console/customers/new";
pub const CUSTOMER: &str = "/console/customers/{id}";
pub const EDIT_CUSTOMER: &str = "/console/customers/{id}/edit";
pub const AUDIT: &str = "/console/audit";
pub const OPERATORS: &str = "/console/operators";
pub const OPERATOR_ROLE: &str = "/console/operators/{id}/role";
pub const OPERATOR_SIGN_OUT: &str = "/console/operators/{id}/sign-out";
pub const REMOVE_OPERATOR: &str = "/console/operators/{id}/remove";

/// The token link's target; it redirects at once to [`WIZARD`].
pub const AUTHENTICATE: &str = "/authenticate";
/// The token-free wizard page.
pub const WIZARD: &str = "/invitation";
/// POST: leave for Microsoft's sign-in or admin consent.
pub const WIZARD_START: &str = "/invitation/start";
/// POST: the customer's own app credentials.
pub const WIZARD_CUSTOMER_APP: &str = "/invitation/customer-app";
/// Where Microsoft sends the admin back (registered on the app).
pub const CALLBACK: &str = "/authenticate/OAuth2Callback";

/// Fills the `{id}` of a path.
pub fn with_id(path: &str, id: Uuid) -> String {
    path.replace("{id}", &id.to_string())
}
