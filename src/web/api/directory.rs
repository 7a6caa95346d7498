//! `/api/v1/tenants/{id}/users|groups`: the directory copy, by cursor, changed-since and search;
//! a group's members (direct or through nested groups) and a user's groups.

use axum::extract::{Path, State};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;
use uuid::Uuid;

use super::auth::Reader;
use super::problem::{ApiError, ApiQuery, CommonProblems, NotFoundProblem};
use super::tenants::{no_such_tenant, tenant_id};
use super::{Page, cursor_uuid, limit};
use crate::directory::views::{DirectoryGroup, DirectoryUser, GroupMember, UserRow};
use crate::directory::{feed, nesting};
use crate::tenants;
use crate::types::TenantRecordId;
use crate::web::AppState;

/// Filters and paging for the directory copy.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DirectoryQuery {
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Only objects a sync changed at or after this time (RFC 3339).
    pub updated_since: Option<String>,
    /// Only objects whose name, UPN, mail (or description) contains this, or with this id.
    pub search: Option<String>,
}

impl DirectoryQuery {
    fn updated_since(&self) -> Result<Option<OffsetDateTime>, ApiError> {
        self.updated_since
            .as_deref()
            .map(|t| {
                OffsetDateTime::parse(t.trim(), &time::format_description::well_known::Rfc3339)
                    .map_err(|_| {
                        ApiError::BadRequest(
                            "updated_since must be an RFC 3339 time such as 2026-12-01T09:30:00Z"
                                .into(),
                        )
                    })
            })
            .transpose()
    }

    fn search(&self) -> Result<Option<&str>, ApiError> {
        match self.search.as_deref().map(str::trim) {
            Some(s) if s.chars().count() > 200 || s.contains('\0') => Err(ApiError::BadRequest(
                "search must be at most 200 characters".into(),
            )),
            other => Ok(other.filter(|s| !s.is_empty())),
        }
    }
}

/// The tenant's users (recycle-bin ones flagged by `soft_deleted_at`), by object id.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/users", tag = "directory",
    params(("id" = Uuid, Path, description = "Gangway's tenant id"), DirectoryQuery),
    security(("api_token" = [])),
    responses((status = 200, body = Page<DirectoryUser>),
               CommonProblems, NotFoundProblem))]
pub async fn users(
    State(state): State<AppState>,
    _: Reader,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DirectoryQuery>,
) -> Result<Page<UserRow>, ApiError> {
    let tenant = tenant_id(&id)?;
    let limit = limit(q.limit)?;
    let after = cursor_uuid(q.cursor.as_deref())?;
    let rows = feed::users(
        &state.db,
        tenant.into(),
        after,
        q.updated_since()?,
        q.search()?,
        limit,
    )
    .await?;
    known(&state, tenant, rows.is_empty()).await?;
    Ok(Page::new(rows, limit, |u| u.object_id.to_string()))
}

/// The tenant's groups with member counts, by object id.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/groups", tag = "directory",
    params(("id" = Uuid, Path, description = "Gangway's tenant id"), DirectoryQuery),
    security(("api_token" = [])),
    responses((status = 200, body = Page<DirectoryGroup>),
               CommonProblems, NotFoundProblem))]
pub async fn groups(
    State(state): State<AppState>,
    _: Reader,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DirectoryQuery>,
) -> Result<Page<DirectoryGroup>, ApiError> {
    let tenant = tenant_id(&id)?;
    let limit = limit(q.limit)?;
    let after = cursor_uuid(q.cursor.as_deref())?;
    let rows = feed::groups(
        &state.db,
        tenant.into(),
        after,
        q.updated_since()?,
        q.search()?,
        limit,
    )
    .await?;
    known(&state, tenant, rows.is_empty()).await?;
    Ok(Page::new(rows, limit, |g| g.object_id.to_string()))
}

/// A group's members, by member id.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/groups/{group_id}/members", tag = "directory",
    params(("id" = Uuid, Path, description = "Gangway's tenant id"),
           ("group_id" = Uuid, Path, description = "the group's object id"),
           super::tenants::Paging),
    security(("api_token" = [])),
    responses((status = 200, body = Page<GroupMember>),
               CommonProblems, NotFoundProblem))]
pub async fn members(
    State(state): State<AppState>,
    _: Reader,
    Path((id, group)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<super::tenants::Paging>,
) -> Result<Page<GroupMember>, ApiError> {
    let (tenant, group) = existing_group(&state, &id, &group).await?;
    let limit = limit(q.limit)?;
    let after = cursor_uuid(q.cursor.as_deref())?;
    let rows = feed::members(&state.db, tenant.into(), group, after, limit).await?;
    Ok(Page::new(rows, limit, |m| m.member_id.to_string()))
}

/// A group's members at any depth: its own and those of every group nested in it, each once,
/// by member id. Groups count among them; a cycle of groups ends where it closes.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/groups/{group_id}/transitive-members",
    tag = "directory",
    params(("id" = Uuid, Path, description = "Gangway's tenant id"),
           ("group_id" = Uuid, Path, description = "the group's object id"),
           super::tenants::Paging),
    security(("api_token" = [])),
    responses((status = 200, body = Page<GroupMember>),
               CommonProblems, NotFoundProblem))]
pub async fn transitive_members(
    State(state): State<AppState>,
    _: Reader,
    Path((id, group)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<super::tenants::Paging>,
) -> Result<Page<GroupMember>, ApiError> {
    let (tenant, group) = existing_group(&state, &id, &group).await?;
    let limit = limit(q.limit)?;
    let after = cursor_uuid(q.cursor.as_deref())?;
    let rows = nesting::transitive_members(&state.db, tenant.into(), group, after, limit).await?;
    Ok(Page::new(rows, limit, |m| m.member_id.to_string()))
}

/// Paging, and whether to follow nesting.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupsOfQuery {
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Also the groups its groups are in, at any depth (`false`: only those it is in itself).
    pub transitive: Option<bool>,
}

/// The groups a user is in, by group id: directly, or with `transitive=true` also through
/// nested groups.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/users/{user_id}/groups", tag = "directory",
    params(("id" = Uuid, Path, description = "Gangway's tenant id"),
           ("user_id" = Uuid, Path, description = "the user's object id"),
           GroupsOfQuery),
    security(("api_token" = [])),
    responses((status = 200, body = Page<DirectoryGroup>),
               CommonProblems, NotFoundProblem))]
pub async fn user_groups(
    State(state): State<AppState>,
    _: Reader,
    Path((id, user)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<GroupsOfQuery>,
) -> Result<Page<DirectoryGroup>, ApiError> {
    let tenant = super::tenants::tenant(&state, &id).await?.id;
    let not_found = || ApiError::NotFound("no such user in this tenant's copy".into());
    let user = Uuid::parse_str(&user).map_err(|_| not_found())?;
    if !nesting::has_user(&state.db, tenant.into(), user).await? {
        return Err(not_found());
    }
    let limit = limit(q.limit)?;
    let after = cursor_uuid(q.cursor.as_deref())?;
    let transitive = q.transitive.unwrap_or(false);
    let rows = nesting::groups_of(&state.db, tenant.into(), user, transitive, after, limit).await?;
    Ok(Page::new(rows, limit, |g| g.object_id.to_string()))
}

/// The tenant and group of a path, or 404 when the group is not in the tenant's copy.
async fn existing_group(
    state: &AppState,
    id: &str,
    group: &str,
) -> Result<(TenantRecordId, Uuid), ApiError> {
    let tenant = super::tenants::tenant(state, id).await?.id;
    let not_found = || ApiError::NotFound("no such group in this tenant's copy".into());
    let group = Uuid::parse_str(group).map_err(|_| not_found())?;
    crate::directory::views::group(&state.db, tenant.into(), group)
        .await?
        .ok_or_else(not_found)?;
    Ok((tenant, group))
}

/// 404 unless tenant `id` exists: a page with rows proves it, so only an `empty` one asks.
async fn known(state: &AppState, id: TenantRecordId, empty: bool) -> Result<(), ApiError> {
    if empty && tenants::get(&state.db, id).await?.is_none() {
        return Err(no_such_tenant());
    }
    Ok(())
}
