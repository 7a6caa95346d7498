//! System Settings (admins only): the provider app's registration values, how customers see the
//! provider, the default sync schedule, operator sign-in, and the permission profiles. Each
//! value says whether it still comes from the environment; secrets are write-only.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use tower_sessions::Session;

use super::{Chrome, FormErrors, Section, parse_id};
use crate::audit::Actor;
use crate::settings::profiles::{self, NewProfile, ProfileError};
use crate::settings::{self, Edit, Key, Origin, Settings, SettingsError};
use crate::types::profile::Permission;
use crate::types::{Profile, ProfileId};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::paths;
use crate::web::session::{self, AdminOperator};
use crate::web::session_store;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::SETTINGS, get(show).post(save))
        .route(paths::PROFILES, post(create_profile))
        .route(paths::PROFILE_DEFAULT, post(make_default))
        .route(paths::PROFILE_DELETE, post(delete_profile))
}

/// How a field is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Secret,
    Date,
    Check,
    Lines,
    Number,
}

/// One field on the page.
struct Field {
    key: &'static str,
    label: &'static str,
    hint: &'static str,
    kind: Kind,
    value: String,
    origin: String,
    error: Option<String>,
}

impl Field {
    fn is(&self, kind: &str) -> bool {
        matches!(
            (self.kind, kind),
            (Kind::Text, "text")
                | (Kind::Secret, "secret")
                | (Kind::Date, "date")
                | (Kind::Check, "check")
                | (Kind::Lines, "lines")
                | (Kind::Number, "number")
        )
    }

    fn checked(&self) -> bool {
        self.value == "true"
    }
}

/// A group of fields under a heading.
struct Group {
    title: &'static str,
    intro: &'static str,
    fields: Vec<Field>,
}

/// A value to copy into the Entra admin center.
struct CopyValue {
    id: &'static str,
    label: &'static str,
    value: String,
    hint: &'static str,
}

/// The form's errors, for the summary and the focus.
#[derive(Default)]
struct Errors(Vec<(&'static str, Option<String>)>);

impl FormErrors for Errors {
    fn fields(&self) -> Vec<(&'static str, &Option<String>)> {
        self.0.iter().map(|(k, m)| (*k, m)).collect()
    }
}

/// A profile as the page lists it.
struct ProfileRow {
    id: ProfileId,
    name: String,
    description: String,
    delegated: Vec<Permission>,
    application: Vec<Permission>,
    built_in: bool,
    is_default: bool,
}

impl From<Profile> for ProfileRow {
    fn from(p: Profile) -> Self {
        Self {
            id: p.id,
            name: p.name,
            description: p.description,
            delegated: p.delegated.0,
            application: p.application.0,
            built_in: p.built_in,
            is_default: p.is_default,
        }
    }
}

/// The new-profile form as typed.
#[derive(Debug, Default, Deserialize)]
struct ProfileForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    delegated: String,
    #[serde(default)]
    application: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/settings.html")]
struct SettingsPage {
    chrome: Chrome,
    notice: Option<&'static str>,
    copy: Vec<CopyValue>,
    groups: Vec<Group>,
    errors: Errors,
    profiles: Vec<ProfileRow>,
    profile_form: ProfileForm,
    profile_error: Option<String>,
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    done: Option<String>,
}

/// How a stored value's origin reads.
fn origin(settings: &Settings, key: Key) -> String {
    match settings.origin.get(&key) {
        Some(Origin::Environment(env)) => {
            format!("From the environment ({env}); change it here to override")
        }
        Some(Origin::Console { by, at }) => format!(
            "Changed {} by {}",
            crate::format::datetime(*at),
            by.as_deref().unwrap_or("someone")
        ),
        Some(Origin::Default) | None => "Not set".into(),
    }
}

/// The stored value of `key` as the form shows it (never a secret).
fn shown(settings: &Settings, key: Key) -> String {
    settings::code::as_field(&settings::code::value_of(settings, key))
}

/// (kind, hint) per key.
fn describe(key: Key) -> (Kind, &'static str) {
    match key {
        Key::ClientId => (
            Kind::Text,
            "Entra admin center → App registrations → your app → Overview",
        ),
        Key::ClientSecret => (
            Kind::Secret,
            "write-only: leave empty to keep the stored one. Paste the secret's Value, not its Secret ID",
        ),
        Key::ClientSecretExpires => (
            Kind::Date,
            // No format: the browser's date field shows the date in the viewer's own.
            "the secret's Expires date on the app's Certificates & secrets page; a secret may live at most 24 months. The doctor reads it itself when it can",
        ),
        Key::ProviderTenantId => (
            Kind::Text,
            "your own tenant: Entra admin center → Overview → Tenant ID (operator sign-in and the doctor use it)",
        ),
        Key::ProviderName => (
            Kind::Text,
            "as customers see it on every page and in the invitation email",
        ),
        Key::LogoUrl => (
            Kind::Text,
            "optional https:// address of an image, about 32 px high",
        ),
        Key::SupportEmail => (Kind::Text, "optional: where customers write for help"),
        Key::SupportUrl => (Kind::Text, "optional https:// help page"),
        Key::TermsUrl => (Kind::Text, "optional https:// terms of service"),
        Key::PrivacyUrl => (Kind::Text, "optional https:// privacy statement"),
        Key::DefaultSchedule => (
            Kind::Text,
            "for tenants without their own: every 30m, every 6h, daily 02:30 Europe/Berlin, or manual",
        ),
        Key::LocalPasswords => (
            Kind::Check,
            "operators may sign in with a Gangway password (turning it off needs an admin who has signed in with Entra ID)",
        ),
        Key::SsoEnabled => (
            Kind::Check,
            "offer \"Sign in with Microsoft\" to your own tenant's users",
        ),
        Key::SsoAdminGroups | Key::SsoViewerGroups => (
            Kind::Lines,
            "group object IDs from the groups claim, one per line",
        ),
        Key::SsoAdminRoles | Key::SsoViewerRoles => (
            Kind::Lines,
            "app role values from the roles claim, one per line",
        ),
        Key::WebhookAllowedNetworks => (
            Kind::Lines,
            "internal networks (10.20.0.0/16), addresses (127.0.0.1, ::1) or host names webhook endpoints may point to, one per line; empty: public addresses only",
        ),
        Key::ApiCallsPerSecond => (
            Kind::Number,
            "for each token without a rate of its own (set on the API tokens page); five seconds' worth may come at once. At 1000, a 100,000-user copy reads in about a second in pages of 100",
        ),
        Key::DeletionGuardPercent => (
            Kind::Number,
            "a round deleting more than this share of a tenant's users (or groups), and more than 10 of them, waits for an operator; 1 to 100, default 20",
        ),
        Key::DeletionGuardObjects => (
            Kind::Number,
            "a round deleting more than this many users (or groups) waits for an operator; default 500. A tenant's page can set its own",
        ),
        Key::EventRetentionDays => (
            Kind::Number,
            "how long GET /api/v1/events keeps events (30 by default); a consumer's cursor older than this gets a 410 problem and must read again from the start",
        ),
        Key::CertificateRotationDays => (
            Kind::Number,
            "this many days before the active app certificate expires (30 by default), Gangway registers a new one on the app with addKey, signs with it, and removes the old one after every process has switched",
        ),
        Key::SecretRotationDays => (
            Kind::Number,
            "when Gangway manages its own client secret (Setup), it adds a new one this many days before the old expires, waits until every process uses it, then removes the old; 30 by default, at most 90",
        ),
    }
}

const GROUPS: [(&str, &str, &[Key]); 6] = [
    (
        "App registration",
        "The multi-tenant app customers consent to, registered in your own tenant.",
        &[
            Key::ClientId,
            Key::ClientSecret,
            Key::ClientSecretExpires,
            Key::ProviderTenantId,
            Key::CertificateRotationDays,
            Key::SecretRotationDays,
        ],
    ),
    (
        "How customers see you",
        "Shown on every page of the invitation wizard, in the invitation email and on error pages.",
        &[
            Key::ProviderName,
            Key::LogoUrl,
            Key::SupportEmail,
            Key::SupportUrl,
            Key::TermsUrl,
            Key::PrivacyUrl,
        ],
    ),
    (
        "Directory sync",
        "Whatever the schedule, a directory is synced at least every 6 days. A round that would delete more than the deletion guard allows applies everything else and holds the deletions for an operator.",
        &[
            Key::DefaultSchedule,
            Key::DeletionGuardPercent,
            Key::DeletionGuardObjects,
        ],
    ),
    (
        "Operator sign-in",
        "Who may use this console and how. A role change takes effect at the operator's next request.",
        &[
            Key::LocalPasswords,
            Key::SsoEnabled,
            Key::SsoAdminGroups,
            Key::SsoViewerGroups,
            Key::SsoAdminRoles,
            Key::SsoViewerRoles,
        ],
    ),
    (
        "Webhooks",
        "Endpoints must be public https addresses: loopback, private, link-local and cloud metadata addresses are refused, when an endpoint is saved and at every delivery, unless allowed here.",
        &[Key::WebhookAllowedNetworks],
    ),
    (
        "JSON API",
        "How fast your systems may call the JSON API. A change reaches every process within seconds.",
        &[Key::ApiCallsPerSecond, Key::EventRetentionDays],
    ),
];

impl SettingsPage {
    async fn new(
        state: &AppState,
        chrome: Chrome,
        typed: Option<&BTreeMap<Key, String>>,
        errors: Errors,
    ) -> Result<Self> {
        let live = state.live().await?;
        let settings = &live.settings;
        let error_of = |key: Key| {
            errors
                .0
                .iter()
                .find(|(k, _)| *k == key.name())
                .and_then(|(_, m)| m.clone())
        };
        let groups = GROUPS
            .iter()
            .map(|(title, intro, keys)| Group {
                title,
                intro,
                fields: keys
                    .iter()
                    .map(|&key| {
                        let (kind, hint) = describe(key);
                        let value = match (typed.and_then(|t| t.get(&key)), kind) {
                            (_, Kind::Secret) => String::new(),
                            (Some(raw), _) => raw.clone(),
                            (None, _) => shown(settings, key),
                        };
                        Field {
                            key: key.name(),
                            label: key.label(),
                            hint,
                            kind,
                            value,
                            origin: origin(settings, key),
                            error: error_of(key),
                        }
                    })
                    .collect(),
            })
            .collect();
        let public = &state.cfg.public_url;
        let join = |p: &str| {
            public
                .join(p.trim_start_matches('/'))
                .map(|u| u.to_string())
                .unwrap_or_default()
        };
        let copy = vec![
            CopyValue {
                id: "redirect-uri",
                label: "Redirect URI (Web)",
                value: state.cfg.redirect_uri().to_string(),
                hint: "Authentication → Web → Redirect URIs",
            },
            CopyValue {
                id: "portal-url",
                label: "Authentication portal URL",
                value: join(paths::AUTHENTICATE),
                hint: "where invitation links point",
            },
            CopyValue {
                id: "sso-redirect-uri",
                label: "Operator sign-in redirect URI (Web)",
                value: join(paths::SSO_CALLBACK),
                hint: "a second redirect URI, for operator sign-in with Entra ID",
            },
            CopyValue {
                id: "logout-url",
                label: "Front-channel logout URL",
                value: join(paths::SSO_LOGOUT),
                hint: "Authentication → Front-channel logout URL",
            },
            CopyValue {
                id: "post-logout-uri",
                label: "Redirect URI after signing out (Web)",
                value: join(paths::LOGIN),
                hint: "where Microsoft returns an operator who signed out of both",
            },
        ];
        Ok(Self {
            chrome,
            notice: None,
            copy,
            groups,
            errors,
            profiles: profiles::list(&state.db)
                .await?
                .into_iter()
                .map(ProfileRow::from)
                .collect(),
            profile_form: ProfileForm::default(),
            profile_error: None,
        })
    }
}

async fn show(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Query(query): Query<ShowQuery>,
) -> Result<SettingsPage> {
    let chrome = Chrome::new(&state, &operator, csrf, Section::Settings);
    let mut page = SettingsPage::new(&state, chrome, None, Errors::default()).await?;
    page.notice = match query.done.as_deref() {
        Some("saved") => Some("Settings saved. Every Gangway process uses them within seconds."),
        Some("unchanged") => Some("Nothing changed."),
        Some("profile_created") => Some("Permission profile created."),
        Some("profile_default") => Some("Default permission profile changed."),
        Some("profile_deleted") => Some("Permission profile deleted."),
        _ => None,
    };
    Ok(page)
}

/// The last value sent for each setting (a checkbox sends a hidden `false`, then `true` if ticked).
fn typed(form: &[(String, String)]) -> BTreeMap<Key, String> {
    let mut out = BTreeMap::new();
    for (name, value) in form {
        if let Some(key) = Key::parse(name) {
            out.insert(key, value.clone());
        }
    }
    out
}

async fn save(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    session: Session,
    CsrfToken(csrf): CsrfToken,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response> {
    let typed = typed(&form);
    let edits: Vec<Edit> = typed
        .iter()
        .map(|(key, raw)| Edit {
            key: *key,
            raw: raw.clone(),
        })
        .collect();
    let actor = Actor::Operator(operator.email.clone());
    match session_store::save_settings(&state.db, &state.cfg.keys, &edits, &actor).await {
        Ok(changed) => {
            state.settings.invalidate();
            // The caller's own session, if signed in with a password, was ended with the others:
            // flushed here so the end of this request does not save it again.
            if changed.contains(&Key::LocalPasswords)
                && !state.live().await?.settings.local_passwords
                && own_password_session(&session).await?
            {
                session.flush().await?;
                return Ok(Redirect::to(paths::LOGIN).into_response());
            }
            let done = if changed.is_empty() {
                "unchanged"
            } else {
                "saved"
            };
            Ok(Redirect::to(&format!("{}?done={done}", paths::SETTINGS)).into_response())
        }
        Err(SettingsError::Invalid(problems)) => {
            let errors = Errors(
                Key::ALL
                    .iter()
                    .map(|k| {
                        let message = problems
                            .iter()
                            .find(|(p, _)| p == k)
                            .map(|(k, m)| format!("{} {m}", k.label()));
                        (k.name(), message)
                    })
                    .collect(),
            );
            let chrome = Chrome::new(&state, &operator, csrf, Section::Settings);
            let page = SettingsPage::new(&state, chrome, Some(&typed), errors).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether `own` was signed in with a local password (one signed in with Entra ID carries
/// [`session::SSO`]).
async fn own_password_session(own: &Session) -> Result<bool> {
    Ok(own
        .get::<session::SsoSession>(session::SSO)
        .await?
        .is_none())
}

async fn create_profile(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Form(form): Form<ProfileForm>,
) -> Result<Response> {
    let actor = Actor::Operator(operator.email.clone());
    let result = match NewProfile::parse(
        &form.name,
        &form.description,
        &form.delegated,
        &form.application,
    ) {
        Ok(new) => profiles::create(&state.db, &new, &actor).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!(
            "{}?done=profile_created#profiles",
            paths::SETTINGS
        ))
        .into_response()),
        Err(e @ (ProfileError::Invalid(_) | ProfileError::Exists(_))) => {
            let chrome = Chrome::new(&state, &operator, csrf, Section::Settings);
            let mut page = SettingsPage::new(&state, chrome, None, Errors::default()).await?;
            page.profile_error = Some(e.to_string());
            page.profile_form = form;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(profile_error(e)),
    }
}

fn profile_error(e: ProfileError) -> Error {
    match e {
        ProfileError::NotFound => Error::NotFound,
        ProfileError::Db(e) => e.into(),
        other => Error::BadRequest(other.to_string()),
    }
}

async fn make_default(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    profiles::make_default(&state.db, parse_id(&id)?, &Actor::Operator(operator.email))
        .await
        .map_err(profile_error)?;
    Ok(Redirect::to(&format!(
        "{}?done=profile_default#profiles",
        paths::SETTINGS
    )))
}

async fn delete_profile(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    profiles::delete(&state.db, parse_id(&id)?, &Actor::Operator(operator.email))
        .await
        .map_err(profile_error)?;
    Ok(Redirect::to(&format!(
        "{}?done=profile_deleted#profiles",
        paths::SETTINGS
    )))
}
