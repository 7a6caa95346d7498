//! `/api/v1/events`: the event stream — every event Gangway emits, in a stable order, by an
//! opaque cursor a consumer saves and resumes from (see [`crate::events`] for why the order
//! holds while events are being written).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Reader;
use super::problem::{ApiError, ApiQuery, CommonProblems, Problem};
use super::rfc3339;
use crate::events::{self, Cursor, EventType, Filter, Logged, ReadError};
use crate::web::AppState;

/// Which events, from where.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The `next` (or an event's `cursor`) of an earlier read; absent: from the oldest event kept.
    pub after: Option<String>,
    /// Only these event types, comma-separated (e.g. `directory.user.created,directory.user.deleted`).
    pub types: Option<String>,
    /// Only events about this tenant (Gangway's tenant id).
    pub tenant: Option<Uuid>,
    /// Events per read, 1 to 1000 (100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The wire names of [`EventType`], as an OpenAPI `enum`.
fn event_type_schema() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(EventType::SUBSCRIBABLE.iter().map(|t| t.name())))
        .description(Some("The event type."))
        .build()
}

/// One event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    /// Its id: the `id` of the webhook body that delivers it too (`webhook-id` is `msg_` and
    /// its 32 hex digits).
    pub id: Uuid,
    /// What happened.
    #[serde(rename = "type")]
    #[schema(schema_with = event_type_schema)]
    pub event_type: String,
    /// The tenant it concerns, if any.
    pub tenant_id: Option<Uuid>,
    /// When the change was made (RFC 3339).
    pub occurred_at: String,
    /// What it carries: the same as the webhook body's `data` (see the OpenAPI `webhooks`).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Pass as `after` to read on after this event.
    pub cursor: String,
}

impl From<Logged> for EventOut {
    fn from(e: Logged) -> Self {
        Self {
            id: e.id,
            event_type: e.event_type,
            tenant_id: e.tenant_id,
            occurred_at: rfc3339(e.occurred_at),
            data: e.data,
            cursor: e.cursor.encode(),
        }
    }
}

/// A read of the stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    /// The events, oldest first.
    pub items: Vec<EventOut>,
    /// Pass as `after` next time: after the last item, or where this read started when there
    /// was none (then poll again later).
    pub next: String,
}

/// Reads the event stream after a cursor: the same events in the same order on every read.
/// An event becomes readable once every transaction that began before it was written has
/// ended, so a saved cursor never skips one committed later. Events are kept for the event
/// retention period (30 days unless set otherwise); a cursor older than that gets 410.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    security(("api_token" = [])),
    responses((status = 200, body = EventsPage), CommonProblems,
               (status = 410, body = Problem, content_type = "application/problem+json",
                description = "the cursor is older than the retention period: events after it were deleted")))]
pub async fn list(
    State(state): State<AppState>,
    _: Reader,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Json<EventsPage>, ApiError> {
    let limit = match q.limit {
        None => 100,
        Some(n @ 1..=events::MAX_LIMIT) => n,
        Some(_) => return Err(ApiError::BadRequest("limit must be from 1 to 1000".into())),
    };
    let after = q
        .after
        .as_deref()
        .map(|raw| {
            Cursor::decode(raw).ok_or_else(|| {
                ApiError::BadRequest(
                    "after is not a cursor this API gave (pass a read's `next`)".into(),
                )
            })
        })
        .transpose()?;
    let mut filter = Filter {
        tenant: q.tenant,
        ..Filter::default()
    };
    for name in q.types.iter().flat_map(|t| t.split(',')).map(str::trim) {
        if name.is_empty() {
            continue;
        }
        let known = EventType::parse(name)
            .ok_or_else(|| ApiError::BadRequest(format!("`{name}` is not an event type")))?;
        filter.types.push(known);
    }
    let rows = events::read(&state.db, after, &filter, limit)
        .await
        .map_err(|e| match e {
            ReadError::Expired => ApiError::Gone(
                "This cursor is older than the event retention period: events after it were \
                 deleted. Read again from the start (without `after`) and reconcile."
                    .into(),
            ),
            ReadError::Db(e) => e.into(),
        })?;
    let next = rows
        .last()
        .map(|e| e.cursor)
        .or(after)
        .unwrap_or_default()
        .encode();
    Ok(Json(EventsPage {
        items: rows.into_iter().map(EventOut::from).collect(),
        next,
    }))
}
