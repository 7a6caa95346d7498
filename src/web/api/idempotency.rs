//! `Idempotency-Key` on creating POSTs: the first answer for a (caller, key) is kept for a day,
//! sealed (it may carry a link), and replayed to a retry of the same request; the same key
//! with another request is refused. A placeholder row taken before the work makes two
//! concurrent retries create one thing.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use uuid::Uuid;

use super::problem::ApiError;
use crate::crypto::sha256;
use crate::web::AppState;

/// The request's key, if it sent one.
pub fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| (1..=200).contains(&k.len()) && k.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1 to 200 visible ASCII characters".into())
        })?;
    Ok(Some(key.to_owned()))
}

/// Claims `key` for this request, or answers for it: the kept answer to the same request,
/// 422 for another request, 409 while the first one is still running.
pub async fn begin(
    state: &AppState,
    caller: Uuid,
    key: &str,
    request: &[u8],
) -> Result<Option<Response>, ApiError> {
    let hash = sha256(request);
    sqlx::query!(
        "delete from api_idempotency where caller_id = $1 and created_at < now() - interval '1 day'",
        caller,
    )
    .execute(&state.db)
    .await?;
    let claimed = sqlx::query!(
        "insert into api_idempotency (caller_id, key, request_sha256) values ($1, $2, $3)
         on conflict do nothing",
        caller,
        key,
        hash,
    )
    .execute(&state.db)
    .await?
    .rows_affected()
        == 1;
    if claimed {
        return Ok(None);
    }
    let kept = sqlx::query!(
        "select request_sha256, status, response_ciphertext, response_key_id
         from api_idempotency where caller_id = $1 and key = $2",
        caller,
        key,
    )
    .fetch_one(&state.db)
    .await?;
    if kept.request_sha256 != hash {
        return Err(ApiError::Unprocessable(
            "This Idempotency-Key was used for a different request.".into(),
        ));
    }
    let (Some(sealed), Some(key_id)) = (kept.response_ciphertext, kept.response_key_id) else {
        return Err(ApiError::Conflict(
            "A request with this Idempotency-Key is still being handled; retry shortly.".into(),
        ));
    };
    let body = state
        .cfg
        .keys
        .open(&key_id, &sealed)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let body: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::Internal(e.into()))?;
    let status = StatusCode::from_u16(kept.status as u16).unwrap_or(StatusCode::OK);
    Ok(Some((status, Json(body)).into_response()))
}

/// Keeps the answer to the claimed key.
pub async fn finish(
    state: &AppState,
    caller: Uuid,
    key: &str,
    status: StatusCode,
    body: &impl Serialize,
) -> Result<(), ApiError> {
    let body = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.into()))?;
    sqlx::query!(
        "update api_idempotency set status = $3, response_ciphertext = $4, response_key_id = $5
         where caller_id = $1 and key = $2",
        caller,
        key,
        i32::from(status.as_u16()),
        state.cfg.keys.seal(&body),
        state.cfg.keys.id(),
    )
    .execute(&state.db)
    .await?;
    Ok(())
}

/// Gives the key back: the request made nothing.
pub async fn abandon(state: &AppState, caller: Uuid, key: &str) -> Result<(), ApiError> {
    sqlx::query!(
        "delete from api_idempotency where caller_id = $1 and key = $2 and status = 0",
        caller,
        key,
    )
    .execute(&state.db)
    .await?;
    Ok(())
}
