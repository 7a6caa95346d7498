//! Delivering queued webhook events: leased in a short committed transaction (`FOR UPDATE SKIP
//! LOCKED`), POSTed signed outside any transaction with a 10 s timeout, then marked under the
//! lease. A 2xx marks the event delivered for good; anything else retries it with exponential
//! backoff and jitter (30 s doubling to 2 h) until [`MAX_ATTEMPTS`] (more than a day), then it
//! is marked failed. Every attempt is logged with its status code or error and duration; the
//! delivery keeps the last answer's body, its first [`RESPONSE_CAP`] bytes.
//! Each round reads the allow-list again; an address it refuses is never connected to
//! ([`egress`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{egress, signing};
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

#[derive(sqlx::FromRow)]
struct Due {
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

/// The wait before the attempt after `attempts` failed ones: 30 s doubling, capped at 2 h,
/// plus up to 20 % jitter (never less, so the schedule spans at least its nominal length).
pub fn backoff(attempts: i32) -> Duration {
    let base = (30u64 << attempts.clamp(0, 12) as u32).min(7_200);
    let jitter = rand::thread_rng().gen_range(0..=base / 5);
    Duration::from_secs(base + jitter)
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
    let http = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(resolver.clone()))
        .user_agent("Gangway-Webhooks/1")
        .build()
        .expect("the webhook client builds");
    Client { http, resolver }
}

/// Delivers what is due, a batch at a time.
pub async fn deliver_due(db: &PgPool, keys: &Keyring, http: &Client) -> Result<Round, sqlx::Error> {
    http.resolver.set(egress::allowed(db).await?);
    let claimed_at = Instant::now();
    let due = claim(db).await?;
    let mut round = Round::default();
    for item in due {
        if claimed_at.elapsed() + SEND_TIMEOUT >= LEASE {
            break;
        }
        let started = Instant::now();
        let outcome = send(keys, http, &item).await;
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
        let delivered = error.is_none();
        let last = item.attempts + 1 >= MAX_ATTEMPTS;
        let wait = backoff(item.attempts);
        let mut tx = db.begin().await?;
        let marked = sqlx::query(
            "update webhook_deliveries set attempts = attempts + 1, leased_until = null,
                    last_status = $3, last_error = $4, last_duration_ms = $5, response_body = $9,
                    delivered_at = case when $6 then now() end,
                    failed_at = case when not $6 and $7 then now() end,
                    next_attempt_at = case when $6 or $7 then next_attempt_at
                                           else now() + make_interval(secs => $8) end
             where id = $1 and leased_until = $2 and delivered_at is null",
        )
        .bind(item.id)
        .bind(item.leased_until)
        .bind(status)
        .bind(&error)
        .bind(ms)
        .bind(delivered)
        .bind(last)
        .bind(wait.as_secs_f64())
        .bind(&answer)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() == 0 {
            tracing::warn!(delivery = %item.id, "a webhook's lease ran out while sending");
        }
        sqlx::query(
            "insert into webhook_attempts (delivery_id, status, error, duration_ms) values ($1, $2, $3, $4)",
        )
        .bind(item.id)
        .bind(status)
        .bind(&error)
        .bind(ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        match (delivered, last) {
            (true, _) => round.delivered += 1,
            (false, true) => {
                tracing::warn!(delivery = %item.id, error = ?error, "webhook given up");
                round.failed += 1;
            }
            (false, false) => round.retried += 1,
        }
    }
    Ok(round)
}

async fn claim(db: &PgPool) -> Result<Vec<Due>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let due = sqlx::query_as(
        "with leased as (
             update webhook_deliveries set leased_until = now() + make_interval(secs => $1)
             where id in (
                 select id from webhook_deliveries
                 where delivered_at is null and failed_at is null and next_attempt_at <= now()
                   and (leased_until is null or leased_until <= now())
                 order by next_attempt_at limit $2 for update skip locked)
             returning id, event_id, endpoint_id, payload, attempts, leased_until)
         select l.id, l.event_id, l.payload, l.attempts, l.leased_until, e.url, e.secret_ciphertext,
                e.secret_key_id, e.previous_secret_ciphertext, e.previous_secret_key_id,
                e.previous_secret_until
         from leased l join webhook_endpoints e on e.id = l.endpoint_id",
    )
    .bind(LEASE.as_secs_f64())
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(due)
}

/// The `webhook-id` of an event (its first delivery's id): the same on every retry and every
/// "send again", so receivers can drop duplicates.
pub fn message_id(event: Uuid) -> String {
    format!("msg_{}", event.simple())
}

/// POSTs one event; `Ok((status, body))` when the endpoint answered, the body cut at
/// [`RESPONSE_CAP`] bytes (read no further).
async fn send(keys: &Keyring, http: &Client, item: &Due) -> Result<(u16, String), String> {
    // An address in the URL is not resolved, so the resolver never sees it: checked here.
    let literal = url::Url::parse(&item.url)
        .ok()
        .and_then(|u| match u.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        });
    if let Some(ip) = literal.filter(|ip| !http.resolver.allowed().admits(*ip)) {
        return Err(format!(
            "not sent: {ip} is {}, which webhooks may not reach",
            egress::internal_kind(ip).unwrap_or("an internal address")
        ));
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
        .map_err(|e| {
            let refused =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .find_map(|e| e.downcast_ref::<egress::Refused>());
            if let Some(refused) = refused {
                format!("not sent: {refused}")
            } else if e.is_timeout() {
                "no answer within 10 s".to_owned()
            } else if e.is_connect() {
                "could not connect".to_owned()
            } else {
                format!("request failed: {e}")
            }
        })?;
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
    Ok(sqlx::query(
        "delete from webhook_deliveries
         where coalesce(delivered_at, failed_at) < now() - make_interval(days => $1)",
    )
    .bind(RETENTION_DAYS)
    .execute(db)
    .await?
    .rows_affected())
}

/// Delivers webhooks until the process stops, polling every couple of seconds; prunes the
/// delivery log hourly.
pub async fn run_worker(db: PgPool, keys: Keyring) {
    let http = client();
    let mut pruned_at: Option<Instant> = None;
    loop {
        if pruned_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600)) {
            pruned_at = Some(Instant::now());
            if let Err(e) = prune(&db).await {
                tracing::warn!(error = %e, "pruning the webhook delivery log failed");
            }
        }
        match deliver_due(&db, &keys, &http).await {
            Ok(Round {
                delivered: 0,
                retried: 0,
                failed: 0,
            }) => tokio::time::sleep(Duration::from_secs(2)).await,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "webhook round failed");
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_spans_more_than_a_day() {
        assert!((30..=36).contains(&backoff(0).as_secs()));
        assert!((60..=72).contains(&backoff(1).as_secs()));
        assert!((7_200..=8_640).contains(&backoff(15).as_secs()));
        let nominal: u64 = (0..MAX_ATTEMPTS - 1)
            .map(|a| (30u64 << a.clamp(0, 12) as u32).min(7_200))
            .sum();
        assert!(nominal > 24 * 3_600, "{nominal}");
    }
}
