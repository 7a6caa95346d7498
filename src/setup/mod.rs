//! Zero-touch provider setup: with one administrator's delegated token for the provider's own
//! tenant (`Application.ReadWrite.All`, `AppRoleAssignment.ReadWrite.All`,
//! `Directory.Read.All`), Gangway creates or repairs its multi-tenant app registration through
//! Microsoft Graph — everything the doctor checks ([`Expected`]) plus the exposed API and the
//! app instance property lock —, creates its service principal, makes it an owner of the
//! registration and grants it, in the provider's tenant only, what the doctor and secret
//! rotation need. Then it generates a certificate, adds it to the registration's
//! `keyCredentials` and stores it (private key sealed) as the active credential with the client
//! and tenant ids (audited). Every step compares before it writes, so a second run changes
//! nothing and says so.

pub mod pending;
pub mod rotation;
pub mod sign_in;

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::audit::{self, Action, Actor};
use crate::credentials::rotation::registered_key_id;
use crate::credentials::{self, CredentialsError, Generated, VALIDITY_DAYS};
use crate::crypto::Keyring;
use crate::doctor::graph_ids::{self, GRAPH_APP_ID, Kind, Lookup};
use crate::doctor::{Expected, MULTI_TENANT_AUDIENCE, OWN_PERMISSION};
use crate::graph::{GraphClient, GraphError};
use crate::identity::{API_ROLE_READ, API_ROLE_WRITE, API_SCOPE};
use crate::settings::{self, Edit, Key, SettingsError};
use crate::types::{ClientId, Secret, TenantId};

/// The application permission that lets Gangway manage its own registration's credentials
/// (secret rotation) and nothing else: Graph limits it to apps the caller owns.
pub const ROTATION_PERMISSION: &str = "Application.ReadWrite.OwnedBy";
/// The delegated permissions the administrator's sign-in for the setup asks for.
pub const SETUP_SCOPES: [&str; 3] = [
    "Application.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "Directory.Read.All",
];
/// How long a client secret the rotation adds lives; Microsoft recommends less than 12 months.
pub const SECRET_LIFETIME_DAYS: i64 = 180;
/// The name new registrations get.
const DISPLAY_NAME: &str = "Gangway";
/// The name Gangway gives the client secrets it adds.
pub const SECRET_NAME: &str = "Gangway (added by Gangway)";

/// The exposed API's scope and app roles, with fixed ids so a repair recognises its own.
const API_SCOPE_ID: &str = "8d4f6c2e-5b1a-4e7f-9c3d-2a6b0e1f4d5c";
const API_ROLES: [(&str, &str, &str); 2] = [
    (
        API_ROLE_WRITE,
        "3e9a1b7c-6d2f-4c8e-a5b0-7f1d2c3e4a5b",
        "Change onboarding data through Gangway's JSON API",
    ),
    (
        API_ROLE_READ,
        "5a2c8e4f-1b7d-4e3a-9f6c-0d8b2a1e7c3f",
        "Read onboarding data through Gangway's JSON API",
    ),
];

/// Why the setup stopped.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Microsoft Graph refused or failed a call.
    #[error("{step}: {source}")]
    Graph {
        /// The step that failed.
        step: &'static str,
        /// Graph's answer.
        source: GraphError,
    },
    /// Graph's answer lacked something it documents.
    #[error("{0}: Microsoft Graph's answer lacks it")]
    Missing(&'static str),
    /// Storing the outcome in System Settings failed.
    #[error("could not store the settings: {0}")]
    Settings(#[from] SettingsError),
    /// Generating or storing the certificate failed.
    #[error("the certificate: {0}")]
    Certificate(#[from] CredentialsError),
}

/// What happened in one step of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The step, in a few words.
    pub title: &'static str,
    /// Whether it changed anything.
    pub changed: bool,
    /// What it found or did.
    pub detail: String,
}

impl Step {
    fn new(title: &'static str, changed: bool, detail: impl Into<String>) -> Self {
        Self {
            title,
            changed,
            detail: detail.into(),
        }
    }
}

/// The credential Gangway holds for its registration, as the setup left it.
#[derive(Debug)]
pub enum Credential {
    /// Gangway's active certificate is registered on the app and lives long enough: kept.
    Kept,
    /// A certificate just generated and added to the app's `keyCredentials`, to be stored
    /// (private key sealed) as the one every token request signs with.
    NewCertificate(Generated),
}

/// What the setup did: the checklist, and what to store.
#[derive(Debug)]
pub struct Outcome {
    /// Each step and its result, in order.
    pub steps: Vec<Step>,
    /// The registration's Application (client) ID.
    pub client_id: Uuid,
    /// Its object id (what Graph's writes name).
    pub object_id: Uuid,
    /// The provider's tenant.
    pub tenant_id: TenantId,
    /// The credential.
    pub credential: Credential,
}

impl Outcome {
    /// Whether any step changed anything.
    pub fn changed(&self) -> bool {
        self.steps.iter().any(|s| s.changed)
    }
}

/// What Gangway already holds: the client id and its active certificate.
#[derive(Debug, Clone, Default)]
pub struct Current {
    /// The client id in System Settings, if it names a registration in this tenant.
    pub client_id: Option<ClientId>,
    /// The SHA-1 thumbprint and expiry of the certificate token requests are signed with.
    pub certificate: Option<(String, OffsetDateTime)>,
}

/// Runs the setup in `tenant` with the administrator's delegated `token`, making the
/// registration hold what `expected` lists. `current` is what Gangway holds already; its
/// certificate is kept while it is registered on the app and lives longer than `renew_days`.
pub async fn run(
    graph: &GraphClient,
    token: &Secret,
    tenant: TenantId,
    expected: &Expected,
    current: &Current,
    renew_days: i64,
) -> Result<Outcome, SetupError> {
    let graph_err = |step| move |source| SetupError::Graph { step, source };
    let mut steps = Vec::new();

    // 1. The registration: the one Gangway knows, else a new one.
    const REGISTRATION: &str = "App registration";
    let existing = match &current.client_id {
        Some(id) => graph
            .application(token, id)
            .await
            .map_err(graph_err(REGISTRATION))?,
        None => None,
    };
    let app = match existing {
        Some(app) => {
            steps.push(Step::new(
                REGISTRATION,
                false,
                format!("Found \"{}\".", text(&app, "/displayName")),
            ));
            app
        }
        None => {
            let app = graph
                .create_application(
                    token,
                    &json!({ "displayName": DISPLAY_NAME, "signInAudience": MULTI_TENANT_AUDIENCE }),
                )
                .await
                .map_err(graph_err(REGISTRATION))?;
            steps.push(Step::new(
                REGISTRATION,
                true,
                format!(
                    "Created \"{DISPLAY_NAME}\" with Application (client) ID {}.",
                    text(&app, "/appId")
                ),
            ));
            app
        }
    };
    let client_id = uuid_at(&app, "/appId").ok_or(SetupError::Missing("appId"))?;
    let object_id = uuid_at(&app, "/id").ok_or(SetupError::Missing("id"))?;
    let object = object_id.to_string();

    // 2. Its properties.
    const PROPERTIES: &str = "Registration properties";
    let (patch, repaired) = repairs(&app, expected, client_id);
    if repaired.is_empty() {
        steps.push(Step::new(
            PROPERTIES,
            false,
            "Already as Gangway needs them.",
        ));
    } else {
        graph
            .update_application(token, &object, &Value::Object(patch))
            .await
            .map_err(graph_err(PROPERTIES))?;
        steps.push(Step::new(
            PROPERTIES,
            true,
            format!("Set {}.", repaired.join(", ")),
        ));
    }

    // 3. The service principal in the provider's tenant.
    const PRINCIPAL: &str = "Service principal";
    let app_id = client_id.to_string();
    let sp = match graph
        .service_principal(token, &app_id)
        .await
        .map_err(graph_err(PRINCIPAL))?
    {
        Some(sp) => {
            steps.push(Step::new(PRINCIPAL, false, "Present in your tenant."));
            sp
        }
        None => {
            let sp = graph
                .create_service_principal(token, &app_id)
                .await
                .map_err(graph_err(PRINCIPAL))?;
            steps.push(Step::new(PRINCIPAL, true, "Created in your tenant."));
            sp
        }
    };
    let sp_id = uuid_at(&sp, "/id").ok_or(SetupError::Missing("service principal id"))?;

    // 4. The service principal owns the registration: Application.ReadWrite.OwnedBy then
    // reaches it (and nothing else) for secret rotation.
    const OWNER: &str = "Owner of the registration";
    let owners = graph
        .application_owners(token, &object)
        .await
        .map_err(graph_err(OWNER))?;
    if owners.contains(&sp_id) {
        steps.push(Step::new(
            OWNER,
            false,
            "Gangway's service principal already is.",
        ));
    } else {
        graph
            .add_application_owner(token, &object, sp_id)
            .await
            .map_err(graph_err(OWNER))?;
        steps.push(Step::new(
            OWNER,
            true,
            "Gangway's service principal now is.",
        ));
    }

    // 5. What Gangway needs in the provider's own tenant, granted there only (customers'
    // consent asks for requiredResourceAccess, which does not list these).
    const GRANTS: &str = "Permissions in your tenant";
    let sp = sp_id.to_string();
    let granted = graph
        .granted_app_roles(token, &sp)
        .await
        .map_err(graph_err(GRANTS))?;
    let mut added = Vec::new();
    let mut resource = None;
    for name in [OWN_PERMISSION, ROTATION_PERMISSION] {
        let Lookup::Id(role, canonical) = graph_ids::lookup(name, Kind::Application) else {
            return Err(SetupError::Missing("a permission id"));
        };
        if granted.iter().any(|g| g.eq_ignore_ascii_case(role)) {
            continue;
        }
        if resource.is_none() {
            let graph_sp = graph
                .service_principal(token, GRAPH_APP_ID)
                .await
                .map_err(graph_err(GRANTS))?
                .ok_or(SetupError::Missing("Microsoft Graph's service principal"))?;
            resource = Some(text(&graph_sp, "/id").to_owned());
        }
        let graph_sp = resource.as_deref().expect("read above");
        graph
            .grant_app_role(token, &sp, graph_sp, role)
            .await
            .map_err(graph_err(GRANTS))?;
        added.push(canonical);
    }
    steps.push(if added.is_empty() {
        Step::new(
            GRANTS,
            false,
            format!("{OWN_PERMISSION} and {ROTATION_PERMISSION} already granted."),
        )
    } else {
        Step::new(GRANTS, true, format!("Granted {}.", added.join(" and ")))
    });

    // 6. The credential: a certificate. `addKey` needs a proof signed by a certificate already
    // on the app, so the first one goes in by PATCH, with the collection sent back whole (a
    // collection property is replaced).
    const CREDENTIAL: &str = "Credential";
    let now = OffsetDateTime::now_utc();
    let kept = current
        .certificate
        .as_ref()
        .filter(|(thumbprint, expires)| {
            registered_key_id(&app, thumbprint).is_some()
                && *expires - now > Duration::days(renew_days)
        });
    let credential = match kept {
        Some((thumbprint, expires)) => {
            steps.push(Step::new(
                CREDENTIAL,
                false,
                format!(
                    "Token requests are signed with certificate {thumbprint}, valid until {}.",
                    expires.date()
                ),
            ));
            Credential::Kept
        }
        None => {
            let made = Generated::new(VALIDITY_DAYS).await?;
            let mut all = graph
                .key_credentials(token, &object)
                .await
                .map_err(graph_err(CREDENTIAL))?;
            all.push(made.key_credential());
            graph
                .update_application(token, &object, &json!({ "keyCredentials": all }))
                .await
                .map_err(graph_err(CREDENTIAL))?;
            steps.push(Step::new(
                CREDENTIAL,
                true,
                format!(
                    "Added certificate {} valid until {}; token requests are signed with it.",
                    credentials::thumbprint(&made.certificate),
                    made.not_after.date()
                ),
            ));
            Credential::NewCertificate(made)
        }
    };

    Ok(Outcome {
        steps,
        client_id,
        object_id,
        tenant_id: tenant,
        credential,
    })
}

/// Stores what the setup made: client id and tenant id in System Settings and, when new, the
/// certificate (private key sealed) as the active one — audited as `actor` — and the
/// registration's ids for rotation. Every process signs with the certificate from its next
/// settings read.
pub async fn store(
    db: &PgPool,
    keys: &Keyring,
    outcome: &Outcome,
    actor: &Actor,
) -> Result<Vec<Key>, SetupError> {
    let edits = [
        Edit {
            key: Key::ClientId,
            raw: outcome.client_id.to_string(),
        },
        Edit {
            key: Key::ProviderTenantId,
            raw: outcome.tenant_id.to_string(),
        },
    ];
    let mut tx = db.begin().await.map_err(SettingsError::from)?;
    // A secret Gangway added to another registration is not this one's to rotate.
    sqlx::query!(
        "insert into provider_registration (client_id, object_id) values ($1, $2)
         on conflict (singleton) do update
            set client_id = excluded.client_id,
                object_id = excluded.object_id,
                secret_key_id = case when provider_registration.client_id = excluded.client_id
                                     then provider_registration.secret_key_id end,
                secret_expires_at = case when provider_registration.client_id = excluded.client_id
                                         then provider_registration.secret_expires_at end,
                updated_at = now()",
        outcome.client_id,
        outcome.object_id,
    )
    .execute(&mut *tx)
    .await
    .map_err(SettingsError::from)?;
    if let Credential::NewCertificate(made) = &outcome.credential {
        let id = credentials::insert(&mut tx, keys, actor, made, VALIDITY_DAYS).await?;
        credentials::activate_in(&mut tx, actor, id).await?;
    }
    let changed: Vec<&str> = outcome
        .steps
        .iter()
        .filter(|s| s.changed)
        .map(|s| s.title)
        .collect();
    if !changed.is_empty() {
        audit::record(
            &mut *tx,
            actor,
            Action::ProviderSetupRan,
            None,
            None,
            json!({ "client_id": outcome.client_id, "changed": changed }),
        )
        .await
        .map_err(SettingsError::from)?;
    }
    tx.commit().await.map_err(SettingsError::from)?;
    Ok(settings::save(db, keys, &edits, actor).await?)
}

/// What Gangway holds for the registration in `db`: the client id and the active certificate.
pub async fn current(db: &PgPool, client_id: Option<ClientId>) -> Result<Current, sqlx::Error> {
    let certificate = sqlx::query!(
        "select thumbprint, not_after from provider_certificates where state = 'active'"
    )
    .fetch_optional(db)
    .await?
    .map(|r| (r.thumbprint, r.not_after));
    Ok(Current {
        client_id,
        certificate,
    })
}

/// The PATCH body that makes `app` hold what Gangway needs, and the names of what it changes;
/// what the registration holds beyond that (other URIs, permissions, roles) stays.
fn repairs(
    app: &Value,
    expected: &Expected,
    client_id: Uuid,
) -> (serde_json::Map<String, Value>, Vec<&'static str>) {
    let mut patch = serde_json::Map::new();
    let mut changed = Vec::new();

    if text(app, "/signInAudience") != MULTI_TENANT_AUDIENCE {
        patch.insert("signInAudience".into(), json!(MULTI_TENANT_AUDIENCE));
        changed.push("the sign-in audience (multi-tenant)");
    }

    let mut web = serde_json::Map::new();
    let mut uris = strings(app, "/web/redirectUris");
    let before = uris.len();
    for uri in &expected.redirect_uris {
        if !uris.contains(&uri.uri) {
            uris.push(uri.uri.clone());
        }
    }
    if uris.len() != before {
        web.insert("redirectUris".into(), json!(uris));
        changed.push("the redirect URIs");
    }
    if text(app, "/web/logoutUrl") != expected.logout_url {
        web.insert("logoutUrl".into(), json!(expected.logout_url));
        changed.push("the front-channel logout URL");
    }
    if !web.is_empty() {
        patch.insert("web".into(), Value::Object(web));
    }

    let claims = text(app, "/groupMembershipClaims");
    if !claims.eq_ignore_ascii_case("DirectoryRole") && !claims.eq_ignore_ascii_case("All") {
        patch.insert(
            "groupMembershipClaims".into(),
            json!(expected.group_membership_claims),
        );
        changed.push("groupMembershipClaims");
    }

    if let Some(required) = required_resource_access(app, expected) {
        patch.insert("requiredResourceAccess".into(), required);
        changed.push("the Microsoft Graph permissions");
    }

    let app_id_uri = format!("api://{client_id}");
    let mut identifier_uris = strings(app, "/identifierUris");
    if !identifier_uris.contains(&app_id_uri) {
        identifier_uris.push(app_id_uri);
        patch.insert("identifierUris".into(), json!(identifier_uris));
        changed.push("the application ID URI");
    }

    let mut scopes: Vec<Value> = array(app, "/api/oauth2PermissionScopes");
    let has_scope = scopes.iter().any(|s| s["value"] == API_SCOPE);
    if !has_scope {
        scopes.push(json!({
            "id": API_SCOPE_ID,
            "value": API_SCOPE,
            "type": "Admin",
            "isEnabled": true,
            "adminConsentDisplayName": "Manage onboarding through Gangway",
            "adminConsentDescription": "Lets the signed-in operator use Gangway's JSON API with their console role.",
        }));
    }
    let version_ok = app.pointer("/api/requestedAccessTokenVersion") == Some(&json!(2));
    if !has_scope || !version_ok {
        patch.insert(
            "api".into(),
            json!({ "oauth2PermissionScopes": scopes, "requestedAccessTokenVersion": 2 }),
        );
        changed.push("the exposed API (scope and token version 2)");
    }

    let mut roles: Vec<Value> = array(app, "/appRoles");
    let before = roles.len();
    for (value, id, description) in API_ROLES {
        if !roles.iter().any(|r| r["value"] == value) {
            roles.push(json!({
                "id": id,
                "value": value,
                "allowedMemberTypes": ["Application"],
                "displayName": value,
                "description": description,
                "isEnabled": true,
            }));
        }
    }
    if roles.len() != before {
        patch.insert("appRoles".into(), json!(roles));
        changed.push("the app roles");
    }

    let locked = app.pointer("/servicePrincipalLockConfiguration/isEnabled") == Some(&json!(true))
        && app.pointer("/servicePrincipalLockConfiguration/allProperties") == Some(&json!(true));
    if !locked {
        patch.insert(
            "servicePrincipalLockConfiguration".into(),
            json!({ "isEnabled": true, "allProperties": true }),
        );
        changed.push("the app instance property lock");
    }
    (patch, changed)
}

/// The registration's `requiredResourceAccess` with every Graph permission the profiles and
/// users' sign-in need added, or `None` when nothing is missing.
fn required_resource_access(app: &Value, expected: &Expected) -> Option<Value> {
    let mut needed: BTreeSet<(String, &'static str)> = BTreeSet::new();
    let delegated = expected
        .profiles
        .iter()
        .flat_map(|p| p.delegated.iter().cloned())
        .chain(expected.signin_scopes.map(str::to_owned));
    let application = expected
        .profiles
        .iter()
        .flat_map(|p| p.application.iter().cloned());
    for (name, kind) in delegated
        .map(|n| (n, Kind::Delegated))
        .chain(application.map(|n| (n, Kind::Application)))
    {
        if let Lookup::Id(id, _) = graph_ids::lookup(&name, kind) {
            needed.insert((id.to_owned(), kind.access_type()));
        }
    }
    let mut all: Vec<Value> = array(app, "/requiredResourceAccess");
    let position = all
        .iter()
        .position(|r| text(r, "/resourceAppId").eq_ignore_ascii_case(GRAPH_APP_ID));
    let graph = match position {
        Some(i) => &mut all[i],
        None => {
            all.push(json!({ "resourceAppId": GRAPH_APP_ID, "resourceAccess": [] }));
            all.last_mut().expect("just pushed")
        }
    };
    let access = graph["resourceAccess"].as_array_mut()?;
    let before = access.len();
    for (id, kind) in needed {
        let present = access
            .iter()
            .any(|a| text(a, "/id").eq_ignore_ascii_case(&id) && a["type"] == kind);
        if !present {
            access.push(json!({ "id": id, "type": kind }));
        }
    }
    (access.len() != before).then(|| json!(all))
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn uuid_at(v: &Value, pointer: &str) -> Option<Uuid> {
    Uuid::parse_str(text(v, pointer)).ok()
}

fn strings(v: &Value, pointer: &str) -> Vec<String> {
    array(v, pointer)
        .into_iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn array(v: &Value, pointer: &str) -> Vec<Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Runs the setup in `tenant` with the administrator's delegated `token`, making the
/// registration hold everything users' sign-in and the permission profiles in use need, and
/// stores the outcome as `actor` — what `gangway setup` and the console's Setup page do.
#[allow(clippy::too_many_arguments)]
pub async fn run_and_store(
    db: &PgPool,
    keys: &Keyring,
    graph: &GraphClient,
    live: &settings::Live,
    public_url: &url::Url,
    token: &Secret,
    tenant: TenantId,
    actor: &Actor,
) -> Result<Outcome, SetupError> {
    let in_use = settings::profiles::in_use(db)
        .await
        .map_err(SettingsError::from)?;
    // Every redirect URI and permission users' sign-in needs is registered up front.
    let expected = Expected::new(&live.settings, public_url, &in_use, true);
    let current = current(db, live.settings.client_id)
        .await
        .map_err(SettingsError::from)?;
    let renew = i64::from(live.settings.certificate_rotation_days);
    let outcome = run(graph, token, tenant, &expected, &current, renew).await?;
    store(db, keys, &outcome, actor).await?;
    Ok(outcome)
}
