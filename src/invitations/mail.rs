//! The invitation email and its outbox: queued in the invitation's transaction, delivered and
//! retried by a worker, so a mail server outage never loses an invitation.

use std::time::Duration;

use askama::Template;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use url::Url;
use uuid::Uuid;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::{Context, Invitation, InvitationStatus};
use crate::audit::{self, Action, Actor};
use crate::background::{self, Activity, BackgroundTask, Backoff, Batch, Leased};
use crate::crypto::Keyring;
use crate::types::Branding;
use crate::types::Secret;
use crate::types::profile::Permission;
use crate::types::{InvitationId, Profile, ProfileId};

/// A rendered email, as sealed in the outbox.
#[derive(Debug, Serialize, Deserialize)]
pub struct Email {
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

#[derive(Template)]
#[template(path = "email/invitation.txt")]
struct InvitationText<'a> {
    invitation: &'a Invitation,
    provider: &'a Branding,
    /// Why the customer is asked again, for a re-consent.
    why_again: Option<&'a str>,
    link: &'a str,
    permissions: &'a [Permission],
    expires: String,
}

#[derive(Template)]
#[template(path = "email/invitation.html")]
struct InvitationHtml<'a> {
    invitation: &'a Invitation,
    provider: &'a Branding,
    /// Why the customer is asked again, for a re-consent.
    why_again: Option<&'a str>,
    link: &'a str,
    permissions: &'a [Permission],
    expires: String,
}

/// Renders the invitation email for `invitation` with its `link`, listing what `profile` asks
/// and, for a re-consent, why the customer is asked again (`why_again`).
pub fn render(
    cx: Context<'_>,
    invitation: &Invitation,
    link: &Url,
    profile: &Profile,
    why_again: Option<&str>,
) -> Email {
    let expires = crate::format::datetime(invitation.expires_at);
    let (provider, link) = (cx.brand, link.as_str());
    let permissions = &profile.for_mode(invitation.consent_mode);
    let text = InvitationText {
        invitation,
        provider,
        why_again,
        link,
        permissions,
        expires: expires.clone(),
    };
    let html = InvitationHtml {
        invitation,
        provider,
        why_again,
        link,
        permissions,
        expires,
    };
    Email {
        to: invitation.admin_email.clone(),
        subject: format!(
            "{provider} asks {}for access to your Microsoft Entra ID directory",
            if why_again.is_some() { "again " } else { "" }
        ),
        text: text.render().expect("the invitation text template renders"),
        html: html.render().expect("the invitation HTML template renders"),
    }
}

/// Queues the invitation email, sealed because it carries the link.
pub async fn enqueue(
    tx: &mut PgConnection,
    cx: Context<'_>,
    invitation: &Invitation,
    link: &Url,
) -> Result<(), sqlx::Error> {
    let profile = sqlx::query_as!(
        Profile,
        r#"select id as "id: ProfileId", name::text as "name!", description,
                  delegated as "delegated: Json<Vec<Permission>>",
                  application as "application: Json<Vec<Permission>>", built_in, is_default
           from permission_profiles where id = $1"#,
        invitation.permission_profile_id as ProfileId
    )
    .fetch_one(&mut *tx)
    .await?;
    let why_again = super::reconsent::why_asked_again(&mut *tx, invitation).await?;
    let email = render(cx, invitation, link, &profile, why_again.as_deref());
    enqueue_email(tx, cx.keys, &email, Some(invitation.id.into())).await
}

/// Queues any email carrying a link, sealed, for the outbox worker (`invitation`: the
/// customer invitation it belongs to, whose end drops it unsent).
pub async fn enqueue_email(
    tx: &mut PgConnection,
    keys: &Keyring,
    email: &Email,
    invitation: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    let sealed = keys.seal(&serde_json::to_vec(email).expect("an email serialises"));
    sqlx::query!(
        "insert into outbox (invitation_id, recipient, payload_ciphertext, payload_key_id)
         values ($1, $2, $3, $4)",
        invitation,
        email.to,
        sealed,
        keys.id()
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Drops an invitation's undelivered mail: it carries a link that no longer works.
pub async fn discard_unsent(
    tx: &mut PgConnection,
    invitation_id: InvitationId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from outbox where invitation_id = $1 and sent_at is null",
        invitation_id as InvitationId
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Sends mail over SMTP.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// Why a mailer could not be built or a message not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The SMTP URL or sender cannot be used.
    #[error("invalid mail settings: {0}")]
    Settings(String),
    /// The mail server refused or could not be reached.
    #[error("delivery failed: {0}")]
    Delivery(String),
}

impl Mailer {
    /// A mailer for `smtp_url` (`smtp://…` with STARTTLS when offered, `smtps://…`), sending as `from`.
    pub fn new(smtp_url: &Secret, from: &str) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url.expose())
            .map_err(|e| MailError::Settings(e.to_string()))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        let from = from
            .parse()
            .map_err(|_| MailError::Settings(format!("`{from}` is not a mailbox")))?;
        Ok(Self { transport, from })
    }

    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|_| MailError::Delivery(format!("bad recipient {}", email.to)))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| MailError::Delivery(e.to_string()))?;
        tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message))
            .await
            .map_err(|_| MailError::Delivery("the mail server did not answer in time".into()))?
            .map_err(|e| MailError::Delivery(e.to_string()))?;
        Ok(())
    }
}

/// How many messages one round claims.
const BATCH: i64 = 10;
/// How long a claim holds before another worker may take the mail over.
const LEASE: Duration = Duration::from_secs(300);
/// The longest one message may take to send. No send starts unless it can end within the lease,
/// so a message is never sent while another worker may already have claimed it again.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// 30 s, 1 min, 2 min … after each failure, capped at an hour, up to a fifth longer.
const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(30),
    cap: Duration::from_secs(3_600),
    jitter: (1.0, 1.2),
};
/// How often the outbox task looks for due mail.
pub const PERIOD: Duration = Duration::from_secs(3);

/// A leased message.
pub struct Queued {
    id: i64,
    invitation_id: Option<Uuid>,
    payload_ciphertext: Vec<u8>,
    payload_key_id: String,
    attempts: i32,
    /// The lease this worker holds: marks count only while it is still the row's.
    leased_until: time::OffsetDateTime,
}

/// What one delivery round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Messages handed to the mail server.
    pub sent: usize,
    /// Messages that failed and wait for a retry.
    pub failed: usize,
    /// Unsent mail dropped because its link no longer works.
    pub dropped: usize,
}

/// The outbox as a kind of leased work.
struct Outbox<'a> {
    keys: &'a Keyring,
    mailer: &'a Mailer,
}

impl Leased for Outbox<'_> {
    type Item = Queued;
    type Done = Result<(), MailError>;
    type Error = sqlx::Error;

    fn describe(&self, n: usize) -> String {
        format!(
            "delivering {}",
            crate::format::count(i64::try_from(n).unwrap_or(i64::MAX), "email")
        )
    }

    /// Leases what is due. SKIP LOCKED and the lease let several processes deliver side by side.
    async fn claim(&self, db: &PgPool) -> Result<Vec<Queued>, sqlx::Error> {
        sqlx::query_as!(
            Queued,
            r#"update outbox set leased_until = now() + make_interval(secs => $1)
             where id in (
                 select id from outbox
                 where sent_at is null and payload_ciphertext is not null and next_attempt_at <= now()
                   and (leased_until is null or leased_until <= now())
                 order by next_attempt_at limit $2 for update skip locked)
             returning id, invitation_id, payload_ciphertext as "payload_ciphertext!",
                       payload_key_id as "payload_key_id!", attempts, leased_until as "leased_until!""#,
            LEASE.as_secs_f64(),
            BATCH
        )
        .fetch_all(db)
        .await
    }

    fn lease(&self) -> Duration {
        LEASE
    }

    fn longest(&self) -> Duration {
        SEND_TIMEOUT
    }

    async fn record(
        &self,
        db: &PgPool,
        item: &Queued,
        outcome: &Result<(), MailError>,
    ) -> Result<(), sqlx::Error> {
        record_outcome(db, item, outcome).await
    }

    async fn give_back(&self, db: &PgPool, item: &Queued) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "update outbox set leased_until = null where id = $1 and leased_until = $2",
            item.id,
            item.leased_until
        )
        .execute(db)
        .await?;
        Ok(())
    }
}

impl Batch for Outbox<'_> {
    async fn deliver(&self, item: &Queued) -> Result<(), MailError> {
        match self
            .keys
            .open(&item.payload_key_id, &item.payload_ciphertext)
        {
            Ok(plain) => match serde_json::from_slice::<Email>(&plain) {
                Ok(email) => self.mailer.send(&email).await,
                Err(e) => Err(MailError::Delivery(format!("unreadable queued mail: {e}"))),
            },
            Err(e) => Err(MailError::Delivery(e.to_string())),
        }
    }
}

/// Delivers due mail, a few at a time; failures wait with exponential backoff and are retried.
///
/// Mail is leased in a short transaction of its own and sent outside any transaction; each
/// message is then marked on its own, so a later failure can not undo a mark and send it again.
/// The `try_…` entry point tests drive: one round, not stoppable, reporting nowhere.
pub async fn deliver_due(
    db: &PgPool,
    keys: &Keyring,
    mailer: &Mailer,
) -> Result<Delivered, sqlx::Error> {
    deliver_round(
        db,
        keys,
        mailer,
        &CancellationToken::new(),
        &Activity::detached(),
    )
    .await
}

/// One round: drops mail whose link died, then delivers a batch through the leased engine,
/// giving back what it has not started once `stop` is cancelled.
async fn deliver_round(
    db: &PgPool,
    keys: &Keyring,
    mailer: &Mailer,
    stop: &CancellationToken,
    activity: &Activity,
) -> Result<Delivered, sqlx::Error> {
    let dropped = drop_dead_links(db).await?;
    if dropped > 0 {
        tracing::info!(dropped, "dropped queued mail whose link no longer works");
    }
    let outcomes = background::try_run_due(&Outbox { keys, mailer }, db, stop, activity).await?;
    let sent = outcomes.iter().filter(|o| o.is_ok()).count();
    Ok(Delivered {
        sent,
        failed: outcomes.len() - sent,
        dropped,
    })
}

/// Drops unsent mail for invitations whose link no longer works.
async fn drop_dead_links(db: &PgPool) -> Result<usize, sqlx::Error> {
    let usable: Vec<String> = InvitationStatus::ALL
        .into_iter()
        .filter(|s| s.is_open())
        .map(|s| s.as_str().to_owned())
        .collect();
    let dropped = sqlx::query!(
        "delete from outbox o using invitation_view i
         where o.invitation_id = i.id and o.sent_at is null and not (i.effective_status = any($1))",
        &usable
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(usize::try_from(dropped).unwrap_or(usize::MAX))
}

/// Records how sending `item` went, with its audit event. The outbox row changes only while
/// this worker's lease is still on it: a worker whose lease ran out can not mark over the one
/// that took the mail over.
async fn record_outcome(
    db: &PgPool,
    item: &Queued,
    outcome: &Result<(), MailError>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let (marked, action, detail) = match outcome {
        Ok(()) => {
            let marked = sqlx::query!(
                "update outbox set sent_at = now(), payload_ciphertext = null, payload_key_id = null,
                        last_error = null, attempts = attempts + 1, leased_until = null
                 where id = $1 and leased_until = $2",
                item.id,
                item.leased_until
            )
            .execute(&mut *tx)
            .await?;
            (marked, Action::InvitationEmailSent, json!({}))
        }
        Err(e) => {
            let wait = BACKOFF.after(u32::try_from(item.attempts).unwrap_or(0));
            tracing::warn!(outbox_id = item.id, attempts = item.attempts + 1, error = ?e, "mail delivery failed; will retry");
            let marked = sqlx::query!(
                "update outbox set attempts = attempts + 1, last_error = $3, leased_until = null,
                        next_attempt_at = now() + make_interval(secs => $4)
                 where id = $1 and leased_until = $2",
                item.id,
                item.leased_until,
                e.to_string(),
                wait.as_secs_f64()
            )
            .execute(&mut *tx)
            .await?;
            let detail = json!({ "error": e.to_string(), "retry_in_seconds": wait.as_secs() });
            (marked, Action::InvitationEmailFailed, detail)
        }
    };
    if marked.rows_affected() == 0 {
        tracing::warn!(
            outbox_id = item.id,
            "the mail's lease ran out or it was dropped while sending"
        );
    }
    // What happened is recorded either way: the attempt was made.
    audit::record(
        &mut *tx,
        &Actor::System,
        action,
        item.invitation_id,
        None,
        detail,
    )
    .await?;
    tx.commit().await
}

/// The latest delivery state of an invitation's mail, for the console.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryState {
    /// Delivery attempts so far.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was delivered, if it was.
    pub sent_at: Option<time::OffsetDateTime>,
    /// When delivery is tried next.
    pub next_attempt_at: time::OffsetDateTime,
}

/// The newest outbox entry of an invitation, if any.
pub async fn delivery_state(
    db: &PgPool,
    invitation_id: Uuid,
) -> Result<Option<DeliveryState>, sqlx::Error> {
    sqlx::query_as!(
        DeliveryState,
        "select attempts, last_error, sent_at, next_attempt_at from outbox where invitation_id = $1
         order by created_at desc, id desc limit 1",
        invitation_id
    )
    .fetch_optional(db)
    .await
}

/// The mail outbox as a background task: each activation delivers rounds until one finds
/// nothing to send or the process stops.
pub struct OutboxTask {
    db: PgPool,
    keys: Keyring,
    mailer: Mailer,
}

impl OutboxTask {
    /// The task over `db`, opening mail with `keys` and sending it with `mailer`.
    pub fn new(db: PgPool, keys: Keyring, mailer: Mailer) -> Self {
        Self { db, keys, mailer }
    }
}

impl BackgroundTask for OutboxTask {
    fn activate<'a>(
        &'a mut self,
        activity: &'a Activity,
        stop: &'a CancellationToken,
    ) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move {
            let mut total = Delivered::default();
            loop {
                let round =
                    deliver_round(&self.db, &self.keys, &self.mailer, stop, activity).await?;
                total.sent += round.sent;
                total.failed += round.failed;
                total.dropped += round.dropped;
                if round.sent + round.failed == 0 || stop.is_cancelled() {
                    break;
                }
            }
            Ok(format!(
                "sent {}, failed {}, dropped {}",
                total.sent, total.failed, total.dropped
            ))
        })
    }
}
