//! Where sessions live: Postgres, keyed by the SHA-256 of the session id (the cookie carries the
//! id itself) with the payload sealed by the app's [`Keyring`], so a database dump or backup
//! yields neither a usable session nor the CSRF token, state, nonce or PKCE verifier inside.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use uuid::Uuid;

use super::session::{OPERATOR, PRE_LOGIN_IDLE};
use crate::audit::{self, Action, Actor};
use crate::crypto::{Keyring, sha256};
use crate::operators;
use crate::settings;

/// Sessions in the `sessions` table.
#[derive(Clone)]
pub struct PgSessionStore {
    db: PgPool,
    keys: Keyring,
}

impl std::fmt::Debug for PgSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSessionStore").finish_non_exhaustive()
    }
}

impl PgSessionStore {
    /// A store over `db`, sealing with `keys`.
    pub fn new(db: PgPool, keys: Keyring) -> Self {
        Self { db, keys }
    }

    /// Inserts or replaces `record`; with `replace` false an existing id is left alone and
    /// `false` returned (a collision).
    async fn write(&self, record: &Record, replace: bool) -> session_store::Result<bool> {
        let payload = serde_json::to_vec(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let operator_id = record
            .data
            .get(OPERATOR)
            .and_then(|v| serde_json::from_value::<Uuid>(v.clone()).ok());
        // Before sign-in there is little to keep and nothing to resume: a short lifetime.
        let expires_at = match operator_id {
            Some(_) => record.expiry_date,
            None => record
                .expiry_date
                .min(OffsetDateTime::now_utc() + PRE_LOGIN_IDLE),
        };
        // A session write lost to a crash in the moment after it only asks its holder to open
        // the link or sign in again, so it does not wait for the disk (`synchronous_commit`
        // off for this statement's own transaction alone, set by the statement itself so the
        // write is one round trip: the commit stays atomic and is on disk within
        // milliseconds). Ending a session (`delete`) still waits.
        // Without `replace`, an existing id is left alone and nothing is written (`where false`).
        let written = sqlx::query!(
            "insert into sessions (id_sha256, operator_id, payload_key_id, payload_ciphertext, expires_at)
             select $1, $2, $3, $4, $5
             from (select set_config('synchronous_commit', 'off', true)) as unsynced
             on conflict (id_sha256) do update set operator_id = excluded.operator_id,
                 payload_key_id = excluded.payload_key_id,
                 payload_ciphertext = excluded.payload_ciphertext,
                 expires_at = excluded.expires_at
             where $6",
            id_sha256(&record.id),
            operator_id,
            self.keys.id(),
            self.keys.seal(&payload),
            expires_at,
            replace,
        )
        .execute(&self.db)
        .await
        .map_err(backend)?;
        Ok(written.rows_affected() == 1)
    }
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        while !self.write(record, false).await? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.write(record, true).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row = sqlx::query!(
            "select payload_key_id, payload_ciphertext, expires_at from sessions
             where id_sha256 = $1 and expires_at > now()",
            id_sha256(id),
        )
        .fetch_optional(&self.db)
        .await
        .map_err(backend)?;
        let Some((key_id, sealed, expiry_date)) =
            row.map(|r| (r.payload_key_id, r.payload_ciphertext, r.expires_at))
        else {
            return Ok(None);
        };
        // Sealed under a key no longer configured: the session simply ended.
        let Ok(payload) = self.keys.open(&key_id, &sealed) else {
            tracing::info!(key_id, "session sealed under a retired key: ended");
            return Ok(None);
        };
        let data = serde_json::from_slice(&payload)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sqlx::query!("delete from sessions where id_sha256 = $1", id_sha256(id))
            .execute(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// The stored key of session `id`: the SHA-256 of its 128 random bits.
pub fn id_sha256(id: &Id) -> Vec<u8> {
    sha256(&id.0.to_le_bytes())
}

/// Ends every live signed-in session whose payload `matches`; returns the operator of each
/// ended one. Payloads are sealed, so each is opened to be looked at: fine for the few
/// hundred sessions a console has (front-channel logout uses it to find an Entra session).
pub async fn end_matching(
    db: &PgPool,
    keys: &Keyring,
    matches: impl Fn(&HashMap<String, Value>) -> bool,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select id_sha256, operator_id as "operator_id!", payload_key_id, payload_ciphertext
           from sessions where operator_id is not null and expires_at > now()"#,
    )
    .fetch_all(db)
    .await?;
    let mut ended = Vec::new();
    for row in rows {
        let Ok(payload) = keys.open(&row.payload_key_id, &row.payload_ciphertext) else {
            continue;
        };
        let Ok(data) = serde_json::from_slice::<HashMap<String, Value>>(&payload) else {
            continue;
        };
        if matches(&data) {
            let gone = sqlx::query!("delete from sessions where id_sha256 = $1", row.id_sha256)
                .execute(db)
                .await?;
            if gone.rows_affected() == 1 {
                ended.push(row.operator_id);
            }
        }
    }
    Ok(ended)
}

/// Saves `edits` to the settings ([`settings::save`]) and, when that turned local passwords
/// off, ends every session signed in with one (those signed in with Entra ID carry
/// [`super::session::SSO`]), audited per operator: the console, the JSON API and the CLI all change
/// settings through here. Returns the keys that changed.
pub async fn save_settings(
    db: &PgPool,
    keys: &Keyring,
    edits: &[settings::Edit],
    actor: &Actor,
) -> Result<Vec<settings::Key>, settings::SettingsError> {
    let changed = settings::save(db, keys, edits, actor).await?;
    if changed.contains(&settings::Key::LocalPasswords)
        && !settings::load(db, keys).await?.local_passwords
    {
        let ended = end_matching(db, keys, |data| !data.contains_key(super::session::SSO)).await?;
        audit_ended(
            db,
            &ended,
            Action::OperatorSessionsEnded,
            serde_json::json!({ "reason": "local passwords were turned off" }),
        )
        .await?;
    }
    Ok(changed)
}

/// Records, for each operator in `ended` (one entry per session [`end_matching`] ended),
/// `action` with how many of their sessions ended and `detail`.
pub async fn audit_ended(
    db: &PgPool,
    ended: &[Uuid],
    action: Action,
    detail: Value,
) -> Result<(), sqlx::Error> {
    let mut per_operator: BTreeMap<Uuid, u64> = BTreeMap::new();
    for operator in ended {
        *per_operator.entry(*operator).or_default() += 1;
    }
    for (id, sessions) in per_operator {
        if let Some(operator) = operators::get(db, id).await? {
            let mut detail = detail.clone();
            detail["sessions"] = sessions.into();
            audit::record(
                db,
                &Actor::Operator(operator.email),
                action,
                None,
                None,
                detail,
            )
            .await?;
        }
    }
    Ok(())
}

/// Deletes expired sessions; returns how many.
pub async fn delete_expired(db: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!("delete from sessions where expires_at <= now()")
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

fn backend(e: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}
