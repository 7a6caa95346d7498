//! `GET /v1.0/applications`: the app registrations of the caller's tenant as Graph shapes them,
//! so a client can check its own registration (`$filter=appId eq '…'`); `GET
//! /v1.0/applications/{id}` one of them, with its certificates' `key` when `$select` asks for
//! `keyCredentials`.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::errors::GraphError;
use super::query::{context, filter_matches, parse_filter, query_options, select_of};
use super::{caller, require};
use crate::apps::{App, GroupClaims};
use crate::scopes::{self, GRAPH_APP_ID};
use crate::state::AppState;

/// Permissions (either kind) that allow reading app registrations.
const APPLICATIONS: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// Properties `$filter` accepts (string-valued ones).
const FILTERABLE: &[&str] = &[
    "id",
    "appId",
    "displayName",
    "signInAudience",
    "publisherDomain",
];

/// The other properties `$select` accepts.
const SELECTABLE: &[&str] = &[
    "api",
    "appRoles",
    "createdDateTime",
    "groupMembershipClaims",
    "identifierUris",
    "keyCredentials",
    "optionalClaims",
    "passwordCredentials",
    "publicClient",
    "requiredResourceAccess",
    "servicePrincipalLockConfiguration",
    "spa",
    "web",
];

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// An app registration as Graph's `application` resource.
pub(super) fn application(app: &App, publisher_domain: &str) -> Map<String, Value> {
    let mut access: Vec<Value> = app
        .permissions
        .delegated
        .iter()
        .filter_map(|p| scopes::scope_id(p))
        .map(|id| json!({"id": id, "type": "Scope"}))
        .collect();
    access.extend(
        app.permissions
            .application
            .iter()
            .filter_map(|p| scopes::role_id(p))
            .map(|id| json!({"id": id, "type": "Role"})),
    );
    let required = if access.is_empty() {
        json!([])
    } else {
        json!([{"resourceAppId": GRAPH_APP_ID, "resourceAccess": access}])
    };
    let secrets: Vec<Value> = app
        .secrets
        .iter()
        .map(|s| {
            json!({
                "customKeyIdentifier": null,
                "displayName": s.display_name,
                "endDateTime": rfc3339(s.expires_at),
                "hint": s.value.chars().take(3).collect::<String>(),
                "keyId": s.key_id,
                "secretText": null,
                "startDateTime": rfc3339(s.starts_at),
            })
        })
        .collect();
    let v = json!({
        "id": app.object_id,
        "appId": app.client_id,
        "displayName": app.display_name,
        "createdDateTime": rfc3339(app.created_at),
        "appRoles": app.app_roles,
        "groupMembershipClaims": match app.group_claims {
            GroupClaims::None => Value::Null,
            other => json!(other),
        },
        "publisherDomain": publisher_domain,
        "signInAudience": if app.multi_tenant { "AzureADMultipleOrgs" } else { "AzureADMyOrg" },
        "identifierUris": app.identifier_uris,
        "api": {
            "acceptMappedClaims": null,
            "knownClientApplications": [],
            "oauth2PermissionScopes": app.api_scopes,
            "preAuthorizedApplications": [],
            "requestedAccessTokenVersion": app.access_token_version,
        },
        "keyCredentials": app.certificates.iter().map(|c| c.graph()).collect::<Vec<_>>(),
        "optionalClaims": null,
        "passwordCredentials": secrets,
        "publicClient": {"redirectUris": []},
        "requiredResourceAccess": required,
        "servicePrincipalLockConfiguration": app.lock,
        "spa": {"redirectUris": []},
        "web": {
            "homePageUrl": null,
            "logoutUrl": app.logout_url,
            "redirectUris": app.redirect_uris,
            "implicitGrantSettings": {
                "enableAccessTokenIssuance": false,
                "enableIdTokenIssuance": false,
            },
            "redirectUriSettings": app
                .redirect_uris
                .iter()
                .map(|uri| json!({"uri": uri, "index": null}))
                .collect::<Vec<_>>(),
        },
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// GET /v1.0/applications with `$filter` on equality and `$select`.
pub async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let result = caller(&st, &headers).and_then(|access| {
        require(&access, APPLICATIONS, APPLICATIONS)?;
        let opts = query_options(raw);
        let w = st.world();
        let tenant = w
            .dir
            .tenant_index(access.tid)
            .map(|t| &w.dir.tenants[t])
            .ok_or_else(|| {
                GraphError::unauthenticated("The tenant of this token no longer exists.")
            })?;
        let mut apps: Vec<&App> = w
            .reg
            .apps
            .values()
            .filter(|a| a.home_tenant == tenant.id)
            .collect();
        apps.sort_by_key(|a| a.created_at);
        let sample: Map<String, Value> = FILTERABLE
            .iter()
            .map(|p| (p.to_string(), Value::Null))
            .collect();
        let select = select_of("microsoft.graph.application", &sample, &opts, SELECTABLE)?;
        let filter = opts
            .get("$filter")
            .map(|f| parse_filter(&sample, f))
            .transpose()?;
        let value: Vec<Value> = apps
            .into_iter()
            .map(|a| application(a, tenant.default_domain()))
            .filter(|a| filter.as_ref().is_none_or(|f| filter_matches(a, f)))
            .map(|mut a| {
                if let Some(sel) = &select {
                    a.retain(|k, _| k == "id" || sel.contains(k));
                }
                Value::Object(a)
            })
            .collect();
        Ok(json!({
            "@odata.context": context(&st.cfg.base_url, "applications", select.as_deref()),
            "value": value,
        }))
    });
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// GET /v1.0/applications/{id} (the object id) with `$select`. A certificate's `key` is
/// "returned only on `$select` for a single object": here.
pub async fn one(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let result = caller(&st, &headers).and_then(|access| {
        require(&access, APPLICATIONS, APPLICATIONS)?;
        let opts = query_options(raw);
        let w = st.world();
        let app = w
            .reg
            .apps
            .values()
            .find(|a| {
                a.home_tenant == access.tid && a.object_id.to_string().eq_ignore_ascii_case(&id)
            })
            .ok_or_else(|| GraphError::not_found(&id))?;
        let domain = w
            .dir
            .tenant_index(access.tid)
            .map(|t| w.dir.tenants[t].default_domain().to_string())
            .unwrap_or_default();
        let mut v = application(app, &domain);
        let sample: Map<String, Value> = FILTERABLE
            .iter()
            .map(|p| (p.to_string(), Value::Null))
            .collect();
        let select = select_of("microsoft.graph.application", &sample, &opts, SELECTABLE)?;
        if let Some(sel) = &select {
            v.retain(|k, _| k == "id" || sel.contains(k));
            if sel.iter().any(|k| k == "keyCredentials") {
                v.insert(
                    "keyCredentials".into(),
                    app.certificates
                        .iter()
                        .map(|c| c.graph_with_key())
                        .collect(),
                );
            }
        }
        v.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/$entity",
                context(&st.cfg.base_url, "applications", select.as_deref())
            )),
        );
        Ok(Value::Object(v))
    });
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
