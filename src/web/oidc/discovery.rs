//! The discovery document and the JWKS: public, cacheable for a short while.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::cors;
use crate::signin::{keys, provider};
use crate::web::AppState;
use crate::web::error::Result;

/// Caches may keep the documents this long: short, so a rotation's next key is seen well
/// before it signs.
const CACHE: &str = "public, max-age=300";

/// `/.well-known/openid-configuration`.
pub(super) async fn discovery(State(state): State<AppState>) -> Result<Response> {
    let metadata = provider::metadata(&super::endpoints(&state.cfg))?;
    Ok(cors::open(
        ([(header::CACHE_CONTROL, CACHE)], Json(metadata)).into_response(),
    ))
}

/// The JWKS: every published key, the next one included.
pub(super) async fn jwks(State(state): State<AppState>) -> Result<Response> {
    let keys = keys::load(&state.db, &state.cfg.keys).await?;
    Ok(cors::open(
        ([(header::CACHE_CONTROL, CACHE)], Json(keys.jwks())).into_response(),
    ))
}
