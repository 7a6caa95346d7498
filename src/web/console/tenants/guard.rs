//! A tenant's deletion guard on its page: the deletions held for an operator (approve or
//! reject, admins) and the tenant's own thresholds.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};
use serde::Deserialize;

use super::super::{When, parse_id};
use super::detail_page;
use crate::audit::Actor;
use crate::directory::guard::{self, GuardError, Held, Thresholds};
use crate::types::TenantRecordId;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::paths;
use crate::web::session::AdminOperator;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::APPROVE_DELETIONS, post(approve))
        .route(paths::REJECT_DELETIONS, post(reject))
        .route(paths::DELETION_GUARD, post(set_thresholds))
}

/// The guard as the tenant's page shows it.
pub(super) struct GuardCard {
    pub(super) held: Held,
    pub(super) since: Option<When>,
    pub(super) thresholds: Thresholds,
    /// The thresholds form as typed (empty: the global one).
    pub(super) form: ThresholdsForm,
    /// Why the form was refused.
    pub(super) error: Option<String>,
    pub(super) approve_url: String,
    pub(super) reject_url: String,
    pub(super) form_url: String,
}

impl GuardCard {
    pub(super) fn new(id: TenantRecordId, held: Held, thresholds: Thresholds) -> Self {
        let own = |n: Option<i32>| n.map(|n| n.to_string()).unwrap_or_default();
        Self {
            since: held.since.map(When::new),
            held,
            form: ThresholdsForm {
                percent: own(thresholds.own_percent),
                objects: own(thresholds.own_objects),
            },
            thresholds,
            error: None,
            approve_url: paths::approve_deletions(id),
            reject_url: paths::reject_deletions(id),
            form_url: paths::deletion_guard(id),
        }
    }
}

/// The thresholds form: each field empty for "the global one".
#[derive(Deserialize, Clone, Default)]
#[serde(default)]
pub(super) struct ThresholdsForm {
    pub(super) percent: String,
    pub(super) objects: String,
}

impl ThresholdsForm {
    /// The thresholds typed, or what is wrong with them.
    fn parse(&self) -> std::result::Result<(Option<i64>, Option<i64>), String> {
        let field = |raw: &str, what: &str| -> std::result::Result<Option<i64>, String> {
            let raw = raw.trim();
            if raw.is_empty() {
                return Ok(None);
            }
            raw.parse()
                .map(Some)
                .map_err(|_| format!("Enter the {what} as a whole number, or leave it empty for the global one: “{raw}” is not one."))
        };
        let (percent, objects) = (
            field(&self.percent, "share")?,
            field(&self.objects, "number of objects")?,
        );
        guard::check_thresholds(percent, objects).map_err(|e| format!("The {e}."))?;
        Ok((percent, objects))
    }
}

/// Where the page goes after a decision: back to the tenant, saying what happened.
fn done(id: TenantRecordId, what: &str) -> Redirect {
    Redirect::to(&format!("{}?done={what}", paths::tenant(id)))
}

/// Nothing held (decided in another tab, or released by a round) is not an error to show
/// as one: the page says so.
fn decided(
    id: TenantRecordId,
    result: std::result::Result<Held, GuardError>,
    what: &str,
) -> Result<Redirect> {
    match result {
        Ok(_) => Ok(done(id, what)),
        Err(GuardError::NothingHeld) => Ok(done(id, "nothing_held")),
        Err(GuardError::NotFound) => Err(Error::NotFound),
        Err(e) => Err(Error::Internal(e.into())),
    }
}

async fn approve(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id: TenantRecordId = parse_id(&id)?;
    let result = guard::approve(&state.db, id.into(), &Actor::Operator(operator.email)).await;
    decided(id, result, "deletions_approved")
}

async fn reject(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id: TenantRecordId = parse_id(&id)?;
    let result = guard::reject(&state.db, id.into(), &Actor::Operator(operator.email)).await;
    decided(id, result, "deletions_rejected")
}

async fn set_thresholds(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    Form(form): Form<ThresholdsForm>,
) -> Result<Response> {
    let id: TenantRecordId = parse_id(&id)?;
    match form.parse() {
        Ok((percent, objects)) => {
            let actor = Actor::Operator(operator.email);
            match guard::set_thresholds(&state.db, id.into(), percent, objects, &actor).await {
                Ok(_) => Ok(done(id, "guard_saved").into_response()),
                Err(GuardError::NotFound) => Err(Error::NotFound),
                Err(e) => Err(Error::Internal(e.into())),
            }
        }
        Err(message) => {
            let mut page = detail_page(&state, &operator, csrf, id, None, None).await?;
            page.guard.form = form;
            page.guard.error = Some(message);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}
