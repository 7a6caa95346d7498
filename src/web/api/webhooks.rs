//! `/api/v1/webhooks`: the provider's webhook endpoints, as the console's Webhooks page manages
//! them — the same checks (an endpoint on an internal address is refused unless allow-listed)
//! and the same audit. Endpoint URLs and delivery bodies carry directory data, so every route
//! needs a write token, as the page needs an admin. The secret is answered once, at creation
//! and rotation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Writer;
use super::problem::{
    ApiError, ApiJson, ApiQuery, CommonProblems, ForbiddenProblem, NotFoundProblem, Problem,
};
use super::{Page, rfc3339};
use crate::types::WebhookId;
use crate::web::AppState;
use crate::webhooks::{self, DeliveryRow, Endpoint, WebhookError};

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Invalid(m) => Self::Unprocessable(m),
            WebhookError::NotFound => Self::NotFound("no such webhook endpoint".into()),
            WebhookError::Db(e) => e.into(),
        }
    }
}

/// An endpoint (its secret is never shown again).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    /// Its id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// What it is for.
    pub description: String,
    /// Event types it receives; `["*"]` for all.
    pub events: Vec<String>,
    /// Whether events are queued for it.
    pub enabled: bool,
    /// Until when the previous secret still signs beside the current one, after a rotation.
    pub previous_secret_until: Option<String>,
    /// Who added it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
}

impl From<Endpoint> for WebhookOut {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id.into(),
            url: e.url,
            description: e.description,
            events: e.events,
            enabled: e.enabled,
            previous_secret_until: e.previous_secret_until.map(rfc3339),
            created_by: e.created_by,
            created_at: rfc3339(e.created_at),
        }
    }
}

/// An endpoint to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookIn {
    /// Where events are POSTed: https to a public address, or an address an admin allowed
    /// (System Settings, "Webhooks may reach").
    #[schema(example = "https://hooks.provider.example/gangway")]
    pub url: String,
    /// What it is for (at most 200 characters kept).
    #[serde(default)]
    pub description: String,
    /// Event types it receives (see `GET /api/v1/events` for the list), or `["*"]` for all.
    #[schema(example = json!(["directory.user.created", "directory.user.deleted"]))]
    pub events: Vec<String>,
}

/// Changes to an endpoint: what is absent stays as it is.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// Where events are POSTed (checked as at creation).
    pub url: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Event types it receives, or `["*"]`.
    pub events: Option<Vec<String>>,
    /// Whether events are queued for it (none are while off).
    pub enabled: Option<bool>,
}

/// An endpoint with its signing secret, answered this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhookOut {
    /// The endpoint.
    pub webhook: WebhookOut,
    /// The `whsec_…` secret that signs its requests (Standard Webhooks); only sealed after this.
    pub secret: String,
}

/// A new secret, answered this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretOut {
    /// The `whsec_…` secret; the previous one keeps signing beside it for 24 hours.
    pub secret: String,
}

/// A queued delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedOut {
    /// The delivery's id (see `/deliveries`).
    pub delivery_id: Uuid,
}

/// One delivery of an event to the endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    /// The delivery's id.
    pub id: Uuid,
    /// The `webhook-id` it is sent under: the same for every retry and every send-again.
    pub webhook_id: String,
    /// The event type.
    pub event_type: String,
    /// The body sent.
    #[schema(value_type = Object)]
    pub request_body: serde_json::Value,
    /// The start of the last answer's body (4 KB at most).
    pub response_body: Option<String>,
    /// When it was queued.
    pub created_at: String,
    /// Attempts so far.
    pub attempts: i32,
    /// The last attempt's HTTP status.
    pub last_status: Option<i32>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// How long the last attempt took.
    pub last_duration_ms: Option<i32>,
    /// When it was delivered (a 2xx).
    pub delivered_at: Option<String>,
    /// When it was given up.
    pub failed_at: Option<String>,
    /// When it is tried next, while neither delivered nor given up.
    pub next_attempt_at: Option<String>,
}

impl From<DeliveryRow> for DeliveryOut {
    fn from(d: DeliveryRow) -> Self {
        let pending = d.delivered_at.is_none() && d.failed_at.is_none();
        Self {
            id: d.id,
            webhook_id: webhooks::delivery::message_id(d.event_id),
            event_type: d.event_type,
            request_body: d.payload,
            response_body: d.response_body,
            created_at: rfc3339(d.created_at),
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            last_duration_ms: d.last_duration_ms,
            delivered_at: d.delivered_at.map(rfc3339),
            failed_at: d.failed_at.map(rfc3339),
            next_attempt_at: pending.then(|| rfc3339(d.next_attempt_at)),
        }
    }
}

/// How many deliveries to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// The newest this many, 1 to 500 (100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// The endpoint `id` names, or 404.
fn webhook_id(id: &str) -> Result<WebhookId, ApiError> {
    id.trim().parse().map_err(|_| WebhookError::NotFound.into())
}

/// Lists the endpoints, oldest first (all of them: `next_cursor` is null).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhook endpoints",
    security(("api_token" = [])),
    responses((status = 200, body = Page<WebhookOut>), CommonProblems, ForbiddenProblem))]
pub async fn list(State(state): State<AppState>, _: Writer) -> Result<Page<WebhookOut>, ApiError> {
    let rows = webhooks::list(&state.db).await?;
    Ok(Page {
        items: rows.into_iter().map(WebhookOut::from).collect(),
        next_cursor: None,
    })
}

/// Adds an endpoint; its secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhook endpoints",
    request_body = NewWebhookIn,
    security(("api_token" = [])),
    responses((status = 201, body = CreatedWebhookOut), CommonProblems, ForbiddenProblem,
               (status = 422, body = Problem, content_type = "application/problem+json",
                description = "not a usable URL (an internal address not allow-listed included), or an unknown event type")))]
pub async fn create(
    State(state): State<AppState>,
    writer: Writer,
    ApiJson(body): ApiJson<NewWebhookIn>,
) -> Result<(StatusCode, Json<CreatedWebhookOut>), ApiError> {
    let (endpoint, secret) = webhooks::create(
        &state.db,
        &state.cfg.keys,
        &body.url,
        &body.description,
        &body.events,
        &writer.actor(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhookOut {
            webhook: endpoint.into(),
            secret: secret.expose().to_owned(),
        }),
    ))
}

/// One endpoint.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhook endpoints",
    params(("id" = Uuid, Path, description = "the endpoint's id")),
    security(("api_token" = [])),
    responses((status = 200, body = WebhookOut), CommonProblems, ForbiddenProblem, NotFoundProblem))]
pub async fn get(
    State(state): State<AppState>,
    _: Writer,
    Path(id): Path<String>,
) -> Result<Json<WebhookOut>, ApiError> {
    Ok(Json(
        webhooks::get(&state.db, webhook_id(&id)?).await?.into(),
    ))
}

/// Changes an endpoint's URL, description, event filter or state.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhook endpoints",
    params(("id" = Uuid, Path, description = "the endpoint's id")),
    request_body = WebhookPatch,
    security(("api_token" = [])),
    responses((status = 200, body = WebhookOut), CommonProblems, ForbiddenProblem, NotFoundProblem,
               (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid field")))]
pub async fn update(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<WebhookPatch>,
) -> Result<Json<WebhookOut>, ApiError> {
    let changes = webhooks::Changes {
        url: patch.url,
        description: patch.description,
        events: patch.events,
        enabled: patch.enabled,
    };
    let endpoint = webhooks::update(&state.db, webhook_id(&id)?, &changes, &writer.actor()).await?;
    Ok(Json(endpoint.into()))
}

/// Deletes an endpoint with its undelivered events and its delivery log.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhook endpoints",
    params(("id" = Uuid, Path, description = "the endpoint's id")),
    security(("api_token" = [])),
    responses((status = 204, description = "deleted"), CommonProblems, ForbiddenProblem, NotFoundProblem))]
pub async fn delete(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    webhooks::delete(&state.db, webhook_id(&id)?, &writer.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the endpoint's secret; the new one is in this answer only, and the old one keeps
/// signing beside it for 24 hours.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhook endpoints",
    params(("id" = Uuid, Path, description = "the endpoint's id")),
    security(("api_token" = [])),
    responses((status = 200, body = SecretOut), CommonProblems, ForbiddenProblem, NotFoundProblem))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
) -> Result<Json<SecretOut>, ApiError> {
    let secret = webhooks::rotate_secret(
        &state.db,
        &state.cfg.keys,
        webhook_id(&id)?,
        &writer.actor(),
    )
    .await?;
    Ok(Json(SecretOut {
        secret: secret.expose().to_owned(),
    }))
}

/// Queues a `webhook.test` event for the endpoint, whatever its filter or state.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhook endpoints",
    params(("id" = Uuid, Path, description = "the endpoint's id")),
    security(("api_token" = [])),
    responses((status = 202, body = QueuedOut), CommonProblems, ForbiddenProblem, NotFoundProblem))]
pub async fn send_test(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<QueuedOut>), ApiError> {
    let delivery_id = webhooks::send_test(&state.db, webhook_id(&id)?, &writer.actor()).await?;
    Ok((StatusCode::ACCEPTED, Json(QueuedOut { delivery_id })))
}

/// The endpoint's newest deliveries, with the body sent and the start of the answer.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhook endpoints",
    params(("id" = Uuid, Path, description = "the endpoint's id"), DeliveriesQuery),
    security(("api_token" = [])),
    responses((status = 200, body = Page<DeliveryOut>), CommonProblems, ForbiddenProblem, NotFoundProblem))]
pub async fn deliveries(
    State(state): State<AppState>,
    _: Writer,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Page<DeliveryOut>, ApiError> {
    let id = webhook_id(&id)?;
    let limit = super::limit(q.limit)?;
    webhooks::get(&state.db, id).await?;
    let rows = webhooks::deliveries(&state.db, id, limit).await?;
    Ok(Page {
        items: rows.into_iter().map(DeliveryOut::from).collect(),
        next_cursor: None,
    })
}

/// Queues a delivery's event again for the endpoint: a new delivery with its own attempts, the
/// same body and `webhook-id` (an event whose data was erased at offboarding is not sent again).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/send-again", tag = "webhook endpoints",
    params(("id" = Uuid, Path, description = "the endpoint's id"),
           ("delivery_id" = Uuid, Path, description = "the delivery's id")),
    security(("api_token" = [])),
    responses((status = 202, body = QueuedOut), CommonProblems, ForbiddenProblem, NotFoundProblem))]
pub async fn send_again(
    State(state): State<AppState>,
    writer: Writer,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<(StatusCode, Json<QueuedOut>), ApiError> {
    let delivery = Uuid::parse_str(delivery.trim()).map_err(|_| WebhookError::NotFound)?;
    let delivery_id =
        webhooks::send_again(&state.db, webhook_id(&id)?, delivery, &writer.actor()).await?;
    Ok((StatusCode::ACCEPTED, Json(QueuedOut { delivery_id })))
}
