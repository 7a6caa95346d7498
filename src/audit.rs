//! The append-only audit trail: every operator action and every consent outcome.

use std::net::IpAddr;

use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::types::{InvitationId, TenantRecordId};

/// Who did something.
#[derive(Clone, Debug)]
pub enum Actor {
    /// A signed-in operator (by email).
    Operator(String),
    /// The command line, run by someone with database access.
    Cli,
    /// A customer's admin whose identity Microsoft verified (an ID token): UPN and object id.
    Customer {
        /// `preferred_username` (or `upn`) from the ID token.
        upn: String,
        /// `oid` from the ID token.
        oid: Uuid,
    },
    /// Whoever holds an invitation's link, before anyone signed in: known only by address.
    LinkHolder(IpAddr),
    /// Someone not signed in anywhere (a failed operator sign-in), known only by address.
    Anonymous(IpAddr),
    /// Gangway itself (mail delivery, expiry…).
    System,
    /// A caller of the JSON API, by its token's name.
    ApiToken(String),
    /// A caller of the JSON API with an access token Entra ID issued for the provider's API:
    /// a user by UPN, or a daemon by its application id.
    ApiUser {
        /// `upn` (else `preferred_username`) of a user; the app id of a daemon.
        upn: String,
    },
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl Actor {
    fn label(&self) -> String {
        match self {
            Actor::Operator(email) => format!("operator:{email}"),
            Actor::Cli => "cli".into(),
            Actor::ApiToken(name) => format!("api-token:{name}"),
            Actor::ApiUser { upn } => format!("api:{upn}"),
            Actor::Customer { upn, oid } => format!("customer:{upn} ({oid})"),
            Actor::LinkHolder(ip) => format!("link-holder:{ip}"),
            Actor::Anonymous(ip) => format!("anonymous:{ip}"),
            Actor::System => "system".into(),
        }
    }
}

/// What happened. Stored as its dotted name (`invitation.created`), shown by its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// An operator or the CLI created an invitation.
    InvitationCreated,
    /// A new link was issued; the old one stopped working.
    InvitationResent,
    /// The invitation was withdrawn for good.
    InvitationRevoked,
    /// Someone opened the link.
    InvitationOpened,
    /// The invitation mail was delivered to the mail server.
    InvitationEmailSent,
    /// Delivering the invitation mail failed; it is retried.
    InvitationEmailFailed,
    /// The admin left for Microsoft.
    ConsentStarted,
    /// A verified consent was recorded.
    ConsentGranted,
    /// The admin declined at Microsoft.
    ConsentDeclined,
    /// A consent attempt failed (wrong account, tenant, credentials…).
    ConsentFailed,
    /// An operator signed in to the console.
    OperatorSignedIn,
    /// A console sign-in was refused.
    OperatorSignInFailed,
    /// An operator signed out.
    OperatorSignedOut,
    /// An operator account was added.
    OperatorAdded,
    /// An operator's role changed.
    OperatorRoleChanged,
    /// An operator account was removed.
    OperatorRemoved,
    /// An operator's sessions were ended.
    OperatorSessionsEnded,
    /// A removed operator may sign in again.
    OperatorRestored,
    /// An operator was invited from the console (a link to set a password).
    OperatorInvited,
    /// A tenant was offboarded (credential erased).
    TenantOffboarded,
    /// A customer record was created (with an invitation or on its own).
    CustomerCreated,
    /// A customer's name, contact or notes changed.
    CustomerUpdated,
    /// An operator (or the CLI) asked for a directory sync now.
    SyncRequested,
    /// A tenant's sync schedule was changed.
    SyncScheduleChanged,
    /// An operator applied a tenant's held deletions.
    DeletionsApproved,
    /// An operator kept the objects of a tenant's held deletions.
    DeletionsRejected,
    /// A tenant's deletion guard thresholds were changed.
    DeletionGuardChanged,
    /// A tenant's sync scope (which users and groups the provider sees) was changed.
    TenantScopeChanged,
    /// A tenant's credential stopped working; its syncs stop until the customer consents again.
    TenantReconsentRequired,
    /// What a tenant grants the provider's app no longer matches its permission profile.
    TenantConsentDrifted,
    /// A System Setting or permission profile was changed.
    SettingsChanged,
    /// An API token was created.
    ApiTokenCreated,
    /// An API token was revoked.
    ApiTokenRevoked,
    /// An API token's own rate was changed.
    ApiTokenRateChanged,
    /// A webhook endpoint was added.
    WebhookEndpointCreated,
    /// A webhook endpoint's secret was rotated.
    WebhookSecretRotated,
    /// A webhook endpoint was enabled or disabled.
    WebhookEndpointChanged,
    /// A webhook endpoint was deleted.
    WebhookEndpointDeleted,
    /// A test event was queued for a webhook endpoint.
    WebhookTestSent,
    /// An event was queued again for the endpoint it went to.
    WebhookDeliveryResent,
    /// An admin asked a background task to run now.
    BackgroundTaskRunRequested,
    /// A SCIM push connection was added.
    ScimConnectionCreated,
    /// A SCIM push connection was changed.
    ScimConnectionChanged,
    /// A SCIM push connection was deleted.
    ScimConnectionDeleted,
    /// A push (or full reconcile) of a SCIM connection was asked for.
    ScimPushRequested,
    /// An application was registered for sign-in through Gangway.
    SigninApplicationCreated,
    /// A sign-in application registered its public keys (`private_key_jwt`).
    SigninApplicationKeysRegistered,
    /// A customer's user signed in to an application through Gangway.
    SignInSucceeded,
    /// A customer's user was refused sign-in (the reason in the detail).
    SignInRefused,
    /// A sign-in application's settings were changed.
    SigninApplicationUpdated,
    /// A sign-in application was deleted.
    SigninApplicationDeleted,
    /// A sign-in application was given a new client secret.
    SigninSecretRotated,
    /// A directory user was linked to an account of an application.
    SigninAccountLinked,
    /// A directory user's account link was removed.
    SigninAccountUnlinked,
    /// Gangway generated a key pair and certificate for the provider's app.
    CertificateCreated,
    /// Gangway registered a certificate on the provider's app itself (`addKey`).
    CertificateRegistered,
    /// A certificate started signing Gangway's token requests (the one before it retires).
    CertificateActivated,
    /// A retired certificate was removed from the provider's app and from Gangway.
    CertificateRemoved,
    /// The zero-touch setup created or repaired the provider's app registration.
    ProviderSetupRan,
    /// An admin operator started the setup's sign-in (a device code) in the console.
    SetupSignInStarted,
    /// The setup's sign-in ended without a setup: declined, expired or refused.
    SetupSignInFailed,
    /// Gangway replaced its client secret and removed the old one.
    ClientSecretRotated,
}

impl Action {
    /// Every action, for parsing stored names.
    pub const ALL: [Action; 62] = [
        Action::InvitationCreated,
        Action::InvitationResent,
        Action::InvitationRevoked,
        Action::InvitationOpened,
        Action::InvitationEmailSent,
        Action::InvitationEmailFailed,
        Action::ConsentStarted,
        Action::ConsentGranted,
        Action::ConsentDeclined,
        Action::ConsentFailed,
        Action::OperatorSignedIn,
        Action::OperatorSignInFailed,
        Action::OperatorSignedOut,
        Action::OperatorAdded,
        Action::OperatorRoleChanged,
        Action::OperatorRemoved,
        Action::OperatorSessionsEnded,
        Action::OperatorRestored,
        Action::OperatorInvited,
        Action::TenantOffboarded,
        Action::CustomerCreated,
        Action::CustomerUpdated,
        Action::SyncRequested,
        Action::SyncScheduleChanged,
        Action::DeletionsApproved,
        Action::DeletionsRejected,
        Action::DeletionGuardChanged,
        Action::TenantScopeChanged,
        Action::TenantReconsentRequired,
        Action::TenantConsentDrifted,
        Action::SettingsChanged,
        Action::ApiTokenCreated,
        Action::ApiTokenRevoked,
        Action::ApiTokenRateChanged,
        Action::WebhookEndpointCreated,
        Action::WebhookSecretRotated,
        Action::WebhookEndpointChanged,
        Action::WebhookEndpointDeleted,
        Action::WebhookTestSent,
        Action::WebhookDeliveryResent,
        Action::BackgroundTaskRunRequested,
        Action::ScimConnectionCreated,
        Action::ScimConnectionChanged,
        Action::ScimConnectionDeleted,
        Action::ScimPushRequested,
        Action::SigninApplicationCreated,
        Action::SigninApplicationKeysRegistered,
        Action::SignInSucceeded,
        Action::SignInRefused,
        Action::SigninApplicationUpdated,
        Action::SigninApplicationDeleted,
        Action::SigninSecretRotated,
        Action::SigninAccountLinked,
        Action::SigninAccountUnlinked,
        Action::CertificateCreated,
        Action::CertificateRegistered,
        Action::CertificateActivated,
        Action::CertificateRemoved,
        Action::ProviderSetupRan,
        Action::SetupSignInStarted,
        Action::SetupSignInFailed,
        Action::ClientSecretRotated,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvitationCreated => "invitation.created",
            Self::InvitationResent => "invitation.resent",
            Self::InvitationRevoked => "invitation.revoked",
            Self::InvitationOpened => "invitation.opened",
            Self::InvitationEmailSent => "invitation.email_sent",
            Self::InvitationEmailFailed => "invitation.email_failed",
            Self::ConsentStarted => "consent.started",
            Self::ConsentGranted => "consent.granted",
            Self::ConsentDeclined => "consent.declined",
            Self::ConsentFailed => "consent.failed",
            Self::OperatorSignedIn => "operator.signed_in",
            Self::OperatorSignInFailed => "operator.sign_in_failed",
            Self::OperatorSignedOut => "operator.signed_out",
            Self::OperatorAdded => "operator.added",
            Self::OperatorRoleChanged => "operator.role_changed",
            Self::OperatorRemoved => "operator.removed",
            Self::OperatorSessionsEnded => "operator.sessions_ended",
            Self::OperatorRestored => "operator.restored",
            Self::OperatorInvited => "operator.invited",
            Self::TenantOffboarded => "tenant.offboarded",
            Self::CustomerCreated => "customer.created",
            Self::CustomerUpdated => "customer.updated",
            Self::SyncRequested => "sync.requested",
            Self::SyncScheduleChanged => "sync.schedule_changed",
            Self::DeletionsApproved => "sync.deletions_approved",
            Self::DeletionsRejected => "sync.deletions_rejected",
            Self::DeletionGuardChanged => "sync.deletion_guard_changed",
            Self::TenantScopeChanged => "tenant.scope_changed",
            Self::TenantReconsentRequired => "tenant.reconsent_required",
            Self::TenantConsentDrifted => "tenant.consent_drifted",
            Self::SettingsChanged => "settings.changed",
            Self::ApiTokenCreated => "api_token.created",
            Self::ApiTokenRevoked => "api_token.revoked",
            Self::ApiTokenRateChanged => "api_token.rate_changed",
            Self::WebhookEndpointCreated => "webhook.endpoint_created",
            Self::WebhookSecretRotated => "webhook.secret_rotated",
            Self::WebhookEndpointChanged => "webhook.endpoint_changed",
            Self::WebhookEndpointDeleted => "webhook.endpoint_deleted",
            Self::WebhookTestSent => "webhook.test_sent",
            Self::WebhookDeliveryResent => "webhook.delivery_resent",
            Self::BackgroundTaskRunRequested => "background_task.run_requested",
            Self::ScimConnectionCreated => "scim.connection_created",
            Self::ScimConnectionChanged => "scim.connection_changed",
            Self::ScimConnectionDeleted => "scim.connection_deleted",
            Self::ScimPushRequested => "scim.push_requested",
            Self::SigninApplicationCreated => "signin.application_created",
            Self::SigninApplicationKeysRegistered => "signin.application_keys_registered",
            Self::SignInSucceeded => "signin.succeeded",
            Self::SignInRefused => "signin.refused",
            Self::SigninApplicationUpdated => "signin.application_updated",
            Self::SigninApplicationDeleted => "signin.application_deleted",
            Self::SigninSecretRotated => "signin.secret_rotated",
            Self::SigninAccountLinked => "signin.account_linked",
            Self::SigninAccountUnlinked => "signin.account_unlinked",
            Self::CertificateCreated => "certificate.created",
            Self::CertificateRegistered => "certificate.registered",
            Self::CertificateActivated => "certificate.activated",
            Self::CertificateRemoved => "certificate.removed",
            Self::ProviderSetupRan => "setup.ran",
            Self::SetupSignInStarted => "setup.sign_in_started",
            Self::SetupSignInFailed => "setup.sign_in_failed",
            Self::ClientSecretRotated => "setup.client_secret_rotated",
        }
    }

    /// Plain words for pages.
    pub fn label(self) -> &'static str {
        match self {
            Self::InvitationCreated => "Invitation created",
            Self::InvitationResent => "New link issued (the old one stopped working)",
            Self::InvitationRevoked => "Invitation revoked",
            Self::InvitationOpened => "Link opened",
            Self::InvitationEmailSent => "Invitation email delivered",
            Self::InvitationEmailFailed => "Invitation email could not be delivered (will retry)",
            Self::ConsentStarted => "Left for Microsoft's sign-in",
            Self::ConsentGranted => "Consent granted",
            Self::ConsentDeclined => "Consent declined",
            Self::ConsentFailed => "Consent attempt failed",
            Self::OperatorSignedIn => "Signed in",
            Self::OperatorSignInFailed => "Sign-in refused",
            Self::OperatorSignedOut => "Signed out",
            Self::OperatorAdded => "Operator added",
            Self::OperatorRoleChanged => "Operator's role changed",
            Self::OperatorRemoved => {
                "Operator removed (signed out everywhere, blocked until restored)"
            }
            Self::OperatorSessionsEnded => "Operator signed out everywhere",
            Self::OperatorRestored => "Removed operator restored (may sign in again)",
            Self::OperatorInvited => "Operator invited",
            Self::TenantOffboarded => "Tenant offboarded (credential erased)",
            Self::CustomerCreated => "Customer created",
            Self::CustomerUpdated => "Customer details changed",
            Self::SyncRequested => "Directory sync requested",
            Self::SyncScheduleChanged => "Sync schedule changed",
            Self::DeletionsApproved => "Held deletions approved (applied)",
            Self::DeletionsRejected => "Held deletions rejected (objects kept)",
            Self::DeletionGuardChanged => "Deletion guard thresholds changed",
            Self::TenantScopeChanged => "Sync scope changed",
            Self::TenantReconsentRequired => {
                "Access stopped working: the customer must consent again"
            }
            Self::TenantConsentDrifted => "Consent drifted from the permission profile",
            Self::SettingsChanged => "System settings changed",
            Self::ApiTokenCreated => "API token created",
            Self::ApiTokenRevoked => "API token revoked",
            Self::ApiTokenRateChanged => "API token's rate changed",
            Self::WebhookEndpointCreated => "Webhook endpoint added",
            Self::WebhookSecretRotated => {
                "Webhook secret rotated (the old one signs for 24 h more)"
            }
            Self::WebhookEndpointChanged => "Webhook endpoint enabled or disabled",
            Self::WebhookEndpointDeleted => "Webhook endpoint deleted",
            Self::WebhookTestSent => "Webhook test event sent",
            Self::WebhookDeliveryResent => "Webhook event sent again",
            Self::BackgroundTaskRunRequested => "Background task run on request",
            Self::ScimConnectionCreated => "SCIM connection added",
            Self::ScimConnectionChanged => "SCIM connection changed",
            Self::ScimConnectionDeleted => "SCIM connection deleted",
            Self::ScimPushRequested => "SCIM push requested",
            Self::SigninApplicationCreated => "Sign-in application registered",
            Self::SigninApplicationKeysRegistered => "Sign-in application's keys registered",
            Self::SignInSucceeded => "User signed in to an application",
            Self::SignInRefused => "User refused sign-in to an application",
            Self::SigninApplicationUpdated => "Sign-in application changed",
            Self::SigninApplicationDeleted => "Sign-in application deleted",
            Self::SigninSecretRotated => "Sign-in application's client secret replaced",
            Self::SigninAccountLinked => "User linked to an application account",
            Self::SigninAccountUnlinked => "User's application account link removed",
            Self::CertificateCreated => "App certificate created",
            Self::CertificateRegistered => "App certificate registered on the app",
            Self::CertificateActivated => "App certificate activated",
            Self::CertificateRemoved => "App certificate removed",
            Self::ProviderSetupRan => "Setup created or repaired the app registration",
            Self::SetupSignInStarted => "Setup sign-in started",
            Self::SetupSignInFailed => "Setup sign-in ended without a setup",
            Self::ClientSecretRotated => "Client secret rotated (the old one removed)",
        }
    }

    /// The action stored under `name`, if it is one Gangway records.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// One line of the audit trail as read back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEvent {
    /// Position in the trail.
    pub id: i64,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who acted, as stored (`operator:…`, `customer:…`, `link-holder:…`, `cli`…).
    pub actor: String,
    /// What happened, as its dotted name.
    pub action: String,
    /// The invitation it concerns, if any.
    pub invitation_id: Option<InvitationId>,
    /// The tenant it concerns, if any.
    pub tenant_id: Option<TenantRecordId>,
    /// Details (strings capped at [`MAX_DETAIL_CHARS`]).
    pub detail: Value,
    /// The tenant's display name, joined in for pages.
    #[serde(skip)]
    pub tenant_name: Option<String>,
    /// The invitation as people name it, "customer (admin email)", joined in for pages.
    #[serde(skip)]
    pub invitation_name: Option<String>,
}

impl AuditEvent {
    /// `detail` as short `key: value` text for pages.
    pub fn detail_text(&self) -> String {
        match &self.detail {
            Value::Object(map) => map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{}: {s}", field_label(k)),
                    other => format!("{}: {other}", field_label(k)),
                })
                .collect::<Vec<_>>()
                .join(" · "),
            _ => String::new(),
        }
    }
}

/// A detail's field name as people read it: `tenant_domain` is "Tenant domain".
fn field_label(key: &str) -> String {
    let words = key.replace('_', " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A checked query over the audit trail with the names of the tenant and invitation each row
/// concerns joined in, for pages; `$tail` (string literals joined with `+`) filters and orders.
macro_rules! named_events {
    ($tail:literal $(+ $more:literal)* $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            AuditEvent,
            r#"select a.id, a.at, a.actor, a.action,
                      a.invitation_id as "invitation_id: crate::types::InvitationId",
                      a.tenant_id as "tenant_id: crate::types::TenantRecordId", a.detail,
                      t.display_name as "tenant_name?",
                      c.name::text || ' (' || i.admin_email::text || ')' as "invitation_name?"
               from audit_events a
               left join tenants t on t.id = a.tenant_id
               left join invitations i on i.id = a.invitation_id
               left join customers c on c.id = i.customer_id "# + $tail $(+ $more)*
            $(, $arg)*
        )
    };
}

/// The longest text kept in one detail value: details carry what customers and Microsoft
/// said, and an audit row is no place for a megabyte of it.
pub const MAX_DETAIL_CHARS: usize = 500;

/// Appends an event; string values in `detail` have the secrets of the URLs they hold removed
/// ([`redact_urls`]) and are cut to [`MAX_DETAIL_CHARS`].
pub async fn record(
    db: impl PgExecutor<'_>,
    actor: &Actor,
    action: Action,
    invitation_id: Option<Uuid>,
    tenant_id: Option<Uuid>,
    detail: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into audit_events (actor, action, invitation_id, tenant_id, detail)
         values ($1, $2, $3, $4, $5)",
        actor.label(),
        action.as_str(),
        invitation_id,
        tenant_id,
        capped(detail),
    )
    .execute(db)
    .await?;
    Ok(())
}

fn capped(value: Value) -> Value {
    match value {
        Value::String(s) => {
            let s = redact_urls(&s);
            if s.chars().count() > MAX_DETAIL_CHARS {
                Value::String(s.chars().take(MAX_DETAIL_CHARS).chain(['…']).collect())
            } else {
                Value::String(s)
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(capped).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, capped(v))).collect()),
        other => other,
    }
}

/// What replaces a URL's query or fragment in the trail.
pub const REDACTED: &str = "[redacted]";

/// `text` with every http(s) URL in it stripped of what may be a secret: its credentials
/// (`user:password@`) and everything from its query or fragment on (`?token=…` becomes
/// `?[redacted]`). Viewers read the trail, and webhook receivers often take their secret in
/// the URL. A URL ends at whitespace, `"`, `\`, `<` or `>`; a migration scrubbed the rows
/// written before with the same rule.
pub fn redact_urls(text: &str) -> String {
    const END: &[char] = &['"', '\\', '<', '>'];
    let ends = |c: char| c.is_whitespace() || END.contains(&c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_url(rest) {
        let (before, url) = rest.split_at(at);
        out.push_str(before);
        let len = url.find(ends).unwrap_or(url.len());
        let (url, after) = url.split_at(len);
        let (scheme, tail) = url.split_at(url.find("://").expect("found by find_url") + 3);
        out.push_str(scheme);
        let authority_len = tail.find(['/', '?', '#']).unwrap_or(tail.len());
        let host_at = tail[..authority_len].rfind('@').map_or(0, |a| a + 1);
        let tail = &tail[host_at..];
        match tail.find(['?', '#']) {
            Some(cut) => {
                out.push_str(&tail[..=cut]);
                out.push_str(REDACTED);
            }
            None => out.push_str(tail),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Where the first `http://` or `https://` (any case) in `text` starts.
fn find_url(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    [lower.find("http://"), lower.find("https://")]
        .into_iter()
        .flatten()
        .min()
}

/// A checked query over the trail narrowed by a search (`$1`, a `contains_pattern`), given as
/// `query!(head tokens)` then `$tail` and the arguments: the page and its count share this one
/// condition.
macro_rules! events_matching {
    ($($query:ident)::+ !($($head:tt)*), $tail:literal $(, $arg:expr)* $(,)?) => {
        $($query)::+!(
            $($head)* r"where $1::text is null or a.actor ilike $1 escape '\'
                           or a.action ilike $1 escape '\' or a.detail::text ilike $1 escape '\' "
                + $tail
            $(, $arg)*
        )
    };
}

/// One page of the whole trail, newest first, optionally narrowed by a search term.
pub async fn page(
    db: &PgPool,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    events_matching!(
        named_events!(),
        "order by a.at desc, a.id desc limit $2 offset $3",
        search.map(crate::db::contains_pattern),
        limit,
        offset,
    )
    .fetch_all(db)
    .await
}

/// An invitation's timeline, oldest first.
pub async fn for_invitation(
    db: &PgPool,
    invitation_id: Uuid,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    named_events!(
        "where a.invitation_id = $1 order by a.at, a.id",
        invitation_id
    )
    .fetch_all(db)
    .await
}

/// A tenant's history, newest first.
pub async fn for_tenant(db: &PgPool, tenant_id: Uuid) -> Result<Vec<AuditEvent>, sqlx::Error> {
    named_events!(
        "where a.tenant_id = $1 order by a.at desc, a.id desc",
        tenant_id
    )
    .fetch_all(db)
    .await
}

/// How many events [`page`] would go through for `search`, for "showing 1–50 of N".
pub async fn count(db: &PgPool, search: Option<&str>) -> Result<i64, sqlx::Error> {
    events_matching!(
        sqlx::query_scalar!(r#"select count(*) as "count!" from audit_events a "# +),
        "",
        search.map(crate::db::contains_pattern),
    )
    .fetch_one(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_detail_values_are_capped_at_any_depth() {
        let long = "x".repeat(MAX_DETAIL_CHARS * 4);
        let kept = capped(serde_json::json!({ "reason": long, "list": [long], "n": 1 }));
        assert_eq!(
            kept["reason"].as_str().unwrap().chars().count(),
            MAX_DETAIL_CHARS + 1
        );
        assert_eq!(
            kept["list"][0].as_str().unwrap().chars().count(),
            MAX_DETAIL_CHARS + 1
        );
        assert_eq!(kept["n"], 1);
    }

    #[test]
    fn secrets_in_urls_never_reach_the_trail() {
        assert_eq!(
            redact_urls("https://hooks.example/in?token=s3cret&x=1"),
            "https://hooks.example/in?[redacted]"
        );
        assert_eq!(
            redact_urls(
                "url was HTTPS://bob:pw@hooks.example:8443/a#key=1, then http://x.example/ok"
            ),
            "url was HTTPS://hooks.example:8443/a#[redacted] then http://x.example/ok"
        );
        assert_eq!(
            redact_urls("error sending request for url (https://u@h.example/?t=1)"),
            "error sending request for url (https://h.example/?[redacted]"
        );
        assert_eq!(redact_urls("no url here: a@b?c"), "no url here: a@b?c");
        let kept = capped(
            serde_json::json!({ "url": "https://h.example/?t=1", "n": [ "http://a:b@h/" ] }),
        );
        assert_eq!(kept["url"], "https://h.example/?[redacted]");
        assert_eq!(kept["n"][0], "http://h/");
    }

    #[test]
    fn every_action_parses_back_from_its_name_and_has_a_label() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
            assert!(!action.label().is_empty());
        }
        assert_eq!(Action::parse("invitation.exploded"), None);
    }
}
