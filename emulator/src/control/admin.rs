//! The admin API under `/_emulator/` for tests and demos: tenants, apps, consents, directory
//! changes, faults, key rotation and delta reset. It has no authentication by design.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::apps::{AppChange, AssignError, NewApp, Permissions};
use crate::control::faults::FaultConfig;
use crate::directory::{
    Changes, DirectoryObject, Group, Life, OTHER_TYPES, Tenant, USER_TYPE, User,
};
use crate::graph::service_principals::{Assignment, DEFAULT_ACCESS};
use crate::login::forgeries::{Forgery, ForgeryKind, ForgeryTarget};
use crate::login::keys::SigningKey;
use crate::state::{AppState, Revoked, World};

/// Admin routes.
pub fn router() -> Router<AppState> {
    let t = "/_emulator/tenants/{tid}";
    Router::new()
        .route("/_emulator/tenants", get(list_tenants).post(create_tenant))
        .route(t, get(get_tenant).patch(change_tenant))
        .route("/_emulator/apps", post(register_app))
        .route("/_emulator/apps/{client_id}", patch(change_app))
        .route(
            "/_emulator/apps/{client_id}/certificates",
            post(upload_certificate),
        )
        .route(&format!("{t}/consents"), post(grant_consent))
        .route(
            &format!("{t}/apps/{{client_id}}/role-assignments"),
            post(assign_role),
        )
        .route(
            &format!("{t}/apps/{{client_id}}/role-assignments/{{id}}"),
            delete(unassign_role),
        )
        .route(
            &format!("{t}/apps/{{client_id}}/assignments"),
            post(assign_to_app),
        )
        .route(
            &format!("{t}/apps/{{client_id}}/assignments/{{id}}"),
            delete(unassign_from_app),
        )
        .route(
            &format!("{t}/apps/{{client_id}}/app-role-grants"),
            post(grant_app_role),
        )
        .route(
            &format!("{t}/consents/{{client_id}}"),
            delete(revoke_consent).patch(change_service_principal),
        )
        .route(
            &format!("{t}/consents/{{client_id}}/permissions/{{name}}"),
            delete(remove_permission),
        )
        .route(&format!("{t}/users"), post(create_user))
        .route(
            &format!("{t}/users/{{id}}"),
            patch(update_user).delete(delete_user),
        )
        .route(&format!("{t}/users/{{id}}/restore"), post(restore_user))
        .route(&format!("{t}/groups"), post(create_group))
        .route(
            &format!("{t}/groups/{{id}}"),
            patch(update_group).delete(delete_group),
        )
        .route(&format!("{t}/groups/{{id}}/members"), post(add_member))
        .route(
            &format!("{t}/groups/{{id}}/members/{{uid}}"),
            delete(remove_member),
        )
        .route(&format!("{t}/objects"), post(create_object))
        .route(&format!("{t}/objects/{{id}}"), delete(delete_object))
        .route(&format!("{t}/delta-reset"), post(delta_reset))
        .route("/_emulator/faults", get(get_faults).post(set_faults))
        .route("/_emulator/throttle", get(get_throttle).post(set_throttle))
        .route("/_emulator/graph", get(get_graph).post(set_graph))
        .route(
            "/_emulator/propagation",
            get(get_propagation).post(set_propagation),
        )
        .route("/_emulator/keys/rotate", post(rotate_keys))
        .route("/_emulator/forgeries", post(arm_forgery))
}

/// An admin API failure: `{"error": "..."}`.
struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

type Answer = Result<Response, AdminError>;

fn not_found(what: &str) -> AdminError {
    AdminError(StatusCode::NOT_FOUND, format!("{what} not found"))
}

fn bad(msg: impl Into<String>) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, msg.into())
}

fn login(u: &User) -> Value {
    json!({"username": u.user_principal_name, "password": u.password(), "id": u.id})
}

fn tenant_json(t: &Tenant) -> Value {
    json!({
        "id": t.id,
        "display_name": t.display_name,
        "domain": t.default_domain(),
        "domains": t.domains.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
        "admin": t.admin().map(login),
        "member": t.member().map(login),
        "users": t.active_users(),
        "groups": t.active_groups(),
        "user_consent": t.user_consent,
    })
}

fn tenant_idx(w: &World, tid: &str) -> Result<usize, AdminError> {
    Uuid::parse_str(tid)
        .ok()
        .and_then(|id| w.dir.tenant_index(id))
        .ok_or_else(|| not_found("tenant"))
}

fn tenant_mut<'w>(w: &'w mut World, tid: &str) -> Result<&'w mut Tenant, AdminError> {
    let t = tenant_idx(w, tid)?;
    Ok(&mut w.dir.tenants[t])
}

fn upn_taken(upn: &str) -> AdminError {
    AdminError(
        StatusCode::CONFLICT,
        format!("userPrincipalName '{upn}' is already taken"),
    )
}

/// Runs slow key work off the async threads.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, AdminError> {
    let internal = |e: String| AdminError(StatusCode::INTERNAL_SERVER_ERROR, e);
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| internal(e.to_string()))
}

/// Overwrites each field of `$target` that `$body` sets (an optional one also to `null`).
macro_rules! overwrite {
    ($body:expr => $target:expr; $($field:ident),+) => {{
        $(if let Some(v) = $body.$field {
            $target.$field = v;
        })+
    }};
}

/// Reads a present property, `null` included, as `Some(…)`: `null` clears an optional one.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

async fn list_tenants(State(st): State<AppState>) -> Json<Value> {
    let w = st.world();
    Json(Value::Array(
        w.dir.tenants.iter().map(tenant_json).collect(),
    ))
}

async fn get_tenant(State(st): State<AppState>, Path(tid): Path<String>) -> Answer {
    let w = st.world();
    let t = tenant_idx(&w, &tid)?;
    Ok(Json(tenant_json(&w.dir.tenants[t])).into_response())
}

/// What `PATCH /_emulator/tenants/{tid}` changes: the tenant's settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantChange {
    /// "User consent for applications": allowed (Microsoft's default) or not.
    user_consent: Option<bool>,
}

async fn change_tenant(
    State(st): State<AppState>,
    Path(tid): Path<String>,
    Json(change): Json<TenantChange>,
) -> Answer {
    let mut w = st.world();
    let tenant = tenant_mut(&mut w, &tid)?;
    if let Some(allowed) = change.user_consent {
        tenant.user_consent = allowed;
    }
    Ok(Json(tenant_json(tenant)).into_response())
}

#[derive(Deserialize, Default)]
struct NewTenant {
    display_name: Option<String>,
    users: Option<usize>,
    groups: Option<usize>,
    memberships: Option<usize>,
}

async fn create_tenant(State(st): State<AppState>, body: Option<Json<NewTenant>>) -> Answer {
    let new = body.map(|b| b.0).unwrap_or_default();
    let mut w = st.world();
    let t = w.dir.add_tenant(
        new.display_name,
        new.users.unwrap_or(10),
        new.groups.unwrap_or(2),
        new.memberships,
    );
    Ok((StatusCode::CREATED, Json(tenant_json(&w.dir.tenants[t]))).into_response())
}

async fn register_app(State(st): State<AppState>, Json(new): Json<NewApp>) -> Answer {
    let mut w = st.world();
    tenant_idx(&w, &new.home_tenant.to_string())?;
    let app = w
        .reg
        .register(new, st.cfg.secret_lifetime_days)
        .map_err(bad)?;
    let secret = app.secrets.last().expect("registered with a secret");
    tracing::info!(client_id = %app.client_id, home_tenant = %app.home_tenant, "registered app");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "client_id": app.client_id,
            "client_secret": secret.value,
            "secret_expires_at": secret.expires_at.format(&Rfc3339).unwrap_or_default(),
        })),
    )
        .into_response())
}

/// A certificate as a person uploads it in the portal (Certificates & secrets → Upload
/// certificate): the public certificate only, PEM or Base64 DER.
#[derive(Deserialize)]
struct Upload {
    certificate: String,
    #[serde(default)]
    display_name: Option<String>,
}

async fn upload_certificate(
    State(st): State<AppState>,
    Path(client_id): Path<String>,
    Json(upload): Json<Upload>,
) -> Answer {
    let cert = crate::certificates::KeyCredential::parse(
        &upload.certificate,
        upload.display_name.as_deref().unwrap_or("CN=uploaded"),
    )
    .map_err(bad)?;
    let mut w = st.world();
    let app = w
        .reg
        .apps
        .get_mut(&client_id)
        .ok_or_else(|| not_found("app"))?;
    let answer = json!({
        "key_id": cert.key_id,
        "thumbprint": cert.thumbprint(),
        "end_date_time": cert.expires_at.format(&Rfc3339).unwrap_or_default(),
    });
    app.certificates.push(cert);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn change_app(
    State(st): State<AppState>,
    Path(client_id): Path<String>,
    Json(change): Json<AppChange>,
) -> Answer {
    let mut w = st.world();
    let app = w
        .reg
        .change(&client_id, change)
        .ok_or_else(|| not_found("app"))?
        .map_err(bad)?;
    Ok(Json(json!({
        "client_id": app.client_id,
        "multi_tenant": app.multi_tenant,
        "redirect_uris": app.redirect_uris,
        "logout_url": app.logout_url,
        "group_membership_claims": app.group_claims,
        "app_roles": app.app_roles,
        "identifier_uris": app.identifier_uris,
        "oauth2_permission_scopes": app.api_scopes,
        "requested_access_token_version": app.access_token_version,
        "permissions": app.permissions,
        "secret_expires_at": app.secrets.iter().map(|s| s.expires_at.format(&Rfc3339).unwrap_or_default()).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct AssignBody {
    /// Object id or UPN.
    user: String,
    /// The app role's value.
    role: String,
}

/// Assigns a user an app role, as "Enterprise applications → Users and groups" does.
async fn assign_role(
    State(st): State<AppState>,
    Path((tid, client_id)): Path<(String, String)>,
    Json(body): Json<AssignBody>,
) -> Answer {
    let mut w = st.world();
    let t = tenant_idx(&w, &tid)?;
    let tenant = &w.dir.tenants[t];
    let (tid, user) = (
        tenant.id,
        tenant
            .user(&body.user)
            .filter(|u| u.life == Life::Active)
            .ok_or_else(|| not_found("user"))?
            .id,
    );
    let assignment = w
        .reg
        .assign_role(tid, &client_id, user, &body.role)
        .map_err(|e| match e {
            AssignError::NoApp => not_found("app"),
            AssignError::NoServicePrincipal => bad(
                "the app has no service principal in this tenant (not its home tenant, no consent)",
            ),
            AssignError::NoRole => bad(format!(
                "the app defines no enabled app role '{}' that users can be assigned",
                body.role
            )),
            AssignError::Exists => AdminError(
                StatusCode::CONFLICT,
                "the user already holds this role".into(),
            ),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": assignment.id,
            "appRoleId": assignment.role,
            "principalId": assignment.user,
            "principalType": "User",
            "role": body.role,
        })),
    )
        .into_response())
}

async fn unassign_role(
    State(st): State<AppState>,
    Path((tid, client_id, id)): Path<(String, String, String)>,
) -> Answer {
    let mut w = st.world();
    let tid = w.dir.tenants[tenant_idx(&w, &tid)?].id;
    let id = Uuid::parse_str(&id).map_err(|_| not_found("role assignment"))?;
    if !w.reg.unassign_role(tid, &client_id, id) {
        return Err(not_found("role assignment"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct AppAssignBody {
    /// A user's object id or UPN, or a group's object id.
    principal: String,
}

/// Assigns a user or group to an enterprise app with default access, as a customer's admin
/// does under Enterprise applications → Users and groups → Add user/group on an app that
/// declares no app roles.
async fn assign_to_app(
    State(st): State<AppState>,
    Path((tid, client_id)): Path<(String, String)>,
    Json(body): Json<AppAssignBody>,
) -> Answer {
    let mut w = st.world();
    let t = tenant_idx(&w, &tid)?;
    let tenant = &w.dir.tenants[t];
    let tid = tenant.id;
    let (principal, group) = match tenant.user(&body.principal) {
        Some(u) if u.life == Life::Active => (u.id, false),
        _ => {
            let g =
                active_group(tenant, &body.principal).map_err(|_| not_found("user or group"))?;
            (tenant.groups[g].id, true)
        }
    };
    if !w.reg.grants.contains_key(&(tid, client_id.clone())) {
        return Err(bad(
            "the app has no service principal in this tenant (not its home tenant, no consent)",
        ));
    }
    let list = w.assignments.entry((tid, client_id)).or_default();
    if list.iter().any(|a| a.principal == principal) {
        return Err(AdminError(
            StatusCode::CONFLICT,
            "the principal is already assigned to the app".into(),
        ));
    }
    let assignment = Assignment {
        id: Uuid::new_v4(),
        principal,
        group,
        created: crate::graph::errors::now_rfc3339(),
    };
    list.push(assignment.clone());
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": assignment.id,
            "appRoleId": DEFAULT_ACCESS,
            "principalId": principal,
            "principalType": if group { "Group" } else { "User" },
        })),
    )
        .into_response())
}

/// Removes a user's or group's assignment to an enterprise app.
async fn unassign_from_app(
    State(st): State<AppState>,
    Path((tid, client_id, id)): Path<(String, String, String)>,
) -> Answer {
    let mut w = st.world();
    let tid = w.dir.tenants[tenant_idx(&w, &tid)?].id;
    let id = Uuid::parse_str(&id).map_err(|_| not_found("assignment"))?;
    let list = w.assignments.entry((tid, client_id)).or_default();
    let before = list.len();
    list.retain(|a| a.id != id);
    if list.len() == before {
        return Err(not_found("assignment"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ConsentBody {
    client_id: String,
    #[serde(default)]
    delegated: BTreeSet<String>,
    #[serde(default)]
    application: BTreeSet<String>,
}

async fn grant_consent(
    State(st): State<AppState>,
    Path(tid): Path<String>,
    Json(body): Json<ConsentBody>,
) -> Answer {
    let mut w = st.world();
    let tid = w.dir.tenants[tenant_idx(&w, &tid)?].id;
    let app = w
        .reg
        .apps
        .get(&body.client_id)
        .ok_or_else(|| not_found("app"))?;
    if !app.multi_tenant && app.home_tenant != tid {
        return Err(bad(
            "a single-tenant app can only be granted in its home tenant",
        ));
    }
    let perms = Permissions {
        delegated: body.delegated,
        application: body.application,
    }
    .normalized()
    .map_err(|p| bad(format!("unknown permission '{p}'")))?;
    w.reg.grant(tid, &body.client_id, None, &perms);
    let g = &w.reg.grants[&(tid, body.client_id.clone())].tenant_wide;
    Ok(Json(json!({"tenant": tid, "client_id": body.client_id, "delegated": g.delegated, "application": g.application})).into_response())
}

/// What `PATCH /_emulator/tenants/{tid}/consents/{client_id}` changes on the app's service
/// principal in the tenant, as a customer's admin does under Enterprise applications.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServicePrincipalChange {
    /// "Enabled for users to sign in?" (`accountEnabled`).
    account_enabled: bool,
}

async fn change_service_principal(
    State(st): State<AppState>,
    Path((tid, client_id)): Path<(String, String)>,
    Json(change): Json<ServicePrincipalChange>,
) -> Answer {
    let mut w = st.world();
    let tid = w.dir.tenants[tenant_idx(&w, &tid)?].id;
    let grant = w
        .reg
        .grants
        .get_mut(&(tid, client_id.clone()))
        .ok_or_else(|| not_found("service principal"))?;
    grant.disabled = !change.account_enabled;
    Ok(
        Json(json!({"client_id": client_id, "account_enabled": change.account_enabled}))
            .into_response(),
    )
}

/// Removes one granted permission, as an admin does under Enterprise applications → the app →
/// Permissions (its refresh tokens keep working for the rest).
async fn remove_permission(
    State(st): State<AppState>,
    Path((tid, client_id, name)): Path<(String, String, String)>,
) -> Answer {
    let mut w = st.world();
    let tid = w.dir.tenants[tenant_idx(&w, &tid)?].id;
    if !w.reg.remove_permission(tid, &client_id, &name) {
        return Err(not_found("granted permission"));
    }
    let g = &w.reg.grants[&(tid, client_id.clone())].tenant_wide;
    Ok(Json(
        json!({"client_id": client_id, "delegated": g.delegated, "application": g.application}),
    )
    .into_response())
}

async fn revoke_consent(
    State(st): State<AppState>,
    Path((tid, client_id)): Path<(String, String)>,
) -> Answer {
    let mut w = st.world();
    let tid = w.dir.tenants[tenant_idx(&w, &tid)?].id;
    if !w.reg.revoke(tid, &client_id) {
        return Err(not_found("consent"));
    }
    let mut killed = 0;
    for rt in w.auth.refresh.values_mut() {
        if rt.tid == tid && rt.client_id == client_id && rt.revoked.is_none() {
            rt.revoked = Some(Revoked::Consent);
            killed += 1;
        }
    }
    Ok(Json(json!({"revoked": true, "refresh_tokens_revoked": killed})).into_response())
}

/// User fields accepted by create and update, named as in Graph; `null` clears an optional
/// one, as a PATCH to Graph does.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UserBody {
    user_principal_name: Option<String>,
    display_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    given_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    surname: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    mail: Option<Option<String>>,
    business_phones: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    mobile_phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    job_title: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    department: Option<Option<String>>,
    account_enabled: Option<bool>,
    #[serde(rename = "password", default, deserialize_with = "present")]
    password_override: Option<Option<String>>,
    is_admin: Option<bool>,
}

impl UserBody {
    fn apply(self, u: &mut User) {
        overwrite!(self => u;
            user_principal_name, display_name, business_phones, account_enabled, is_admin,
            given_name, surname, mail, mobile_phone, job_title, department, password_override);
    }
}

fn user_json(u: &User) -> Value {
    let mut v = Value::Object(u.to_json());
    v["password"] = json!(u.password());
    v["isAdmin"] = json!(u.is_admin);
    v
}

async fn create_user(
    State(st): State<AppState>,
    Path(tid): Path<String>,
    Json(body): Json<UserBody>,
) -> Answer {
    let mut w = st.world();
    let tenant = tenant_mut(&mut w, &tid)?;
    let id = Uuid::new_v4();
    let upn = body.user_principal_name.clone().unwrap_or_else(|| {
        format!(
            "user{}@{}",
            &id.simple().to_string()[..8],
            tenant.default_domain()
        )
    });
    if tenant.upn_taken(&upn) {
        return Err(upn_taken(&upn));
    }
    let mut user = User {
        id,
        user_principal_name: upn.clone(),
        display_name: upn.clone(),
        given_name: None,
        surname: None,
        mail: Some(upn),
        business_phones: vec![],
        mobile_phone: None,
        job_title: None,
        department: None,
        account_enabled: true,
        is_admin: false,
        password_override: None,
        version: 0,
        changes: Changes::default(),
        life: Life::Active,
    };
    body.apply(&mut user);
    tenant.bump();
    tenant.insert_user(user);
    let u = tenant.users.last().expect("just inserted");
    Ok((StatusCode::CREATED, Json(user_json(u))).into_response())
}

async fn update_user(
    State(st): State<AppState>,
    Path((tid, id)): Path<(String, String)>,
    Json(body): Json<UserBody>,
) -> Answer {
    let mut w = st.world();
    let tenant = tenant_mut(&mut w, &tid)?;
    let idx = tenant
        .user_index(&id)
        .filter(|i| tenant.users[*i].life == Life::Active)
        .ok_or_else(|| not_found("user"))?;
    if let Some(upn) = &body.user_principal_name {
        if tenant.upn_taken(upn)
            && !tenant.users[idx]
                .user_principal_name
                .eq_ignore_ascii_case(upn)
        {
            return Err(upn_taken(upn));
        }
    }
    let v = tenant.bump();
    let user = &mut tenant.users[idx];
    let (old_upn, before) = (user.user_principal_name.clone(), user.to_json());
    body.apply(user);
    user.version = v;
    user.changes.record(&before, &user.to_json(), v);
    tenant.reindex_upn(idx, &old_upn);
    Ok(Json(user_json(&tenant.users[idx])).into_response())
}

#[derive(Deserialize, Default)]
struct DeleteQuery {
    #[serde(default)]
    hard: bool,
}

async fn delete_user(
    State(st): State<AppState>,
    Path((tid, id)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Answer {
    let mut w = st.world();
    let tenant = tenant_mut(&mut w, &tid)?;
    let idx = tenant.user_index(&id).ok_or_else(|| not_found("user"))?;
    if tenant.users[idx].life == Life::SoftDeleted && !q.hard {
        return Err(not_found("user"));
    }
    tenant.delete_user(idx, q.hard);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn restore_user(
    State(st): State<AppState>,
    Path((tid, id)): Path<(String, String)>,
) -> Answer {
    let mut w = st.world();
    let tenant = tenant_mut(&mut w, &tid)?;
    let idx = tenant.user_index(&id).ok_or_else(|| not_found("user"))?;
    if tenant.users[idx].life != Life::SoftDeleted {
        return Err(bad("only a soft-deleted user can be restored"));
    }
    tenant.restore_user(idx);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Group fields accepted by create and update, named as in Graph.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GroupBody {
    display_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    mail_nickname: Option<String>,
    /// Creation only: a security group (default true).
    security_enabled: Option<bool>,
    /// Creation only: mail-enabled (default false); with `securityEnabled: false` a Microsoft 365 group.
    mail_enabled: Option<bool>,
    #[serde(default)]
    members: Vec<Uuid>,
}

async fn create_group(
    State(st): State<AppState>,
    Path(tid): Path<String>,
    Json(body): Json<GroupBody>,
) -> Answer {
    let mut w = st.world();
    let tenant = tenant_mut(&mut w, &tid)?;
    let name = body
        .display_name
        .ok_or_else(|| bad("displayName is required"))?;
    let nickname = body
        .mail_nickname
        .unwrap_or_else(|| name.chars().filter(|c| c.is_ascii_alphanumeric()).collect());
    // Any live directory object can be a member: users, groups, service principals, devices,
    // contacts.
    let member_types: BTreeMap<Uuid, &'static str> = body
        .members
        .into_iter()
        .filter_map(|m| Some((m, tenant.member_kind(m)?)))
        .collect();
    let members: BTreeSet<Uuid> = member_types.keys().copied().collect();
    let member_types = member_types
        .into_iter()
        .filter(|(_, kind)| *kind != USER_TYPE)
        .collect();
    let v = tenant.bump();
    let mail_enabled = body.mail_enabled.unwrap_or(false);
    let security_enabled = body.security_enabled.unwrap_or(true);
    let mail = mail_enabled.then(|| format!("{nickname}@{}", tenant.default_domain()));
    tenant.insert_group(Group {
        id: Uuid::new_v4(),
        display_name: name,
        description: body.description.flatten(),
        mail_nickname: nickname,
        mail,
        mail_enabled,
        security_enabled,
        group_types: if mail_enabled && !security_enabled {
            vec!["Unified".into()]
        } else {
            vec![]
        },
        member_log: members.iter().map(|m| (v, *m, true)).collect(),
        members,
        member_types,
        version: v,
        changes: Changes::default(),
        life: Life::Active,
    });
    let g = tenant.groups.last().expect("just inserted");
    let mut out = Value::Object(g.to_json());
    out["members"] = json!(g.members);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

fn active_group(tenant: &Tenant, id: &str) -> Result<usize, AdminError> {
    tenant
        .group_index(id)
        .filter(|g| tenant.groups[*g].life == Life::Active)
        .ok_or_else(|| not_found("group"))
}

async fn update_group(
    State(st): State<AppState>,
    Path((tid, id)): Path<(String, String)>,
    Json(body): Json<GroupBody>,
) -> Answer {
    let mut w = st.world();
    let tenant = tenant_mut(&mut w, &tid)?;
    let g = active_group(tenant, &id)?;
    let v = tenant.bump();
    let group = &mut tenant.groups[g];
    let before = group.to_json();
    overwrite!(body => group; display_name, mail_nickname, description);
    group.version = v;
    group.changes.record(&before, &group.to_json(), v);
    Ok(Json(Value::Object(group.to_json())).into_response())
}

async fn delete_group(
    State(st): State<AppState>,
    Path((tid, id)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Answer {
    let mut w = st.world();
    let tenant = tenant_mut(&mut w, &tid)?;
    let g = tenant.group_index(&id).ok_or_else(|| not_found("group"))?;
    tenant.delete_group(g, q.hard);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct MemberBody {
    id: Uuid,
}

async fn add_member(
    State(st): State<AppState>,
    Path((tid, id)): Path<(String, String)>,
    Json(body): Json<MemberBody>,
) -> Answer {
    change_member(&st, &tid, &id, &body.id.to_string(), true)
}

async fn remove_member(
    State(st): State<AppState>,
    Path((tid, id, uid)): Path<(String, String, String)>,
) -> Answer {
    change_member(&st, &tid, &id, &uid, false)
}

fn change_member(st: &AppState, tid: &str, gid: &str, uid: &str, add: bool) -> Answer {
    let mut w = st.world();
    let tenant = tenant_mut(&mut w, tid)?;
    let g = active_group(tenant, gid)?;
    let member = Uuid::parse_str(uid)
        .ok()
        .or_else(|| tenant.user(uid).map(|u| u.id))
        .ok_or_else(|| not_found("member"))?;
    let kind = match tenant.member_kind(member) {
        Some(kind) => kind,
        // A member may leave after it was deleted; nothing joins once deleted.
        None if !add => tenant.groups[g].member_type(member),
        None => return Err(not_found("member")),
    };
    if member == tenant.groups[g].id {
        return Err(bad("a group cannot be a member of itself"));
    }
    let already = tenant.groups[g].members.contains(&member) == add;
    if already {
        return Err(AdminError(
            StatusCode::CONFLICT,
            if add {
                "already a member".into()
            } else {
                "not a member".into()
            },
        ));
    }
    let v = tenant.bump();
    tenant.set_membership(g, member, Some(kind), add, v);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ObjectBody {
    #[serde(rename = "@odata.type")]
    kind: String,
    #[serde(rename = "displayName")]
    display_name: String,
}

/// Creates a service principal, device or organizational contact, to be made a group member.
async fn create_object(
    State(st): State<AppState>,
    Path(tid): Path<String>,
    Json(body): Json<ObjectBody>,
) -> Answer {
    let kind = OTHER_TYPES
        .into_iter()
        .find(|k| *k == body.kind)
        .ok_or_else(|| {
            bad(format!(
                "@odata.type must be one of {}",
                OTHER_TYPES.join(", ")
            ))
        })?;
    let mut w = st.world();
    let tenant = tenant_mut(&mut w, &tid)?;
    let object = DirectoryObject {
        id: Uuid::new_v4(),
        kind,
        display_name: body.display_name,
    };
    let out = json!({"@odata.type": kind, "id": object.id, "displayName": object.display_name});
    tenant.objects.push(object);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Deletes a service principal, device or contact: it leaves every group.
async fn delete_object(
    State(st): State<AppState>,
    Path((tid, id)): Path<(String, String)>,
) -> Answer {
    let mut w = st.world();
    let tenant = tenant_mut(&mut w, &tid)?;
    let id = Uuid::parse_str(&id).map_err(|_| not_found("object"))?;
    if !tenant.delete_object(id) {
        return Err(not_found("object"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delta_reset(State(st): State<AppState>, Path(tid): Path<String>) -> Answer {
    let mut w = st.world();
    let tenant = tenant_mut(&mut w, &tid)?;
    tenant.epoch += 1;
    Ok(Json(json!({"epoch": tenant.epoch})).into_response())
}

async fn get_faults(State(st): State<AppState>) -> Json<Value> {
    let (config, injected) = st.faults.report();
    Json(json!({"config": config, "injected": injected}))
}

async fn set_faults(State(st): State<AppState>, Json(config): Json<FaultConfig>) -> Answer {
    let rates = [
        config.rate_429,
        config.rate_503,
        config.rate_drop,
        config.rate_5xx,
    ];
    if rates.iter().any(|r| !(0.0..=1.0).contains(r)) || rates.iter().sum::<f64>() > 1.0 {
        return Err(bad("rates must be within 0..=1 and sum to at most 1"));
    }
    if config
        .retry_after
        .is_some_and(|r| r < 0.0 || !r.is_finite())
    {
        return Err(bad("retry_after must be a non-negative number of seconds"));
    }
    if let Some(problem) = config.stale_token.as_ref().and_then(|s| s.problem()) {
        return Err(bad(problem));
    }
    st.faults.configure(config);
    Ok(get_faults(State(st)).await.into_response())
}

async fn get_throttle(State(st): State<AppState>) -> Json<Value> {
    let (scale, counts) = st.throttle.report();
    Json(json!({"scale": scale, "counts": counts}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThrottleBody {
    scale: f64,
}

/// Sets the limits' scale (0: off) and starts over with full buckets and zero counts.
async fn set_throttle(State(st): State<AppState>, Json(body): Json<ThrottleBody>) -> Answer {
    if !body.scale.is_finite() || body.scale < 0.0 {
        return Err(bad("scale must be a non-negative number"));
    }
    st.throttle.configure(body.scale);
    Ok(get_throttle(State(st)).await.into_response())
}

async fn get_graph(State(st): State<AppState>) -> Json<Value> {
    Json(json!({
        "latency_ms": st.graph.latency().as_millis() as u64,
        "page_size": st.graph.page_size(),
        "members_per_slice": st.graph.members_per_slice(),
    }))
}

#[derive(Deserialize)]
struct GraphBody {
    latency_ms: Option<u64>,
    page_size: Option<usize>,
    members_per_slice: Option<usize>,
}

async fn set_graph(State(st): State<AppState>, Json(body): Json<GraphBody>) -> Answer {
    if body.page_size.is_some_and(|n| !(1..=999).contains(&n)) {
        return Err(bad("page_size must be within 1..=999"));
    }
    if body.members_per_slice == Some(0) {
        return Err(bad("members_per_slice must be at least 1"));
    }
    st.graph
        .set(body.latency_ms, body.page_size, body.members_per_slice);
    Ok(get_graph(State(st)).await.into_response())
}

async fn get_propagation(State(st): State<AppState>) -> Json<Value> {
    Json(json!({"consent_delay_ms": st.propagation.delay().as_millis() as u64}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PropagationBody {
    consent_delay_ms: u64,
}

/// Sets how long later admin consents take to be usable for app-only tokens.
async fn set_propagation(
    State(st): State<AppState>,
    Json(body): Json<PropagationBody>,
) -> Json<Value> {
    st.propagation.set(body.consent_delay_ms);
    get_propagation(State(st)).await
}

async fn rotate_keys(State(st): State<AppState>) -> Answer {
    let key = off_thread(SigningKey::generate).await?;
    let mut keys = st.keys.write().unwrap_or_else(|e| e.into_inner());
    keys.push(key);
    Ok(Json(json!({"kid": keys.current_kid()})).into_response())
}

#[derive(Deserialize)]
struct ForgeryBody {
    kind: ForgeryKind,
    /// `id_token` (default) or `access_token` (of an exposed API).
    #[serde(default)]
    token: ForgeryTarget,
}

async fn arm_forgery(State(st): State<AppState>, Json(body): Json<ForgeryBody>) -> Answer {
    let (kind, token) = (body.kind, body.token);
    let forgery = off_thread(move || Forgery::prepare_for(kind, token)).await?;
    st.forgeries.arm(forgery);
    Ok(Json(json!({"armed": kind, "token": token})).into_response())
}

#[derive(Deserialize)]
struct AppRoleGrantBody {
    /// The client id of the app (daemon) granted the role.
    client_id: String,
    /// The resource's app role value.
    role: String,
}

/// Grants an app an app role of another app (the resource) in a tenant, as "API permissions →
/// Application permissions" and an admin's consent do: client-credentials tokens of the app for
/// the resource then carry the role in `roles`.
async fn grant_app_role(
    State(st): State<AppState>,
    Path((tid, resource)): Path<(String, String)>,
    Json(body): Json<AppRoleGrantBody>,
) -> Answer {
    let mut w = st.world();
    let tid = w.dir.tenants[tenant_idx(&w, &tid)?].id;
    let grant = w
        .reg
        .grant_app_role(tid, &resource, &body.client_id, &body.role)
        .map_err(|e| match e {
            AssignError::NoApp => not_found("app"),
            AssignError::NoServicePrincipal => bad(
                "the resource or the client app has no service principal in this tenant (not its home tenant, no consent)",
            ),
            AssignError::NoRole => bad(format!(
                "the resource defines no enabled app role '{}' that applications can be granted",
                body.role
            )),
            AssignError::Exists => AdminError(
                StatusCode::CONFLICT,
                "the app already holds this role".into(),
            ),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": grant.id,
            "appRoleId": grant.role,
            "principalId": grant.client_id,
            "principalType": "ServicePrincipal",
            "resourceId": resource,
            "role": body.role,
        })),
    )
        .into_response())
}
