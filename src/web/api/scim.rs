//! `/api/v1/scim/connections`: SCIM 2.0 push into the provider's product. The bearer token is
//! write-only: sealed when given, never answered.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{Reader, Writer};
use super::problem::{
    ApiError, ApiJson, CommonProblems, ForbiddenProblem, NotFoundProblem, Problem,
};
use super::rfc3339;
use crate::scim::{self, Connection, ConnectionInput, LogEntry, ScimError};
use crate::types::{ScimConnectionId, Secret};
use crate::web::AppState;

impl From<ScimError> for ApiError {
    fn from(e: ScimError) -> Self {
        match e {
            e @ ScimError::Invalid(_) => Self::Unprocessable(e.to_string()),
            e @ ScimError::NameTaken(_) => Self::Conflict(e.to_string()),
            ScimError::NotFound => Self::NotFound("no such SCIM connection".into()),
            ScimError::Db(e) => e.into(),
        }
    }
}

/// A SCIM connection to add or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionIn {
    /// What it is called (unique).
    #[schema(example = "Workspace (all customers)")]
    pub name: String,
    /// The SCIM server's base URL, under which `/Users`, `/Groups` and
    /// `/ServiceProviderConfig` are.
    #[schema(example = "https://workspace.provider.example/scim/v2")]
    pub base_url: String,
    /// The bearer token the server accepts (required to add; absent on a change keeps it).
    #[serde(default)]
    #[schema(example = "scim-bearer-token-from-the-product")]
    pub token: Option<String>,
    /// The customer whose tenants are pushed; absent or null: every customer's.
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    /// SCIM attribute → directory field (Graph's name). Absent: the defaults (userName ←
    /// userPrincipalName, displayName, name.givenName ← givenName, name.familyName ← surname,
    /// title ← jobTitle, emails.work ← mail, phoneNumbers.work ← businessPhones,
    /// phoneNumbers.mobile ← mobilePhone). `externalId` is always the object id; `active` is
    /// enabled and not deleted.
    #[serde(default)]
    #[schema(example = json!({"userName": "userPrincipalName", "emails.work": "mail"}))]
    pub mapping: Option<BTreeMap<String, String>>,
    /// Only these groups of the copy (object ids, at most 100), their members at any depth and
    /// the groups nested in them are pushed; absent or empty: every user and group.
    #[serde(default)]
    #[schema(example = json!(["4f1b8f2e-9a51-4c8e-8d4e-2f6a0c3b7d11"]))]
    pub scope_groups: Vec<Uuid>,
    /// Whether pushes run (true).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl ConnectionIn {
    fn input(self) -> ConnectionInput {
        ConnectionInput {
            name: self.name,
            base_url: self.base_url,
            token: self.token.map(Secret::new),
            customer_id: self.customer_id.map(Into::into),
            mapping: self.mapping,
            scope_groups: self.scope_groups,
            enabled: self.enabled,
        }
    }
}

/// What the SCIM server said it supports, at the last push.
#[derive(Debug, Serialize, ToSchema)]
pub struct CapabilitiesOut {
    /// PATCH (else updates are PUTs).
    pub patch: bool,
    /// Filters (else lookups list).
    pub filter: bool,
    /// Bulk.
    pub bulk: bool,
}

/// A SCIM connection.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionOut {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// The SCIM server's base URL.
    pub base_url: String,
    /// The customer whose tenants are pushed; null: every customer's.
    pub customer_id: Option<Uuid>,
    /// SCIM attribute → directory field.
    pub mapping: BTreeMap<String, String>,
    /// The groups whose members (at any depth) and nested groups are pushed; empty: every
    /// user and group.
    pub scope_groups: Vec<Uuid>,
    /// Whether pushes run.
    pub enabled: bool,
    /// `new` (never pushed), `ok`, or `failing` (see `last_error`).
    pub state: String,
    /// What the server supports, once read.
    pub capabilities: Option<CapabilitiesOut>,
    /// When the last push ended.
    pub last_push_at: Option<String>,
    /// When the last full reconcile ended.
    pub last_reconcile_at: Option<String>,
    /// The last push's first failure, with the SCIM server's own message.
    pub last_error: Option<String>,
    /// When it was added.
    pub created_at: String,
}

impl From<Connection> for ConnectionOut {
    fn from(c: Connection) -> Self {
        Self {
            id: c.id.into(),
            name: c.name,
            base_url: c.base_url,
            customer_id: c.customer_id.map(Into::into),
            mapping: c.mapping.wire(),
            scope_groups: c.scope_groups,
            enabled: c.enabled,
            state: c.state,
            capabilities: c.capabilities.map(|c| CapabilitiesOut {
                patch: c.patch,
                filter: c.filter,
                bulk: c.bulk,
            }),
            last_push_at: c.last_push_at.map(rfc3339),
            last_reconcile_at: c.last_reconcile_at.map(rfc3339),
            last_error: c.last_error,
            created_at: rfc3339(c.created_at),
        }
    }
}

/// One entry of a connection's log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogEntryOut {
    /// When.
    pub at: String,
    /// `push`, `reconcile` or `failure`.
    pub entry: String,
    /// What happened (a failure: the request).
    pub summary: String,
    /// A failure's HTTP status, if the server answered.
    pub status: Option<i32>,
    /// A failure's message, in the SCIM server's own words.
    pub detail: Option<String>,
}

impl From<LogEntry> for LogEntryOut {
    fn from(e: LogEntry) -> Self {
        Self {
            at: rfc3339(e.at),
            entry: e.entry,
            summary: e.summary,
            status: e.status,
            detail: e.detail,
        }
    }
}

/// What to push.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushIn {
    /// Read the server's users and groups back and fix whatever drifted (false: the events
    /// since the last push).
    #[serde(default)]
    pub reconcile: bool,
}

fn connection_id(id: &str) -> Result<ScimConnectionId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound("no such SCIM connection".into()))
}

/// Adds a SCIM connection; its first push (a full reconcile) starts at once.
#[utoipa::path(post, path = "/api/v1/scim/connections", tag = "scim",
    request_body = ConnectionIn,
    security(("api_token" = [])),
    responses((status = 201, body = ConnectionOut), CommonProblems, ForbiddenProblem,
               (status = 409, body = Problem, content_type = "application/problem+json", description = "the name is taken"),
               (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid field")))]
pub async fn create(
    State(state): State<AppState>,
    writer: Writer,
    ApiJson(body): ApiJson<ConnectionIn>,
) -> Result<(StatusCode, Json<ConnectionOut>), ApiError> {
    let created = scim::create(&state.db, &state.cfg.keys, &body.input(), &writer.actor()).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Lists SCIM connections by name.
#[utoipa::path(get, path = "/api/v1/scim/connections", tag = "scim",
    security(("api_token" = [])),
    responses((status = 200, body = Vec<ConnectionOut>), CommonProblems))]
pub async fn list(
    State(state): State<AppState>,
    _: Reader,
) -> Result<Json<Vec<ConnectionOut>>, ApiError> {
    let all = scim::list(&state.db).await?;
    Ok(Json(all.into_iter().map(Into::into).collect()))
}

/// One SCIM connection.
#[utoipa::path(get, path = "/api/v1/scim/connections/{id}", tag = "scim",
    params(("id" = Uuid, Path, description = "the connection's id")),
    security(("api_token" = [])),
    responses((status = 200, body = ConnectionOut), CommonProblems, NotFoundProblem))]
pub async fn get(
    State(state): State<AppState>,
    _: Reader,
    Path(id): Path<String>,
) -> Result<Json<ConnectionOut>, ApiError> {
    Ok(Json(
        scim::get(&state.db, connection_id(&id)?).await?.into(),
    ))
}

/// Replaces a SCIM connection's settings (an absent token keeps the stored one); the next push
/// writes everything again.
#[utoipa::path(put, path = "/api/v1/scim/connections/{id}", tag = "scim",
    params(("id" = Uuid, Path, description = "the connection's id")),
    request_body = ConnectionIn,
    security(("api_token" = [])),
    responses((status = 200, body = ConnectionOut), CommonProblems, ForbiddenProblem, NotFoundProblem,
               (status = 409, body = Problem, content_type = "application/problem+json", description = "the name is taken"),
               (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid field")))]
pub async fn update(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConnectionIn>,
) -> Result<Json<ConnectionOut>, ApiError> {
    let id = connection_id(&id)?;
    let changed = scim::update(
        &state.db,
        &state.cfg.keys,
        id,
        &body.input(),
        &writer.actor(),
    )
    .await?;
    Ok(Json(changed.into()))
}

/// Deletes a SCIM connection with its ledger and log; what it pushed stays on the server.
#[utoipa::path(delete, path = "/api/v1/scim/connections/{id}", tag = "scim",
    params(("id" = Uuid, Path, description = "the connection's id")),
    security(("api_token" = [])),
    responses((status = 204), CommonProblems, ForbiddenProblem, NotFoundProblem))]
pub async fn delete(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    scim::delete(&state.db, connection_id(&id)?, &writer.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pushes now: what changed, or with `reconcile` everything, fixing drift on the server.
#[utoipa::path(post, path = "/api/v1/scim/connections/{id}/push", tag = "scim",
    params(("id" = Uuid, Path, description = "the connection's id")),
    request_body = PushIn,
    security(("api_token" = [])),
    responses((status = 202), CommonProblems, ForbiddenProblem, NotFoundProblem,
               (status = 422, body = Problem, content_type = "application/problem+json", description = "the body is not `{\"reconcile\": true|false}`")))]
pub async fn push(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PushIn>,
) -> Result<StatusCode, ApiError> {
    scim::request_push(
        &state.db,
        connection_id(&id)?,
        body.reconcile,
        &writer.actor(),
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}

/// A connection's log, newest first (the last 200 entries).
#[utoipa::path(get, path = "/api/v1/scim/connections/{id}/log", tag = "scim",
    params(("id" = Uuid, Path, description = "the connection's id")),
    security(("api_token" = [])),
    responses((status = 200, body = Vec<LogEntryOut>), CommonProblems, NotFoundProblem))]
pub async fn log(
    State(state): State<AppState>,
    _: Reader,
    Path(id): Path<String>,
) -> Result<Json<Vec<LogEntryOut>>, ApiError> {
    let id = connection_id(&id)?;
    scim::get(&state.db, id).await?;
    let entries = scim::log(&state.db, id, 200).await?;
    Ok(Json(entries.into_iter().map(Into::into).collect()))
}
