//! `/api/v1/invitations`: create (answering the link once, `Idempotency-Key` honoured), list,
//! get, resend, revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{Reader, Writer};
use super::problem::{
    ApiError, ApiJson, ApiQuery, CommonProblems, ForbiddenProblem, NotFoundProblem, Problem,
};
use super::{Page, cursor_uuid, idempotency, limit, rfc3339};
use crate::invitations::{
    self, Invitation, InvitationError, InvitationStatus, InvitedScope, Issued, NewInvitation,
};
use crate::settings::profiles;
use crate::types::InvitationId;
use crate::web::AppState;

/// An invitation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvitationOut {
    /// Its id.
    pub id: Uuid,
    /// The customer it is for.
    pub customer_id: Uuid,
    /// That customer's name.
    pub customer_name: String,
    /// Who gets the link.
    pub admin_email: String,
    /// `delegated`, `application` or `customer_app`.
    pub consent_mode: String,
    /// Only the tenant verified for this domain may consent, if set.
    pub tenant_domain: Option<String>,
    /// `pending`, `opened`, `consented`, `declined`, `failed`, `revoked` or `expired`.
    pub status: String,
    /// Consent attempts so far.
    pub attempts: i32,
    /// The operator's reason for the last failure.
    pub last_error: Option<String>,
    /// The permission profile it asks for.
    pub permission_profile_id: Uuid,
    /// The tenant it connected, once consented.
    pub tenant_id: Option<Uuid>,
    /// The sync scope it sets for that tenant; null: everyone for a new tenant, a tenant
    /// already connected keeps its own.
    pub scope: Option<InvitationScope>,
    /// When the link stops working.
    pub expires_at: String,
    /// When it was created.
    pub created_at: String,
}

/// The sync scope an invitation sets for the tenant it connects; its admin reads it before
/// consenting.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvitationScope {
    /// `all` (sets nothing: everyone for a new tenant, a tenant already connected keeps its
    /// scope), `groups` (the members of the groups below, at any depth) or `app_assignments`
    /// (the users and groups assigned to the provider's enterprise app in the tenant).
    #[schema(example = "groups")]
    pub kind: String,
    /// Kind `groups`: 1 to 50 groups, each by exact display name or object id (at most 256
    /// characters). They resolve to groups of the tenant's copy after its first full sync; one
    /// that matches no group, or several, leaves the scope holding no one until an operator
    /// chooses the groups on the tenant.
    #[serde(default)]
    #[schema(example = json!(["Sales", "Support"]))]
    pub groups: Vec<String>,
}

impl From<InvitedScope> for InvitationScope {
    fn from(s: InvitedScope) -> Self {
        Self {
            kind: s.as_str().into(),
            groups: s.groups().to_vec(),
        }
    }
}

impl From<Invitation> for InvitationOut {
    fn from(i: Invitation) -> Self {
        let scope = i.scope().map(InvitationScope::from);
        Self {
            scope,
            id: i.id.into(),
            customer_id: i.customer_id.into(),
            customer_name: i.customer_name,
            admin_email: i.admin_email,
            consent_mode: i.consent_mode.as_str().into(),
            tenant_domain: i.tenant_domain,
            status: i.status.as_str().into(),
            attempts: i.attempts,
            last_error: i.last_error,
            permission_profile_id: i.permission_profile_id.into(),
            tenant_id: i.tenant_id.map(Uuid::from),
            expires_at: rfc3339(i.expires_at),
            created_at: rfc3339(i.created_at),
        }
    }
}

/// An invitation with its link: answered once, when created or resent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuedOut {
    /// The invitation.
    pub invitation: InvitationOut,
    /// The customer's link (only a hash is kept: it is not shown again).
    pub link: String,
}

impl From<Issued> for IssuedOut {
    fn from(i: Issued) -> Self {
        Self {
            invitation: i.invitation.into(),
            link: i.link.to_string(),
        }
    }
}

/// A new invitation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewInvitationIn {
    /// The customer: an existing one with this name (whatever the case), else a new one.
    #[schema(example = "Contoso")]
    pub customer: String,
    /// The customer's Global Administrator.
    #[schema(example = "admin@contoso.example")]
    pub admin_email: String,
    /// `delegated`, `application` or `customer_app`.
    #[schema(example = "delegated")]
    pub mode: String,
    /// Accept consent only from the tenant verified for this domain.
    #[schema(example = "contoso.example")]
    pub tenant_domain: Option<String>,
    /// How long the link works: `24h`, `7d`… (1 hour to 30 days; 7 days unless given).
    #[schema(example = "7d")]
    pub expires_in: Option<String>,
    /// A permission profile's id; the default profile unless given.
    #[schema(example = "00000000-0000-4000-8000-000000000001")]
    pub profile_id: Option<Uuid>,
    /// The sync scope for the tenant it connects; everyone unless given.
    pub scope: Option<InvitationScope>,
}

/// Filters and paging for invitations.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvitationQuery {
    /// Only invitations in this status.
    pub status: Option<String>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

impl From<InvitationError> for ApiError {
    fn from(e: InvitationError) -> Self {
        match e {
            InvitationError::NotFound => Self::NotFound("no such invitation".into()),
            InvitationError::WrongState { .. } => Self::Conflict(e.to_string()),
            InvitationError::Invalid(m) => Self::Unprocessable(m),
            InvitationError::Db(e) => e.into(),
        }
    }
}

/// Creates an invitation and queues its mail; answers the link once. With an
/// `Idempotency-Key` header, a retry of the same request gets the same answer (for a day)
/// instead of a second invitation.
#[utoipa::path(post, path = "/api/v1/invitations", tag = "invitations",
    request_body = NewInvitationIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe")),
    security(("api_token" = [])),
    responses((status = 201, body = IssuedOut), CommonProblems, ForbiddenProblem,
               (status = 409, body = Problem, content_type = "application/problem+json", description = "the key is in use by a request still running"),
               (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid field, or the key was used for another request")))]
pub async fn create(
    State(state): State<AppState>,
    writer: Writer,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewInvitationIn>,
) -> Result<Response, ApiError> {
    let key = idempotency::key(&headers)?;
    let request = serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.into()))?;
    if let Some(key) = &key {
        if let Some(replay) = idempotency::begin(&state, writer.0.token_id, key, &request).await? {
            return Ok(replay);
        }
    }
    let result = issue(&state, &writer, &body).await;
    match (&key, result) {
        (Some(key), Ok(issued)) => {
            idempotency::finish(&state, writer.0.token_id, key, StatusCode::CREATED, &issued)
                .await?;
            Ok((StatusCode::CREATED, Json(issued)).into_response())
        }
        (None, Ok(issued)) => Ok((StatusCode::CREATED, Json(issued)).into_response()),
        (Some(key), Err(e)) => {
            // Nothing was made: the same key may be used again once the request is fixed.
            idempotency::abandon(&state, writer.0.token_id, key).await?;
            Err(e)
        }
        (None, Err(e)) => Err(e),
    }
}

async fn issue(
    state: &AppState,
    writer: &Writer,
    body: &NewInvitationIn,
) -> Result<IssuedOut, ApiError> {
    let mut new = NewInvitation::parse(
        &body.customer,
        &body.admin_email,
        &body.mode,
        body.tenant_domain.as_deref(),
        body.expires_in.as_deref(),
    )?;
    if let Some(id) = body.profile_id {
        profiles::get(&state.db, id.into()).await?.ok_or_else(|| {
            ApiError::Unprocessable("profile_id names no permission profile".into())
        })?;
        new.profile = Some(id.into());
    }
    if let Some(scope) = &body.scope {
        new.scope = InvitedScope::parse(&scope.kind, &scope.groups)
            .map_err(|e| ApiError::Unprocessable(format!("scope: {e}")))?;
    }
    let live = state
        .live()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let issued = invitations::create(
        &state.db,
        state.invitation_context(&live),
        &new,
        &writer.actor(),
        None,
    )
    .await?;
    Ok(issued.into())
}

/// Lists invitations by id.
#[utoipa::path(get, path = "/api/v1/invitations", tag = "invitations", params(InvitationQuery),
    security(("api_token" = [])),
    responses((status = 200, body = Page<InvitationOut>), CommonProblems))]
pub async fn list(
    State(state): State<AppState>,
    _: Reader,
    ApiQuery(q): ApiQuery<InvitationQuery>,
) -> Result<Page<InvitationOut>, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(|s| InvitationStatus::parse(s).map_err(|e| ApiError::BadRequest(e.to_string())))
        .transpose()?;
    let limit = limit(q.limit)?;
    let after = cursor_uuid(q.cursor.as_deref())?;
    let rows = invitations::page_after(&state.db, status, after, limit).await?;
    Ok(Page::new(rows, limit, |i| i.id.to_string()))
}

fn invitation_id(id: &str) -> Result<InvitationId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound("no such invitation".into()))
}

/// One invitation.
#[utoipa::path(get, path = "/api/v1/invitations/{id}", tag = "invitations",
    params(("id" = Uuid, Path, description = "the invitation's id")),
    security(("api_token" = [])),
    responses((status = 200, body = InvitationOut), CommonProblems, NotFoundProblem))]
pub async fn get(
    State(state): State<AppState>,
    _: Reader,
    Path(id): Path<String>,
) -> Result<Json<InvitationOut>, ApiError> {
    Ok(Json(
        invitations::get(&state.db, invitation_id(&id)?)
            .await?
            .into(),
    ))
}

/// Issues a new link (the old one stops working) and mails it; answers the link once.
#[utoipa::path(post, path = "/api/v1/invitations/{id}/resend", tag = "invitations",
    params(("id" = Uuid, Path, description = "the invitation's id")),
    security(("api_token" = [])),
    responses((status = 200, body = IssuedOut), CommonProblems, ForbiddenProblem,
               NotFoundProblem, (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn resend(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
) -> Result<Json<IssuedOut>, ApiError> {
    let live = state
        .live()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let issued = invitations::resend(
        &state.db,
        state.invitation_context(&live),
        invitation_id(&id)?,
        &writer.actor(),
    )
    .await?;
    Ok(Json(issued.into()))
}

/// Revokes the invitation for good.
#[utoipa::path(post, path = "/api/v1/invitations/{id}/revoke", tag = "invitations",
    params(("id" = Uuid, Path, description = "the invitation's id")),
    security(("api_token" = [])),
    responses((status = 200, body = InvitationOut), CommonProblems, ForbiddenProblem,
               NotFoundProblem, (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn revoke(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
) -> Result<Json<InvitationOut>, ApiError> {
    let revoked = invitations::revoke(&state.db, invitation_id(&id)?, &writer.actor()).await?;
    Ok(Json(revoked.into()))
}
