//! OpenID Connect discovery and JWKS, per tenant and for `common`/`organizations`.

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::html;
use crate::directory::Authority;
use crate::login::errors::AadError;
use crate::state::AppState;

/// Discovery, keys and the error-code page.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(keys))
        .route("/error", get(error_page))
}

/// The issuer template Microsoft publishes for tenant-independent endpoints.
pub fn issuer_template(base: &str) -> String {
    format!("{base}/{{tenantid}}/v2.0")
}

/// Resolves the path segment for a discovery document: the tenant GUID, or the segment itself for
/// `common`/`organizations`; unknown tenants are AADSTS90002.
fn authority_segment(st: &AppState, tenant: &str) -> Result<(String, bool), AadError> {
    let world = st.world();
    match world.dir.resolve(tenant) {
        Some(Authority::Tenant(t)) => Ok((world.dir.tenants[t].id.to_string(), true)),
        Some(_) => Ok((tenant.to_ascii_lowercase(), false)),
        None => Err(unknown_tenant(tenant)),
    }
}

/// AADSTS90002 for a tenant segment that names nothing.
pub fn unknown_tenant(tenant: &str) -> AadError {
    AadError::bad(
        "invalid_tenant",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        ),
    )
}

async fn discovery(State(st): State<AppState>, Path(tenant): Path<String>) -> Response {
    let base = &st.cfg.base_url;
    let (seg, specific) = match authority_segment(&st, &tenant) {
        Ok(v) => v,
        Err(e) => return e.into_response_with(base),
    };
    let issuer = if specific {
        format!("{base}/{seg}/v2.0")
    } else {
        issuer_template(base)
    };
    let host = base.split("://").nth(1).unwrap_or(base);
    Json(json!({
        "token_endpoint": format!("{base}/{seg}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{seg}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{base}/oidc/userinfo"),
        "authorization_endpoint": format!("{base}/{seg}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{seg}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{seg}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{base}/{seg}/kerberos"),
        "tenant_region_scope": if specific { json!("NA") } else { json!(null) },
        "cloud_instance_name": host,
        "cloud_graph_host_name": host,
        "msgraph_host": host,
        "rbac_url": "https://pas.windows.net",
    }))
    .into_response()
}

async fn keys(State(st): State<AppState>, Path(tenant): Path<String>) -> Response {
    if let Err(e) = authority_segment(&st, &tenant) {
        return e.into_response_with(&st.cfg.base_url);
    }
    let jwks = st
        .keys
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .jwks(&issuer_template(&st.cfg.base_url));
    Json(jwks).into_response()
}

#[derive(Deserialize)]
struct ErrorQuery {
    code: Option<String>,
}

async fn error_page(Query(q): Query<ErrorQuery>) -> Html<String> {
    let code = q.code.unwrap_or_default();
    html::page(
        "Error code lookup",
        &format!(
            "<p>AADSTS{} — see Microsoft's documentation of Entra authentication and authorization error codes.</p>",
            html::escape(&code)
        ),
    )
}
