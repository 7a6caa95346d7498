//! A client app's service principal in the caller's tenant, as Graph shows it: the object
//! (`/servicePrincipals(appId='…')` or by id: present, `accountEnabled`), the application
//! permissions granted to it (`appRoleAssignments`) and its delegated permission grants
//! (`oauth2PermissionGrants`), so an app can see what a tenant grants it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::errors::GraphError;
use super::{caller, require};
use crate::apps::{Grant, Registry};
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
