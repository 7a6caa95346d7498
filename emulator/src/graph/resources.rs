//! Users, groups, group members, organization and me: lists with paging and single objects.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::entity::{Entity, GROUPS, USERS_APP, USERS_DELEGATED};
use super::errors::GraphError;
use super::query::{
    QueryOptions, context, decode_cursor, encode_cursor, filter_matches, page_size, parse_filter,
    parse_select, project, query_options,
};
use super::{require, serve};
use crate::directory::{GROUP_TYPE, Group, Life, Tenant, USER_TYPE, User};
use crate::state::AppState;

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

/// A live object by id (users also by user principal name), else 404.
fn active<'t, E: Entity>(tenant: &'t Tenant, id: &str) -> Result<&'t E, GraphError> {
    E::find(tenant, id)
        .filter(|e| e.life() == Life::Active)
        .ok_or_else(|| GraphError::not_found(id))
}

/// GET /v1.0/users and /v1.0/groups.
pub async fn list_of<E: Entity>(
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

/// GET /v1.0/users/{id or upn}.
pub async fn get_user(
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

/// GET /v1.0/groups/{id}.
pub async fn get_group(
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

/// GET /v1.0/groups/{id}/members.
pub async fn group_members(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve(&st, &headers, |access, tenant| {
        require(access, GROUPS, GROUPS)?;
        let group = active::<Group>(tenant, &id)?;
        // Members of every kind, each with its `@odata.type`.
        let mut value = Vec::new();
        for id in &group.members {
            let key = id.to_string();
            let mut v = match group.member_type(*id) {
                USER_TYPE => match tenant.user(&key) {
                    Some(u) => project::<User>(u.json(), None),
                    None => continue,
                },
                GROUP_TYPE => match tenant.group_index(&key) {
                    Some(g) => project::<Group>(tenant.groups[g].json(), None),
                    None => continue,
                },
                _ => match tenant.objects.iter().find(|o| o.id == *id) {
                    Some(o) => json!({"id": o.id, "displayName": o.display_name}),
                    None => continue,
                },
            };
            v["@odata.type"] = json!(group.member_type(*id));
            value.push(v);
        }
        Ok(
            json!({"@odata.context": format!("{}/v1.0/$metadata#directoryObjects", st.cfg.base_url), "value": value}),
        )
    })
}

/// GET /v1.0/organization.
pub async fn organization(State(st): State<AppState>, headers: HeaderMap) -> Response {
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

/// GET /v1.0/me (delegated tokens only).
pub async fn me(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
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
