//! A tenant's consent against its permission profile: the last check's findings on the
//! tenant's page, "Check consent now", and the re-consent invitation when something is missing.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Redirect;
use axum::routing::post;

use super::super::{When, parse_id};
use crate::consent::drift::{self, DriftError};
use crate::types::TenantRecordId;
use crate::web::AppState;
use crate::web::error::{Error, Result};
use crate::web::paths;
use crate::web::session::AdminOperator;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::CONSENT_CHECK_TENANT, post(check))
}

/// The consent block of a tenant's page.
pub(in crate::web::console) struct ConsentCard {
    /// "consent drifted: Group.Read.All missing", or `None`.
    pub summary: Option<String>,
    /// Permissions the profile needs that the tenant does not grant.
    pub missing: Vec<String>,
    /// Permissions granted beyond the profile.
    pub extra: Vec<String>,
    /// When it was last checked (`None`: never).
    pub checked: Option<When>,
    /// Whether a new consent is the fix.
    pub needs_consent: bool,
    /// POST: check now.
    pub check_url: String,
    /// POST: send the re-consent invitation.
    pub reconsent_url: String,
}

impl ConsentCard {
    /// The card of tenant `id` from its last check.
    pub(super) async fn of(db: &sqlx::PgPool, id: TenantRecordId) -> Result<Self> {
        let last = drift::last(db, id.into()).await?;
        let (drift, at) = match last {
            Some((drift, at)) => (Some(drift), Some(at)),
            None => (None, None),
        };
        Ok(Self {
            summary: drift.as_ref().and_then(|d| d.summary()),
            missing: drift
                .as_ref()
                .map(|d| d.missing.clone())
                .unwrap_or_default(),
            extra: drift.as_ref().map(|d| d.extra.clone()).unwrap_or_default(),
            checked: at.map(When::new),
            needs_consent: drift.as_ref().is_some_and(|d| d.needs_consent()),
            check_url: paths::consent_check_tenant(id),
            reconsent_url: paths::reconsent_tenant(id),
        })
    }
}

/// "Check consent now".
async fn check(
    State(state): State<AppState>,
    AdminOperator(_): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id: TenantRecordId = parse_id(&id)?;
    match state.consent_checker().check(id.into()).await {
        Ok(_) => Ok(Redirect::to(&format!(
            "{}?done=consent_checked#consent",
            paths::tenant(id)
        ))),
        Err(DriftError::NotChecked) => Err(Error::BadRequest(
            "Only active tenants that consented to the provider's app are checked.".into(),
        )),
        Err(DriftError::Db(e)) => Err(e.into()),
        Err(DriftError::Failed(why)) => Err(Error::Internal(anyhow::anyhow!(why))),
    }
}
