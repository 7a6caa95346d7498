//! Writing app registrations as Microsoft Graph v1.0 documents it: `POST /applications`,
//! `PATCH /applications/{id}`, `POST /servicePrincipals`, `addPassword`, `removePassword` and
//! `POST /applications/{id}/owners/$ref`, and granting an app role of Microsoft Graph to a
//! service principal (`POST /servicePrincipals/{id}/appRoleAssignments`). Delegated callers need `Application.ReadWrite.All`;
//! app-only callers `Application.ReadWrite.OwnedBy` (only for apps their service principal
//! owns) or `Application.ReadWrite.All`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::applications::application;
use super::errors::GraphError;
use super::service_principals::service_principal;
use super::{caller, require};
use crate::apps::{
    App, AppChange, AppRole, ExposedScope, GroupClaims, LockConfig, NewApp, Permissions, Registry,
};
use crate::certificates::KeyCredential;
use crate::scopes::{self, GRAPH_APP_ID};
use crate::state::{Access, AppState, World};

/// What creating an app, a service principal or a credential takes (either kind).
const APP_WRITE: &[&str] = &["Application.ReadWrite.OwnedBy", "Application.ReadWrite.All"];
/// Delegated: the signed-in user acts with their own rights over the directory.
const DELEGATED_WRITE: &[&str] = &["Application.ReadWrite.All"];
/// The permission that reaches apps the caller does not own.
const ALL_APPS: &str = "Application.ReadWrite.All";

/// The `application` properties the emulator models, as Graph spells them; anything else is
/// refused rather than silently dropped.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ApplicationBody {
    display_name: Option<String>,
    sign_in_audience: Option<String>,
    web: Option<WebBody>,
    required_resource_access: Option<Vec<ResourceAccessBody>>,
    #[serde(default, deserialize_with = "nullable")]
    group_membership_claims: Option<Option<String>>,
    identifier_uris: Option<Vec<String>>,
    api: Option<ApiBody>,
    app_roles: Option<Vec<AppRole>>,
    service_principal_lock_configuration: Option<LockConfig>,
    key_credentials: Option<Vec<KeyCredentialBody>>,
}

/// One of `keyCredentials` as Graph's `keyCredential` resource spells it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyCredentialBody {
    key: Option<String>,
    key_id: Option<Uuid>,
    #[serde(rename = "type")]
    kind: String,
    usage: String,
    display_name: Option<String>,
    // Accepted and not kept: the emulator reports the thumbprint (Graph's default) and the
    // certificate's own validity.
    #[serde(rename = "customKeyIdentifier")]
    _custom_key_identifier: Option<IgnoredAny>,
    #[serde(rename = "startDateTime")]
    _start_date_time: Option<IgnoredAny>,
    #[serde(rename = "endDateTime")]
    _end_date_time: Option<IgnoredAny>,
}

impl KeyCredentialBody {
    /// The certificate this entry names: a new one from its `key`, kept under its `keyId`.
    fn certificate(&self) -> Result<KeyCredential, GraphError> {
        if self.kind != "AsymmetricX509Cert" || self.usage != "Verify" {
            return Err(bad_request(
                "keyCredentials: the emulator models certificates of type AsymmetricX509Cert with usage Verify only.",
            ));
        }
        let key = self
            .key
            .as_deref()
            .ok_or_else(|| bad_request("keyCredentials: each credential needs its key."))?;
        let mut cert = KeyCredential::parse(key, self.display_name.as_deref().unwrap_or(""))
            .map_err(|e| bad_request(format!("keyCredentials: {e}.")))?;
        if let Some(id) = self.key_id {
            cert.key_id = id;
        }
        Ok(cert)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WebBody {
    redirect_uris: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    logout_url: Option<Option<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ApiBody {
    oauth2_permission_scopes: Option<Vec<ExposedScope>>,
    requested_access_token_version: Option<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceAccessBody {
    resource_app_id: String,
    resource_access: Vec<AccessBody>,
}

#[derive(Debug, Deserialize)]
struct AccessBody {
    id: String,
    #[serde(rename = "type")]
    kind: String,
}

/// Tells a property sent as `null` (`Some(None)`) from one left out (`None`).
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn bad_request(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
}

/// Parses a JSON body; an empty body is the type's default where Graph makes the body optional.
fn parse<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, GraphError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| bad_request(format!("Invalid request body: {e}")))
}

impl ApplicationBody {
    /// `signInAudience` as the emulator models it: multi-tenant or not.
    fn multi_tenant(&self) -> Result<Option<bool>, GraphError> {
        match self.sign_in_audience.as_deref() {
            None => Ok(None),
            Some("AzureADMyOrg") => Ok(Some(false)),
            Some("AzureADMultipleOrgs") => Ok(Some(true)),
            Some(other) => Err(bad_request(format!(
                "signInAudience '{other}' is not supported by the emulator (work or school accounts only)."
            ))),
        }
    }

    /// `requiredResourceAccess` as Graph permission names; the emulator knows only Graph's.
    fn permissions(&self) -> Result<Option<Permissions>, GraphError> {
        let Some(required) = &self.required_resource_access else {
            return Ok(None);
        };
        let mut permissions = Permissions::default();
        for resource in required {
            if !resource.resource_app_id.eq_ignore_ascii_case(GRAPH_APP_ID) {
                return Err(bad_request(format!(
                    "resourceAppId '{}' is not an API the emulator knows (only Microsoft Graph).",
                    resource.resource_app_id
                )));
            }
            for access in &resource.resource_access {
                let role = match access.kind.as_str() {
                    "Role" => true,
                    "Scope" => false,
                    other => {
                        return Err(bad_request(format!(
                            "resourceAccess type '{other}' must be 'Scope' or 'Role'."
                        )));
                    }
                };
                let name = scopes::by_id(&access.id, role).ok_or_else(|| {
                    bad_request(format!(
                        "Permission '{}' ({}) does not exist on Microsoft Graph.",
                        access.id, access.kind
                    ))
                })?;
                let set = if role {
                    &mut permissions.application
                } else {
                    &mut permissions.delegated
                };
                set.insert(name.to_string());
            }
        }
        Ok(Some(permissions))
    }

    fn group_claims(&self) -> Result<Option<GroupClaims>, GraphError> {
        match &self.group_membership_claims {
            None => Ok(None),
            Some(None) => Ok(Some(GroupClaims::None)),
            Some(Some(v)) => serde_json::from_value(Value::String(v.clone()))
                .map(Some)
                .map_err(|_| {
                    bad_request(format!(
                        "groupMembershipClaims '{v}' must be None, SecurityGroup, DirectoryRole, ApplicationGroup or All."
                    ))
                }),
        }
    }

    /// The registry change this body asks for.
    fn change(&self) -> Result<AppChange, GraphError> {
        let web = self.web.as_ref();
        let api = self.api.as_ref();
        Ok(AppChange {
            redirect_uris: web.and_then(|w| w.redirect_uris.clone()),
            multi_tenant: self.multi_tenant()?,
            logout_url: web
                .and_then(|w| w.logout_url.clone())
                .map(Option::unwrap_or_default),
            group_membership_claims: self.group_claims()?,
            app_roles: self.app_roles.clone(),
            identifier_uris: self.identifier_uris.clone(),
            oauth2_permission_scopes: api.and_then(|a| a.oauth2_permission_scopes.clone()),
            requested_access_token_version: api.and_then(|a| a.requested_access_token_version),
            permissions: self.permissions()?,
            secret_expires_in_days: None,
        })
    }
}

/// The object id of the caller's service principal in its tenant: what ownership records for
/// an app-only caller.
fn caller_principal(access: &Access) -> Uuid {
    access
        .oid
        .unwrap_or_else(|| Registry::service_principal_id(access.tid, &access.client_id))
}

/// 403 unless the caller may change `app`: delegated `Application.ReadWrite.All`, app-only
/// `Application.ReadWrite.All`, or `Application.ReadWrite.OwnedBy` on an app it owns.
fn may_write(access: &Access, app: &App) -> Result<(), GraphError> {
    require(access, APP_WRITE, DELEGATED_WRITE)?;
    let owned_only = access.oid.is_none() && !access.permissions.contains(ALL_APPS);
    if owned_only && !app.owners.contains(&caller_principal(access)) {
        return Err(GraphError::forbidden());
    }
    Ok(())
}

/// The client id of the application object `id` in the caller's tenant.
fn app_by_object_id(w: &World, access: &Access, id: &str) -> Result<String, GraphError> {
    w.reg
        .apps
        .values()
        .find(|a| a.home_tenant == access.tid && a.object_id.to_string().eq_ignore_ascii_case(id))
        .map(|a| a.client_id.clone())
        .ok_or_else(|| GraphError::not_found(id))
}

fn answer(result: Result<Response, GraphError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Answers a write to the application `id` (its object id) in the caller's tenant: the caller,
/// the body read as `B`, the app found and [`may_write`] passed, then `write` changes the world
/// (under its lock) for the app's client id.
fn write_app<B: DeserializeOwned + Default>(
    st: &AppState,
    headers: &HeaderMap,
    id: &str,
    body: &Bytes,
    write: impl FnOnce(&mut World, String, B) -> Result<Response, GraphError>,
) -> Response {
    answer((|| {
        let access = caller(st, headers)?;
        let body: B = parse(body)?;
        let mut w = st.world();
        let client_id = app_by_object_id(&w, &access, id)?;
        may_write(&access, &w.reg.apps[&client_id])?;
        write(&mut w, client_id, body)
    })())
}

/// The caller's tenant's default domain, Graph's `publisherDomain`.
fn publisher_domain(w: &World, tid: Uuid) -> String {
    w.dir
        .tenant_index(tid)
        .map(|t| w.dir.tenants[t].default_domain().to_string())
        .unwrap_or_default()
}

/// `POST /v1.0/applications`: 201 and the new application. Creating an app creates no service
/// principal (that is `POST /servicePrincipals`); the creator becomes its owner.
pub async fn create(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    answer((|| {
        let access = caller(&st, &headers)?;
        require(&access, APP_WRITE, DELEGATED_WRITE)?;
        let body: ApplicationBody = parse(&body)?;
        let display_name = body
            .display_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| bad_request("The displayName property is required."))?;
        let change = body.change()?;
        let mut w = st.world();
        let new = NewApp {
            home_tenant: access.tid,
            multi_tenant: change.multi_tenant.unwrap_or(false),
            display_name: Some(display_name),
            redirect_uris: change.redirect_uris.clone().unwrap_or_default(),
            logout_url: change.logout_url.clone().filter(|u| !u.is_empty()),
            group_membership_claims: change.group_membership_claims,
            app_roles: change.app_roles.clone().unwrap_or_default(),
            identifier_uris: Some(change.identifier_uris.clone().unwrap_or_default()),
            oauth2_permission_scopes: change.oauth2_permission_scopes.clone().unwrap_or_default(),
            requested_access_token_version: change.requested_access_token_version,
            permissions: change.permissions.clone().unwrap_or_default(),
            secret_lifetime_days: None,
            client_id: None,
            client_secret: None,
        };
        let client_id = w
            .reg
            .register(new, 0)
            .map_err(bad_request)?
            .client_id
            .clone();
        // Graph creates neither a credential nor a service principal with the application.
        w.reg.grants.remove(&(access.tid, client_id.clone()));
        let domain = publisher_domain(&w, access.tid);
        let app = w.reg.apps.get_mut(&client_id).expect("just registered");
        app.secrets.clear();
        app.owners.insert(caller_principal(&access));
        app.lock = body.service_principal_lock_configuration;
        let mut v = application(app, &domain);
        v.insert(
            "@odata.context".into(),
            json!("https://graph.microsoft.com/v1.0/$metadata#applications/$entity"),
        );
        tracing::info!(%client_id, tenant = %access.tid, "application created through Graph");
        Ok((StatusCode::CREATED, Json(Value::Object(v))).into_response())
    })())
}

/// `PATCH /v1.0/applications/{id}`: 204; properties left out keep their values.
pub async fn update(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    write_app(
        &st,
        &headers,
        &id,
        &body,
        |w, client_id, body: ApplicationBody| {
            let change = body.change()?;
            // The collection sent replaces the one before, as a collection property does.
            let certificates = body
                .key_credentials
                .as_ref()
                .map(|all| {
                    all.iter()
                        .map(KeyCredentialBody::certificate)
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            if let Some(name) = &body.display_name
                && name.trim().is_empty()
            {
                return Err(bad_request("displayName cannot be empty."));
            }
            w.reg
                .change(&client_id, change)
                .expect("found above")
                .map_err(bad_request)?;
            let app = w.reg.apps.get_mut(&client_id).expect("found above");
            if let Some(name) = body.display_name {
                app.display_name = name;
            }
            if let Some(lock) = body.service_principal_lock_configuration {
                app.lock = Some(lock);
            }
            if let Some(certificates) = certificates {
                app.certificates = certificates;
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        },
    )
}

/// `POST /v1.0/servicePrincipals` with `{"appId"}`: 201 and the service principal, created in
/// the caller's tenant (the app's own, or another tenant for a multi-tenant app).
pub async fn create_service_principal(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        app_id: Option<String>,
    }
    answer((|| {
        let access = caller(&st, &headers)?;
        require(&access, APP_WRITE, DELEGATED_WRITE)?;
        let body: Body = parse(&body)?;
        let app_id = body
            .app_id
            .ok_or_else(|| bad_request("The appId property is required."))?;
        let mut w = st.world();
        let app = w
            .reg
            .apps
            .values()
            .find(|a| a.client_id.eq_ignore_ascii_case(&app_id))
            .filter(|a| a.home_tenant == access.tid || a.multi_tenant)
            .ok_or_else(|| {
                bad_request(format!(
                    "The appId '{app_id}' of the service principal does not reference a valid application object."
                ))
            })?;
        if app.home_tenant == access.tid {
            may_write(&access, app)?;
        }
        let key = (access.tid, app.client_id.clone());
        if w.reg.grants.contains_key(&key) {
            return Err(GraphError::new(
                StatusCode::CONFLICT,
                "Request_MultipleObjectsWithSameKeyValue",
                "The service principal cannot be created, updated, or restored because the service principal name is already in use.",
            ));
        }
        w.reg.grants.entry(key.clone()).or_default();
        let grant = &w.reg.grants[&key];
        let mut v = service_principal(access.tid, &key.1, grant, &w);
        v["appRoleAssignmentRequired"] = json!(false);
        Ok((StatusCode::CREATED, Json(v)).into_response())
    })())
}

/// `POST /v1.0/applications/{id}/addPassword`: 200 and the new `passwordCredential`, the only
/// time its `secretText` is shown. Defaults: valid from now, for two years.
pub async fn add_password(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        #[serde(default)]
        password_credential: Credential,
    }
    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Credential {
        display_name: Option<String>,
        start_date_time: Option<String>,
        end_date_time: Option<String>,
    }
    let time = |s: Option<String>| -> Result<Option<OffsetDateTime>, GraphError> {
        s.map(|s| {
            OffsetDateTime::parse(&s, &Rfc3339)
                .map_err(|_| bad_request(format!("'{s}' is not an ISO 8601 date and time.")))
        })
        .transpose()
    };
    write_app(&st, &headers, &id, &body, |w, client_id, body: Body| {
        let cred = body.password_credential;
        let starts_at = time(cred.start_date_time)?.unwrap_or_else(OffsetDateTime::now_utc);
        let expires_at = time(cred.end_date_time)?.unwrap_or(starts_at + Duration::days(2 * 365));
        if expires_at <= starts_at {
            return Err(bad_request("endDateTime must be after startDateTime."));
        }
        let secret = w
            .reg
            .add_password(&client_id, cred.display_name, starts_at, expires_at)
            .expect("found above");
        tracing::info!(%client_id, key_id = %secret.key_id, "password added through Graph");
        Ok(Json(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.passwordCredential",
            "customKeyIdentifier": null,
            "displayName": secret.display_name,
            "endDateTime": secret.expires_at.format(&Rfc3339).unwrap_or_default(),
            "hint": secret.value.chars().take(3).collect::<String>(),
            "keyId": secret.key_id,
            "secretText": secret.value,
            "startDateTime": secret.starts_at.format(&Rfc3339).unwrap_or_default(),
        }))
        .into_response())
    })
}

/// `POST /v1.0/applications/{id}/removePassword` with `{"keyId"}`: 204; the secret stops
/// working at once.
pub async fn remove_password(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        key_id: Option<Uuid>,
    }
    write_app(&st, &headers, &id, &body, |w, client_id, body: Body| {
        let key_id = body
            .key_id
            .ok_or_else(|| bad_request("The keyId property is required."))?;
        if !w.reg.remove_password(&client_id, key_id) {
            return Err(GraphError::not_found(&key_id.to_string()));
        }
        tracing::info!(%client_id, %key_id, "password removed through Graph");
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

/// `POST /v1.0/applications/{id}/owners/$ref` with `{"@odata.id": ".../directoryObjects/{id}"}`:
/// 204. Needs `Application.ReadWrite.All` and `Directory.Read.All` (OwnedBy is not enough).
pub async fn add_owner(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    #[derive(Default, Deserialize)]
    struct Body {
        #[serde(rename = "@odata.id")]
        odata_id: Option<String>,
    }
    answer((|| {
        let access = caller(&st, &headers)?;
        require(&access, &[ALL_APPS], &[ALL_APPS])?;
        require(&access, &["Directory.Read.All"], &["Directory.Read.All"])?;
        let body: Body = parse(&body)?;
        let owner = body
            .odata_id
            .as_deref()
            .and_then(|r| r.rsplit('/').next())
            .and_then(|o| Uuid::parse_str(o).ok())
            .ok_or_else(|| bad_request("@odata.id must reference a directory object."))?;
        let mut w = st.world();
        let client_id = app_by_object_id(&w, &access, &id)?;
        let tenant = w
            .dir
            .tenant_index(access.tid)
            .map(|t| &w.dir.tenants[t])
            .ok_or_else(|| {
                GraphError::unauthenticated("The tenant of this token no longer exists.")
            })?;
        let known = tenant.user(&owner.to_string()).is_some()
            || w.reg.grants.keys().any(|(tid, client)| {
                *tid == access.tid && Registry::service_principal_id(*tid, client) == owner
            });
        if !known {
            return Err(GraphError::not_found(&owner.to_string()));
        }
        let app = w.reg.apps.get_mut(&client_id).expect("found above");
        if !app.owners.insert(owner) {
            return Err(bad_request(
                "One or more added object references already exist for the following modified properties: 'owners'.",
            ));
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

/// `GET /v1.0/applications/{id}/owners`: the owners as directory objects (users and service
/// principals), for whoever may read app registrations.
pub async fn owners(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    const READ: &[&str] = &[
        "Application.Read.All",
        "Application.ReadWrite.All",
        "Directory.Read.All",
    ];
    answer((|| {
        let access = caller(&st, &headers)?;
        require(&access, READ, READ)?;
        let w = st.world();
        let client_id = app_by_object_id(&w, &access, &id)?;
        let tenant = w.dir.tenant_index(access.tid).map(|t| &w.dir.tenants[t]);
        let value: Vec<Value> = w.reg.apps[&client_id]
            .owners
            .iter()
            .map(|owner| {
                let user = tenant.is_some_and(|t| t.user(&owner.to_string()).is_some());
                let kind = if user { "user" } else { "servicePrincipal" };
                json!({"@odata.type": format!("#microsoft.graph.{kind}"), "id": owner})
            })
            .collect();
        Ok(Json(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects",
            "value": value,
        }))
        .into_response())
    })())
}

/// `POST /v1.0/servicePrincipals/{id}/appRoleAssignments` with `{"principalId", "resourceId",
/// "appRoleId"}`: 201 and the assignment; grants the service principal `{id}` an application
/// permission of Microsoft Graph (the only resource the emulator knows) in the caller's tenant,
/// as admin consent would. Needs `AppRoleAssignment.ReadWrite.All`.
pub async fn assign_app_role(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        principal_id: Option<Uuid>,
        resource_id: Option<Uuid>,
        app_role_id: Option<String>,
    }
    const ASSIGN: &[&str] = &["AppRoleAssignment.ReadWrite.All"];
    answer((|| {
        let access = caller(&st, &headers)?;
        require(&access, ASSIGN, ASSIGN)?;
        let body: Body = parse(&body)?;
        let (Some(principal), Some(resource), Some(role_id)) =
            (body.principal_id, body.resource_id, body.app_role_id)
        else {
            return Err(bad_request(
                "principalId, resourceId and appRoleId are required.",
            ));
        };
        if !id.eq_ignore_ascii_case(&principal.to_string()) {
            return Err(bad_request(
                "principalId must be the service principal in the URL.",
            ));
        }
        let mut w = st.world();
        let client_id = w
            .reg
            .grants
            .keys()
            .find(|(tid, client)| {
                *tid == access.tid && Registry::service_principal_id(*tid, client) == principal
            })
            .map(|(_, client)| client.clone())
            .ok_or_else(|| GraphError::not_found(&id))?;
        let graph = Registry::service_principal_id(access.tid, GRAPH_APP_ID);
        if resource != graph {
            return Err(GraphError::not_found(&resource.to_string()));
        }
        let name = scopes::by_id(&role_id, true).ok_or_else(|| {
            bad_request(format!(
                "Permission being assigned ({role_id}) was not found on application."
            ))
        })?;
        let grant = w
            .reg
            .grants
            .get_mut(&(access.tid, client_id))
            .expect("found above");
        if !grant.tenant_wide.application.insert(name.to_string()) {
            return Err(bad_request(
                "Permission being assigned already exists on the object",
            ));
        }
        Ok((
            StatusCode::CREATED,
            Json(json!({
                "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#servicePrincipals('{principal}')/appRoleAssignments/$entity"),
                "id": Uuid::new_v4(),
                "appRoleId": role_id,
                "principalId": principal,
                "principalType": "ServicePrincipal",
                "resourceDisplayName": "Microsoft Graph",
                "resourceId": resource,
                "createdDateTime": super::errors::now_rfc3339(),
            })),
        )
            .into_response())
    })())
}
