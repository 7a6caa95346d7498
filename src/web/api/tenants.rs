//! `/api/v1/tenants`: connected tenants, their sync (now, schedule, runs, scope) and
//! offboarding.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{Reader, Writer};
use super::problem::{
    ApiError, ApiJson, ApiQuery, CommonProblems, ForbiddenProblem, NotFoundProblem, Problem,
};
use super::{Page, cursor_uuid, limit, rfc3339};
use crate::directory::scope::{self, Scope, ScopeKind};
use crate::directory::{control, feed, guard, views};
use crate::tenants::{self, Tenant};
use crate::types::{Schedule, TenantRecordId};
use crate::web::AppState;

/// A connected tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantOut {
    /// Gangway's id.
    pub id: Uuid,
    /// Microsoft's id of the directory.
    pub entra_tenant_id: Uuid,
    /// The organisation's name.
    pub display_name: String,
    /// Its verified domains.
    pub verified_domains: Vec<String>,
    /// The customer it belongs to.
    pub customer_id: Uuid,
    /// That customer's name.
    pub customer_name: String,
    /// `delegated`, `application` or `customer_app`.
    pub consent_mode: String,
    /// `active`, `reconsent_required`, `disabled` or `offboarded`.
    pub status: String,
    /// The permissions granted.
    pub granted_scopes: Vec<String>,
    /// When consent was (last) given (RFC 3339).
    pub consented_at: String,
}

impl From<Tenant> for TenantOut {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id.into(),
            entra_tenant_id: t.entra_tenant_id,
            display_name: t.display_name,
            verified_domains: t.verified_domains,
            customer_id: t.customer_id.into(),
            customer_name: t.customer_name,
            consent_mode: t.consent_mode.as_str().into(),
            status: t.status.as_str().into(),
            granted_scopes: t.granted_scopes,
            consented_at: rfc3339(t.consented_at),
        }
    }
}

/// A tenant with where its directory sync stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantDetail {
    /// The tenant.
    #[serde(flatten)]
    pub tenant: TenantOut,
    /// Its sync.
    pub sync: SyncOut,
}

/// Where a tenant's sync stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncOut {
    /// Its schedule (`every 6h`, `daily 02:30 Europe/Berlin`, `manual`).
    pub schedule: String,
    /// Whether that is the default schedule (none of its own).
    pub default_schedule: bool,
    /// When the scheduler next queues a sync.
    pub next_sync_at: Option<String>,
    /// When a sync last succeeded.
    pub last_success_at: Option<String>,
    /// Failed syncs in a row since.
    pub failures: i32,
    /// The last failure, in words.
    pub error: Option<String>,
    /// Users in the copy.
    pub users: i64,
    /// Groups in the copy.
    pub groups: i64,
    /// Memberships in the copy.
    pub memberships: i64,
    /// Whether a sync is running.
    pub running: bool,
    /// Whether one is queued.
    pub queued: bool,
}

/// One sync run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunOut {
    /// Its id (runs are listed newest first; a page's last id is the next cursor).
    pub id: i64,
    /// `first`, `schedule`, `manual`, `forced`, `retry` or `notification` (Graph said something
    /// changed).
    pub trigger: String,
    /// `running`, `succeeded`, `failed`, `interrupted` or `abandoned`.
    pub outcome: String,
    /// Whether it read everything again.
    pub full_round: bool,
    /// Objects added.
    pub added: i32,
    /// Objects changed.
    pub updated: i32,
    /// Objects moved to the recycle bin.
    pub soft_deleted: i32,
    /// Objects removed.
    pub removed: i32,
    /// Memberships added.
    pub members_added: i32,
    /// Memberships removed.
    pub members_removed: i32,
    /// Pages read.
    pub pages: i32,
    /// Waits Graph asked for.
    pub throttled_waits: i32,
    /// Their seconds.
    pub throttled_seconds: f64,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started.
    pub started_at: String,
    /// When it ended.
    pub finished_at: Option<String>,
}

impl From<views::SyncRun> for RunOut {
    fn from(r: views::SyncRun) -> Self {
        Self {
            id: r.id,
            trigger: serde_json::to_value(r.trigger)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            outcome: r.outcome.as_str().into(),
            full_round: r.full_round,
            added: r.counts.added,
            updated: r.counts.updated,
            soft_deleted: r.counts.soft_deleted,
            removed: r.counts.removed,
            members_added: r.counts.members_added,
            members_removed: r.counts.members_removed,
            pages: r.counts.pages,
            throttled_waits: r.counts.throttled_waits,
            throttled_seconds: r.counts.throttled_seconds,
            error: r.error,
            started_at: rfc3339(r.started_at),
            finished_at: r.finished_at.map(rfc3339),
        }
    }
}

/// Paging by cursor.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// Lists connected tenants by id.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(Paging),
    security(("api_token" = [])),
    responses((status = 200, body = Page<TenantOut>), CommonProblems))]
pub async fn list(
    State(state): State<AppState>,
    _: Reader,
    ApiQuery(q): ApiQuery<Paging>,
) -> Result<Page<TenantOut>, ApiError> {
    let limit = limit(q.limit)?;
    let after = cursor_uuid(q.cursor.as_deref())?;
    let rows = tenants::page_after(&state.db, after, limit).await?;
    Ok(Page::new(rows, limit, |t| t.id.to_string()))
}

/// The tenant with Gangway's id `id` (from a path), or 404.
pub(super) async fn tenant(state: &AppState, id: &str) -> Result<Tenant, ApiError> {
    tenants::get(&state.db, tenant_id(id)?)
        .await?
        .ok_or_else(no_such_tenant)
}

/// The tenant id in a path (a 404 when it is none).
pub(super) fn tenant_id(id: &str) -> Result<TenantRecordId, ApiError> {
    id.parse().map_err(|_| no_such_tenant())
}

pub(super) fn no_such_tenant() -> ApiError {
    ApiError::NotFound("no such tenant".into())
}

/// One tenant with its sync.
#[utoipa::path(get, path = "/api/v1/tenants/{id}", tag = "tenants",
    params(("id" = Uuid, Path, description = "Gangway's tenant id")),
    security(("api_token" = [])),
    responses((status = 200, body = TenantDetail), CommonProblems, NotFoundProblem))]
pub async fn get(
    State(state): State<AppState>,
    _: Reader,
    Path(id): Path<String>,
) -> Result<Json<TenantDetail>, ApiError> {
    let tenant = tenant(&state, &id).await?;
    let s = views::sync_summary(&state.db, tenant.id.into())
        .await?
        .ok_or_else(|| ApiError::NotFound("no such tenant".into()))?;
    Ok(Json(TenantDetail {
        tenant: tenant.into(),
        sync: SyncOut {
            schedule: s.schedule.to_string(),
            default_schedule: s.default_schedule,
            next_sync_at: s.next_sync_at.map(rfc3339),
            last_success_at: s.last_sync_success_at.map(rfc3339),
            failures: s.sync_failures,
            error: s.sync_error,
            users: s.users,
            groups: s.groups,
            memberships: s.memberships,
            running: s.running.is_some(),
            queued: s.queued,
        },
    }))
}

/// A sync was queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    /// The job that will run it (an already queued sync absorbs the request: its id).
    pub job_id: i64,
}

/// Syncs the tenant's directory now.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/sync", tag = "tenants",
    params(("id" = Uuid, Path, description = "Gangway's tenant id")),
    security(("api_token" = [])),
    responses((status = 202, body = Queued), CommonProblems, ForbiddenProblem,
               NotFoundProblem, (status = 409, body = Problem, content_type = "application/problem+json", description = "not active")))]
pub async fn sync_now(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let tenant = tenant(&state, &id).await?;
    let job = control::request_sync(&state.db, tenant.id.into(), &writer.actor()).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { job_id: job.0 })))
}

/// A new schedule.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ScheduleIn {
    /// `every 30m`, `every 6h`, `daily 02:30 Europe/Berlin` or `manual`.
    #[schema(example = "every 6h")]
    pub schedule: String,
}

/// Sets the tenant's sync schedule.
#[utoipa::path(put, path = "/api/v1/tenants/{id}/schedule", tag = "tenants",
    params(("id" = Uuid, Path, description = "Gangway's tenant id")),
    request_body = ScheduleIn,
    security(("api_token" = [])),
    responses((status = 200, body = TenantDetail), CommonProblems, ForbiddenProblem,
               NotFoundProblem, (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn set_schedule(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ScheduleIn>,
) -> Result<Json<TenantDetail>, ApiError> {
    let tenant = tenant(&state, &id).await?;
    let schedule: Schedule = body.schedule.parse()?;
    control::set_schedule(&state.db, tenant.id.into(), &schedule, &writer.actor()).await?;
    get(State(state), Reader, Path(id)).await
}

/// Offboards the tenant: credential, directory copy and sync state erased, syncs stopped.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/offboard", tag = "tenants",
    params(("id" = Uuid, Path, description = "Gangway's tenant id")),
    security(("api_token" = [])),
    responses((status = 200, body = TenantOut), CommonProblems, ForbiddenProblem,
               NotFoundProblem, (status = 409, body = Problem, content_type = "application/problem+json", description = "already offboarded")))]
pub async fn offboard(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
) -> Result<Json<TenantOut>, ApiError> {
    let tenant = tenant(&state, &id).await?;
    state.subscriptions().delete_all(tenant.id.into()).await?;
    let done = tenants::offboard(&state.db, tenant.id.into(), &writer.actor()).await?;
    crate::signin::ends::for_tenant(&state.db, tenant.id.into()).await?;
    Ok(Json(done.into()))
}

/// The tenant's sync runs, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/sync-runs", tag = "tenants",
    params(("id" = Uuid, Path, description = "Gangway's tenant id"), Paging),
    security(("api_token" = [])),
    responses((status = 200, body = Page<RunOut>), CommonProblems,
               NotFoundProblem))]
pub async fn runs(
    State(state): State<AppState>,
    _: Reader,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<Paging>,
) -> Result<Page<RunOut>, ApiError> {
    let tenant = tenant(&state, &id).await?;
    let limit = limit(q.limit)?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::BadRequest("cursor is not one this API gave".into()))
        })
        .transpose()?;
    let rows = feed::runs(&state.db, tenant.id.into(), before, limit).await?;
    Ok(Page::new(rows, limit, |r| r.id.to_string()))
}

/// The tenant's deletion guard: its thresholds and what it holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletionsOut {
    /// Whether deletions wait for an operator.
    pub held: bool,
    /// Users held.
    pub users: i64,
    /// Groups held.
    pub groups: i64,
    /// Of those, to the recycle bin.
    pub soft_deleted: i64,
    /// Of those, for good.
    pub deleted: i64,
    /// A few of their names, alphabetically.
    pub sample: Vec<String>,
    /// Since when the oldest is held (RFC 3339).
    pub held_since: Option<String>,
    /// The thresholds in force.
    pub thresholds: ThresholdsOut,
}

/// A tenant's deletion guard thresholds: a round deleting more than `percent` % of a chain's
/// objects (and more than 10 of them), or more than `objects`, is held.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThresholdsOut {
    /// The share in force (%).
    pub percent: i32,
    /// The number in force.
    pub objects: i32,
    /// The tenant's own share; null: the System Setting's.
    pub own_percent: Option<i32>,
    /// The tenant's own number; null: the System Setting's.
    pub own_objects: Option<i32>,
}

impl From<guard::Thresholds> for ThresholdsOut {
    fn from(t: guard::Thresholds) -> Self {
        Self {
            percent: t.percent,
            objects: t.objects,
            own_percent: t.own_percent,
            own_objects: t.own_objects,
        }
    }
}

async fn deletions_of(state: &AppState, tenant: Uuid) -> Result<DeletionsOut, ApiError> {
    let held = guard::summary(&state.db, tenant).await?;
    let thresholds = guard::thresholds(&state.db, tenant).await?;
    Ok(DeletionsOut {
        held: held.any(),
        users: held.users,
        groups: held.groups,
        soft_deleted: held.soft_deleted,
        deleted: held.deleted,
        sample: held.sample,
        held_since: held.since.map(rfc3339),
        thresholds: thresholds.into(),
    })
}

/// The tenant's deletion guard: thresholds, and the deletions held for an operator.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/deletions", tag = "tenants",
    params(("id" = Uuid, Path, description = "Gangway's tenant id")),
    security(("api_token" = [])),
    responses((status = 200, body = DeletionsOut), CommonProblems, NotFoundProblem))]
pub async fn deletions(
    State(state): State<AppState>,
    _: Reader,
    Path(id): Path<String>,
) -> Result<Json<DeletionsOut>, ApiError> {
    let tenant = tenant(&state, &id).await?;
    Ok(Json(deletions_of(&state, tenant.id.into()).await?))
}

/// Applies the held deletions (audited; the provider gets the deletion events).
#[utoipa::path(post, path = "/api/v1/tenants/{id}/deletions/approve", tag = "tenants",
    params(("id" = Uuid, Path, description = "Gangway's tenant id")),
    security(("api_token" = [])),
    responses((status = 200, body = DeletionsOut), CommonProblems, ForbiddenProblem,
               NotFoundProblem, (status = 409, body = Problem, content_type = "application/problem+json", description = "nothing held")))]
pub async fn approve_deletions(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
) -> Result<Json<DeletionsOut>, ApiError> {
    let tenant = tenant(&state, &id).await?;
    guard::approve(&state.db, tenant.id.into(), &writer.actor()).await?;
    Ok(Json(deletions_of(&state, tenant.id.into()).await?))
}

/// Keeps the held objects (audited): they stay in the copy, and later rounds do not hold them
/// again.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/deletions/reject", tag = "tenants",
    params(("id" = Uuid, Path, description = "Gangway's tenant id")),
    security(("api_token" = [])),
    responses((status = 200, body = DeletionsOut), CommonProblems, ForbiddenProblem,
               NotFoundProblem, (status = 409, body = Problem, content_type = "application/problem+json", description = "nothing held")))]
pub async fn reject_deletions(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
) -> Result<Json<DeletionsOut>, ApiError> {
    let tenant = tenant(&state, &id).await?;
    guard::reject(&state.db, tenant.id.into(), &writer.actor()).await?;
    Ok(Json(deletions_of(&state, tenant.id.into()).await?))
}

/// The tenant's own deletion guard thresholds; a null (or absent) one follows the System
/// Setting.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ThresholdsIn {
    /// 1 to 100 (%).
    #[schema(example = 20)]
    pub percent: Option<i64>,
    /// 1 to 1,000,000.
    #[schema(example = 500)]
    pub objects: Option<i64>,
}

/// Sets the tenant's deletion guard thresholds (audited).
#[utoipa::path(put, path = "/api/v1/tenants/{id}/deletion-guard", tag = "tenants",
    params(("id" = Uuid, Path, description = "Gangway's tenant id")),
    request_body = ThresholdsIn,
    security(("api_token" = [])),
    responses((status = 200, body = DeletionsOut), CommonProblems, ForbiddenProblem,
               NotFoundProblem, (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn set_deletion_guard(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ThresholdsIn>,
) -> Result<Json<DeletionsOut>, ApiError> {
    let tenant = tenant(&state, &id).await?;
    guard::set_thresholds(
        &state.db,
        tenant.id.into(),
        body.percent,
        body.objects,
        &writer.actor(),
    )
    .await?;
    Ok(Json(deletions_of(&state, tenant.id.into()).await?))
}

/// Which of the tenant's users and groups the provider sees, and how many are in scope now.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/scope", tag = "tenants",
    params(("id" = Uuid, Path, description = "Gangway's tenant id")),
    security(("api_token" = [])),
    responses((status = 200, body = Scope), CommonProblems, NotFoundProblem))]
pub async fn get_scope(
    State(state): State<AppState>,
    _: Reader,
    Path(id): Path<String>,
) -> Result<Json<Scope>, ApiError> {
    let tenant = tenant(&state, &id).await?;
    scope::get(&state.db, tenant.id.into())
        .await?
        .map(Json)
        .ok_or_else(no_such_tenant)
}

/// A new sync scope.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ScopeIn {
    /// `all`, `groups` (the groups below and their members at any depth) or
    /// `app_assignments` (the users and groups assigned to the provider's enterprise app, and
    /// the assigned groups' members at any depth).
    pub kind: ScopeKind,
    /// Kind `groups`: the object ids of groups in the tenant's copy (at least one).
    #[serde(default)]
    pub groups: Vec<Uuid>,
}

/// Sets the tenant's sync scope (audited). Users and groups leaving it are reported deleted
/// (events and webhooks), those entering created; an app-assignment scope is applied after the
/// next sync reads the assignments.
#[utoipa::path(put, path = "/api/v1/tenants/{id}/scope", tag = "tenants",
    params(("id" = Uuid, Path, description = "Gangway's tenant id")),
    request_body = ScopeIn,
    security(("api_token" = [])),
    responses((status = 200, body = Scope), CommonProblems, ForbiddenProblem,
               NotFoundProblem, (status = 422, body = Problem, content_type = "application/problem+json", description = "no group, or a group not in the copy")))]
pub async fn set_scope(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ScopeIn>,
) -> Result<Json<Scope>, ApiError> {
    let tenant = tenant(&state, &id).await?;
    scope::set(
        &state.db,
        tenant.id.into(),
        body.kind,
        &body.groups,
        &writer.actor(),
    )
    .await?;
    get_scope(State(state), Reader, Path(id)).await
}
