//! The setup's sign-in as the console runs it: started by an admin operator, then followed by
//! whichever portal process serves the next page load. The device code waits sealed in
//! `setup_sign_ins` while the administrator signs in; each page load claims the next poll (one
//! process at a time, never faster than Entra ID's `interval`), and the code is deleted as soon
//! as the sign-in ends — with a token, declined, or expired.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Step;
use super::sign_in::{DeviceLogin, Poll, SignInError};
use crate::audit::{self, Action, Actor};
use crate::crypto::Keyring;
use crate::types::{Secret, TenantId};

/// A step of the setup's checklist as the sign-in's record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// The step, in a few words.
    pub title: String,
    /// Whether it changed anything.
    pub changed: bool,
    /// What it found or did.
    pub detail: String,
}

impl From<&Step> for Done {
    fn from(step: &Step) -> Self {
        Self {
            title: step.title.to_owned(),
            changed: step.changed,
            detail: step.detail.clone(),
        }
    }
}

/// Where a console sign-in stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// The administrator has not signed in yet.
    Waiting,
    /// Signed in, and the setup ran: its checklist.
    Done(Vec<Done>),
    /// Declined, expired or refused: why, in words for the page.
    Failed(String),
}

/// A console sign-in, as the setup page shows it.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// Its id.
    pub id: Uuid,
    /// The provider's tenant it signs in to.
    pub tenant_id: TenantId,
    /// What the administrator types at [`Self::verification_uri`].
    pub user_code: String,
    /// Microsoft's page for the code.
    pub verification_uri: String,
    /// Seconds between polls.
    pub interval_secs: i32,
    /// When the code expires.
    pub expires_at: OffsetDateTime,
    /// Where it stands.
    pub state: State,
    /// The operator who started it (their email), while they exist: what follows is theirs.
    pub started_by: Option<String>,
}

impl SignIn {
    /// Who the audit trail names for what follows from this sign-in.
    pub fn actor(&self) -> Actor {
        self.started_by
            .clone()
            .map_or(Actor::System, Actor::Operator)
    }
}

/// What a page load found.
#[derive(Debug)]
pub enum Advanced {
    /// Nothing to do now (no sign-in, finished, or the next poll is not due).
    Unchanged,
    /// The administrator signed in: their token, for the setup; then [`finish`].
    SignedIn(Uuid, TenantId, Secret),
}

/// Why a console sign-in could not be started or followed.
#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    /// Entra ID refused to start it.
    #[error(transparent)]
    SignIn(#[from] SignInError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Starts a sign-in for `login`'s tenant, stores it (the device code sealed), audits it and wakes
/// the `setup_sign_in` task that follows it; a sign-in still waiting is replaced.
pub async fn begin(
    db: &PgPool,
    keys: &Keyring,
    http: &reqwest::Client,
    login: &DeviceLogin,
    operator: Uuid,
    actor: &Actor,
) -> Result<Uuid, PendingError> {
    let started = login.start(http).await?;
    let id = Uuid::new_v4();
    let interval = i32::try_from(started.interval().as_secs())
        .unwrap_or(5)
        .clamp(1, 60);
    let expires_in = i64::try_from(started.expires_in).unwrap_or(900);
    let mut tx = db.begin().await?;
    // Only the newest sign-in is followed: an older one still waiting ends here, its code gone.
    sqlx::query!(
        "update setup_sign_ins
            set state = 'failed', error = 'Another sign-in was started instead.',
                device_code = null, key_id = null, finished_at = now()
          where state = 'waiting'"
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into setup_sign_ins
            (id, tenant_id, device_code, key_id, user_code, verification_uri, interval_secs,
             expires_at, next_poll_at, started_by)
         values ($1, $2, $3, $4, $5, $6, $7, now() + $8::bigint * interval '1 second',
                 now() + $7::integer * interval '1 second', $9)",
        id,
        login.tenant.as_uuid(),
        keys.seal(started.device_code.expose().as_bytes()),
        keys.id(),
        started.user_code,
        started.verification_uri,
        interval,
        expires_in,
        operator,
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        actor,
        Action::SetupSignInStarted,
        None,
        None,
        json!({ "provider_tenant_id": login.tenant.to_string() }),
    )
    .await?;
    // The task that follows the sign-in starts once it is committed.
    crate::background::registry::wake(&mut tx, crate::background::Task::SetupSignIn).await?;
    tx.commit().await?;
    Ok(id)
}

/// The newest console sign-in, if any.
pub async fn latest(db: &PgPool) -> Result<Option<SignIn>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select s.id, s.tenant_id, s.user_code, s.verification_uri, s.interval_secs,
                  s.expires_at, s.state, s.steps, s.error, o.email::text as "started_by?"
           from setup_sign_ins s left join operators o on o.id = s.started_by
           order by s.created_at desc limit 1"#
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| SignIn {
        id: r.id,
        tenant_id: TenantId::from_uuid(r.tenant_id),
        user_code: r.user_code,
        verification_uri: r.verification_uri,
        interval_secs: r.interval_secs,
        expires_at: r.expires_at,
        state: match r.state.as_str() {
            "done" => State::Done(
                r.steps
                    .and_then(|s| serde_json::from_value(s).ok())
                    .unwrap_or_default(),
            ),
            "failed" => State::Failed(r.error.unwrap_or_default()),
            _ => State::Waiting,
        },
        started_by: r.started_by,
    }))
}

/// Polls Entra ID for the waiting sign-in `id` if its next poll is due (claimed atomically, so
/// one process polls per interval); a sign-in that ended without a token is recorded as failed.
pub async fn advance(
    db: &PgPool,
    keys: &Keyring,
    http: &reqwest::Client,
    login: impl FnOnce(TenantId) -> DeviceLogin,
    id: Uuid,
    actor: &Actor,
) -> Result<Advanced, PendingError> {
    let claimed = sqlx::query!(
        r#"update setup_sign_ins
              set next_poll_at = now() + interval_secs * interval '1 second'
            where id = $1 and state = 'waiting' and next_poll_at <= now()
        returning tenant_id, device_code as "device_code!", key_id as "key_id!",
                  expires_at <= now() as "expired!""#,
        id
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = claimed else {
        return Ok(Advanced::Unchanged);
    };
    let tenant = TenantId::from_uuid(row.tenant_id);
    if row.expired {
        fail(db, id, &SignInError::Expired, actor).await?;
        return Ok(Advanced::Unchanged);
    }
    let Ok(code) = keys
        .open(&row.key_id, &row.device_code)
        .map(|c| Secret::new(String::from_utf8_lossy(&c)))
    else {
        fail(db, id, &SignInError::Unknown, actor).await?;
        return Ok(Advanced::Unchanged);
    };
    match login(tenant).poll(http, &code).await {
        Ok(Poll::Pending) => Ok(Advanced::Unchanged),
        Ok(Poll::SignedIn(token)) => Ok(Advanced::SignedIn(id, tenant, token)),
        // Entra ID out of reach: the next page load asks again.
        Err(SignInError::Unreachable(e)) => {
            tracing::warn!(error = %e, "the setup's sign-in poll did not reach Entra ID");
            Ok(Advanced::Unchanged)
        }
        Err(e) => {
            fail(db, id, &e, actor).await?;
            Ok(Advanced::Unchanged)
        }
    }
}

/// Records the end of a signed-in sign-in: the setup's checklist, or why it stopped.
pub async fn finish(
    db: &PgPool,
    id: Uuid,
    outcome: Result<&[Step], String>,
    actor: &Actor,
) -> Result<(), sqlx::Error> {
    match outcome {
        Ok(steps) => {
            sqlx::query!(
                "update setup_sign_ins
                    set state = 'done', steps = $2, device_code = null, key_id = null,
                        finished_at = now()
                  where id = $1",
                id,
                json!(steps.iter().map(Done::from).collect::<Vec<_>>()),
            )
            .execute(db)
            .await?;
            Ok(())
        }
        Err(reason) => record_failure(db, id, &reason, actor).await,
    }
}

async fn fail(db: &PgPool, id: Uuid, e: &SignInError, actor: &Actor) -> Result<(), sqlx::Error> {
    record_failure(db, id, &words(e), actor).await
}

async fn record_failure(
    db: &PgPool,
    id: Uuid,
    reason: &str,
    actor: &Actor,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let ended = sqlx::query!(
        "update setup_sign_ins
            set state = 'failed', error = $2, device_code = null, key_id = null,
                finished_at = now()
          where id = $1 and state = 'waiting'",
        id,
        reason,
    )
    .execute(&mut *tx)
    .await?;
    if ended.rows_affected() == 1 {
        audit::record(
            &mut *tx,
            actor,
            Action::SetupSignInFailed,
            None,
            None,
            json!({ "reason": reason }),
        )
        .await?;
    }
    tx.commit().await
}

/// What the page says when a sign-in ends without a token.
fn words(e: &SignInError) -> String {
    match e {
        SignInError::Declined(_) => "The sign-in was declined: the administrator cancelled, or their account may not grant the permissions the setup needs (it takes a Global Administrator or a Cloud Application Administrator of this tenant). Nothing was changed. Sign in again when ready.".into(),
        SignInError::Expired => "The code expired before the sign-in finished (codes last 15 minutes). Nothing was changed. Start again.".into(),
        other => format!("{other}. Nothing was changed."),
    }
}
