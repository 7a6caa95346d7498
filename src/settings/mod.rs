//! System Settings: what a provider configures in the console — its app registration, how
//! customers see it, the default sync schedule, how operators sign in. Stored in Postgres
//! (secrets sealed), seeded from the environment on first start, edited by admins (every
//! change audited, secrets never shown) and read by every process through [`SettingsCache`],
//! so a change reaches all of them within seconds, without a restart.

pub mod code;
pub mod profiles;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;
use time::{Date, OffsetDateTime};
use url::Url;
use uuid::Uuid;

use crate::audit::{self, Action, Actor};
use crate::crypto::Keyring;
use crate::identity::{EntraClient, EntraEndpoints};
use crate::types::schedule::default_schedule;
use crate::types::{Branding, ClientId, EmailAddress, Schedule, Secret, TenantId};

/// A secret may live at most this long (Microsoft's limit for client secrets).
pub const MAX_SECRET_MONTHS: i32 = 24;

/// The deletion guard's share (%) of a chain's objects a round may delete without a hold,
/// unless System Settings or the tenant say otherwise.
pub const DEFAULT_DELETION_GUARD_PERCENT: i32 = 20;
/// The deletion guard's number of objects a round may delete without a hold, by default.
pub const DEFAULT_DELETION_GUARD_OBJECTS: i32 = 500;
/// Days before the app certificate expires that Gangway replaces it, unless set.
pub const DEFAULT_CERTIFICATE_ROTATION_DAYS: i32 = 30;

/// One setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// The provider app's Application (client) ID.
    ClientId,
    /// Its client secret (sealed, write-only).
    ClientSecret,
    /// When that secret expires.
    ClientSecretExpires,
    /// The provider's own tenant (operator sign-in, the doctor's checks).
    ProviderTenantId,
    /// The provider's name as customers see it.
    ProviderName,
    /// Its logo (an https URL).
    LogoUrl,
    /// Where customers get help: email.
    SupportEmail,
    /// Where customers get help: a web page.
    SupportUrl,
    /// Terms of service.
    TermsUrl,
    /// Privacy statement.
    PrivacyUrl,
    /// The sync schedule of tenants without one.
    DefaultSchedule,
    /// Whether operators may sign in with a local password.
    LocalPasswords,
    /// Whether operators may sign in with Entra ID.
    SsoEnabled,
    /// Entra group ids whose members are admins.
    SsoAdminGroups,
    /// Entra group ids whose members are viewers.
    SsoViewerGroups,
    /// App roles (`roles` claim) that make an admin.
    SsoAdminRoles,
    /// App roles that make a viewer.
    SsoViewerRoles,
    /// Internal networks and hosts webhooks may reach anyway.
    WebhookAllowedNetworks,
    /// JSON API calls per second allowed to each token without a rate of its own.
    ApiCallsPerSecond,
    /// The deletion guard's share (%) of tenants without their own.
    DeletionGuardPercent,
    /// The deletion guard's number of objects for tenants without their own.
    DeletionGuardObjects,
    /// Days the event stream keeps events.
    EventRetentionDays,
    /// Days before the app certificate expires that Gangway replaces it.
    CertificateRotationDays,
    /// Gangway rotates its client secret this many days before it expires.
    SecretRotationDays,
}

impl Key {
    /// Every setting, in the page's order.
    pub const ALL: [Key; 24] = [
        Key::ClientId,
        Key::ClientSecret,
        Key::ClientSecretExpires,
        Key::ProviderTenantId,
        Key::ProviderName,
        Key::LogoUrl,
        Key::SupportEmail,
        Key::SupportUrl,
        Key::TermsUrl,
        Key::PrivacyUrl,
        Key::DefaultSchedule,
        Key::LocalPasswords,
        Key::SsoEnabled,
        Key::SsoAdminGroups,
        Key::SsoViewerGroups,
        Key::SsoAdminRoles,
        Key::SsoViewerRoles,
        Key::WebhookAllowedNetworks,
        Key::ApiCallsPerSecond,
        Key::DeletionGuardPercent,
        Key::DeletionGuardObjects,
        Key::EventRetentionDays,
        Key::CertificateRotationDays,
        Key::SecretRotationDays,
    ];

    /// The stored name (also the form field's).
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientId => "client_id",
            Self::ClientSecret => "client_secret",
            Self::ClientSecretExpires => "client_secret_expires",
            Self::ProviderTenantId => "provider_tenant_id",
            Self::ProviderName => "provider_name",
            Self::LogoUrl => "logo_url",
            Self::SupportEmail => "support_email",
            Self::SupportUrl => "support_url",
            Self::TermsUrl => "terms_url",
            Self::PrivacyUrl => "privacy_url",
            Self::DefaultSchedule => "default_schedule",
            Self::LocalPasswords => "local_passwords",
            Self::SsoEnabled => "sso_enabled",
            Self::SsoAdminGroups => "sso_admin_groups",
            Self::SsoViewerGroups => "sso_viewer_groups",
            Self::SsoAdminRoles => "sso_admin_roles",
            Self::SsoViewerRoles => "sso_viewer_roles",
            Self::WebhookAllowedNetworks => crate::webhooks::egress::SETTING,
            Self::ApiCallsPerSecond => "api_calls_per_second",
            Self::DeletionGuardPercent => "deletion_guard_percent",
            Self::DeletionGuardObjects => "deletion_guard_objects",
            Self::EventRetentionDays => crate::events::RETENTION_SETTING,
            Self::CertificateRotationDays => "certificate_rotation_days",
            Self::SecretRotationDays => "secret_rotation_days",
        }
    }

    /// The key stored under `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The environment variable that seeds it, if any.
    pub fn env(self) -> Option<&'static str> {
        match self {
            Self::ClientId => Some("GANGWAY_CLIENT_ID"),
            Self::ClientSecret => Some("GANGWAY_CLIENT_SECRET"),
            Self::ProviderTenantId => Some("GANGWAY_PROVIDER_TENANT_ID"),
            Self::ProviderName => Some("GANGWAY_PROVIDER_NAME"),
            Self::DefaultSchedule => Some("GANGWAY_SYNC_SCHEDULE"),
            Self::ApiCallsPerSecond => Some("GANGWAY_API_CALLS_PER_SECOND"),
            _ => None,
        }
    }

    /// As the page labels it.
    pub fn label(self) -> &'static str {
        match self {
            Self::ClientId => "Application (client) ID",
            Self::ClientSecret => "Client secret",
            Self::ClientSecretExpires => "Client secret expires",
            Self::ProviderTenantId => "Your tenant ID",
            Self::ProviderName => "Display name",
            Self::LogoUrl => "Logo URL",
            Self::SupportEmail => "Support email",
            Self::SupportUrl => "Support page",
            Self::TermsUrl => "Terms of service",
            Self::PrivacyUrl => "Privacy statement",
            Self::DefaultSchedule => "Default sync schedule",
            Self::LocalPasswords => "Local passwords",
            Self::SsoEnabled => "Sign-in with Entra ID",
            Self::SsoAdminGroups => "Admin groups",
            Self::SsoViewerGroups => "Viewer groups",
            Self::SsoAdminRoles => "Admin app roles",
            Self::SsoViewerRoles => "Viewer app roles",
            Self::WebhookAllowedNetworks => "Webhooks may reach",
            Self::ApiCallsPerSecond => "API calls per second, per token",
            Self::DeletionGuardPercent => "Hold deletions above (% of a tenant's users or groups)",
            Self::DeletionGuardObjects => "Hold deletions above (objects)",
            Self::EventRetentionDays => "Event retention (days)",
            Self::CertificateRotationDays => "Replace the app certificate (days before expiry)",
            Self::SecretRotationDays => "Rotate the client secret (days before expiry)",
        }
    }

    /// Whether its value is sealed and never shown.
    pub fn is_secret(self) -> bool {
        self == Self::ClientSecret
    }
}

/// Operator sign-in with Entra ID of the provider's tenant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SsoSettings {
    /// Offered on the sign-in page.
    pub enabled: bool,
    /// Members of these groups (`groups` claim) are admins.
    pub admin_groups: Vec<Uuid>,
    /// Members of these groups are viewers.
    pub viewer_groups: Vec<Uuid>,
    /// Holders of these app roles (`roles` claim) are admins.
    pub admin_roles: Vec<String>,
    /// Holders of these app roles are viewers.
    pub viewer_roles: Vec<String>,
}

/// The settings as one process sees them now.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The provider app's client id; `None` until the setup registered the app (or one was
    /// entered).
    pub client_id: Option<ClientId>,
    /// Its secret; `None` when the app authenticates with a certificate only.
    pub client_secret: Option<Secret>,
    /// When the secret expires, when known.
    pub client_secret_expires: Option<Date>,
    /// The provider's own tenant, when set.
    pub provider_tenant_id: Option<TenantId>,
    /// How customers see the provider.
    pub branding: Branding,
    /// The sync schedule of tenants without one.
    pub default_schedule: Schedule,
    /// Whether local passwords are accepted.
    pub local_passwords: bool,
    /// Operator sign-in with Entra ID.
    pub sso: SsoSettings,
    /// Internal networks and hosts webhooks may reach anyway (see `webhooks::egress`).
    pub webhook_allowed_networks: Vec<String>,
    /// JSON API calls per second allowed to each token without a rate of its own.
    pub api_calls_per_second: u32,
    /// The deletion guard's share (%) for tenants without their own.
    pub deletion_guard_percent: i32,
    /// The deletion guard's number of objects for tenants without their own.
    pub deletion_guard_objects: i32,
    /// Days the event stream keeps events.
    pub event_retention_days: i32,
    /// Days before the app certificate expires that Gangway replaces it.
    pub certificate_rotation_days: i32,
    /// Gangway rotates the client secret it manages this many days before it expires.
    pub secret_rotation_days: i32,
    /// Each stored key: still as the environment seeded it (`true`) or changed in the console.
    pub origin: BTreeMap<Key, Origin>,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Seeded from its environment variable and not changed since.
    Environment(&'static str),
    /// Changed in the console (by whom, when).
    Console {
        /// Who changed it last.
        by: Option<String>,
        /// When.
        at: OffsetDateTime,
    },
    /// Never set: the default applies.
    Default,
}

/// What can go wrong with settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Values that cannot be saved, each with why (nothing was saved).
    #[error("{}", .0.iter().map(|(k, m)| format!("{}: {m}", k.label())).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(Key, String)>),
    /// Settings given as JSON that cannot be read as settings (unknown names, another
    /// format); nothing was saved.
    #[error("{0}")]
    Unreadable(String),
    /// The provider app is not registered yet: no Application (client) ID is stored.
    #[error(
        "Gangway's app registration is not set up yet: an administrator of your tenant runs the setup (console → Setup, or `gangway setup --tenant <tenant id>`)"
    )]
    NotSetUp,
    /// A sealed value no configured key opens.
    #[error("the stored {} is sealed with key {}, which is not configured", .0.label(), .1)]
    Sealed(Key, String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What the environment offers to seed.
#[derive(Debug, Clone)]
pub struct Seed {
    /// `GANGWAY_CLIENT_ID`, when set (the setup registers the app otherwise).
    pub client_id: Option<String>,
    /// `GANGWAY_CLIENT_SECRET`, when set.
    pub client_secret: Option<Secret>,
    /// `GANGWAY_PROVIDER_TENANT_ID`, when set.
    pub provider_tenant_id: Option<TenantId>,
    /// `GANGWAY_PROVIDER_NAME`.
    pub provider_name: String,
    /// `GANGWAY_SYNC_SCHEDULE`.
    pub default_schedule: Schedule,
    /// `GANGWAY_API_CALLS_PER_SECOND`.
    pub api_calls_per_second: u32,
}

/// JSON API calls per second per token when nothing else is set.
pub const DEFAULT_API_CALLS_PER_SECOND: u32 = 20;

/// The stored default sync schedule (System Settings), or Gangway's own default.
pub async fn stored_default_schedule(db: &PgPool) -> Result<Schedule, sqlx::Error> {
    let stored = sqlx::query_scalar!("select value from settings where key = 'default_schedule'")
        .fetch_optional(db)
        .await?
        .flatten();
    Ok(default_schedule_from(stored.as_ref()))
}

/// The default sync schedule a stored `default_schedule` setting holds (`None`: none stored),
/// or Gangway's own default.
pub fn default_schedule_from(stored: Option<&Value>) -> Schedule {
    stored
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(default_schedule)
}

/// Gets the settings ready at start: the environment seeds what is not stored yet, and the
/// built-in permission profile is written from Gangway's own list.
pub async fn prepare(db: &PgPool, keys: &Keyring, seed: &Seed) -> Result<(), sqlx::Error> {
    self::seed(db, keys, seed).await?;
    profiles::refresh_built_in(db).await
}

/// Stores the environment's values for every setting not stored yet (first start, or a
/// setting added since); stored values are left alone.
pub async fn seed(db: &PgPool, keys: &Keyring, seed: &Seed) -> Result<(), sqlx::Error> {
    let rows: [(Key, Option<Value>, Option<&Secret>); 6] = [
        (
            Key::ClientId,
            seed.client_id.as_ref().map(|c| json!(c)),
            None,
        ),
        (Key::ClientSecret, None, seed.client_secret.as_ref()),
        (
            Key::ProviderTenantId,
            seed.provider_tenant_id.map(|t| json!(t.to_string())),
            None,
        ),
        (Key::ProviderName, Some(json!(seed.provider_name)), None),
        (
            Key::DefaultSchedule,
            Some(json!(seed.default_schedule.to_string())),
            None,
        ),
        (
            Key::ApiCallsPerSecond,
            Some(json!(seed.api_calls_per_second)),
            None,
        ),
    ];
    for (key, value, secret) in rows {
        if value.is_none() && secret.is_none() {
            continue;
        }
        let sealed = secret.map(|s| keys.seal(s.expose().as_bytes()));
        sqlx::query!(
            "insert into settings (key, value, ciphertext, key_id, from_env) values ($1, $2, $3, $4, true)
             on conflict (key) do nothing",
            key.name(),
            value,
            sealed,
            sealed.as_ref().map(|_| keys.id()),
        )
        .execute(db)
        .await?;
    }
    Ok(())
}

/// Reads the settings from the database.
pub async fn load(db: &PgPool, keys: &Keyring) -> Result<Settings, SettingsError> {
    let rows = sqlx::query!(
        "select key, value, ciphertext, key_id, from_env, updated_at, updated_by from settings",
    )
    .fetch_all(db)
    .await?;
    let mut values = BTreeMap::new();
    let mut origin = BTreeMap::new();
    let mut secret = None;
    for row in rows {
        let Some(key) = Key::parse(&row.key) else {
            continue;
        };
        origin.insert(
            key,
            match (row.from_env, key.env()) {
                (true, Some(env)) => Origin::Environment(env),
                _ => Origin::Console {
                    by: row.updated_by,
                    at: row.updated_at,
                },
            },
        );
        if let (Some(sealed), Some(key_id)) = (row.ciphertext, row.key_id) {
            let plain = keys
                .open(&key_id, &sealed)
                .map_err(|_| SettingsError::Sealed(key, key_id.clone()))?;
            secret = Some(Secret::new(String::from_utf8_lossy(&plain).into_owned()));
        } else if let Some(value) = row.value {
            values.insert(key, value);
        }
    }
    let text = |key: Key| values.get(&key).and_then(Value::as_str).map(str::to_owned);
    let url = |key: Key| text(key).and_then(|u| Url::parse(&u).ok());
    let flag =
        |key: Key, default: bool| values.get(&key).and_then(Value::as_bool).unwrap_or(default);
    let list = |key: Key| -> Vec<String> {
        values
            .get(&key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let number = |key: Key| {
        values
            .get(&key)
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
    };
    Ok(Settings {
        client_id: text(Key::ClientId).and_then(|c| ClientId::parse(&c).ok()),
        client_secret: secret,
        client_secret_expires: text(Key::ClientSecretExpires).and_then(|d| parse_date(&d).ok()),
        provider_tenant_id: text(Key::ProviderTenantId).and_then(|t| TenantId::parse(&t).ok()),
        branding: Branding {
            name: text(Key::ProviderName).unwrap_or_else(|| "Gangway".into()),
            logo_url: url(Key::LogoUrl),
            support_email: text(Key::SupportEmail).and_then(|e| EmailAddress::parse(&e).ok()),
            support_url: url(Key::SupportUrl),
            terms_url: url(Key::TermsUrl),
            privacy_url: url(Key::PrivacyUrl),
        },
        default_schedule: text(Key::DefaultSchedule)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(default_schedule),
        local_passwords: flag(Key::LocalPasswords, true),
        sso: SsoSettings {
            enabled: flag(Key::SsoEnabled, false),
            admin_groups: list(Key::SsoAdminGroups)
                .iter()
                .filter_map(|g| Uuid::parse_str(g).ok())
                .collect(),
            viewer_groups: list(Key::SsoViewerGroups)
                .iter()
                .filter_map(|g| Uuid::parse_str(g).ok())
                .collect(),
            admin_roles: list(Key::SsoAdminRoles),
            viewer_roles: list(Key::SsoViewerRoles),
        },
        webhook_allowed_networks: list(Key::WebhookAllowedNetworks),
        api_calls_per_second: values
            .get(&Key::ApiCallsPerSecond)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_API_CALLS_PER_SECOND),
        deletion_guard_percent: number(Key::DeletionGuardPercent)
            .unwrap_or(DEFAULT_DELETION_GUARD_PERCENT),
        deletion_guard_objects: number(Key::DeletionGuardObjects)
            .unwrap_or(DEFAULT_DELETION_GUARD_OBJECTS),
        event_retention_days: values
            .get(&Key::EventRetentionDays)
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(crate::events::DEFAULT_RETENTION_DAYS),
        certificate_rotation_days: number(Key::CertificateRotationDays)
            .unwrap_or(DEFAULT_CERTIFICATE_ROTATION_DAYS),
        secret_rotation_days: values
            .get(&Key::SecretRotationDays)
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(DEFAULT_SECRET_ROTATION_DAYS),
        origin,
    })
}

fn parse_date(value: &str) -> Result<Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(value.trim(), &format).map_err(|_| "must be a date such as 2027-06-30".into())
}

/// One value as typed into the settings form. An empty secret keeps the stored one.
#[derive(Debug, Clone)]
pub struct Edit {
    /// The setting.
    pub key: Key,
    /// Its new value, as typed (checkboxes: `true`/`false`).
    pub raw: String,
}

/// The stored form of a typed value, or why it cannot be one.
fn validate(key: Key, raw: &str, today: Date) -> Result<Option<Value>, String> {
    let raw = raw.trim();
    if raw.chars().any(char::is_control)
        && !matches!(
            key,
            Key::SsoAdminGroups
                | Key::SsoViewerGroups
                | Key::SsoAdminRoles
                | Key::SsoViewerRoles
                | Key::WebhookAllowedNetworks
        )
    {
        return Err("must not contain control characters".into());
    }
    let optional_url = |raw: &str| -> Result<Option<Value>, String> {
        if raw.is_empty() {
            return Ok(None);
        }
        match Url::parse(raw) {
            Ok(u) if u.scheme() == "https" && u.host().is_some() && raw.len() <= 500 => {
                Ok(Some(json!(u.as_str())))
            }
            _ => Err("must be an https:// address".into()),
        }
    };
    let items = |raw: &str| {
        raw.split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    Ok(match key {
        Key::ClientId => Some(json!(
            ClientId::parse(raw)
                .map_err(
                    |_| "must be the app registration's Application (client) ID, a GUID".to_owned()
                )?
                .to_string()
        )),
        Key::ClientSecret => {
            if raw.len() > 1024 {
                return Err("is too long to be a client secret".into());
            }
            None
        }
        Key::ClientSecretExpires => {
            if raw.is_empty() {
                return Ok(None);
            }
            let date = parse_date(raw)?;
            let latest = today
                .replace_year(today.year() + MAX_SECRET_MONTHS / 12)
                .unwrap_or(today);
            if date > latest {
                return Err(format!(
                    "is more than {MAX_SECRET_MONTHS} months away: Microsoft lets a client secret live 24 months at most"
                ));
            }
            Some(json!(date.to_string()))
        }
        Key::ProviderTenantId => {
            if raw.is_empty() {
                None
            } else {
                Some(json!(TenantId::parse(raw).map_err(|_| "must be your tenant's ID, a GUID (Entra admin center → Overview → Tenant ID)".to_owned())?.to_string()))
            }
        }
        Key::ProviderName => {
            if raw.is_empty() || raw.chars().count() > 100 {
                return Err("must be 1 to 100 characters".into());
            }
            Some(json!(raw))
        }
        Key::LogoUrl | Key::SupportUrl | Key::TermsUrl | Key::PrivacyUrl => optional_url(raw)?,
        Key::SupportEmail => {
            if raw.is_empty() {
                None
            } else {
                Some(json!(
                    EmailAddress::parse(raw)
                        .map_err(|e| e.to_string())?
                        .as_str()
                ))
            }
        }
        Key::DefaultSchedule => Some(json!(
            raw.parse::<Schedule>()
                .map_err(|e| e.to_string())?
                .to_string()
        )),
        Key::LocalPasswords | Key::SsoEnabled => Some(json!(matches!(raw, "true" | "on" | "1"))),
        Key::SsoAdminGroups | Key::SsoViewerGroups => {
            let ids = items(raw);
            let bad: Vec<_> = ids
                .iter()
                .filter(|g| Uuid::parse_str(g).is_err())
                .cloned()
                .collect();
            if !bad.is_empty() {
                return Err(format!(
                    "{} is not a group's object ID (a GUID)",
                    bad.join(", ")
                ));
            }
            Some(json!(
                ids.iter()
                    .map(|g| Uuid::parse_str(g).expect("checked").to_string())
                    .collect::<Vec<_>>()
            ))
        }
        Key::SsoAdminRoles | Key::SsoViewerRoles => {
            let roles = items(raw);
            if let Some(bad) = roles.iter().find(|r| {
                r.len() > 120
                    || !r
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            }) {
                return Err(format!(
                    "`{bad}` is not an app role value (letters, digits, . _ -)"
                ));
            }
            Some(json!(roles))
        }
        Key::WebhookAllowedNetworks => {
            let entries = items(raw);
            crate::webhooks::egress::Allowed::parse(&entries)?;
            Some(json!(entries))
        }
        Key::ApiCallsPerSecond => {
            let max = crate::api_tokens::MAX_CALLS_PER_SECOND;
            let n = raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    format!("must be a whole number of calls per second from 1 to {max}")
                })?;
            Some(json!(n))
        }
        Key::DeletionGuardPercent | Key::DeletionGuardObjects => {
            let max = if key == Key::DeletionGuardPercent {
                100
            } else {
                1_000_000
            };
            let n = raw
                .parse::<i32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| format!("must be a whole number from 1 to {max}"))?;
            Some(json!(n))
        }
        Key::EventRetentionDays => {
            let n = raw
                .parse::<i32>()
                .ok()
                .filter(|n| (1..=3650).contains(n))
                .ok_or("must be a whole number of days from 1 to 3650")?;
            Some(json!(n))
        }
        Key::CertificateRotationDays => {
            let max = crate::credentials::VALIDITY_DAYS as i32 / 2;
            let n = raw
                .parse::<i32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| format!("must be a whole number of days from 1 to {max}"))?;
            Some(json!(n))
        }
        Key::SecretRotationDays => {
            // Below the lifetime of the secrets Gangway adds, else every run would rotate.
            let n = raw
                .parse::<i32>()
                .ok()
                .filter(|n| (1..=MAX_SECRET_ROTATION_DAYS).contains(n))
                .ok_or_else(|| {
                    format!("must be a whole number of days from 1 to {MAX_SECRET_ROTATION_DAYS}")
                })?;
            Some(json!(n))
        }
    })
}

/// Saves `edits` (all or nothing), audited per changed key as old → new (secrets: "changed").
/// Refuses, naming each value at fault, anything invalid, and turning local passwords off
/// while no admin has signed in with Entra ID (that would lock every admin out). Returns the
/// keys that changed.
pub async fn save(
    db: &PgPool,
    keys: &Keyring,
    edits: &[Edit],
    actor: &Actor,
) -> Result<Vec<Key>, SettingsError> {
    let today = OffsetDateTime::now_utc().date();
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    for edit in edits {
        match validate(edit.key, &edit.raw, today) {
            Ok(value) => checked.push((edit, value)),
            Err(why) => problems.push((edit.key, why)),
        }
    }
    let mut tx = db.begin().await?;
    let current: BTreeMap<String, (Option<Value>, bool)> = sqlx::query!(
        r#"select key, value, ciphertext is not null as "sealed!" from settings for update"#,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.key, (r.value, r.sealed)))
    .collect();
    let turning_off_passwords = checked
        .iter()
        .any(|(e, v)| e.key == Key::LocalPasswords && v == &Some(json!(false)))
        && current
            .get(Key::LocalPasswords.name())
            .and_then(|(v, _)| v.clone())
            != Some(json!(false));
    if turning_off_passwords {
        let sso_admins = sqlx::query_scalar!(
            r#"select count(*) as "count!" from operators
               where role = 'admin' and entra_object_id is not null"#,
        )
        .fetch_one(&mut *tx)
        .await?;
        if sso_admins == 0 {
            problems.push((Key::LocalPasswords, "cannot be turned off until an admin has signed in with Entra ID: nobody could sign in as an admin".into()));
        }
    }
    if !problems.is_empty() {
        return Err(SettingsError::Invalid(problems));
    }
    let by = actor.to_string();
    let mut changed = Vec::new();
    for (edit, value) in checked {
        let key = edit.key;
        if key.is_secret() {
            if edit.raw.trim().is_empty() {
                continue;
            }
            let sealed = keys.seal(edit.raw.trim().as_bytes());
            sqlx::query!(
                "insert into settings (key, value, ciphertext, key_id, from_env, updated_by) values ($1, null, $2, $3, false, $4)
                 on conflict (key) do update set ciphertext = excluded.ciphertext, key_id = excluded.key_id,
                     from_env = false, updated_at = now(), updated_by = excluded.updated_by",
                key.name(),
                sealed,
                keys.id(),
                by,
            )
            .execute(&mut *tx)
            .await?;
            audit::record(
                &mut *tx,
                actor,
                Action::SettingsChanged,
                None,
                None,
                json!({ "setting": key.name(), "change": "secret replaced" }),
            )
            .await?;
            changed.push(key);
            continue;
        }
        let old = current.get(key.name()).and_then(|(v, _)| v.clone());
        if old == value {
            continue;
        }
        sqlx::query!(
            "insert into settings (key, value, from_env, updated_by) values ($1, $2, false, $3)
             on conflict (key) do update set value = excluded.value, from_env = false,
                 updated_at = now(), updated_by = excluded.updated_by",
            key.name(),
            value,
            by,
        )
        .execute(&mut *tx)
        .await?;
        let shown = |v: &Option<Value>| {
            v.as_ref()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "(not set)".into())
        };
        audit::record(
            &mut *tx,
            actor,
            Action::SettingsChanged,
            None,
            None,
            json!({ "setting": key.name(), "old": shown(&old), "new": shown(&value) }),
        )
        .await?;
        changed.push(key);
    }
    tx.commit().await?;
    Ok(changed)
}

/// The settings as a process uses them: the values, and the Entra ID client signed in as the
/// provider app they name.
#[derive(Debug, Clone)]
pub struct Live {
    /// The settings.
    pub settings: Settings,
    /// Entra ID as the provider app, with the client id and secret above; `None` until the app
    /// is set up (see [`Live::entra`]).
    entra: Option<EntraClient>,
    /// Customer apps' secrets that expire within [`WARN_DAYS`] (or have), soonest first.
    pub customer_secrets: Vec<CustomerSecret>,
}

impl Live {
    /// Entra ID as the provider app, or [`SettingsError::NotSetUp`] before its registration
    /// exists: every customer-facing flow and every call as the app starts here.
    pub fn entra(&self) -> Result<&EntraClient, SettingsError> {
        self.entra.as_ref().ok_or(SettingsError::NotSetUp)
    }

    /// The provider app's client id, or [`SettingsError::NotSetUp`].
    pub fn client_id(&self) -> Result<&ClientId, SettingsError> {
        self.settings
            .client_id
            .as_ref()
            .ok_or(SettingsError::NotSetUp)
    }
}

/// Days before expiry Gangway rotates the client secret it manages, unless set.
pub const DEFAULT_SECRET_ROTATION_DAYS: i32 = 30;
/// The most days before expiry a rotation may start: well below the 180 days the secrets
/// Gangway adds live.
pub const MAX_SECRET_ROTATION_DAYS: i32 = 90;

/// Warn this many days before a secret expires.
pub const WARN_DAYS: i64 = 60;
/// Sound the alarm this many days before.
pub const ALARM_DAYS: i64 = 14;

/// A customer app's secret and when it expires.
#[derive(Debug, Clone)]
pub struct CustomerSecret {
    /// The tenant (Gangway's id).
    pub tenant_id: crate::types::TenantRecordId,
    /// Its name.
    pub display_name: String,
    /// The expiry.
    pub expires_on: Date,
}

/// How close a secret is to expiring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// More than [`WARN_DAYS`] away (or unknown).
    Fine,
    /// Within [`WARN_DAYS`].
    Soon(i64),
    /// Within [`ALARM_DAYS`].
    Imminent(i64),
    /// Already expired.
    Expired,
}

impl Expiry {
    /// Where `expires_on` stands on `today`.
    pub fn of(expires_on: Date, today: Date) -> Self {
        let days = (expires_on - today).whole_days();
        match days {
            d if d < 0 => Self::Expired,
            d if d <= ALARM_DAYS => Self::Imminent(d),
            d if d <= WARN_DAYS => Self::Soon(d),
            _ => Self::Fine,
        }
    }
}

/// What the cache holds: the settings and when they were read.
type Cached = Option<(Instant, Arc<Live>)>;

/// The settings, read again from the database at most every `ttl`, so every process sees a
/// change within that time; the process that saved one sees it at once. The Entra client is
/// made again only when the app's credentials change (it keeps its signing-key cache
/// otherwise). Cheap to clone.
#[derive(Clone)]
pub struct SettingsCache {
    db: PgPool,
    // Behind `Arc`s: the portal's state, which holds this cache, is cloned per request.
    keys: Arc<Keyring>,
    endpoints: Arc<EntraEndpoints>,
    http: reqwest::Client,
    ttl: Duration,
    cell: Arc<RwLock<Cached>>,
}

impl std::fmt::Debug for SettingsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SettingsCache {
    /// Settings from `db`, opened with `keys`, at most `ttl` old; the Entra client talks to
    /// `endpoints` with the stored credentials, over `http`.
    pub fn new(
        db: PgPool,
        keys: Keyring,
        endpoints: EntraEndpoints,
        http: reqwest::Client,
        ttl: Duration,
    ) -> Self {
        Self {
            db,
            keys: Arc::new(keys),
            endpoints: Arc::new(endpoints),
            http,
            ttl,
            cell: Arc::default(),
        }
    }

    /// The settings now.
    pub async fn current(&self) -> Result<Arc<Live>, SettingsError> {
        let previous = self.cell.read().expect("settings cache").clone();
        if let Some((at, live)) = &previous {
            if at.elapsed() < self.ttl {
                return Ok(Arc::clone(live));
            }
        }
        let settings = load(&self.db, &self.keys).await?;
        let entra = match &previous {
            Some((_, live))
                if live.settings.client_id == settings.client_id
                    && live.settings.client_secret.as_ref().map(Secret::expose)
                        == settings.client_secret.as_ref().map(Secret::expose) =>
            {
                live.entra.clone()
            }
            _ => settings.client_id.as_ref().map(|client_id| {
                EntraClient::new(
                    self.endpoints
                        .app(client_id.to_string(), settings.client_secret.clone()),
                    self.http.clone(),
                )
            }),
        };
        if let Some(entra) = &entra {
            self.use_active_certificate(entra).await?;
        }
        let customer_secrets = sqlx::query_as!(
            CustomerSecret,
            r#"select id as "tenant_id: crate::types::TenantRecordId", display_name,
                      credential_expires_on as "expires_on!"
               from tenants
               where status <> 'offboarded' and consent_mode = 'customer_app'
                 and credential_expires_on <= current_date + $1::int
               order by credential_expires_on, display_name limit 20"#,
            WARN_DAYS as i32,
        )
        .fetch_all(&self.db)
        .await?;
        let fresh = Arc::new(Live {
            settings,
            entra,
            customer_secrets,
        });
        *self.cell.write().expect("settings cache") = Some((Instant::now(), Arc::clone(&fresh)));
        Ok(fresh)
    }

    /// Every process picks up a rotated certificate here, within one TTL; its private key is
    /// opened only when the active one changed.
    async fn use_active_certificate(&self, entra: &EntraClient) -> Result<(), SettingsError> {
        match crate::credentials::active_id(&self.db).await? {
            None => entra.set_certificate(None),
            Some((_, x5t)) if entra.certificate_thumbprint().as_deref() == Some(x5t.as_str()) => {}
            Some((id, _)) => match crate::credentials::signer(&self.db, &self.keys, id).await {
                Ok(certificate) => entra.set_certificate(Some(certificate)),
                Err(e) => {
                    tracing::error!(error = %e, "the active app certificate cannot be used; token requests send the client secret");
                    entra.set_certificate(None);
                }
            },
        }
        Ok(())
    }

    /// The settings as last read, without reading them again (pages that cannot wait; the
    /// request layer keeps them fresh). `None` before the first read.
    pub fn peek(&self) -> Option<Arc<Live>> {
        self.cell
            .read()
            .expect("settings cache")
            .as_ref()
            .map(|(_, live)| Arc::clone(live))
    }

    /// Reads the settings again at the next use (after a save in this process).
    pub fn invalidate(&self) {
        let mut cell = self.cell.write().expect("settings cache");
        match cell.as_mut().map(|(at, _)| at.checked_sub(self.ttl)) {
            Some(Some(stale)) => cell.as_mut().expect("just read").0 = stale,
            _ => *cell = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::from_calendar_date(2026, time::Month::December, 1).unwrap()
    }

    #[test]
    fn each_value_is_checked_where_it_is_typed() {
        let ok = |k, raw| validate(k, raw, today()).unwrap();
        let bad = |k, raw| validate(k, raw, today()).unwrap_err();
        assert_eq!(
            ok(Key::ClientId, " 6F1D9A4E-2C3B-4F7A-9E1D-0A5B8C7D6E5F "),
            Some(json!("6f1d9a4e-2c3b-4f7a-9e1d-0a5b8c7d6e5f"))
        );
        assert!(bad(Key::ClientId, "my-app").contains("GUID"));
        assert_eq!(
            ok(Key::ClientSecretExpires, "2028-11-30"),
            Some(json!("2028-11-30"))
        );
        assert!(bad(Key::ClientSecretExpires, "2028-12-02").contains("24 months"));
        assert!(bad(Key::ClientSecretExpires, "30/11/2028").contains("2027-06-30"));
        assert_eq!(ok(Key::LogoUrl, ""), None);
        assert!(bad(Key::LogoUrl, "http://example.com/logo.png").contains("https"));
        assert!(bad(Key::LogoUrl, "javascript:alert(1)").contains("https"));
        assert!(bad(Key::SupportEmail, "help").len() > 3);
        assert!(bad(Key::ProviderName, "").contains("1 to 100"));
        assert!(bad(Key::ProviderName, "Acme\u{0}").contains("control"));
        assert!(bad(Key::DefaultSchedule, "every 1m").contains("5 minutes"));
        assert_eq!(ok(Key::SsoEnabled, "on"), Some(json!(true)));
        assert_eq!(ok(Key::LocalPasswords, "false"), Some(json!(false)));
        assert_eq!(
            ok(
                Key::SsoAdminGroups,
                "6F1D9A4E-2C3B-4F7A-9E1D-0A5B8C7D6E5F,\n 0a5b8c7d-2c3b-4f7a-9e1d-6f1d9a4e6e5f"
            ),
            Some(json!([
                "6f1d9a4e-2c3b-4f7a-9e1d-0a5b8c7d6e5f",
                "0a5b8c7d-2c3b-4f7a-9e1d-6f1d9a4e6e5f"
            ]))
        );
        assert!(bad(Key::SsoViewerGroups, "ops-team").contains("ops-team"));
        assert!(bad(Key::SsoAdminRoles, "Gangway Admin").contains("Gangway"));
        assert_eq!(
            ok(Key::SsoAdminRoles, "Gangway.Admin"),
            Some(json!(["Gangway.Admin"]))
        );
        assert_eq!(
            ok(
                Key::WebhookAllowedNetworks,
                "127.0.0.0/8\n ::1, hooks.internal"
            ),
            Some(json!(["127.0.0.0/8", "::1", "hooks.internal"]))
        );
        assert!(bad(Key::WebhookAllowedNetworks, "10.0.0.0/99").contains("10.0.0.0/99"));
    }

    #[test]
    fn contact_says_how() {
        let mut b = Branding {
            name: "Acme".into(),
            ..Branding::default()
        };
        assert_eq!(b.contact(), "the person at Acme who invited you");
        b.support_email = Some(EmailAddress::parse("help@acme.example").unwrap());
        assert_eq!(b.contact(), "Acme at help@acme.example");
        b.support_url = Some(Url::parse("https://acme.example/help").unwrap());
        assert_eq!(
            b.contact(),
            "Acme (help@acme.example or https://acme.example/help)"
        );
    }
}
