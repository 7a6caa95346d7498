//! The invitation email and its outbox: queued in the invitation's transaction, delivered and
//! retried by a worker, so a mail server outage never loses an invitation.

use std::time::{Duration, Instant};

use askama::Template;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use url::Url;
use uuid::Uuid;

use super::{Context, Invitation, InvitationStatus};
use crate::audit::{self, Action, Actor};
use crate::crypto::Keyring;
use crate::types::Branding;
use crate::types::Profile;
use crate::types::Secret;
use crate::types::profile::Permission;

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
    let profile: Profile = sqlx::query_as(
        "select id, name::text as name, description, delegated, application, built_in, is_default
         from permission_profiles where id = $1",
    )
    .bind(invitation.permission_profile_id)
    .fetch_one(&mut *tx)
    .await?;
    let why_again = super::reconsent::why_asked_again(&mut *tx, invitation).await?;
    let email = render(cx, invitation, link, &profile, why_again);
    enqueue_email(tx, cx.keys, &email, Some(invitation.id)).await
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
    sqlx::query("insert into outbox (invitation_id, recipient, payload_ciphertext, payload_key_id) values ($1, $2, $3, $4)")
        .bind(invitation)
        .bind(&email.to)
        .bind(sealed)
        .bind(keys.id())
        .execute(tx)
        .await?;
    Ok(())
}

/// Drops an invitation's undelivered mail: it carries a link that no longer works.
pub async fn discard_unsent(tx: &mut PgConnection, invitation_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("delete from outbox where invitation_id = $1 and sent_at is null")
        .bind(invitation_id)
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

#[derive(sqlx::FromRow)]
struct Queued {
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

/// Delivers due mail, a few at a time; failures wait with exponential backoff and are retried.
///
/// Mail is leased in a short transaction of its own and sent outside any transaction; each
/// message is then marked on its own, so a later failure can not undo a mark and send it again.
pub async fn deliver_due(
    db: &PgPool,
    keys: &Keyring,
    mailer: &Mailer,
) -> Result<Delivered, sqlx::Error> {
    // Taken before the claim, so the lease surely lasts at least this long from here.
    let claimed_at = Instant::now();
    let (dropped, due) = claim(db).await?;
    let mut done = Delivered {
        dropped,
        ..Delivered::default()
    };
    if dropped > 0 {
        tracing::info!(dropped, "dropped queued mail whose link no longer works");
    }
    for item in due {
        if claimed_at.elapsed() + SEND_TIMEOUT >= LEASE {
            // The rest waits for its lease to run out and is claimed again then.
            break;
        }
        let outcome = match keys.open(&item.payload_key_id, &item.payload_ciphertext) {
            Ok(plain) => match serde_json::from_slice::<Email>(&plain) {
                Ok(email) => mailer.send(&email).await,
                Err(e) => Err(MailError::Delivery(format!("unreadable queued mail: {e}"))),
            },
            Err(e) => Err(MailError::Delivery(e.to_string())),
        };
        match &outcome {
            Ok(()) => done.sent += 1,
            Err(_) => done.failed += 1,
        }
        record_outcome(db, &item, outcome).await?;
    }
    Ok(done)
}

/// Drops unsent mail for invitations whose link no longer works, then leases what is due, in
/// one short transaction. SKIP LOCKED and the lease let several processes deliver side by side.
async fn claim(db: &PgPool) -> Result<(usize, Vec<Queued>), sqlx::Error> {
    let usable: Vec<&str> = InvitationStatus::ALL
        .into_iter()
        .filter(|s| s.is_open())
        .map(InvitationStatus::as_str)
        .collect();
    let mut tx = db.begin().await?;
    let dropped = sqlx::query(
        "delete from outbox o using invitation_view i
         where o.invitation_id = i.id and o.sent_at is null and not (i.effective_status = any($1))",
    )
    .bind(&usable)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let due = sqlx::query_as(
        "update outbox set leased_until = now() + make_interval(secs => $1)
         where id in (
             select id from outbox
             where sent_at is null and payload_ciphertext is not null and next_attempt_at <= now()
               and (leased_until is null or leased_until <= now())
             order by next_attempt_at limit $2 for update skip locked)
         returning id, invitation_id, payload_ciphertext, payload_key_id, attempts, leased_until",
    )
    .bind(LEASE.as_secs_f64())
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((usize::try_from(dropped).unwrap_or(usize::MAX), due))
}

/// Records how sending `item` went, with its audit event. The outbox row changes only while
/// this worker's lease is still on it: a worker whose lease ran out can not mark over the one
/// that took the mail over.
async fn record_outcome(
    db: &PgPool,
    item: &Queued,
    outcome: Result<(), MailError>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let (marked, action, detail) = match outcome {
        Ok(()) => {
            let marked = sqlx::query(
                "update outbox set sent_at = now(), payload_ciphertext = null, payload_key_id = null,
                        last_error = null, attempts = attempts + 1, leased_until = null
                 where id = $1 and leased_until = $2",
            )
            .bind(item.id)
            .bind(item.leased_until)
            .execute(&mut *tx)
            .await?;
            (marked, Action::InvitationEmailSent, json!({}))
        }
        Err(e) => {
            let wait = backoff(item.attempts);
            tracing::warn!(outbox_id = item.id, attempts = item.attempts + 1, error = ?e, "mail delivery failed; will retry");
            let marked = sqlx::query(
                "update outbox set attempts = attempts + 1, last_error = $3, leased_until = null,
                        next_attempt_at = now() + make_interval(secs => $4)
                 where id = $1 and leased_until = $2",
            )
            .bind(item.id)
            .bind(item.leased_until)
            .bind(e.to_string())
            .bind(wait.as_secs_f64())
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

/// 30 s, 1 min, 2 min … capped at one hour.
fn backoff(attempts: i32) -> Duration {
    Duration::from_secs((30u64 << attempts.clamp(0, 7) as u32).min(3_600))
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
    sqlx::query_as(
        "select attempts, last_error, sent_at, next_attempt_at from outbox where invitation_id = $1
         order by created_at desc, id desc limit 1",
    )
    .bind(invitation_id)
    .fetch_optional(db)
    .await
}

/// Delivers mail until the process stops, polling every few seconds.
pub async fn run_worker(db: PgPool, keys: Keyring, mailer: Mailer) {
    loop {
        match deliver_due(&db, &keys, &mailer).await {
            Ok(Delivered {
                sent: 0, failed: 0, ..
            }) => tokio::time::sleep(Duration::from_secs(3)).await,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "outbox round failed");
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(super::backoff(0).as_secs(), 30);
        assert_eq!(super::backoff(1).as_secs(), 60);
        assert_eq!(super::backoff(20).as_secs(), 3_600);
    }
}
