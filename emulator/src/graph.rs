//! Microsoft Graph v1.0: users, groups, organization and me, with bearer-token and permission
//! checks, `$select`, `$top`, `$filter` on equality and `@odata.nextLink` paging.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::delta;
use crate::directory::{Group, Life, Tenant, User};
use crate::errors::GraphError;
use crate::scopes::any_of;
use crate::state::{Access, AppState};

/// Application permissions that allow reading users.
pub const USERS_APP: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// Delegated permissions that allow reading users.
pub const USERS_DELEGATED: &[&str] = &[
    "User.ReadBasic.All",
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// Permissions (either kind) that allow reading groups.
pub const GROUPS: &[&str] = &[
    "Group.Read.All",
    "Group.ReadWrite.All",
    "GroupMember.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const ORG_APP: &[&str] = &[
    "Organization.Read.All",
    "Organization.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const ORG_DELEGATED: &[&str] = &[
    "User.Read",
    "Organization.Read.All",
    "Organization.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const ME: &[&str] = &[
    "User.Read",
    "User.ReadWrite",
    "User.ReadBasic.All",
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// Properties Graph returns for a user when there is no `$select`.
const USER_DEFAULT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// The Graph routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1.0/users", get(list_of::<User>))
        .route("/v1.0/users/delta", get(delta::round::<User>))
        .route("/v1.0/users/{id}", get(get_user))
        .route("/v1.0/groups", get(list_of::<Group>))
        .route("/v1.0/groups/delta", get(delta::round::<Group>))
        .route("/v1.0/groups/{id}", get(get_group))
        .route("/v1.0/groups/{id}/members", get(group_members))
        .route("/v1.0/organization", get(organization))
        .route("/v1.0/me", get(me))
        .layer(axum::middleware::from_fn(request_ids))
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

/// A user or group, for the code shared by lists and delta.
pub trait Entity {
    /// Graph's entity-set name (`users`, `groups`).
    const SET: &'static str;
    /// Graph's type name, for `$select` errors.
    const TYPE: &'static str;
    /// Application permissions that allow reading this kind.
    const APP: &'static [&'static str];
    /// Delegated permissions that allow reading this kind.
    const DELEGATED: &'static [&'static str];
    /// All properties.
    fn json(&self) -> Map<String, Value>;
    /// Lifecycle state.
    fn life(&self) -> Life;
    /// Version of the last change.
    fn version(&self) -> u64;
    /// Properties returned without `$select` (`None`: all).
    const DEFAULTS: Option<&'static [&'static str]>;
    /// The tenant's objects of this kind.
    fn all(t: &Tenant) -> &[Self]
    where
        Self: Sized;
    /// A non-purged object by id (users also by user principal name).
    fn find<'t>(t: &'t Tenant, id: &str) -> Option<&'t Self>
    where
        Self: Sized;
}

/// Implements [`Entity`] for a directory type that has `to_json`, `life` and `version`.
macro_rules! entity {
    ($ty:ty {
        set: $set:literal,
        type: $name:literal,
        app: $app:expr,
        delegated: $delegated:expr,
        defaults: $defaults:expr,
        all: |$t:ident| $all:expr,
        find: |$ft:ident, $id:ident| $find:expr $(,)?
    }) => {
        impl Entity for $ty {
            const SET: &'static str = $set;
            const TYPE: &'static str = $name;
            const APP: &'static [&'static str] = $app;
            const DELEGATED: &'static [&'static str] = $delegated;
            const DEFAULTS: Option<&'static [&'static str]> = $defaults;
            fn json(&self) -> Map<String, Value> {
                self.to_json()
            }
            fn life(&self) -> Life {
                self.life
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn all($t: &Tenant) -> &[Self] {
                $all
            }
            fn find<'t>($ft: &'t Tenant, $id: &str) -> Option<&'t Self> {
                $find
            }
        }
    };
}

entity!(User {
    set: "users",
    type: "microsoft.graph.user",
    app: USERS_APP,
    delegated: USERS_DELEGATED,
    defaults: Some(USER_DEFAULT),
    all: |t| &t.users,
    find: |t, id| t.user(id),
});

entity!(Group {
    set: "groups",
    type: "microsoft.graph.group",
    app: GROUPS,
    delegated: GROUPS,
    defaults: None,
    all: |t| &t.groups,
    find: |t, id| t.group_index(id).map(|g| &t.groups[g]),
});

/// Query options keyed by name (`$select`, `$top`, …).
pub type QueryOptions = HashMap<String, String>;

/// Parses the raw query string.
pub fn query_options(raw: Option<String>) -> QueryOptions {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
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

/// Validates `$select` against the entity's properties; returns canonical names.
pub fn parse_select<E: Entity>(
    sample: &Map<String, Value>,
    opts: &QueryOptions,
    extra: &[&str],
) -> Result<Option<Vec<String>>, GraphError> {
    let Some(raw) = opts.get("$select") else {
        return Ok(None);
    };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            sample
                .keys()
                .map(String::as_str)
                .chain(extra.iter().copied())
                .find(|k| k.eq_ignore_ascii_case(s))
                .map(str::to_string)
                .ok_or_else(|| {
                    GraphError::new(
                        StatusCode::BAD_REQUEST,
                        "Request_BadRequest",
                        format!(
                            "Could not find a property named '{s}' on type '{}'.",
                            E::TYPE
                        ),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Keeps the selected (or default) properties; `id` always stays.
pub fn project<E: Entity>(all: Map<String, Value>, select: Option<&[String]>) -> Value {
    let keep = |k: &str| match select {
        Some(sel) => k == "id" || sel.iter().any(|s| s == k),
        None => E::DEFAULTS.is_none_or(|d| d.contains(&k)),
    };
    Value::Object(all.into_iter().filter(|(k, _)| keep(k)).collect())
}

/// Page size from `$top` (1..=999) or `Prefer: odata.maxpagesize`, else the default.
pub fn page_size(
    st: &AppState,
    opts: &QueryOptions,
    headers: &HeaderMap,
) -> Result<usize, GraphError> {
    if let Some(top) = opts.get("$top") {
        return match top.parse::<usize>() {
            Ok(n @ 1..=999) => Ok(n),
            _ => Err(GraphError::bad_query(format!(
                "Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."
            ))),
        };
    }
    let preferred = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| {
            p.trim()
                .strip_prefix("odata.maxpagesize=")?
                .parse::<usize>()
                .ok()
        });
    Ok(preferred.unwrap_or(st.cfg.page_size).clamp(1, 999))
}

/// Opaque paging cursor.
pub fn encode_cursor(v: &impl serde::Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default())
}

/// Reverses [`encode_cursor`].
pub fn decode_cursor<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()
}

/// `@odata.context` for an entity set, with the selection as Graph writes it.
pub fn context(base: &str, set: &str, select: Option<&[String]>) -> String {
    match select {
        Some(sel) => format!("{base}/v1.0/$metadata#{set}({})", sel.join(",")),
        None => format!("{base}/v1.0/$metadata#{set}"),
    }
}

/// A `$filter` of the form `property eq 'value'`.
struct EqFilter {
    property: String,
    value: String,
}

fn parse_filter(sample: &Map<String, Value>, raw: &str) -> Result<EqFilter, GraphError> {
    let unsupported = || {
        GraphError::bad_query(format!(
            "Unsupported or invalid query filter clause specified: '{raw}'. The emulator supports 'property eq 'value''."
        ))
    };
    let (prop, rest) = raw.trim().split_once(" eq ").ok_or_else(unsupported)?;
    let rest = rest.trim();
    let value = rest
        .strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .ok_or_else(unsupported)?;
    let property = sample
        .keys()
        .find(|k| k.eq_ignore_ascii_case(prop.trim()))
        .ok_or_else(unsupported)?
        .clone();
    Ok(EqFilter {
        property,
        value: value.replace("''", "'"),
    })
}

fn filter_matches(obj: &Map<String, Value>, f: &EqFilter) -> bool {
    match obj.get(&f.property) {
        Some(Value::String(s)) => s.eq_ignore_ascii_case(&f.value),
        Some(Value::Bool(b)) => b.to_string() == f.value,
        _ => false,
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ListCursor {
    pos: usize,
}

/// Lists active objects with `$select`, `$top`, `$filter` and nextLink paging.
fn list<E: Entity>(
    st: &AppState,
    tenant: &Tenant,
    path: &str,
    opts: &QueryOptions,
    headers: &HeaderMap,
) -> Result<Value, GraphError> {
    let items = E::all(tenant);
    let sample = items.first().map(|e| e.json()).unwrap_or_default();
    let select = parse_select::<E>(&sample, opts, &[])?;
    let top = page_size(st, opts, headers)?;
    let filter = opts
        .get("$filter")
        .map(|f| parse_filter(&sample, f))
        .transpose()?;
    let start = match opts.get("$skiptoken") {
        Some(t) => {
            decode_cursor::<ListCursor>(t)
                .ok_or_else(|| GraphError::bad_query("Invalid $skiptoken."))?
                .pos
        }
        None => 0,
    };
    let mut value = Vec::new();
    let mut next = None;
    for (i, item) in items.iter().enumerate().skip(start) {
        if item.life() != Life::Active {
            continue;
        }
        if value.len() == top {
            next = Some(i);
            break;
        }
        let all = item.json();
        if filter.as_ref().is_some_and(|f| !filter_matches(&all, f)) {
            continue;
        }
        value.push(project::<E>(all, select.as_deref()));
    }
    let base = &st.cfg.base_url;
    let mut out =
        json!({"@odata.context": context(base, E::SET, select.as_deref()), "value": value});
    if let Some(pos) = next {
        let mut url = url::Url::parse(&format!("{base}{path}"))
            .map_err(|_| GraphError::bad_query("bad base URL"))?;
        {
            let mut q = url.query_pairs_mut();
            for key in ["$top", "$select", "$filter"] {
                if let Some(v) = opts.get(key) {
                    q.append_pair(key, v);
                }
            }
            q.append_pair("$skiptoken", &encode_cursor(&ListCursor { pos }));
        }
        out["@odata.nextLink"] = json!(url.to_string());
    }
    Ok(out)
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

/// A live object by id (users also by user principal name), else 404.
fn active<'t, E: Entity>(tenant: &'t Tenant, id: &str) -> Result<&'t E, GraphError> {
    E::find(tenant, id)
        .filter(|e| e.life() == Life::Active)
        .ok_or_else(|| GraphError::not_found(id))
}

async fn list_of<E: Entity>(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    serve(&st, &headers, |access, tenant| {
        require(access, E::APP, E::DELEGATED)?;
        let path = format!("/v1.0/{}", E::SET);
        list::<E>(&st, tenant, &path, &query_options(raw), &headers)
    })
}

fn single<E: Entity>(st: &AppState, item: &E, opts: &QueryOptions) -> Result<Value, GraphError> {
    let all = item.json();
    let select = parse_select::<E>(&all, opts, &[])?;
    let mut v = project::<E>(all, select.as_deref());
    v["@odata.context"] = json!(format!(
        "{}/$entity",
        context(&st.cfg.base_url, E::SET, select.as_deref())
    ));
    Ok(v)
}

async fn get_user(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    serve(&st, &headers, |access, tenant| {
        let user = active::<User>(tenant, &id)?;
        // Reading yourself needs only User.Read.
        if access.oid != Some(user.id) {
            require(access, USERS_APP, USERS_DELEGATED)?;
        } else {
            require(access, USERS_APP, ME)?;
        }
        single(&st, user, &query_options(raw))
    })
}

async fn get_group(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    serve(&st, &headers, |access, tenant| {
        require(access, GROUPS, GROUPS)?;
        single(&st, active::<Group>(tenant, &id)?, &query_options(raw))
    })
}

async fn group_members(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve(&st, &headers, |access, tenant| {
        require(access, GROUPS, GROUPS)?;
        let group = active::<Group>(tenant, &id)?;
        let mut value = Vec::new();
        for uid in &group.members {
            if let Some(u) = tenant.user(&uid.to_string()) {
                let mut v = project::<User>(u.json(), None);
                v["@odata.type"] = json!("#microsoft.graph.user");
                value.push(v);
            }
        }
        Ok(
            json!({"@odata.context": format!("{}/v1.0/$metadata#directoryObjects", st.cfg.base_url), "value": value}),
        )
    })
}

async fn organization(State(st): State<AppState>, headers: HeaderMap) -> Response {
    serve(&st, &headers, |access, tenant| {
        require(access, ORG_APP, ORG_DELEGATED)?;
        let domains: Vec<Value> = tenant
            .domains
            .iter()
            .map(|d| json!({"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": d.is_default, "isInitial": d.is_initial, "name": d.name, "type": "Managed"}))
            .collect();
        Ok(json!({
            "@odata.context": format!("{}/v1.0/$metadata#organization", st.cfg.base_url),
            "value": [{
                "id": tenant.id,
                "displayName": tenant.display_name,
                "tenantType": "AAD",
                "countryLetterCode": "US",
                "preferredLanguage": "en",
                "businessPhones": [],
                "technicalNotificationMails": [tenant.admin().map(|a| a.user_principal_name.clone())],
                "verifiedDomains": domains,
            }]
        }))
    })
}

async fn me(State(st): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    serve(&st, &headers, |access, tenant| {
        let Some(oid) = access.oid else {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "/me request is only valid with delegated authentication flow.",
            ));
        };
        require(access, &[], ME)?;
        single(
            &st,
            active::<User>(tenant, &oid.to_string())?,
            &query_options(raw),
        )
    })
}
