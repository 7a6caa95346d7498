//! OpenID Connect Back-Channel Logout 1.0: when a session ends, every application it signed in
//! to that registered a back-channel logout URI is told so by a logout token POSTed
//! form-encoded (`logout_token=…`). The deliveries wait in `signin_logouts`, queued in the
//! transaction that ended the session, and go out through the leased queue engine: claimed in
//! a committed transaction, POSTed outside any transaction within [`SEND_TIMEOUT`], recorded
//! under the lease; a 2xx is done, a refusal (4xx) is given up at once, anything else retried
//! with backoff until [`MAX_ATTEMPTS`]. The token is minted at each attempt (fresh `iat`, `exp`
//! and `jti`) and signed with the current ID-token key. Like webhooks, deliveries reach no
//! internal address unless an admin allowed it ([`egress`]).

use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::keys::{self, SigningKeys};
use super::{SigninError, applications, claims, provider};
use crate::background::{self, Activity, BackgroundTask, Backoff, Batch, Leased};
use crate::crypto::Keyring;
use crate::webhooks::egress;

/// The `events` member that makes a JWT a logout token.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How many logouts one round claims.
const BATCH: i64 = 20;
/// How long a claim holds before another worker may take the logout over.
const LEASE: Duration = Duration::from_secs(120);
/// The longest one POST may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts before a logout is given up: with [`BACKOFF`] they span about six hours, past
/// which the application's own session has long idled out.
pub const MAX_ATTEMPTS: i32 = 12;
/// The wait after each failed attempt: 30 s doubling, capped at an hour, up to 20 % more.
pub const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(30),
    cap: Duration::from_secs(3_600),
    jitter: (1.0, 1.2),
};
/// How often the delivery task looks for due logouts.
pub const PERIOD: Duration = Duration::from_secs(2);

/// A leased logout with what its token names.
pub struct Due {
    id: Uuid,
    application_id: Uuid,
    attempts: i32,
    leased_until: OffsetDateTime,
    sid: String,
    object_id: Uuid,
    entra_tenant_id: Uuid,
}

/// How one POST went.
pub struct Attempt {
    status: Option<i32>,
    error: Option<String>,
    /// Whether it is given up (its last attempt, or refused for good).
    last: bool,
}

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Logouts an application accepted (2xx).
    pub delivered: usize,
    /// Attempts that failed and wait for a retry.
    pub retried: usize,
    /// Logouts given up.
    pub failed: usize,
}

/// The HTTP client logouts go out with, and the resolver that keeps it off internal addresses.
pub struct Client {
    http: reqwest::Client,
    resolver: egress::Resolver,
}

/// A client for logouts: [`SEND_TIMEOUT`], no redirects, no proxy, names resolved by
/// [`egress::Resolver`].
pub fn client() -> Client {
    let resolver = egress::Resolver::default();
    Client {
        http: egress::client(&resolver, "Gangway-Logout/1", SEND_TIMEOUT),
        resolver,
    }
}

/// Logout deliveries as a kind of leased work, for one round.
struct Logouts<'a> {
    http: &'a Client,
    keys: &'a SigningKeys,
    issuer: &'a str,
    db: &'a PgPool,
}

impl Leased for Logouts<'_> {
    type Item = Due;
    type Done = Attempt;
    type Error = SigninError;

    fn describe(&self, n: usize) -> String {
        format!(
            "sending {}",
            crate::format::count(i64::try_from(n).unwrap_or(i64::MAX), "logout")
        )
    }

    async fn claim(&self, db: &PgPool) -> Result<Vec<Due>, SigninError> {
        Ok(sqlx::query_as!(
            Due,
            r#"with leased as (
                 update signin_logouts set leased_until = now() + make_interval(secs => $1)
                 where id in (
                     select id from signin_logouts
                     where delivered_at is null and failed_at is null and next_attempt_at <= now()
                       and (leased_until is null or leased_until <= now())
                     order by next_attempt_at limit $2 for update skip locked)
                 returning id, application_id, session_id, attempts, leased_until)
             select l.id, l.application_id, l.attempts, l.leased_until as "leased_until!", s.sid,
                    s.object_id, t.entra_tenant_id
             from leased l join signin_sessions s on s.id = l.session_id
               join tenants t on t.id = s.tenant_id"#,
            LEASE.as_secs_f64(),
            BATCH
        )
        .fetch_all(db)
        .await?)
    }

    fn lease(&self) -> Duration {
        LEASE
    }

    fn longest(&self) -> Duration {
        SEND_TIMEOUT
    }

    async fn record(&self, db: &PgPool, item: &Due, attempt: &Attempt) -> Result<(), SigninError> {
        let delivered = attempt.error.is_none();
        let wait = BACKOFF.after(u32::try_from(item.attempts).unwrap_or(0));
        let marked = sqlx::query!(
            "update signin_logouts set attempts = attempts + 1, leased_until = null,
                    last_status = $3, last_error = $4,
                    delivered_at = case when $5 then now() end,
                    failed_at = case when not $5 and $6 then now() end,
                    next_attempt_at = case when $5 or $6 then next_attempt_at
                                           else now() + make_interval(secs => $7) end
             where id = $1 and leased_until = $2",
            item.id,
            item.leased_until,
            attempt.status,
            attempt.error,
            delivered,
            attempt.last,
            wait.as_secs_f64(),
        )
        .execute(db)
        .await?;
        if marked.rows_affected() == 0 {
            tracing::warn!(logout = %item.id, "a back-channel logout's lease ran out while sending");
        }
        if !delivered && attempt.last {
            tracing::warn!(logout = %item.id, error = ?attempt.error, "back-channel logout given up");
        }
        Ok(())
    }

    async fn give_back(&self, db: &PgPool, item: &Due) -> Result<(), SigninError> {
        sqlx::query!(
            "update signin_logouts set leased_until = null where id = $1 and leased_until = $2",
            item.id,
            item.leased_until
        )
        .execute(db)
        .await?;
        Ok(())
    }
}

impl Batch for Logouts<'_> {
    async fn deliver(&self, item: &Due) -> Attempt {
        let last_try = item.attempts + 1 >= MAX_ATTEMPTS;
        match self.send(item).await {
            Ok(status) if (200..300).contains(&status) => Attempt {
                status: Some(i32::from(status)),
                error: None,
                last: true,
            },
            Ok(status) => Attempt {
                status: Some(i32::from(status)),
                error: Some(format!("HTTP {status}")),
                // The application refused the token: another one would fare no better.
                last: last_try || ((400..500).contains(&status) && ![408, 429].contains(&status)),
            },
            Err(error) => Attempt {
                status: None,
                error: Some(error),
                last: last_try,
            },
        }
    }
}

impl Logouts<'_> {
    /// POSTs one logout token; the application's status code, or why nothing was sent.
    async fn send(&self, item: &Due) -> Result<u16, String> {
        let app = applications::by_id(self.db, item.application_id)
            .await
            .map_err(|e| format!("reading the application: {e}"))?;
        let Some((app, uri)) =
            app.and_then(|a| a.backchannel_logout_uri.clone().map(|uri| (a, uri)))
        else {
            return Err("the application no longer has a back-channel logout URI".into());
        };
        if let Some(refused) = egress::literal_refusal(&uri, &self.http.resolver.allowed()) {
            return Err(refused);
        }
        let subject = claims::subject(&app, item.entra_tenant_id, item.object_id);
        let token = provider::logout_token(
            self.keys,
            &provider::Logout {
                issuer: self.issuer,
                client_id: &app.client_id,
                subject: &subject,
                sid: &item.sid,
            },
        )
        .map_err(|e| e.to_string())?;
        let response = self
            .http
            .http
            .post(&uri)
            .form(&[("logout_token", token.as_str())])
            .send()
            .await
            .map_err(|e| egress::failure(&e, SEND_TIMEOUT))?;
        Ok(response.status().as_u16())
    }
}

/// Sends what is due, a batch at a time: the `try_…` entry point tests drive (one round, not
/// stoppable, reporting nowhere).
pub async fn deliver_due(
    db: &PgPool,
    keys: &Keyring,
    issuer: &str,
    http: &Client,
) -> Result<Round, SigninError> {
    deliver_round(
        db,
        keys,
        issuer,
        http,
        &CancellationToken::new(),
        &Activity::detached(),
    )
    .await
}

/// One round through the leased engine, reading the allow-list and the signing key first.
async fn deliver_round(
    db: &PgPool,
    keys: &Keyring,
    issuer: &str,
    http: &Client,
    stop: &CancellationToken,
    activity: &Activity,
) -> Result<Round, SigninError> {
    http.resolver.set(egress::allowed(db).await?);
    let signing = keys::load(db, keys).await?;
    let kind = Logouts {
        http,
        keys: &signing,
        issuer,
        db,
    };
    let attempts = background::try_run_due(&kind, db, stop, activity).await?;
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

/// Back-channel logout as a background task: each activation sends rounds until one finds
/// nothing due or the process stops.
pub struct LogoutTask {
    db: PgPool,
    keys: Keyring,
    issuer: String,
    http: Client,
}

impl LogoutTask {
    /// The task for tokens issued by `issuer`.
    pub fn new(db: PgPool, keys: Keyring, issuer: String) -> Self {
        Self {
            db,
            keys,
            issuer,
            http: client(),
        }
    }
}

impl BackgroundTask for LogoutTask {
    fn activate<'a>(
        &'a mut self,
        activity: &'a Activity,
        stop: &'a CancellationToken,
    ) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move {
            let mut total = Round::default();
            while !stop.is_cancelled() {
                let round = deliver_round(
                    &self.db,
                    &self.keys,
                    &self.issuer,
                    &self.http,
                    stop,
                    activity,
                )
                .await?;
                if round == Round::default() {
                    break;
                }
                total.delivered += round.delivered;
                total.retried += round.retried;
                total.failed += round.failed;
            }
            Ok(format!(
                "delivered {}, retrying {}, given up {}",
                total.delivered, total.retried, total.failed
            ))
        })
    }
}
