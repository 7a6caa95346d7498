//! Microsoft Graph v1.0: users, groups, their delta, organization, me, memberships, service
//! principals, app registration writes and change notification subscriptions, behind bearer-token
//! and permission checks, answering errors in Graph's shape.

mod app_writes;
mod applications;
mod delta;
mod entity;
pub mod errors;
mod keys;
mod memberships;
mod query;
mod resources;
pub mod service_principals;
pub mod subscriptions;
pub mod throttle;

use std::time::Instant;

use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use crate::directory::{Group, Tenant, User};
use crate::scopes::any_of;
use crate::state::{Access, AppState};
use errors::GraphError;
use resources::{get_group, get_user, group_members, list_of, me, organization};

/// How Graph names the delta function: the short form, the OData function call the SDKs send,
/// and the fully qualified name.
const DELTA_FORMS: &[&str] = &[
    "delta",
    "delta()",
    "microsoft.graph.delta",
    "microsoft.graph.delta()",
];

/// The Graph routes; every answer takes the configured Graph latency.
pub fn router(state: &AppState) -> Router<AppState> {
    let mut router = Router::new()
        .route("/v1.0/users", get(list_of::<User>))
        .route("/v1.0/users/{id}", get(get_user))
        .route("/v1.0/groups", get(list_of::<Group>))
        .route("/v1.0/groups/{id}", get(get_group))
        .route("/v1.0/groups/{id}/members", get(group_members))
        .route("/v1.0/organization", get(organization))
        .route("/v1.0/me", get(me))
        .route("/v1.0/me/{*rest}", get(memberships::of_me))
        .route("/v1.0/users/{id}/{*rest}", get(memberships::of_user))
        .route(
            "/v1.0/applications",
            get(applications::list).post(app_writes::create),
        )
        .route(
            "/v1.0/applications/{id}",
            get(applications::one).patch(app_writes::update),
        )
        .route(
            "/v1.0/applications/{id}/addPassword",
            post(app_writes::add_password),
        )
        .route(
            "/v1.0/applications/{id}/removePassword",
            post(app_writes::remove_password),
        )
        .route(
            "/v1.0/applications/{id}/owners/$ref",
            post(app_writes::add_owner),
        )
        .route("/v1.0/applications/{id}/owners", get(app_writes::owners))
        .route(
            "/v1.0/servicePrincipals",
            post(app_writes::create_service_principal),
        )
        .route("/v1.0/{segment}", get(service_principals::by_app_id))
        .route(
            "/v1.0/servicePrincipals/{id}",
            get(service_principals::by_id),
        )
        .route(
            "/v1.0/servicePrincipals/{id}/appRoleAssignments",
            get(service_principals::app_role_assignments).post(app_writes::assign_app_role),
        )
        .route(
            "/v1.0/{segment}/appRoleAssignedTo",
            get(service_principals::assigned_to_by_app_id),
        )
        .route(
            "/v1.0/servicePrincipals/{id}/appRoleAssignedTo",
            get(service_principals::assigned_to_by_id),
        )
        .route(
            "/v1.0/servicePrincipals/{id}/oauth2PermissionGrants",
            get(service_principals::oauth2_permission_grants),
        )
        .merge(subscriptions::router())
        .merge(keys::router());
    for form in DELTA_FORMS {
        router = router
            .route(&format!("/v1.0/users/{form}"), get(delta::round::<User>))
            .route(&format!("/v1.0/groups/{form}"), get(delta::round::<Group>));
    }
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            throttle::meter,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), latency))
        .layer(axum::middleware::from_fn(request_ids))
}

/// Holds each answer for the configured Graph latency, as a round trip to Microsoft would.
async fn latency(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let delay = st.graph.latency();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    next.run(req).await
}

/// Adds Graph's `request-id` and echoes `client-request-id` (or reuses the request id).
async fn request_ids(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let client = req.headers().get("client-request-id").cloned();
    let mut resp = next.run(req).await;
    if let Ok(id) = header::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        resp.headers_mut()
            .insert("client-request-id", client.unwrap_or_else(|| id.clone()));
        resp.headers_mut().insert("request-id", id);
    }
    resp
}

/// Resolves the bearer token to its grant; 401 when missing, unknown or expired.
pub fn caller(st: &AppState, headers: &HeaderMap) -> Result<Access, GraphError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| GraphError::unauthenticated("Access token is empty."))?;
    let w = st.world();
    let access = w.auth.access.get(token).ok_or_else(|| {
        GraphError::unauthenticated(
            "Invalid token: the access token is not one this service issued.",
        )
    })?;
    if access.expires <= Instant::now() {
        return Err(GraphError::unauthenticated(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    Ok(access.clone())
}

/// 403 unless the caller holds one of the allowed permissions (app roles or delegated scopes).
pub fn require(access: &Access, app: &[&str], delegated: &[&str]) -> Result<(), GraphError> {
    let allowed = if access.oid.is_some() { delegated } else { app };
    if any_of(&access.permissions, allowed) {
        Ok(())
    } else {
        Err(GraphError::forbidden())
    }
}

/// Authenticates the bearer token, then answers with `f` run on the caller's tenant.
pub fn serve(
    st: &AppState,
    headers: &HeaderMap,
    f: impl FnOnce(&Access, &Tenant) -> Result<Value, GraphError>,
) -> Response {
    let result = caller(st, headers).and_then(|access| {
        let w = st.world();
        let t = w.dir.tenant_index(access.tid).ok_or_else(|| {
            GraphError::unauthenticated("The tenant of this token no longer exists.")
        })?;
        f(&access, &w.dir.tenants[t])
    });
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
