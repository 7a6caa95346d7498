//! The app-registration doctor: what the provider's app registration in Entra ID must hold
//! (each value to enter in the Entra admin center), and what Gangway verifies itself — that
//! Entra ID answers, that the provider's tenant accepts the app's client secret, and, read
//! through Graph's `/applications`, that the registration has the redirect URIs, sign-in
//! audience, ID-token claim, live secret and permissions the permission profiles in use need,
//! and what users' sign-in through Gangway needs (its redirect URI, `openid profile email`).
//! Each finding is a [`Check`]: pass, warn, fail or skip, with what was seen and the exact fix.
//!
//! `gangway doctor` and the console's Doctor page both run [`run`]; the comparisons themselves
//! are the pure functions of [`checks`].

mod certificate;
pub mod checks;
pub mod graph_ids;

use serde::Serialize;
use sqlx::PgPool;
use time::{Date, OffsetDateTime};
use url::Url;

use crate::audit::Actor;
use crate::crypto::Keyring;
use crate::graph::GraphClient;
use crate::identity::{AadErrorKind, IdentityError};
use crate::settings::{self, Edit, Key, Live, Settings, profiles};

/// Where Microsoft sends a customer's admin back (the web layer's `CALLBACK`), relative to
/// the public URL.
pub const CALLBACK_PATH: &str = "authenticate/OAuth2Callback";
/// Where Microsoft sends an operator back after signing in to the console with Entra ID.
pub const SSO_CALLBACK_PATH: &str = "console/sso/callback";
/// The console's front-channel logout URL: Entra ID loads it when an operator signs out there.
pub const SSO_LOGOUT_PATH: &str = "console/sso/logout";
/// Where Microsoft sends a customer's user back when they sign in to one of the provider's
/// applications through Gangway (the web layer's `SIGNIN_CALLBACK`).
pub const SIGNIN_CALLBACK_PATH: &str = "oidc/callback";
/// The delegated permissions a user's sign-in through Gangway asks of Entra ID.
pub const SIGNIN_SCOPES: [&str; 3] = ["openid", "profile", "email"];
/// The sign-in audience of a multi-tenant app (any organization's Entra ID).
pub const MULTI_TENANT_AUDIENCE: &str = "AzureADMultipleOrgs";
/// The Graph permission Gangway needs in the provider's own tenant to read its registration.
pub const OWN_PERMISSION: &str = "Application.Read.All";

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// As it should be.
    Pass,
    /// Works today, but needs attention (soon, or before a feature is turned on).
    Warn,
    /// Broken: something customers or operators do fails until it is fixed.
    Fail,
    /// Not checked, because an earlier check failed; the fix says what to look at by hand.
    Skip,
}

impl CheckStatus {
    /// `PASS`, `WARN`, `FAIL` or `SKIP`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
            Self::Skip => "SKIP",
        }
    }

    /// `pass`, `warn`, `fail` or `skip`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
            Self::Skip => "skip",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable name (`redirect_uri`, `permissions:<profile id>`, …).
    pub id: String,
    /// What is checked, in a few words.
    pub title: String,
    /// The outcome.
    pub status: CheckStatus,
    /// What was seen.
    pub detail: String,
    /// What to do, where it is not a pass.
    pub fix: Option<String>,
    /// Values the fix asks to paste (redirect URIs, a URL, permission names).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl Check {
    /// A finding without a fix or values.
    pub fn new(id: impl Into<String>, title: impl Into<String>, status: CheckStatus) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            status,
            detail: String::new(),
            fix: None,
            values: Vec::new(),
        }
    }

    /// With what was seen.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// With the fix.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// With values to paste.
    pub fn values(mut self, values: impl IntoIterator<Item = String>) -> Self {
        self.values = values.into_iter().collect();
        self
    }
}

/// A redirect URI the registration needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedirectUri {
    /// The URI, exactly as it must be registered (platform Web).
    pub uri: String,
    /// What it is for.
    pub purpose: &'static str,
    /// Whether something in use needs it now (operator sign-in's only once it is on).
    pub required: bool,
    /// The id of its check.
    #[serde(skip)]
    pub check: &'static str,
    /// The title of its check.
    #[serde(skip)]
    pub title: &'static str,
    /// When it becomes needed, said when it is missing before that.
    #[serde(skip)]
    pub needed_once: &'static str,
}

/// What one permission profile in use needs of the registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileNeeds {
    /// The profile's id.
    pub id: crate::types::ProfileId,
    /// Its name.
    pub name: String,
    /// Delegated Microsoft Graph permissions.
    pub delegated: Vec<String>,
    /// Application Microsoft Graph permissions.
    pub application: Vec<String>,
}

/// Every value the app registration must hold, as entered in the Entra admin center.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expected {
    /// The Application (client) ID Gangway signs in as.
    pub client_id: String,
    /// The provider's tenant, where the app is registered (when set).
    pub tenant_id: Option<String>,
    /// Redirect URIs, platform Web.
    pub redirect_uris: Vec<RedirectUri>,
    /// The front-channel logout URL.
    pub logout_url: String,
    /// `signInAudience`.
    pub sign_in_audience: &'static str,
    /// The same as the admin center words it.
    pub account_types: &'static str,
    /// `groupMembershipClaims`: what makes ID tokens carry `wids`.
    pub group_membership_claims: &'static str,
    /// The Microsoft Graph permissions each profile in use needs.
    pub profiles: Vec<ProfileNeeds>,
    /// The application permission the doctor needs, granted in the provider's own tenant.
    pub own_permission: &'static str,
    /// The delegated permissions users' sign-in through Gangway needs.
    pub signin_scopes: [&'static str; 3],
    /// Whether an application signs users in through Gangway (then sign-in's needs are due).
    pub signin_in_use: bool,
}

impl Expected {
    /// What `settings`, the portal at `public_url`, the profiles in use and sign-in (when an
    /// application uses it) ask of the registration.
    pub fn new(
        settings: &Settings,
        public_url: &Url,
        profiles: &[crate::types::Profile],
        signin_in_use: bool,
    ) -> Self {
        let at = |path: &str| {
            public_url
                .join(path)
                .map(|u| u.to_string())
                .unwrap_or_else(|_| format!("{public_url}{path}"))
        };
        Self {
            client_id: settings
                .client_id
                .map(|c| c.to_string())
                .unwrap_or_default(),
            tenant_id: settings.provider_tenant_id.map(|t| t.to_string()),
            redirect_uris: vec![
                RedirectUri {
                    uri: at(CALLBACK_PATH),
                    purpose: "Customers' admins come back here after consenting",
                    required: true,
                    check: "redirect_uri",
                    title: "Redirect URI for customers' consent",
                    needed_once: "",
                },
                RedirectUri {
                    uri: at(SSO_CALLBACK_PATH),
                    purpose: "Operators come back here after signing in to the console with Entra ID",
                    required: settings.sso.enabled,
                    check: "sso_redirect_uri",
                    title: "Redirect URI for operator sign-in",
                    needed_once: "It is needed once operators sign in with Entra ID.",
                },
                RedirectUri {
                    uri: at(SIGNIN_CALLBACK_PATH),
                    purpose: "Customers' users come back here when signing in to your applications through Gangway",
                    required: signin_in_use,
                    check: "signin_redirect_uri",
                    title: "Redirect URI for users' sign-in to your applications",
                    needed_once: "It is needed once an application signs users in through Gangway (Applications).",
                },
            ],
            logout_url: at(SSO_LOGOUT_PATH),
            sign_in_audience: MULTI_TENANT_AUDIENCE,
            account_types: "Accounts in any organizational directory (Any Microsoft Entra ID tenant – Multitenant)",
            group_membership_claims: "DirectoryRole",
            profiles: profiles
                .iter()
                .map(|p| ProfileNeeds {
                    id: p.id,
                    name: p.name.clone(),
                    delegated: p.delegated_scopes(),
                    application: p.application_scopes(),
                })
                .collect(),
            own_permission: OWN_PERMISSION,
            signin_scopes: SIGNIN_SCOPES,
            signin_in_use,
        }
    }
}

/// Everything the doctor found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What the registration must hold.
    pub expected: Expected,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// The secret's expiry as read from the registration, when the doctor stored it in System
    /// Settings (it differed from the stored one).
    #[serde(serialize_with = "iso_date")]
    pub stored_secret_expiry: Option<Date>,
}

/// `2027-06-30`, as System Settings stores it.
fn iso_date<S: serde::Serializer>(date: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
    match date {
        Some(d) => s.serialize_some(&d.to_string()),
        None => s.serialize_none(),
    }
}

impl Report {
    /// Whether no check failed (warnings and skips do not count).
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(|c| c.status == CheckStatus::Fail)
    }

    /// How many checks came out `status`.
    pub fn count(&self, status: CheckStatus) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// "12 passed, 1 warning, 2 failed" (and skipped, when any).
    pub fn summary(&self) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = vec![
            format!("{} passed", self.count(CheckStatus::Pass)),
            plural(self.count(CheckStatus::Warn), "warning", "warnings"),
            format!("{} failed", self.count(CheckStatus::Fail)),
        ];
        let skipped = self.count(CheckStatus::Skip);
        if skipped > 0 {
            parts.push(format!("{skipped} skipped"));
        }
        parts.join(", ")
    }
}

/// Runs every check for the provider app of `live` (its settings and Entra client) with Graph
/// at `graph`, the portal at `public_url` and Entra ID at `authority`.
///
/// The secret's `endDateTime`, when read from the registration and different from the stored
/// *Client secret expires*, is saved in System Settings (audited as Gangway itself, sealed
/// with `keys` like every save), so the settings page and its reminders show the real date.
/// The report says when it did, so a caching caller can read the settings again.
pub async fn run(
    db: &PgPool,
    keys: &Keyring,
    live: &Live,
    graph: &GraphClient,
    public_url: &Url,
    authority: &Url,
) -> Report {
    let settings = &live.settings;
    let mut checks = Vec::new();
    let profiles = match profiles::in_use(db).await {
        Ok(p) => p,
        Err(e) => {
            checks.push(
                Check::new("profiles", "Permission profiles in use", CheckStatus::Fail)
                    .detail(format!("Gangway could not read them: {e}"))
                    .fix("Check that the database is reachable, then run the doctor again."),
            );
            Vec::new()
        }
    };
    let signin_in_use =
        sqlx::query_scalar!(r#"select exists (select 1 from signin_applications) as "in_use!""#)
            .fetch_one(db)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not tell whether sign-in is in use");
                true
            });
    let expected = Expected::new(settings, public_url, &profiles, signin_in_use);
    let (Ok(entra), Some(client_id)) = (live.entra(), settings.client_id) else {
        checks.push(checks::not_set_up());
        checks.push(checks::provider_tenant(
            settings.provider_tenant_id.as_ref(),
        ));
        return Report {
            expected,
            checks,
            stored_secret_expiry: None,
        };
    };

    checks.push(checks::discovery(
        &entra.discovery("organizations").await,
        authority,
    ));

    let active_certificate = match crate::credentials::list(db).await {
        Ok(certs) => certs
            .into_iter()
            .find(|c| c.state == crate::credentials::CertificateState::Active),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the app certificates");
            None
        }
    };
    let mut secret_expired = false;
    let registration = match settings.provider_tenant_id {
        None => {
            checks.push(checks::provider_tenant(None));
            None
        }
        Some(tenant) => {
            checks.push(checks::provider_tenant(Some(&tenant)));
            let token = entra.app_token(&tenant, None).await;
            secret_expired = matches!(
                &token,
                Err(e @ IdentityError::Aad(_)) if e.aad_kind() == Some(AadErrorKind::ExpiredSecret)
            );
            // The same seam token requests use: the certificate they are signed with, if any.
            checks.push(checks::client_credentials(
                &token,
                &client_id,
                &tenant,
                entra.certificate_thumbprint().as_deref(),
            ));
            let registration = match &token {
                Ok(token) => {
                    let read = graph.application(token, &client_id).await;
                    checks.push(checks::registration(&read, &client_id, &tenant));
                    read.ok().flatten()
                }
                Err(_) => None,
            };
            if let Some(active) = &active_certificate {
                checks.push(certificate::check(
                    active,
                    registration.as_ref(),
                    &token,
                    settings.certificate_rotation_days.into(),
                    OffsetDateTime::now_utc(),
                ));
            }
            registration
        }
    };

    let now = OffsetDateTime::now_utc();
    let secret = match (&registration, secret_expired) {
        _ if entra.certificate_thumbprint().is_some() => checks::SecretSource::Unused,
        (Some(reg), _) => checks::SecretSource::Registration(reg),
        (None, true) => checks::SecretSource::ExpiredPerEntra,
        (None, false) => checks::SecretSource::Stored(settings.client_secret_expires),
    };
    let (found, expiry) = checks::registration_checks(
        registration.as_ref(),
        &expected,
        settings.sso.enabled,
        settings.client_secret.as_ref(),
        secret,
        now,
    );
    checks.extend(found);
    checks.extend(crate::setup::rotation::check(db, live).await);

    let stored_secret_expiry = match expiry {
        Some(date) if registration.is_some() && settings.client_secret_expires != Some(date) => {
            remember_expiry(db, keys, date).await.then_some(date)
        }
        _ => None,
    };
    Report {
        expected,
        checks,
        stored_secret_expiry,
    }
}

/// Saves the secret's expiry as read from the registration; a date the settings refuse (more
/// than 24 months away, which Microsoft's own portal does not offer) is left unsaved.
async fn remember_expiry(db: &PgPool, keys: &Keyring, date: Date) -> bool {
    let edit = Edit {
        key: Key::ClientSecretExpires,
        raw: date.to_string(),
    };
    match settings::save(db, keys, &[edit], &Actor::System).await {
        Ok(changed) => !changed.is_empty(),
        Err(e) => {
            tracing::warn!(error = %e, "could not store the client secret's expiry");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_each_outcome() {
        let check = |status| Check::new("x", "x", status);
        let report = Report {
            expected: Expected {
                client_id: String::new(),
                tenant_id: None,
                redirect_uris: Vec::new(),
                logout_url: String::new(),
                sign_in_audience: MULTI_TENANT_AUDIENCE,
                account_types: "",
                group_membership_claims: "DirectoryRole",
                profiles: Vec::new(),
                own_permission: OWN_PERMISSION,
                signin_scopes: SIGNIN_SCOPES,
                signin_in_use: false,
            },
            checks: vec![
                check(CheckStatus::Pass),
                check(CheckStatus::Pass),
                check(CheckStatus::Warn),
            ],
            stored_secret_expiry: None,
        };
        assert!(report.passed());
        assert_eq!(report.summary(), "2 passed, 1 warning, 0 failed");
        let mut failed = report.clone();
        failed.checks.push(check(CheckStatus::Fail));
        failed.checks.push(check(CheckStatus::Skip));
        assert!(!failed.passed());
        assert_eq!(failed.summary(), "2 passed, 1 warning, 1 failed, 1 skipped");
    }
}
