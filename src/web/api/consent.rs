//! `/api/v1/tenants/{id}/consent`: what a tenant grants the provider's app against its
//! permission profile — the last check, or a check now.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Reader, Writer};
use super::problem::{ApiError, CommonProblems, ForbiddenProblem, NotFoundProblem, Problem};
use super::rfc3339;
use super::tenants::tenant;
use crate::consent::drift::{self, Drift, DriftError};
use crate::web::AppState;

impl From<DriftError> for ApiError {
    fn from(e: DriftError) -> Self {
        match e {
            DriftError::NotChecked => Self::Conflict(e.to_string()),
            DriftError::Failed(why) => Self::Internal(anyhow::anyhow!(why)),
            DriftError::Db(e) => e.into(),
        }
    }
}

/// What a tenant grants the provider's app, against its permission profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentOut {
    /// Whether anything differs from the profile.
    pub drifted: bool,
    /// "consent drifted: Group.Read.All missing", or null.
    pub summary: Option<String>,
    /// The provider's enterprise application in the tenant: `enabled`, `disabled` or `missing`.
    pub service_principal: String,
    /// Permissions the profile needs that the tenant does not grant.
    pub missing: Vec<String>,
    /// Permissions granted beyond the profile.
    pub extra: Vec<String>,
    /// Where it was read: `graph`, `token` (Graph refused the reads) or `refusal` (Entra ID
    /// issued no token).
    pub source: String,
    /// When it was read (RFC 3339).
    pub checked_at: String,
}

/// A unit enum's wire word.
fn word<T: Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn out(drift: &Drift, at: time::OffsetDateTime) -> ConsentOut {
    ConsentOut {
        drifted: drift.drifted(),
        summary: drift.summary(),
        service_principal: word(drift.service_principal),
        missing: drift.missing.clone(),
        extra: drift.extra.clone(),
        source: word(drift.source),
        checked_at: rfc3339(at),
    }
}

/// The last consent check of the tenant (daily, or on demand).
#[utoipa::path(get, path = "/api/v1/tenants/{id}/consent", tag = "tenants",
    params(("id" = uuid::Uuid, Path, description = "Gangway's tenant id")),
    security(("api_token" = [])),
    responses((status = 200, body = ConsentOut), CommonProblems, NotFoundProblem))]
pub async fn last(
    State(state): State<AppState>,
    _: Reader,
    Path(id): Path<String>,
) -> Result<Json<ConsentOut>, ApiError> {
    let tenant = tenant(&state, &id).await?;
    let (drift, at) = drift::last(&state.db, tenant.id.into())
        .await?
        .ok_or_else(|| ApiError::NotFound("this tenant's consent was not checked yet".into()))?;
    Ok(Json(out(&drift, at)))
}

/// Checks now what the tenant grants the provider's app.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/consent", tag = "tenants",
    params(("id" = uuid::Uuid, Path, description = "Gangway's tenant id")),
    security(("api_token" = [])),
    responses((status = 200, body = ConsentOut), CommonProblems, ForbiddenProblem, NotFoundProblem,
              (status = 409, body = Problem, content_type = "application/problem+json", description = "not an active tenant that consented to the provider's app")))]
pub async fn check(
    State(state): State<AppState>,
    _: Writer,
    Path(id): Path<String>,
) -> Result<Json<ConsentOut>, ApiError> {
    let tenant = tenant(&state, &id).await?;
    let drift = state.consent_checker().check(tenant.id.into()).await?;
    Ok(Json(out(&drift, time::OffsetDateTime::now_utc())))
}
