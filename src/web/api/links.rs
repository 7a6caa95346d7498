//! `/api/v1/applications/{id}/links`: account links. The provider's systems link a directory
//! user (the tokens' `tid` and `oid`) to their own account id; the application's tokens then
//! carry it as `account_id`. One link per user and one user per account id: a second is a 409.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::applications::application;
use super::auth::{Reader, Writer};
use super::problem::{
    ApiError, ApiJson, ApiQuery, CommonProblems, ForbiddenProblem, NotFoundProblem, Problem,
};
use super::tenants::Paging;
use super::{Page, limit, rfc3339};
use crate::signin::links::{self, Link, LinkError, LinkedUser};
use crate::web::AppState;

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::InvalidAccountId | LinkError::UnknownUser => {
                Self::Unprocessable(e.to_string())
            }
            LinkError::UserLinked(_) | LinkError::AccountTaken(_) => Self::Conflict(e.to_string()),
            LinkError::NotFound => Self::NotFound(e.to_string()),
            LinkError::Internal(e) => e.into(),
        }
    }
}

/// A user's account link.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkOut {
    /// The user's tenant, as Microsoft knows it (the tokens' `tid`).
    pub tid: Uuid,
    /// Gangway's id of the tenant.
    pub tenant_id: Uuid,
    /// The user's object id (the tokens' `oid`).
    pub oid: Uuid,
    /// The user's UPN, as the directory copy knows it.
    pub user_principal_name: Option<String>,
    /// The user's name, as the copy knows it.
    pub display_name: Option<String>,
    /// The provider's account id (the tokens' `account_id`).
    pub account_id: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

impl From<Link> for LinkOut {
    fn from(l: Link) -> Self {
        Self {
            tid: l.entra_tenant_id,
            tenant_id: l.tenant_id,
            oid: l.object_id,
            user_principal_name: l.user_principal_name,
            display_name: l.display_name,
            account_id: l.account_id,
            created_at: rfc3339(l.created_at),
        }
    }
}

/// The account to link a user to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkIn {
    /// The provider's own account id (1–200 characters).
    #[schema(example = "ipecs-10042")]
    pub account_id: String,
}

/// The user `tid`/`oid` name in the copy of a connected tenant, or 422.
async fn user(state: &AppState, tid: &str, oid: &str) -> Result<LinkedUser, ApiError> {
    let parse = |s: &str| Uuid::parse_str(s.trim()).map_err(|_| LinkError::UnknownUser);
    Ok(
        links::user_by_object_id(&state.db, parse(tid)?, parse(oid)?)
            .await?
            .ok_or(LinkError::UnknownUser)?,
    )
}

/// Lists an application's account links by account id.
#[utoipa::path(get, path = "/api/v1/applications/{id}/links", tag = "applications",
    params(("id" = Uuid, Path, description = "the application's id"), Paging),
    security(("api_token" = [])),
    responses((status = 200, body = Page<LinkOut>), CommonProblems, NotFoundProblem))]
pub async fn list(
    State(state): State<AppState>,
    _: Reader,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<Paging>,
) -> Result<Page<LinkOut>, ApiError> {
    let app = application(&state, &id).await?;
    let limit = limit(q.limit)?;
    let rows = links::page_after(&state.db, app.id, q.cursor.as_deref(), limit).await?;
    Ok(Page::new(rows, limit, |l: &Link| l.account_id.clone()))
}

/// One user's account link.
#[utoipa::path(get, path = "/api/v1/applications/{id}/links/{tid}/{oid}", tag = "applications",
    params(("id" = Uuid, Path, description = "the application's id"),
           ("tid" = Uuid, Path, description = "the user's tenant (the tokens' `tid`)"),
           ("oid" = Uuid, Path, description = "the user's object id (the tokens' `oid`)")),
    security(("api_token" = [])),
    responses((status = 200, body = LinkOut), CommonProblems, NotFoundProblem,
               (status = 422, body = Problem, content_type = "application/problem+json", description = "no such user in a connected tenant's copy")))]
pub async fn get(
    State(state): State<AppState>,
    _: Reader,
    Path((id, tid, oid)): Path<(String, String, String)>,
) -> Result<Json<LinkOut>, ApiError> {
    let app = application(&state, &id).await?;
    let user = user(&state, &tid, &oid).await?;
    let link = links::get(&state.db, app.id, user)
        .await?
        .ok_or(LinkError::NotFound)?;
    Ok(Json(link.into()))
}

/// Links a directory user to an account: 201 when new, 200 when it already was. A user already
/// linked to another account, or an account already linked to another user, is a 409.
#[utoipa::path(put, path = "/api/v1/applications/{id}/links/{tid}/{oid}", tag = "applications",
    params(("id" = Uuid, Path, description = "the application's id"),
           ("tid" = Uuid, Path, description = "the user's tenant (the tokens' `tid`)"),
           ("oid" = Uuid, Path, description = "the user's object id (the tokens' `oid`)")),
    request_body = LinkIn,
    security(("api_token" = [])),
    responses((status = 201, body = LinkOut, description = "linked"),
               (status = 200, body = LinkOut, description = "already linked so"),
               CommonProblems, ForbiddenProblem, NotFoundProblem,
               (status = 409, body = Problem, content_type = "application/problem+json", description = "the user or the account is linked already"),
               (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid account id, or no such user")))]
pub async fn put(
    State(state): State<AppState>,
    writer: Writer,
    Path((id, tid, oid)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<LinkIn>,
) -> Result<(StatusCode, Json<LinkOut>), ApiError> {
    let app = application(&state, &id).await?;
    let user = user(&state, &tid, &oid).await?;
    let created = links::link(&state.db, app.id, user, &body.account_id, &writer.actor()).await?;
    let link = links::get(&state.db, app.id, user)
        .await?
        .ok_or(LinkError::NotFound)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(link.into())))
}

/// Removes a user's account link.
#[utoipa::path(delete, path = "/api/v1/applications/{id}/links/{tid}/{oid}", tag = "applications",
    params(("id" = Uuid, Path, description = "the application's id"),
           ("tid" = Uuid, Path, description = "the user's tenant (the tokens' `tid`)"),
           ("oid" = Uuid, Path, description = "the user's object id (the tokens' `oid`)")),
    security(("api_token" = [])),
    responses((status = 204, description = "removed"), CommonProblems, ForbiddenProblem, NotFoundProblem,
               (status = 422, body = Problem, content_type = "application/problem+json", description = "no such user in a connected tenant's copy")))]
pub async fn delete(
    State(state): State<AppState>,
    writer: Writer,
    Path((id, tid, oid)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = application(&state, &id).await?;
    let user = user(&state, &tid, &oid).await?;
    links::unlink(&state.db, app.id, user, &writer.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
