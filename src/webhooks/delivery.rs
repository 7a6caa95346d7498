//! Delivering queued webhook events: leased in a short committed transaction (`FOR UPDATE SKIP
//! LOCKED`), POSTed signed outside any transaction with a 10 s timeout, then marked under the
//! lease. A 2xx marks the event delivered for good; anything else retries it with exponential
//! backoff and jitter (30 s doubling to 2 h) until [`MAX_ATTEMPTS`] (more than a day), then it
//! is marked failed. Every attempt is logged with its status code or error and duration; the
//! delivery keeps the last answer's body, its first [`RESPONSE_CAP`] bytes.
//! Each round reads the allow-list again; an address it refuses is never connected to
//! ([`egress`]).

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use tokio_util::sync::CancellationToken;

use super::{egress, signing};
use crate::background::{self, Activity, BackgroundTask, Backoff, Batch, Leased};
use crate::crypto::Keyring;

/// How many events one round claims.
const BATCH: i64 = 20;
/// How long a claim holds before another worker may take the event over.
const LEASE: Duration = Duration::from_secs(120);
/// The longest one POST may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts before an event is marked failed: with the backoff below they span more than 24 h.
pub const MAX_ATTEMPTS: i32 = 20;
/// How much of a receiver's answer the delivery log keeps.
pub const RESPONSE_CAP: usize = 4096;

/// A leased event with its endpoint.
pub struct Due {
    id: Uuid,
    event_id: Option<Uuid>,
    payload: serde_json::Value,
    attempts: i32,
    leased_until: OffsetDateTime,
    url: String,
    secret_ciphertext: Vec<u8>,
    secret_key_id: String,
    previous_secret_ciphertext: Option<Vec<u8>>,
    previous_secret_key_id: Option<String>,
    previous_secret_until: Option<OffsetDateTime>,
}

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Events an endpoint accepted (2xx).
    pub delivered: usize,
    /// Attempts that failed and wait for a retry.
    pub retried: usize,
    /// Events given up after their last attempt.
    pub failed: usize,
}

/// The wait before the attempt after each failed one: 30 s doubling, capped at 2 h, plus up to
/// 20 % jitter (never less, so the schedule spans at least its nominal length).
pub const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(30),
    cap: Duration::from_secs(7_200),
    jitter: (1.0, 1.2),
};
/// How often the delivery task looks for due events.
pub const PERIOD: Duration = Duration::from_secs(2);

/// How one POST went.
pub struct Attempt {
    status: Option<i32>,
    error: Option<String>,
    answer: Option<String>,
    ms: i32,
    /// Whether this was the event's last attempt.
    last: bool,
}

/// Webhook deliveries as a kind of leased work.
struct Deliveries<'a> {
    keys: &'a Keyring,
    http: &'a Client,
}

impl Leased for Deliveries<'_> {
    type Item = Due;
    type Done = Attempt;
    type Error = sqlx::Error;

    fn describe(&self, n: usize) -> String {
        format!(
            "delivering {}",
            crate::format::count(i64::try_from(n).unwrap_or(i64::MAX), "webhook")
        )
    }

    async fn claim(&self, db: &PgPool) -> Result<Vec<Due>, sqlx::Error> {
        claim(db).await
    }

    fn lease(&self) -> Duration {
        LEASE
    }

    fn longest(&self) -> Duration {
        SEND_TIMEOUT
    }

    async fn record(&self, db: &PgPool, item: &Due, attempt: &Attempt) -> Result<(), sqlx::Error> {
        record(db, item, attempt).await
    }

    async fn give_back(&self, db: &PgPool, item: &Due) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "update webhook_deliveries set leased_until = null where id = $1 and leased_until = $2",
            item.id,
            item.leased_until
        )
        .execute(db)
        .await?;
        Ok(())
    }
}

impl Batch for Deliveries<'_> {
    async fn deliver(&self, item: &Due) -> Attempt {
        let started = Instant::now();
        let outcome = send(self.keys, self.http, item).await;
        let ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let (status, error, answer) = match outcome {
            Ok((status, body)) if (200..300).contains(&status) => {
                (Some(i32::from(status)), None, Some(body))
            }
            Ok((status, body)) => (
                Some(i32::from(status)),
                Some(format!("HTTP {status}")),
                Some(body),
            ),
            Err(e) => (None, Some(e), None),
        };
        Attempt {
            status,
            error,
            answer,
            ms,
            last: item.attempts + 1 >= MAX_ATTEMPTS,
        }
    }
}

/// The HTTP client deliveries use, with the resolver that keeps them off internal addresses.
pub struct Client {
    http: reqwest::Client,
    resolver: egress::Resolver,
}

/// A client for deliveries: 10 s timeout, no redirects followed, no proxy, names resolved by
/// [`egress::Resolver`].
pub fn client() -> Client {
    let resolver = egress::Resolver::default();
    let http = egress::client(&resolver, "Gangway-Webhooks/1", SEND_TIMEOUT);
    Client { http, resolver }
}

/// Delivers what is due, a batch at a time: the `try_…` entry point tests drive (one round,
/// not stoppable, reporting nowhere).
pub async fn deliver_due(db: &PgPool, keys: &Keyring, http: &Client) -> Result<Round, sqlx::Error> {
    deliver_round(
        db,
        keys,
        http,
        &CancellationToken::new(),
        &Activity::detached(),
    )
    .await
}

/// One round through the leased engine, reading the allow-list first; what it has not started
/// is given back once `stop` is cancelled.
async fn deliver_round(
    db: &PgPool,
    keys: &Keyring,
    http: &Client,
    stop: &CancellationToken,
    activity: &Activity,
) -> Result<Round, sqlx::Error> {
    http.resolver.set(egress::allowed(db).await?);
    let attempts = background::try_run_due(&Deliveries { keys, http }, db, stop, activity).await?;
    let mut round = Round::default();
    for attempt in attempts {
        match (attempt.error.is_none(), attempt.last) {
            (true, _) => round.delivered += 1,
            (false, true) => round.failed += 1,
            (false, false) => round.retried += 1,
        }
    }
    Ok(round)
}

/// Marks `item` under its lease and logs the attempt, in one transaction.
async fn record(db: &PgPool, item: &Due, attempt: &Attempt) -> Result<(), sqlx::Error> {
    let delivered = attempt.error.is_none();
    let wait = BACKOFF.after(u32::try_from(item.attempts).unwrap_or(0));
    let mut tx = db.begin().await?;
    let marked = sqlx::query!(
        "update webhook_deliveries set attempts = attempts + 1, leased_until = null,
                last_status = $3, last_error = $4, last_duration_ms = $5, response_body = $9,
                delivered_at = case when $6 then now() end,
                failed_at = case when not $6 and $7 then now() end,
                next_attempt_at = case when $6 or $7 then next_attempt_at
                                       else now() + make_interval(secs => $8) end
         where id = $1 and leased_until = $2 and delivered_at is null",
        item.id,
        item.leased_until,
        attempt.status,
        attempt.error,
        attempt.ms,
        delivered,
        attempt.last,
        wait.as_secs_f64(),
        attempt.answer
    )
    .execute(&mut *tx)
    .await?;
    if marked.rows_affected() == 0 {
        tracing::warn!(delivery = %item.id, "a webhook's lease ran out while sending");
    }
    sqlx::query!(
        "insert into webhook_attempts (delivery_id, status, error, duration_ms) values ($1, $2, $3, $4)",
        item.id,
        attempt.status,
        attempt.error,
        attempt.ms
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if !delivered && attempt.last {
        tracing::warn!(delivery = %item.id, error = ?attempt.error, "webhook given up");
    }
    Ok(())
}

async fn claim(db: &PgPool) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query_as!(
        Due,
        r#"with leased as (
             update webhook_deliveries set leased_until = now() + make_interval(secs => $1)
             where id in (
                 select id from webhook_deliveries
                 where delivered_at is null and failed_at is null and next_attempt_at <= now()
                   and (leased_until is null or leased_until <= now())
                 order by next_attempt_at limit $2 for update skip locked)
             returning id, event_id, endpoint_id, payload, attempts, leased_until)
         select l.id, l.event_id, l.payload, l.attempts, l.leased_until as "leased_until!", e.url,
                e.secret_ciphertext, e.secret_key_id, e.previous_secret_ciphertext,
                e.previous_secret_key_id, e.previous_secret_until
         from leased l join webhook_endpoints e on e.id = l.endpoint_id"#,
        LEASE.as_secs_f64(),
        BATCH
    )
    .fetch_all(db)
    .await
}

/// The `webhook-id` of an event (its first delivery's id): the same on every retry and every
/// "send again", so receivers can drop duplicates.
pub fn message_id(event: Uuid) -> String {
    format!("msg_{}", event.simple())
}

/// POSTs one event; `Ok((status, body))` when the endpoint answered, the body cut at
/// [`RESPONSE_CAP`] bytes (read no further).
async fn send(keys: &Keyring, http: &Client, item: &Due) -> Result<(u16, String), String> {
    if let Some(refused) = egress::literal_refusal(&item.url, &http.resolver.allowed()) {
        return Err(refused);
    }
    let open = |sealed: &[u8], key_id: &str| {
        keys.open(key_id, sealed)
            .map_err(|e| e.to_string())
            .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()))
    };
    let mut secrets = vec![open(&item.secret_ciphertext, &item.secret_key_id)?];
    // The previous secret signs too while the rotation's overlap lasts.
    let overlap = item
        .previous_secret_until
        .is_some_and(|until| until > OffsetDateTime::now_utc());
    if let (true, Some(sealed), Some(key_id)) = (
        overlap,
        &item.previous_secret_ciphertext,
        &item.previous_secret_key_id,
    ) {
        secrets.push(open(sealed, key_id)?);
    }
    let body = serde_json::to_vec(&item.payload).map_err(|e| e.to_string())?;
    let id = message_id(item.event_id.unwrap_or(item.id));
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let signatures = secrets
        .iter()
        .filter_map(|s| signing::sign(s, &id, timestamp, &body))
        .collect::<Vec<_>>()
        .join(" ");
    let mut response = http
        .http
        .post(&item.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signatures)
        .body(body)
        .send()
        .await
        .map_err(|e| egress::failure(&e, SEND_TIMEOUT))?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    // An answer that breaks off still has its status: the body is only for the log.
    while body.len() < RESPONSE_CAP {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(RESPONSE_CAP);
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// How long delivered and failed events stay in the delivery log.
pub const RETENTION_DAYS: i32 = 30;

/// Deletes delivered and failed events (with their attempts) older than [`RETENTION_DAYS`].
pub async fn prune(db: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "delete from webhook_deliveries
         where coalesce(delivered_at, failed_at) < now() - make_interval(days => $1)",
        RETENTION_DAYS
    )
    .execute(db)
    .await?
    .rows_affected())
}

/// Webhook delivery as a background task: each activation delivers rounds until one finds
/// nothing due or the process stops.
pub struct DeliveryTask {
    db: PgPool,
    keys: Keyring,
    http: Client,
}

impl DeliveryTask {
    /// The task over `db`, opening endpoint secrets with `keys`.
    pub fn new(db: PgPool, keys: Keyring) -> Self {
        Self {
            db,
            keys,
            http: client(),
        }
    }
}

impl BackgroundTask for DeliveryTask {
    fn activate<'a>(
        &'a mut self,
        activity: &'a Activity,
        stop: &'a CancellationToken,
    ) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move {
            let mut total = Round::default();
            loop {
                let round = deliver_round(&self.db, &self.keys, &self.http, stop, activity).await?;
                total.delivered += round.delivered;
                total.retried += round.retried;
                total.failed += round.failed;
                if round == Round::default() || stop.is_cancelled() {
                    break;
                }
            }
            Ok(format!(
                "delivered {}, retrying {}, given up {}",
                total.delivered, total.retried, total.failed
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_spans_more_than_a_day() {
        assert!((30..=36).contains(&BACKOFF.after(0).as_secs()));
        assert!((60..=72).contains(&BACKOFF.after(1).as_secs()));
        assert!((7_200..=8_640).contains(&BACKOFF.after(15).as_secs()));
        let nominal: u64 = (0..MAX_ATTEMPTS - 1)
            .map(|a| BACKOFF.nominal(a.unsigned_abs()).as_secs())
            .sum();
        assert!(nominal > 24 * 3_600, "{nominal}");
    }
}
