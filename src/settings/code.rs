//! Settings as code: every setting as a typed JSON value, so the CLI and the JSON API read,
//! set, export and import them with the same validation and audit as the console
//! ([`super::save`]). The client secret is write-only: it is set like any other value but never
//! read back, and an export leaves it out (a file meant for version control must not carry it,
//! not even sealed: sealed, it would open for whoever later holds the encryption key, and go
//! stale at the next `gangway rekey`); the installation an export is imported into keeps its
//! own secret, seeded from `GANGWAY_CLIENT_SECRET`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

use super::{Edit, Key, Settings, SettingsError};

/// The `format` an export names, so an import knows what it reads.
pub const FORMAT: &str = "gangway-settings/1";

/// An export: every readable setting by its stored name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// [`FORMAT`].
    pub format: String,
    /// The values; absent ones are left as they are on import.
    pub settings: BTreeMap<String, Value>,
}

impl Document {
    /// Every readable setting of `settings` (the client secret left out).
    pub fn of(settings: &Settings) -> Self {
        Self {
            format: FORMAT.into(),
            settings: Key::ALL
                .into_iter()
                .filter(|k| !k.is_secret())
                .map(|k| (k.name().to_owned(), value_of(settings, k)))
                .collect(),
        }
    }

    /// The edits that make the stored settings this document's, or why it cannot be applied
    /// (a different format, unknown names, values of the wrong JSON type).
    pub fn edits(&self) -> Result<Vec<Edit>, SettingsError> {
        if self.format != FORMAT {
            return Err(SettingsError::Unreadable(format!(
                "format `{}` is not `{FORMAT}`",
                self.format
            )));
        }
        edits(&self.settings)
    }
}

/// The edits `values` (setting name → JSON value) ask for, or why they cannot be applied:
/// each value of the wrong JSON type or that [`super::save`] would refuse, by name.
pub fn edits(values: &BTreeMap<String, Value>) -> Result<Vec<Edit>, SettingsError> {
    let unknown: Vec<&str> = values
        .keys()
        .filter(|n| Key::parse(n).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(SettingsError::Unreadable(format!(
            "no setting is named {} (settings: {})",
            unknown.join(", "),
            Key::ALL.map(Key::name).join(", ")
        )));
    }
    // Values of the wrong type and values the console would refuse are named together.
    let today = time::OffsetDateTime::now_utc().date();
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (name, value) in values {
        let key = Key::parse(name).expect("checked above");
        match raw(key, value).and_then(|raw| super::validate(key, &raw, today).map(|_| raw)) {
            Ok(raw) => out.push(Edit { key, raw }),
            Err(why) => problems.push((key, why)),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(SettingsError::Invalid(problems))
    }
}

/// A setting's value as JSON: text, `true`/`false`, a number, a list, or `null` when unset.
/// The client secret reads as `null` (it is write-only).
pub fn value_of(settings: &Settings, key: Key) -> Value {
    let b = &settings.branding;
    let url = |u: &Option<Url>| json!(u.as_ref().map(Url::as_str));
    let ids = |ids: &[Uuid]| json!(ids.iter().map(Uuid::to_string).collect::<Vec<_>>());
    match key {
        Key::ClientId => json!(settings.client_id.map(|c| c.to_string())),
        Key::ClientSecret => Value::Null,
        Key::ClientSecretExpires => json!(settings.client_secret_expires.map(|d| d.to_string())),
        Key::ProviderTenantId => json!(settings.provider_tenant_id.map(|t| t.to_string())),
        Key::ProviderName => json!(b.name),
        Key::LogoUrl => url(&b.logo_url),
        Key::SupportEmail => json!(b.support_email.as_ref().map(|e| e.as_str())),
        Key::SupportUrl => url(&b.support_url),
        Key::TermsUrl => url(&b.terms_url),
        Key::PrivacyUrl => url(&b.privacy_url),
        Key::DefaultSchedule => json!(settings.default_schedule.to_string()),
        Key::LocalPasswords => json!(settings.local_passwords),
        Key::SsoEnabled => json!(settings.sso.enabled),
        Key::SsoAdminGroups => ids(&settings.sso.admin_groups),
        Key::SsoViewerGroups => ids(&settings.sso.viewer_groups),
        Key::SsoAdminRoles => json!(settings.sso.admin_roles),
        Key::SsoViewerRoles => json!(settings.sso.viewer_roles),
        Key::WebhookAllowedNetworks => json!(settings.webhook_allowed_networks),
        Key::ApiCallsPerSecond => json!(settings.api_calls_per_second),
        Key::DeletionGuardPercent => json!(settings.deletion_guard_percent),
        Key::DeletionGuardObjects => json!(settings.deletion_guard_objects),
        Key::EventRetentionDays => json!(settings.event_retention_days),
        Key::CertificateRotationDays => json!(settings.certificate_rotation_days),
        Key::SecretRotationDays => json!(settings.secret_rotation_days),
    }
}

/// What is wrong with settings given as JSON, each value named as stored: the words the CLI
/// and the JSON API answer with.
pub fn explain(e: &SettingsError) -> String {
    match e {
        SettingsError::Invalid(problems) => problems
            .iter()
            .map(|(k, why)| format!("{} {why}", k.name()))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// `value` as the console's field for `key` holds it (lists one item a line, `null` empty).
pub fn as_field(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(as_field).collect::<Vec<_>>().join("\n"),
        other => other.to_string(),
    }
}

/// The JSON type a setting takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Switch,
    List,
    Number,
    Text,
}

fn shape(key: Key) -> Shape {
    match key {
        Key::LocalPasswords | Key::SsoEnabled => Shape::Switch,
        Key::SsoAdminGroups
        | Key::SsoViewerGroups
        | Key::SsoAdminRoles
        | Key::SsoViewerRoles
        | Key::WebhookAllowedNetworks => Shape::List,
        Key::ApiCallsPerSecond
        | Key::DeletionGuardPercent
        | Key::DeletionGuardObjects
        | Key::EventRetentionDays
        | Key::CertificateRotationDays
        | Key::SecretRotationDays => Shape::Number,
        // Every key named, so a new one is given its shape here, not read as text by default.
        Key::ClientId
        | Key::ClientSecret
        | Key::ClientSecretExpires
        | Key::ProviderTenantId
        | Key::ProviderName
        | Key::LogoUrl
        | Key::SupportEmail
        | Key::SupportUrl
        | Key::TermsUrl
        | Key::PrivacyUrl
        | Key::DefaultSchedule => Shape::Text,
    }
}

/// Whether `key` takes text (not a switch, a number or a list).
pub fn takes_text(key: Key) -> bool {
    shape(key) == Shape::Text
}

/// The text [`super::save`] validates for `key` set to `value`, or why `value` has the wrong
/// JSON type: a switch takes `true` or `false` only, a list also one string, a number a whole
/// number, anything else text (`null` clears an optional value).
fn raw(key: Key, value: &Value) -> Result<String, String> {
    let list_error = || "must be a list of strings".to_owned();
    match (shape(key), value) {
        (Shape::Switch, Value::Bool(b)) => Ok(b.to_string()),
        (Shape::Switch, _) => Err("must be true or false".into()),
        (Shape::List, Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .filter(|s| !s.contains([',', '\n']))
                    .map(str::to_owned)
            })
            .collect::<Option<Vec<_>>>()
            .map(|items| items.join("\n"))
            .ok_or_else(list_error),
        (Shape::Number, Value::Number(n)) => Ok(n.to_string()),
        (_, Value::String(s)) => Ok(s.clone()),
        (_, Value::Null) => Ok(String::new()),
        (Shape::List, _) => Err(list_error()),
        (Shape::Number, _) => Err("must be a whole number".into()),
        (Shape::Text, _) => Err("must be a string".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_become_what_the_form_would_send_or_are_refused_by_type() {
        assert_eq!(raw(Key::SsoEnabled, &json!(true)).unwrap(), "true");
        assert!(
            raw(Key::SsoEnabled, &json!("yes"))
                .unwrap_err()
                .contains("true or false")
        );
        assert_eq!(
            raw(Key::SsoAdminRoles, &json!(["A.B", "C"])).unwrap(),
            "A.B\nC"
        );
        assert!(raw(Key::SsoAdminRoles, &json!([1])).is_err());
        assert!(raw(Key::SsoAdminRoles, &json!(["a,b"])).is_err());
        assert_eq!(raw(Key::ApiCallsPerSecond, &json!(40)).unwrap(), "40");
        assert!(raw(Key::ProviderName, &json!(40)).is_err());
        assert_eq!(raw(Key::LogoUrl, &Value::Null).unwrap(), "");
        assert_eq!(as_field(&json!(["a", "b"])), "a\nb");
        assert_eq!(as_field(&json!(false)), "false");
    }

    #[test]
    fn unknown_names_and_formats_are_refused_naming_them() {
        let doc = Document {
            format: "other/2".into(),
            settings: BTreeMap::new(),
        };
        assert!(doc.edits().unwrap_err().to_string().contains("other/2"));
        let values = BTreeMap::from([("colour".to_owned(), json!("red"))]);
        assert!(edits(&values).unwrap_err().to_string().contains("colour"));
    }
}
