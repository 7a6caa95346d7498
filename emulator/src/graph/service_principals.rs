//! A client app's service principal in the caller's tenant, as Graph shows it: the object
//! (`/servicePrincipals(appId='…')` or by id: present, `accountEnabled`), the application
//! permissions granted to it (`appRoleAssignments`), its delegated permission grants
//! (`oauth2PermissionGrants`), so an app can see what a tenant grants it, and the users and
//! groups assigned to it (`appRoleAssignedTo`), as a customer's admin assigns them under
//! Enterprise applications → Users and groups.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::errors::GraphError;
use super::query::{decode_cursor, encode_cursor, page_size, query_options};
use super::{caller, require};
use crate::apps::{Grant, Registry};
use crate::directory::Life;
use crate::scopes::{self, GRAPH_APP_ID};
use crate::state::{AppState, World};

/// Reading a service principal and its app role assignments (least privileged first).
const READ_APPS: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// Listing its delegated permission grants.
const READ_GRANTS: &[&str] = &[
    "Directory.Read.All",
    "DelegatedPermissionGrant.ReadWrite.All",
    "Directory.ReadWrite.All",
];

/// The service principal `key` names in the caller's tenant: `appId='…'` or an object id.
fn find<'w>(w: &'w World, tid: Uuid, key: &str) -> Result<(String, &'w Grant), GraphError> {
    let by_app = key
        .strip_prefix("appId='")
        .and_then(|k| k.strip_suffix('\''));
    w.reg
        .grants
        .iter()
        .filter(|((t, _), _)| *t == tid)
        .find(|((_, client), _)| match by_app {
            Some(app) => client.eq_ignore_ascii_case(app),
            None => Registry::service_principal_id(tid, client).to_string() == key,
        })
        .map(|((_, client), grant)| (client.clone(), grant))
        .ok_or_else(|| GraphError::not_found(key))
}

/// Runs `f` on the service principal `key` once the caller holds one of `allowed`.
fn answer(
    st: &AppState,
    headers: &HeaderMap,
    key: &str,
    allowed: &[&str],
    f: impl FnOnce(Uuid, &str, &Grant, &World) -> Value,
) -> Response {
    let result = caller(st, headers).and_then(|access| {
        require(&access, allowed, allowed)?;
        let w = st.world();
        let (client, grant) = find(&w, access.tid, key)?;
        Ok(f(access.tid, &client, grant, &w))
    });
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A stable id for the record `part` of service principal `sp`.
fn stable(sp: Uuid, part: &str) -> Uuid {
    let digest = Sha256::digest(format!("{sp}:{part}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The key inside `servicePrincipals(…)`.
fn key_of(segment: &str) -> Option<&str> {
    segment
        .strip_prefix("servicePrincipals(")
        .and_then(|s| s.strip_suffix(')'))
}

/// `GET /v1.0/servicePrincipals(appId='{appId}')`; any other single segment is not a Graph
/// resource.
pub async fn by_app_id(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(segment): Path<String>,
) -> Response {
    let Some(key) = key_of(&segment) else {
        return GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        )
        .into_response();
    };
    let key = key.to_owned();
    if key.eq_ignore_ascii_case(&format!("appId='{GRAPH_APP_ID}'")) {
        return graph_service_principal(&st, &headers);
    }
    answer(&st, &headers, &key, READ_APPS, service_principal)
}

/// Microsoft Graph's own service principal, present in every tenant: clients read its `id`
/// as the `resourceId` of their app role assignments.
fn graph_service_principal(st: &AppState, headers: &HeaderMap) -> Response {
    let result = caller(st, headers).and_then(|access| {
        require(&access, READ_APPS, READ_APPS)?;
        Ok(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals/$entity",
            "id": Registry::service_principal_id(access.tid, GRAPH_APP_ID),
            "appId": GRAPH_APP_ID,
            "displayName": "Microsoft Graph",
            "accountEnabled": true,
            "servicePrincipalType": "Application",
        }))
    });
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /v1.0/servicePrincipals/{id}`.
pub async fn by_id(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    answer(&st, &headers, &id, READ_APPS, service_principal)
}

/// A service principal as Graph's `servicePrincipal` resource.
pub(super) fn service_principal(tid: Uuid, client: &str, grant: &Grant, w: &World) -> Value {
    let app = w.reg.apps.get(client);
    json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals/$entity",
        "id": Registry::service_principal_id(tid, client),
        "appId": client,
        "displayName": app.map(|a| a.display_name.clone()),
        "accountEnabled": !grant.disabled,
        "appOwnerOrganizationId": app.map(|a| a.home_tenant),
        "servicePrincipalType": "Application",
        "signInAudience": app.map(|a| if a.multi_tenant { "AzureADMultipleOrgs" } else { "AzureADMyOrg" }),
    })
}

/// `GET /v1.0/servicePrincipals/{id}/appRoleAssignments`: the Graph application permissions
/// granted to it.
pub async fn app_role_assignments(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    answer(&st, &headers, &id, READ_APPS, |tid, client, grant, w| {
        let sp = Registry::service_principal_id(tid, client);
        let graph = Registry::service_principal_id(tid, GRAPH_APP_ID);
        let name = w.reg.apps.get(client).map(|a| a.display_name.clone());
        let value: Vec<Value> = grant
            .tenant_wide
            .application
            .iter()
            .filter_map(|p| scopes::role_id(p))
            .map(|role| {
                json!({
                    "id": stable(sp, role),
                    "deletedDateTime": null,
                    "appRoleId": role,
                    "createdDateTime": super::errors::now_rfc3339(),
                    "principalDisplayName": name,
                    "principalId": sp,
                    "principalType": "ServicePrincipal",
                    "resourceDisplayName": "Microsoft Graph",
                    "resourceId": graph,
                })
            })
            .collect();
        json!({
            "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#servicePrincipals('{sp}')/appRoleAssignments"),
            "value": value,
        })
    })
}

/// `GET /v1.0/servicePrincipals/{id}/oauth2PermissionGrants`: its delegated permission
/// grants to Graph — the tenant-wide one (`AllPrincipals`) and one per user who consented.
pub async fn oauth2_permission_grants(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    answer(&st, &headers, &id, READ_GRANTS, |tid, client, grant, _| {
        let sp = Registry::service_principal_id(tid, client);
        let graph = Registry::service_principal_id(tid, GRAPH_APP_ID);
        let scope = |names: &mut dyn Iterator<Item = &String>| {
            names
                .filter_map(|n| scopes::canonical(n))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut value = Vec::new();
        let all = scope(&mut grant.tenant_wide.delegated.iter());
        if !all.is_empty() {
            value.push(json!({
                "id": stable(sp, "AllPrincipals"),
                "clientId": sp,
                "consentType": "AllPrincipals",
                "principalId": null,
                "resourceId": graph,
                "scope": all,
            }));
        }
        for (user, names) in &grant.by_user {
            value.push(json!({
                "id": stable(sp, &user.to_string()),
                "clientId": sp,
                "consentType": "Principal",
                "principalId": user,
                "resourceId": graph,
                "scope": scope(&mut names.iter()),
            }));
        }
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#oauth2PermissionGrants",
            "value": value,
        })
    })
}

/// The app role id of an assignment without a specific role ("Default Access"), used when the
/// app declares no app roles (appRoleAssignment resource type, `appRoleId`).
pub const DEFAULT_ACCESS: Uuid = Uuid::nil();

/// A user or group assigned to an enterprise app with default access.
#[derive(Clone, Debug)]
pub struct Assignment {
    /// The assignment's id.
    pub id: Uuid,
    /// The user or group.
    pub principal: Uuid,
    /// Whether the principal is a group (else a user).
    pub group: bool,
    /// When it was made (`createdDateTime`).
    pub created: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct AssignedCursor {
    pos: usize,
}

/// `GET /v1.0/servicePrincipals(appId='{appId}')/appRoleAssignedTo`.
pub async fn assigned_to_by_app_id(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(segment): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    match key_of(&segment) {
        Some(key) => assigned_to(&st, &headers, key, raw),
        None => GraphError::not_found(&segment).into_response(),
    }
}

/// `GET /v1.0/servicePrincipals/{id}/appRoleAssignedTo`.
pub async fn assigned_to_by_id(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    assigned_to(&st, &headers, &id, raw)
}

/// The users and groups granted an app role of (or assigned to) the service principal `key`:
/// those given a role and those assigned with default access, in the order they were assigned,
/// `$top` (or the default page size) a page with an `@odata.nextLink`. Principals since
/// deleted are left out (their assignments go with them).
fn assigned_to(st: &AppState, headers: &HeaderMap, key: &str, raw: Option<String>) -> Response {
    let opts = query_options(raw);
    let result = caller(st, headers).and_then(|access| {
        require(&access, READ_APPS, READ_APPS)?;
        let top = page_size(st, &opts, headers)?;
        let start = match opts.get("$skiptoken") {
            Some(t) => {
                decode_cursor::<AssignedCursor>(t)
                    .ok_or_else(|| GraphError::bad_query("Invalid $skiptoken."))?
                    .pos
            }
            None => 0,
        };
        let w = st.world();
        let (client, _) = find(&w, access.tid, key)?;
        let sp = Registry::service_principal_id(access.tid, &client);
        let app_name = w.reg.apps.get(&client).map(|a| a.display_name.clone());
        let tenant = w
            .dir
            .tenants
            .iter()
            .find(|t| t.id == access.tid)
            .ok_or_else(|| GraphError::not_found(key))?;
        let now = super::errors::now_rfc3339();
        let roles = w
            .reg
            .role_assignments
            .get(&(access.tid, client.clone()))
            .into_iter()
            .flatten()
            .map(|a| (a.id, a.user, false, a.role, now.clone()));
        let plain = w
            .assignments
            .get(&(access.tid, client.clone()))
            .into_iter()
            .flatten()
            .map(|a| (a.id, a.principal, a.group, DEFAULT_ACCESS, a.created.clone()));
        let live: Vec<Value> = roles
            .chain(plain)
            .filter_map(|(id, principal, group, role, created)| {
                let (name, kind) = if group {
                    let g = tenant.group_index(&principal.to_string())?;
                    let g = &tenant.groups[g];
                    (g.life == Life::Active).then(|| (g.display_name.clone(), "Group"))?
                } else {
                    let u = tenant.user(&principal.to_string())?;
                    (u.life == Life::Active).then(|| (u.display_name.clone(), "User"))?
                };
                Some(json!({
                    "id": id,
                    "deletedDateTime": null,
                    "appRoleId": role,
                    "createdDateTime": created,
                    "principalDisplayName": name,
                    "principalId": principal,
                    "principalType": kind,
                    "resourceDisplayName": app_name,
                    "resourceId": sp,
                }))
            })
            .collect();
        let value: Vec<&Value> = live.iter().skip(start).take(top).collect();
        let mut out = json!({
            "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#servicePrincipals('{sp}')/appRoleAssignedTo"),
            "value": value,
        });
        if start + top < live.len() {
            let mut url = url::Url::parse(&format!(
                "{}/v1.0/servicePrincipals/{sp}/appRoleAssignedTo",
                st.cfg.base_url
            ))
            .map_err(|_| GraphError::bad_query("bad base URL"))?;
            url.query_pairs_mut()
                .append_pair("$top", &top.to_string())
                .append_pair(
                    "$skiptoken",
                    &encode_cursor(&AssignedCursor { pos: start + top }),
                );
            out["@odata.nextLink"] = json!(url.to_string());
        }
        Ok(out)
    });
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
