//! Webhooks to the provider's endpoints, signed per the Standard Webhooks specification.
//!
//! Events are written to the event log ([`crate::events`]) in the same transaction as the change
//! they report ([`emit`]), and the statement appending them fans them out to an outbox: one row per
//! endpoint whose filter matches, carrying the event's id (the body's `id`, and `webhook-id`). [`delivery`] leases due rows, POSTs them
//! signed outside any transaction, and marks each under its lease: a delivered event is never
//! sent again; a failed one is retried with exponential backoff for more than a day, then marked
//! failed. Endpoint secrets are sealed at rest; a rotation keeps the old secret signing beside
//! the new one for [`ROTATION_OVERLAP`].

pub mod delivery;
pub mod egress;
pub mod signing;

pub use crate::events::{Event, EventType};

use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{self, Action, Actor};
use crate::crypto::Keyring;
use crate::events;
use crate::types::{Secret, WebhookId};

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: time::Duration = time::Duration::hours(24);

/// An endpoint, as the console lists it (its secrets stay sealed).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its id.
    pub id: WebhookId,
    /// Where events are POSTed.
    pub url: String,
    /// What it is for.
    pub description: String,
    /// Event types it receives; `*` for all.
    pub events: Vec<String>,
    /// Whether events are written for it.
    pub enabled: bool,
    /// Until when the previous secret still signs, after a rotation.
    pub previous_secret_until: Option<OffsetDateTime>,
    /// Who added it.
    pub created_by: String,
    /// When.
    pub created_at: OffsetDateTime,
}

impl Endpoint {
    /// Whether the endpoint receives events of `event_type`.
    pub fn wants(&self, event_type: EventType) -> bool {
        self.events
            .iter()
            .any(|e| e == "*" || e == event_type.name())
    }
}

/// Why an endpoint could not be added or changed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The input cannot be used; the message says why, in words for the form.
    #[error("{0}")]
    Invalid(String),
    /// No such endpoint.
    #[error("no such webhook endpoint")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Checks an endpoint URL: an http(s) URL with a host that webhooks may reach (see
/// [`egress`]: https to a public host, or to a host an admin allowed in `allowed`; http only to
/// one they allowed).
pub async fn check_url(raw: &str, allowed: &egress::Allowed) -> Result<url::Url, WebhookError> {
    let url = url::Url::parse(raw.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
        .ok_or_else(|| {
            WebhookError::Invalid("Enter the endpoint's full URL (https://…).".into())
        })?;
    egress::check(&url, allowed)
        .await
        .map_err(WebhookError::Invalid)?;
    Ok(url)
}

/// Checks an event filter: `*` or known event types, at least one.
pub fn check_events(events: &[String]) -> Result<Vec<String>, WebhookError> {
    let mut kept: Vec<String> = Vec::new();
    for e in events {
        let e = e.trim();
        if e == "*" {
            return Ok(vec!["*".into()]);
        }
        if EventType::parse(e).is_none() {
            return Err(WebhookError::Invalid(format!(
                "`{e}` is not an event type."
            )));
        }
        if !kept.iter().any(|k| k == e) {
            kept.push(e.to_owned());
        }
    }
    if kept.is_empty() {
        return Err(WebhookError::Invalid(
            "Choose at least one event, or all events.".into(),
        ));
    }
    Ok(kept)
}

/// Adds an endpoint and returns it with its secret (shown once).
pub async fn create(
    db: &PgPool,
    keys: &Keyring,
    url: &str,
    description: &str,
    events: &[String],
    actor: &Actor,
) -> Result<(Endpoint, Secret), WebhookError> {
    let url = check_url(url, &egress::allowed(db).await?).await?;
    let events = check_events(events)?;
    let description: String = description.trim().chars().take(200).collect();
    let secret = signing::new_secret();
    let mut tx = db.begin().await?;
    let endpoint = sqlx::query_as!(
        Endpoint,
        r#"insert into webhook_endpoints (url, description, events, secret_ciphertext, secret_key_id, created_by)
           values ($1, $2, $3, $4, $5, $6)
           returning id as "id: WebhookId", url, description, events, enabled, previous_secret_until,
                     created_by, created_at"#,
        url.as_str(),
        description,
        &events,
        keys.seal(secret.as_bytes()),
        keys.id(),
        actor.to_string(),
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        actor,
        Action::WebhookEndpointCreated,
        None,
        None,
        json!({ "endpoint_id": endpoint.id, "url": endpoint.url, "events": events }),
    )
    .await?;
    tx.commit().await?;
    Ok((endpoint, Secret::new(secret)))
}

/// Every endpoint, oldest first.
pub async fn list(db: &PgPool) -> Result<Vec<Endpoint>, sqlx::Error> {
    sqlx::query_as!(
        Endpoint,
        r#"select id as "id: WebhookId", url, description, events, enabled, previous_secret_until,
                created_by, created_at
         from webhook_endpoints order by created_at, id"#,
    )
    .fetch_all(db)
    .await
}

/// One endpoint.
pub async fn get(db: &PgPool, id: WebhookId) -> Result<Endpoint, WebhookError> {
    sqlx::query_as!(
        Endpoint,
        r#"select id as "id: WebhookId", url, description, events, enabled, previous_secret_until,
                  created_by, created_at
           from webhook_endpoints where id = $1"#,
        id as WebhookId,
    )
    .fetch_optional(db)
    .await?
    .ok_or(WebhookError::NotFound)
}

/// Replaces an endpoint's secret with a new one (returned, shown once); the old one keeps
/// signing beside it for [`ROTATION_OVERLAP`].
pub async fn rotate_secret(
    db: &PgPool,
    keys: &Keyring,
    id: WebhookId,
    actor: &Actor,
) -> Result<Secret, WebhookError> {
    let secret = signing::new_secret();
    let mut tx = db.begin().await?;
    let done = sqlx::query!(
        "update webhook_endpoints set
             previous_secret_ciphertext = secret_ciphertext, previous_secret_key_id = secret_key_id,
             previous_secret_until = now() + make_interval(secs => $4),
             secret_ciphertext = $2, secret_key_id = $3
         where id = $1",
        id as WebhookId,
        keys.seal(secret.as_bytes()),
        keys.id(),
        ROTATION_OVERLAP.as_seconds_f64(),
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(WebhookError::NotFound);
    }
    audit::record(
        &mut *tx,
        actor,
        Action::WebhookSecretRotated,
        None,
        None,
        json!({ "endpoint_id": id, "previous_signs_for_hours": ROTATION_OVERLAP.whole_hours() }),
    )
    .await?;
    tx.commit().await?;
    Ok(Secret::new(secret))
}

/// Changes to an endpoint: what is `None` stays as it is.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    /// Where events are POSTed (checked as at creation).
    pub url: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Event types it receives (checked as at creation).
    pub events: Option<Vec<String>>,
    /// Whether events are queued for it.
    pub enabled: Option<bool>,
}

/// Changes an endpoint's URL, description, filter or state, checked as at creation, and
/// audits what changed; returns it as it now is.
pub async fn update(
    db: &PgPool,
    id: WebhookId,
    changes: &Changes,
    actor: &Actor,
) -> Result<Endpoint, WebhookError> {
    let url = match &changes.url {
        Some(raw) => Some(check_url(raw, &egress::allowed(db).await?).await?),
        None => None,
    };
    let events = changes.events.as_deref().map(check_events).transpose()?;
    let description: Option<String> = changes
        .description
        .as_deref()
        .map(|d| d.trim().chars().take(200).collect());
    let mut tx = db.begin().await?;
    let endpoint = sqlx::query_as!(
        Endpoint,
        r#"update webhook_endpoints set url = coalesce($2, url), description = coalesce($3, description),
                  events = coalesce($4, events), enabled = coalesce($5, enabled)
           where id = $1
           returning id as "id: WebhookId", url, description, events, enabled, previous_secret_until,
                     created_by, created_at"#,
        id as WebhookId,
        url.as_ref().map(url::Url::as_str),
        description,
        events.as_deref(),
        changes.enabled,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(WebhookError::NotFound)?;
    audit::record(
        &mut *tx,
        actor,
        Action::WebhookEndpointChanged,
        None,
        None,
        json!({ "endpoint_id": id, "url": url.as_ref().map(url::Url::as_str),
                "description": description, "events": events, "enabled": changes.enabled }),
    )
    .await?;
    tx.commit().await?;
    Ok(endpoint)
}

/// Turns an endpoint on or off; while off no events are written for it.
pub async fn set_enabled(
    db: &PgPool,
    id: WebhookId,
    enabled: bool,
    actor: &Actor,
) -> Result<(), WebhookError> {
    let mut tx = db.begin().await?;
    let done = sqlx::query!(
        "update webhook_endpoints set enabled = $2 where id = $1",
        id as WebhookId,
        enabled
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(WebhookError::NotFound);
    }
    audit::record(
        &mut *tx,
        actor,
        Action::WebhookEndpointChanged,
        None,
        None,
        json!({ "endpoint_id": id, "enabled": enabled }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes an endpoint with its undelivered events and its delivery log.
pub async fn delete(db: &PgPool, id: WebhookId, actor: &Actor) -> Result<(), WebhookError> {
    let mut tx = db.begin().await?;
    let url = sqlx::query_scalar!(
        "delete from webhook_endpoints where id = $1 returning url",
        id as WebhookId
    )
    .fetch_optional(&mut *tx)
    .await?;
    let url = url.ok_or(WebhookError::NotFound)?;
    audit::record(
        &mut *tx,
        actor,
        Action::WebhookEndpointDeleted,
        None,
        None,
        json!({ "endpoint_id": id, "url": url }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Queues a `webhook.test` event for one endpoint, whatever its filter or state.
pub async fn send_test(db: &PgPool, id: WebhookId, actor: &Actor) -> Result<Uuid, WebhookError> {
    get(db, id).await?;
    let mut tx = db.begin().await?;
    let test = Event::new(
        EventType::WebhookTest,
        json!({ "endpoint_id": id, "message": "A test event from Gangway." }),
    );
    // Not in the event log (it concerns one endpoint): its id is its delivery's.
    let delivery = Uuid::new_v4();
    let delivery = sqlx::query_scalar!(
        "insert into webhook_deliveries (id, endpoint_id, event_type, payload) values ($1, $2, $3, $4)
         returning id",
        delivery,
        id as WebhookId,
        test.event_type.name(),
        envelope(delivery, &test),
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        actor,
        Action::WebhookTestSent,
        None,
        None,
        json!({ "endpoint_id": id }),
    )
    .await?;
    tx.commit().await?;
    Ok(delivery)
}

/// The body of an event that is not in the log: `{"id", "type", "timestamp", "data"}`, as
/// the log's fan-out writes those that are.
fn envelope(id: Uuid, event: &Event) -> Value {
    let now = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({ "id": id, "type": event.event_type.name(), "timestamp": now, "data": event.data })
}

/// Appends `event` to the event log in the caller's transaction; the same statement queues it
/// for every enabled endpoint whose filter matches (the log's fan-out trigger, migration 0055).
pub async fn emit(conn: &mut PgConnection, event: &Event) -> Result<(), sqlx::Error> {
    events::append(conn, event).await
}

/// Erases the directory data (users, groups, memberships) from the tenant's `directory.*`
/// events, in the event log and in deliveries delivered or not, in the caller's transaction
/// (offboarding's): each keeps its type, tenant and run and says its data was erased; one not
/// yet delivered is not sent any more. Returns how many deliveries were erased.
pub async fn erase_tenant_payloads(
    conn: &mut PgConnection,
    tenant: Uuid,
) -> Result<u64, sqlx::Error> {
    events::erase_tenant_data(&mut *conn, tenant).await?;
    let done = sqlx::query!(
        "update webhook_deliveries set
             payload = jsonb_set(payload, '{data}', jsonb_build_object(
                 'tenant_id', payload->'data'->'tenant_id', 'run_id', payload->'data'->'run_id',
                 'erased', 'the tenant was offboarded')),
             response_body = null,
             failed_at = case when delivered_at is null then coalesce(failed_at, now()) end,
             last_error = case when delivered_at is null and failed_at is null
                               then 'not sent: the tenant was offboarded and its data erased'
                               else last_error end
         where event_type like 'directory.%' and payload->'data'->>'tenant_id' = $1::text
           and not payload->'data' ? 'erased'",
        tenant as Uuid,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Queues `delivery`'s event again for the endpoint it went to: a new delivery with its own
/// attempts, the same body and `webhook-id`. An event whose data was erased is not sent again.
pub async fn send_again(
    db: &PgPool,
    endpoint: WebhookId,
    delivery: Uuid,
    actor: &Actor,
) -> Result<Uuid, WebhookError> {
    let mut tx = db.begin().await?;
    let queued = sqlx::query!(
        "insert into webhook_deliveries (endpoint_id, event_type, payload, event_id)
         select endpoint_id, event_type, payload, coalesce(event_id, id) from webhook_deliveries
         where id = $1 and endpoint_id = $2 and not coalesce(payload->'data' ? 'erased', false)
         returning id, event_type",
        delivery,
        endpoint as WebhookId,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(WebhookError::NotFound)?;
    let (id, event_type) = (queued.id, queued.event_type);
    audit::record(
        &mut *tx,
        actor,
        Action::WebhookDeliveryResent,
        None,
        None,
        json!({ "endpoint_id": endpoint, "delivery_id": delivery, "event_type": event_type }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// One line of an endpoint's delivery log.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    /// The delivery's id.
    pub id: Uuid,
    /// The event's `webhook-id` is `msg_` and the simple form of this (the first delivery's id).
    pub event_id: Uuid,
    /// The body sent.
    pub payload: Value,
    /// The start of the last answer's body.
    pub response_body: Option<String>,
    /// The event type.
    pub event_type: String,
    /// When the event was queued.
    pub created_at: OffsetDateTime,
    /// Attempts so far.
    pub attempts: i32,
    /// The last attempt's HTTP status, if it got one.
    pub last_status: Option<i32>,
    /// The last attempt's error, when it got no answer or not a 2xx.
    pub last_error: Option<String>,
    /// How long the last attempt took.
    pub last_duration_ms: Option<i32>,
    /// When it was delivered (a 2xx).
    pub delivered_at: Option<OffsetDateTime>,
    /// When it was given up.
    pub failed_at: Option<OffsetDateTime>,
    /// When it is tried next (while neither delivered nor failed).
    pub next_attempt_at: OffsetDateTime,
}

/// The newest `limit` deliveries of an endpoint.
pub async fn deliveries(
    db: &PgPool,
    endpoint_id: WebhookId,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query_as!(
        DeliveryRow,
        r#"select id, coalesce(event_id, id) as "event_id!", payload, response_body, event_type,
                  created_at, attempts, last_status, last_error, last_duration_ms,
                  delivered_at, failed_at, next_attempt_at
           from webhook_deliveries where endpoint_id = $1 order by created_at desc, id desc limit $2"#,
        endpoint_id as WebhookId,
        limit,
    )
    .fetch_all(db)
    .await
}
