//! Where Graph delivers change and lifecycle notifications. Public and unauthenticated: each
//! notification proves itself by its subscription's `clientState` (checked in the directory
//! layer); deliveries are rate-limited per client and capped in size, answered 202 at once
//! (Graph wants an answer within 3 s) and never logged with their `clientState`. The validation
//! request is answered with its token as `text/plain`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use super::AppState;
use super::client_addr::ClientAddr;
use super::paths;
use crate::directory::subscriptions::{self, Notification};

/// The largest delivery taken: Graph batches notifications, each well under 1 KiB.
const MAX_BODY: usize = 1024 * 1024;
/// The longest validation token echoed back (Graph's are about 100 characters).
const MAX_TOKEN: usize = 1024;

/// The notification routes (outside sessions and CSRF: Graph is the caller).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::GRAPH_NOTIFICATIONS, post(delivered))
        .route(paths::GRAPH_LIFECYCLE, post(delivered))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

#[derive(Deserialize)]
struct Validation {
    #[serde(rename = "validationToken")]
    validation_token: Option<String>,
}

#[derive(Deserialize)]
struct Delivery {
    value: Vec<Notification>,
}

/// A delivery, or the validation request Graph sends when a subscription is created.
async fn delivered(
    State(state): State<AppState>,
    client: ClientAddr,
    Query(validation): Query<Validation>,
    body: Bytes,
) -> Response {
    if let Err(secs) = state.limits.notifications.wait_secs(client) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
        )
            .into_response();
    }
    if let Some(token) = validation.validation_token {
        if token.len() > MAX_TOKEN || token.chars().any(char::is_control) {
            return StatusCode::BAD_REQUEST.into_response();
        }
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            token,
        )
            .into_response();
    }
    let Ok(delivery) = serde_json::from_slice::<Delivery>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let accepted = match subscriptions::accept(&state.db, &delivery.value).await {
        Ok(accepted) => accepted,
        Err(e) => {
            tracing::error!(error = %e, "a change notification could not be taken");
            // Graph retries a delivery that failed.
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    for tenant in accepted.reauthorize {
        // Reauthorizing calls Graph: after the answer, not before it.
        let keeper = state.subscriptions();
        tokio::spawn(async move {
            let _ = keeper.keep(tenant).await;
        });
    }
    StatusCode::ACCEPTED.into_response()
}
