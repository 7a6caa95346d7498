//! `/api/v1/settings`: the System Settings as JSON, read and changed with an admin's write
//! token, validated and audited as in the console.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use super::auth::Writer;
use super::problem::{ApiError, ApiJson, CommonProblems, ForbiddenProblem, Problem};
use crate::settings::code::{self, Document};
use crate::settings::{self, SettingsError};
use crate::web::AppState;
use crate::web::session_store;

impl From<SettingsError> for ApiError {
    fn from(e: SettingsError) -> Self {
        match e {
            SettingsError::Invalid(_) | SettingsError::Unreadable(_) => {
                Self::Unprocessable(code::explain(&e))
            }
            SettingsError::Db(e) => e.into(),
            other => Self::Internal(other.into()),
        }
    }
}

/// Every setting but the write-only client secret (the export `gangway settings export`
/// writes). Settings are an admin's: a write token is needed to read them too.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings",
    security(("api_token" = [])),
    responses((status = 200, body = Value, description = "`{\"format\": \"gangway-settings/1\", \"settings\": {name: value}}`"),
               CommonProblems, ForbiddenProblem))]
pub async fn get(State(state): State<AppState>, _: Writer) -> Result<Json<Document>, ApiError> {
    let settings = settings::load(&state.db, &state.cfg.keys).await?;
    Ok(Json(Document::of(&settings)))
}

/// Changes the settings named in the body (`{name: value}`; others stay), all or nothing, each
/// change audited. `client_secret` may be set, never read; `null` clears an optional value.
#[utoipa::path(patch, path = "/api/v1/settings", tag = "settings",
    request_body(content = Value, description = "`{\"provider_name\": \"Acme\", \"sso_enabled\": true}`"),
    security(("api_token" = [])),
    responses((status = 200, body = Value, description = "the settings after the change"),
               CommonProblems, ForbiddenProblem,
               (status = 422, body = Problem, content_type = "application/problem+json", description = "each refused value, by name; nothing was saved")))]
pub async fn patch(
    State(state): State<AppState>,
    writer: Writer,
    ApiJson(body): ApiJson<BTreeMap<String, Value>>,
) -> Result<Json<Document>, ApiError> {
    let edits = code::edits(&body)?;
    session_store::save_settings(&state.db, &state.cfg.keys, &edits, &writer.actor()).await?;
    state.settings.invalidate();
    get(State(state), writer).await
}
