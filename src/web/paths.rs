//! Every route path, in one place: routes are registered with the patterns (`{id}` and
//! friends); handlers, redirects and templates build addresses with the functions below, each
//! taking only the id type its path is about, so a tenant's address cannot be built from an
//! invitation's id.

use std::fmt::Display;

use uuid::Uuid;

use crate::types::{
    ApiTokenId, ApplicationId, CustomerId, InvitationId, OperatorId, ProfileId, ScimConnectionId,
    TenantRecordId, WebhookId,
};

/// Liveness for probes (kept beside [`HEALTHZ`], which it aliases).
pub const HEALTH: &str = "/health";
/// Liveness: the process answers.
pub const HEALTHZ: &str = "/healthz";
/// Readiness: the database answers and its schema is current (503 otherwise).
pub const READYZ: &str = "/readyz";
/// Prometheus metrics (restricted: see `GANGWAY_METRICS_TOKEN`, `GANGWAY_METRICS_LISTEN`).
pub const METRICS: &str = "/metrics";
/// The stylesheet; served immutable, so its name changes with its content.
pub const STATIC_CSS: &str = "/static/gangway-7.css";
/// The script (copy buttons, confirmations, focus on errors); versioned like the stylesheet.
pub const STATIC_JS: &str = "/static/gangway-7.js";
/// POST: Graph's change notifications (and its validation request); public, checked by
/// `clientState`.
pub const GRAPH_NOTIFICATIONS: &str = "/graph/notifications";
/// POST: Graph's lifecycle notifications (and its validation request).
pub const GRAPH_LIFECYCLE: &str = "/graph/lifecycle";

/// Operator sign-in.
pub const LOGIN: &str = "/console/login";
/// POST: sign out.
pub const LOGOUT: &str = "/console/logout";
/// Leave for Microsoft to sign in with Entra ID (the provider's own tenant).
pub const SSO_START: &str = "/console/sso/start";
/// Where Microsoft sends an operator back (registered on the app as a second redirect URI).
pub const SSO_CALLBACK: &str = "/console/sso/callback";
/// Front-channel logout: Entra ID loads it (in a frame) when the operator signs out there.
pub const SSO_LOGOUT: &str = "/console/sso/logout";
/// The console's home (redirects to the invitations).
pub const CONSOLE: &str = "/console";
/// The invitations list.
pub const INVITATIONS: &str = "/console/invitations";
/// The new-invitation form.
pub const NEW_INVITATION: &str = "/console/invitations/new";
/// One invitation.
pub const INVITATION: &str = "/console/invitations/{id}";
/// The link just minted for an invitation, shown once (after create, resend or re-consent).
pub const INVITATION_LINK: &str = "/console/invitations/{id}/link";
/// POST: a new link, the old one dies.
pub const RESEND_INVITATION: &str = "/console/invitations/{id}/resend";
/// POST: withdraw for good.
pub const REVOKE_INVITATION: &str = "/console/invitations/{id}/revoke";
/// System Settings (admins).
pub const SETTINGS: &str = "/console/settings";
/// POST: create a permission profile.
pub const PROFILES: &str = "/console/settings/profiles";
/// POST: make a profile the default.
pub const PROFILE_DEFAULT: &str = "/console/settings/profiles/{id}/default";
/// POST: delete a profile.
pub const PROFILE_DELETE: &str = "/console/settings/profiles/{id}/delete";
/// The JSON API described for people.
pub const API_DOCS: &str = "/console/api";
/// API tokens (admins).
pub const API_TOKENS: &str = "/console/api-tokens";
/// POST: revoke an API token.
pub const API_TOKEN_REVOKE: &str = "/console/api-tokens/{id}/revoke";
/// Set an API token's own rate (admins).
pub const API_TOKEN_RATE: &str = "/console/api-tokens/{id}/rate";
/// The provider app's certificates (admins).
pub const CERTIFICATES: &str = "/console/certificates";
/// A certificate's public part as PEM.
pub const CERTIFICATE_PEM: &str = "/console/certificates/{id}/certificate.pem";
/// POST: make a registered certificate the active one.
pub const CERTIFICATE_ACTIVATE: &str = "/console/certificates/{id}/activate";
/// POST: register a certificate on the app through Graph (`addKey`).
pub const CERTIFICATE_REGISTER: &str = "/console/certificates/{id}/register";
/// POST: delete a pending certificate.
pub const CERTIFICATE_DELETE: &str = "/console/certificates/{id}/delete";
/// Webhook endpoints (admins).
pub const WEBHOOKS: &str = "/console/webhooks";
/// One webhook endpoint with its delivery log.
pub const WEBHOOK: &str = "/console/webhooks/{id}";
/// POST: rotate an endpoint's secret.
pub const WEBHOOK_ROTATE: &str = "/console/webhooks/{id}/rotate";
/// POST: send a test event.
pub const WEBHOOK_TEST: &str = "/console/webhooks/{id}/test";
/// POST: enable or disable (`enabled=true|false`).
pub const WEBHOOK_ENABLED: &str = "/console/webhooks/{id}/enabled";
/// POST: delete an endpoint.
pub const WEBHOOK_DELETE: &str = "/console/webhooks/{id}/delete";
/// POST: queue a delivery's event again (`delivery=<id>`).
pub const WEBHOOK_SEND_AGAIN: &str = "/console/webhooks/{id}/send-again";
/// The API's OpenAPI document.
pub const API_OPENAPI: &str = "/api/v1/openapi.json";
/// Every other address under the API (answered 404 as a problem).
pub const API_ANY: &str = "/api/v1/{*rest}";
/// The tenants list.
pub const TENANTS: &str = "/console/tenants";
/// One tenant.
pub const TENANT: &str = "/console/tenants/{id}";
/// POST: offboard a tenant.
pub const OFFBOARD_TENANT: &str = "/console/tenants/{id}/offboard";
/// POST: invite the tenant's admin to consent again (its access stopped working).
pub const RECONSENT_TENANT: &str = "/console/tenants/{id}/reconsent";
/// POST: check now what a tenant grants the provider's app.
pub const CONSENT_CHECK_TENANT: &str = "/console/tenants/{id}/consent-check";
/// POST: sync a tenant's directory now.
pub const SYNC_TENANT: &str = "/console/tenants/{id}/sync";
/// JSON: the progress of a tenant's running sync, polled by its page.
pub const SYNC_PROGRESS: &str = "/console/tenants/{id}/sync/progress";
/// POST: change a tenant's sync schedule.
pub const SYNC_SCHEDULE: &str = "/console/tenants/{id}/schedule";
/// POST: apply a tenant's held deletions.
pub const APPROVE_DELETIONS: &str = "/console/tenants/{id}/deletions/approve";
/// POST: keep the objects of a tenant's held deletions.
pub const REJECT_DELETIONS: &str = "/console/tenants/{id}/deletions/reject";
/// POST: change a tenant's deletion guard thresholds.
pub const DELETION_GUARD: &str = "/console/tenants/{id}/deletion-guard";
/// A tenant's sync runs, newest first.
pub const TENANT_RUNS: &str = "/console/tenants/{id}/runs";
/// The users of a tenant's directory copy.
pub const TENANT_USERS: &str = "/console/tenants/{id}/users";
/// The groups of a tenant's directory copy.
pub const TENANT_GROUPS: &str = "/console/tenants/{id}/groups";
/// One group of a tenant's directory copy, with its members.
pub const TENANT_GROUP: &str = "/console/tenants/{id}/groups/{group_id}";
/// One user of a tenant's directory copy, with its groups.
pub const TENANT_USER: &str = "/console/tenants/{id}/users/{user_id}";
/// A tenant's sync scope (GET), and changing it (POST).
pub const TENANT_SCOPE: &str = "/console/tenants/{id}/scope";
/// The customers list.
pub const CUSTOMERS: &str = "/console/customers";
/// The new-customer form.
pub const NEW_CUSTOMER: &str = "/console/customers/new";
/// One customer, with its invitations and tenants.
pub const CUSTOMER: &str = "/console/customers/{id}";
/// Editing a customer's details.
pub const EDIT_CUSTOMER: &str = "/console/customers/{id}/edit";
/// The audit trail.
pub const AUDIT: &str = "/console/audit";
/// Operators (admins only).
pub const OPERATORS: &str = "/console/operators";
/// POST: invite an operator by email (admins).
pub const OPERATOR_INVITE: &str = "/console/operators/invite";
/// An invited operator sets their password: opened with `?token=…`, which moves into the
/// session, then shown without it.
pub const OPERATOR_JOIN: &str = crate::operator_invites::JOIN_PATH;
/// POST: change an operator's role.
pub const OPERATOR_ROLE: &str = "/console/operators/{id}/role";
/// POST: end an operator's sessions.
pub const OPERATOR_SIGN_OUT: &str = "/console/operators/{id}/sign-out";
/// POST: remove an operator.
pub const REMOVE_OPERATOR: &str = "/console/operators/{id}/remove";
/// POST: let a removed operator sign in again (their email in the form).
pub const RESTORE_OPERATOR: &str = "/console/operators/restore";
/// The app-registration doctor (admins only): each check of the provider's app registration.
pub const DOCTOR: &str = "/console/doctor";
/// The Setup page (admins only): one sign-in, then Gangway creates or repairs its registration.
pub const SETUP: &str = "/console/setup";
/// Starts the setup's sign-in (POST).
pub const SETUP_SIGN_IN: &str = "/console/setup/sign-in";

/// The background tasks of every process, with their state.
pub const BACKGROUND: &str = "/console/background";
/// POST: run a background task now (admins), in every process that runs it.
pub const BACKGROUND_RUN: &str = "/console/background/{name}/run";

/// The token link's target; it redirects at once to [`WIZARD`].
pub const AUTHENTICATE: &str = "/authenticate";
/// The token-free wizard page.
pub const WIZARD: &str = "/invitation";
/// POST: leave for Microsoft's sign-in or admin consent.
pub const WIZARD_START: &str = "/invitation/start";
/// The outcome of the latest attempt, token-free, safe to refresh.
pub const WIZARD_RESULT: &str = "/invitation/result";
/// POST: the customer's own app credentials.
pub const WIZARD_CUSTOMER_APP: &str = "/invitation/customer-app";
/// Where Microsoft sends the admin back (registered on the app).
pub const CALLBACK: &str = "/authenticate/OAuth2Callback";

/// The OpenID Provider's discovery document (sign-in for the customers' users).
pub const OIDC_DISCOVERY: &str = "/.well-known/openid-configuration";
/// The OpenID Provider's signing keys (current, next and recently replaced).
pub const SIGNIN_JWKS: &str = "/oidc/jwks";
/// Where the provider's applications send users to sign in.
pub const SIGNIN_AUTHORIZE: &str = "/oidc/authorize";
/// The page asking for the work email, whose domain finds the user's tenant.
pub const SIGNIN_EMAIL: &str = "/oidc/signin";
/// Where Microsoft sends a signing-in user back (registered on the provider's app).
pub const SIGNIN_CALLBACK: &str = "/oidc/callback";
/// POST: the token endpoint.
pub const SIGNIN_TOKEN: &str = "/oidc/token";
/// The userinfo endpoint.
pub const SIGNIN_USERINFO: &str = "/oidc/userinfo";
/// POST: RFC 7009 token revocation.
pub const SIGNIN_REVOKE: &str = "/oidc/revoke";
/// RP-initiated logout.
pub const SIGNIN_LOGOUT: &str = "/oidc/logout";

/// The provider's applications that sign customers' users in through Gangway.
pub const APPLICATIONS: &str = "/console/applications";
/// Registering an application (admins).
pub const NEW_APPLICATION: &str = "/console/applications/new";
/// One application, with its account links.
pub const APPLICATION: &str = "/console/applications/{id}";
/// Changing an application's settings (admins).
pub const EDIT_APPLICATION: &str = "/console/applications/{id}/edit";
/// POST: a new client secret for a web application, shown once.
pub const APPLICATION_ROTATE: &str = "/console/applications/{id}/rotate-secret";
/// POST: delete an application.
pub const APPLICATION_DELETE: &str = "/console/applications/{id}/delete";
/// POST: register the application's keys for `private_key_jwt`.
pub const APPLICATION_KEYS: &str = "/console/applications/{id}/keys";
/// POST: link a directory user to an account of the application.
pub const APPLICATION_LINK: &str = "/console/applications/{id}/links";
/// POST: remove a user's account link.
pub const APPLICATION_UNLINK: &str = "/console/applications/{id}/links/remove";
/// SCIM push connections (admins).
pub const SCIM: &str = "/console/scim";
/// One SCIM connection's page; POST: change it.
pub const SCIM_CONNECTION: &str = "/console/scim/{id}";
/// POST: push (or, with `reconcile=true`, reconcile) a SCIM connection now.
pub const SCIM_PUSH: &str = "/console/scim/{id}/push";
/// POST: delete a SCIM connection.
pub const SCIM_DELETE: &str = "/console/scim/{id}/delete";
/// Every sign-in of a customer's user to one of the applications.
pub const SIGN_INS: &str = "/console/sign-ins";

/// `pattern` with its `{id}` filled.
fn fill(pattern: &str, id: impl Display) -> String {
    pattern.replace("{id}", &id.to_string())
}

/// Declares one address builder per pattern with an `{id}`, taking the id type it is about.
macro_rules! addresses {
    ($($(#[$doc:meta])* $name:ident($id:ty) = $pattern:ident;)+) => {$(
        $(#[$doc])*
        pub fn $name(id: $id) -> String {
            fill($pattern, id)
        }
    )+};
}

addresses! {
    /// One invitation's page.
    invitation(InvitationId) = INVITATION;
    /// The page showing an invitation's new link once.
    invitation_link(InvitationId) = INVITATION_LINK;
    /// POST: resend an invitation.
    resend_invitation(InvitationId) = RESEND_INVITATION;
    /// POST: revoke an invitation.
    revoke_invitation(InvitationId) = REVOKE_INVITATION;
    /// POST: make a profile the default.
    profile_default(ProfileId) = PROFILE_DEFAULT;
    /// POST: delete a profile.
    profile_delete(ProfileId) = PROFILE_DELETE;
    /// POST: revoke an API token.
    api_token_revoke(ApiTokenId) = API_TOKEN_REVOKE;
    /// POST: set an API token's rate.
    api_token_rate(ApiTokenId) = API_TOKEN_RATE;
    /// A certificate's public part as PEM.
    certificate_pem(Uuid) = CERTIFICATE_PEM;
    /// POST: activate a certificate.
    certificate_activate(Uuid) = CERTIFICATE_ACTIVATE;
    /// POST: register a certificate with `addKey`.
    certificate_register(Uuid) = CERTIFICATE_REGISTER;
    /// POST: delete a pending certificate.
    certificate_delete(Uuid) = CERTIFICATE_DELETE;
    /// One webhook endpoint's page.
    webhook(WebhookId) = WEBHOOK;
    /// POST: rotate an endpoint's secret.
    webhook_rotate(WebhookId) = WEBHOOK_ROTATE;
    /// POST: send an endpoint a test event.
    webhook_test(WebhookId) = WEBHOOK_TEST;
    /// POST: enable or disable an endpoint.
    webhook_enabled(WebhookId) = WEBHOOK_ENABLED;
    /// POST: delete an endpoint.
    webhook_delete(WebhookId) = WEBHOOK_DELETE;
    /// POST: queue a delivery of an endpoint again.
    webhook_send_again(WebhookId) = WEBHOOK_SEND_AGAIN;
    /// One SCIM connection's page.
    scim_connection(ScimConnectionId) = SCIM_CONNECTION;
    /// POST: push a SCIM connection now.
    scim_push(ScimConnectionId) = SCIM_PUSH;
    /// POST: delete a SCIM connection.
    scim_delete(ScimConnectionId) = SCIM_DELETE;
    /// One tenant's page.
    tenant(TenantRecordId) = TENANT;
    /// POST: offboard a tenant.
    offboard_tenant(TenantRecordId) = OFFBOARD_TENANT;
    /// POST: invite a tenant's admin to consent again.
    reconsent_tenant(TenantRecordId) = RECONSENT_TENANT;
    /// POST: check a tenant's consent now.
    consent_check_tenant(TenantRecordId) = CONSENT_CHECK_TENANT;
    /// POST: sync a tenant now.
    sync_tenant(TenantRecordId) = SYNC_TENANT;
    /// JSON: a tenant's running sync.
    sync_progress(TenantRecordId) = SYNC_PROGRESS;
    /// POST: change a tenant's schedule.
    sync_schedule(TenantRecordId) = SYNC_SCHEDULE;
    /// POST: apply a tenant's held deletions.
    approve_deletions(TenantRecordId) = APPROVE_DELETIONS;
    /// POST: keep the objects of a tenant's held deletions.
    reject_deletions(TenantRecordId) = REJECT_DELETIONS;
    /// POST: change a tenant's deletion guard thresholds.
    deletion_guard(TenantRecordId) = DELETION_GUARD;
    /// A tenant's sync runs.
    tenant_runs(TenantRecordId) = TENANT_RUNS;
    /// A tenant's users.
    tenant_users(TenantRecordId) = TENANT_USERS;
    /// A tenant's groups.
    tenant_groups(TenantRecordId) = TENANT_GROUPS;
    /// A tenant's sync scope.
    tenant_scope(TenantRecordId) = TENANT_SCOPE;
    /// One customer's page.
    customer(CustomerId) = CUSTOMER;
    /// Editing a customer.
    edit_customer(CustomerId) = EDIT_CUSTOMER;
    /// POST: change an operator's role.
    operator_role(OperatorId) = OPERATOR_ROLE;
    /// POST: end an operator's sessions.
    operator_sign_out(OperatorId) = OPERATOR_SIGN_OUT;
    /// POST: remove an operator.
    remove_operator(OperatorId) = REMOVE_OPERATOR;
    /// One sign-in application's page.
    application(ApplicationId) = APPLICATION;
    /// Changing an application's settings.
    edit_application(ApplicationId) = EDIT_APPLICATION;
    /// POST: a new client secret for an application.
    application_rotate(ApplicationId) = APPLICATION_ROTATE;
    /// POST: delete an application.
    application_delete(ApplicationId) = APPLICATION_DELETE;
    /// POST: register an application's keys.
    application_keys(ApplicationId) = APPLICATION_KEYS;
    /// POST: link a user to an account of an application.
    application_link(ApplicationId) = APPLICATION_LINK;
    /// POST: remove a user's account link.
    application_unlink(ApplicationId) = APPLICATION_UNLINK;
}

/// The "Run now" address of the background task named `name`.
pub fn background_run(name: &str) -> String {
    BACKGROUND_RUN.replace("{name}", name)
}

/// The page of group `group_id` (its object id in Entra ID) of tenant `tenant_id`.
pub fn tenant_group(tenant_id: TenantRecordId, group_id: Uuid) -> String {
    fill(TENANT_GROUP, tenant_id).replace("{group_id}", &group_id.to_string())
}

/// The page of user `user_id` (its object id in Entra ID) of tenant `tenant_id`.
pub fn tenant_user(tenant_id: TenantRecordId, user_id: Uuid) -> String {
    fill(TENANT_USER, tenant_id).replace("{user_id}", &user_id.to_string())
}

#[cfg(test)]
mod tests {
    use crate::doctor::{CALLBACK_PATH, SSO_CALLBACK_PATH, SSO_LOGOUT_PATH};

    #[test]
    fn addresses_fill_the_pattern_with_their_id() {
        let id = uuid::Uuid::parse_str("72f988bf-86f1-41af-91ab-2d7cd011db47").unwrap();
        assert_eq!(
            super::tenant(id.into()),
            "/console/tenants/72f988bf-86f1-41af-91ab-2d7cd011db47"
        );
        assert_eq!(
            super::webhook_send_again(id.into()),
            "/console/webhooks/72f988bf-86f1-41af-91ab-2d7cd011db47/send-again"
        );
        assert_eq!(
            super::tenant_group(id.into(), uuid::Uuid::nil()),
            "/console/tenants/72f988bf-86f1-41af-91ab-2d7cd011db47/groups/00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            super::background_run("mail_outbox"),
            "/console/background/mail_outbox/run"
        );
    }

    #[test]
    fn the_callbacks_the_doctor_expects_are_the_routes_microsoft_calls() {
        assert_eq!(format!("/{CALLBACK_PATH}"), super::CALLBACK);
        assert_eq!(format!("/{SSO_CALLBACK_PATH}"), super::SSO_CALLBACK);
        assert_eq!(format!("/{SSO_LOGOUT_PATH}"), super::SSO_LOGOUT);
    }
}
