//! API tokens for the JSON API: `gw_` and 32 random bytes, shown once, only their SHA-256
//! stored; scoped read or write, optionally expiring, revocable; their last use (when, from
//! where) recorded at most once a minute per process, and checks cached for seconds ([`cache`]).
//!
//! A token made in the console belongs to the operator who made it: it is revoked when they are
//! removed, and a write token when they stop being an admin (a viewer holds none), each
//! audited. One made with the CLI belongs to no operator (whoever runs the CLI has the database
//! and the key anyway) and lives until it expires or is revoked.

mod cache;

use serde_json::json;
use sha2::Digest;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{self, Action, Actor};
use crate::crypto::{random_token, sha256};
use crate::types::{ApiTokenId, Secret};

pub use cache::{CHECK_TTL, TokenCache};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read anything the API lists.
    Read,
    /// Read, and change things (create, sync, revoke).
    Write,
}

impl Scope {
    /// `read` or `write`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            _ => None,
        }
    }

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// A token as listed (never the token itself).
#[derive(Debug, Clone)]
pub struct ApiToken {
    /// Its id.
    pub id: ApiTokenId,
    /// What it is for.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// Who created it.
    pub created_by: String,
    /// The operator it belongs to, by email; none for a CLI token (or one whose owner is gone).
    pub owner: Option<String>,
    /// When.
    pub created_at: OffsetDateTime,
    /// When it stops working, if ever.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// When it was last used.
    pub last_used_at: Option<OffsetDateTime>,
    /// From which address.
    pub last_used_addr: Option<String>,
    /// Its own JSON API rate, calls per second; none: the System Settings default.
    pub calls_per_second: Option<i32>,
}

impl ApiToken {
    /// Whether it still lets a caller in.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }

    /// Who it belongs to, in words: the operator's email, the CLI, or the operator it belonged
    /// to until they were removed.
    pub fn owner_label(&self) -> String {
        match (&self.owner, self.created_by.strip_prefix("operator:")) {
            (Some(email), _) => email.clone(),
            (None, Some(email)) => format!("{email} (removed)"),
            (None, None) => "CLI (no operator)".into(),
        }
    }
}

/// The caller a presented token stands for.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's id.
    pub token_id: Uuid,
    /// Its name, for the audit trail.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// Its own rate, calls per second; none: the System Settings default.
    pub calls_per_second: Option<u32>,
}

/// A token's own JSON API rate may be set from 1 to this many calls per second.
pub const MAX_CALLS_PER_SECOND: u32 = 100_000;

/// Why a token could not be created or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// An input is not acceptable; the message says which and why.
    #[error("{0}")]
    Invalid(String),
    /// No token has this id (or it is revoked already).
    #[error("no such API token")]
    NotFound,
    /// The presented token is unknown, revoked or expired.
    #[error("the API token is unknown, revoked or expired")]
    Refused,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Tokens start with this, so leaked ones are easy to recognise (secret scanners).
pub const PREFIX: &str = "gw_";

/// What a new token is to be.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// What it is for.
    pub name: &'a str,
    /// What it may do.
    pub scope: Scope,
    /// How long it works (none: until revoked).
    pub valid_days: Option<u32>,
    /// Its own rate, calls per second (none: the System Settings default).
    pub calls_per_second: Option<u32>,
    /// The operator it belongs to (none: the CLI's).
    pub owner: Option<Uuid>,
}

/// Creates the token `new` describes; returns it (shown once) with its record. Audited.
pub async fn create(
    db: &PgPool,
    new: &NewToken<'_>,
    actor: &Actor,
) -> Result<(Secret, ApiToken), TokenError> {
    let NewToken {
        name,
        scope,
        valid_days,
        calls_per_second,
        owner,
    } = *new;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(TokenError::Invalid(
            "Give the token a name of 1 to 100 characters, e.g. the system that uses it.".into(),
        ));
    }
    if valid_days.is_some_and(|d| !(1..=730).contains(&d)) {
        return Err(TokenError::Invalid(
            "A token lives from 1 to 730 days, or until revoked.".into(),
        ));
    }
    check_rate(calls_per_second)?;
    let token = Secret::new(format!("{PREFIX}{}", random_token()));
    let mut tx = db.begin().await?;
    let record = sqlx::query_as!(
        ApiToken,
        r#"with t as (
               insert into api_tokens (name, token_sha256, scope, created_by, expires_at, owner_id, calls_per_second)
               values ($1, $2, $3, $4, now() + make_interval(days => $5), $6, $7) returning *)
           select t.id as "id!: ApiTokenId", t.name as "name!", t.scope as "scope!: Scope",
                  t.created_by as "created_by!", o.email::text as owner, t.created_at as "created_at!",
                  t.expires_at, t.revoked_at, t.last_used_at, t.last_used_addr, t.calls_per_second
           from t left join operators o on o.id = t.owner_id"#,
        name,
        sha256(token.expose().as_bytes()),
        scope as Scope,
        actor.to_string(),
        valid_days.map(|d| d as i32),
        owner,
        calls_per_second.map(|n| n as i32),
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        actor,
        Action::ApiTokenCreated,
        None,
        None,
        json!({ "token": record.name, "scope": scope.as_str(), "owner": record.owner_label(), "expires_at": record.expires_at.map(crate::format::datetime), "calls_per_second": rate_label(calls_per_second) }),
    )
    .await?;
    tx.commit().await?;
    Ok((token, record))
}

/// A rate as the audit trail and the console name it.
fn rate_label(calls_per_second: Option<u32>) -> String {
    match calls_per_second {
        Some(n) => format!("{n}/s"),
        None => "default".into(),
    }
}

fn check_rate(calls_per_second: Option<u32>) -> Result<(), TokenError> {
    if calls_per_second.is_some_and(|n| !(1..=MAX_CALLS_PER_SECOND).contains(&n)) {
        return Err(TokenError::Invalid(format!(
            "A token's rate is from 1 to {MAX_CALLS_PER_SECOND} calls per second, or empty for the System Settings default."
        )));
    }
    Ok(())
}

/// Sets token `id`'s own rate (none: back to the System Settings default); audited. Takes
/// effect within [`cache::CHECK_TTL`], when the cached check expires.
pub async fn set_rate(
    db: &PgPool,
    id: ApiTokenId,
    calls_per_second: Option<u32>,
    actor: &Actor,
) -> Result<(), TokenError> {
    check_rate(calls_per_second)?;
    let mut tx = db.begin().await?;
    let changed = sqlx::query!(
        "update api_tokens t set calls_per_second = $2
         from api_tokens old where t.id = $1 and old.id = t.id and t.revoked_at is null
         returning t.name, old.calls_per_second as old",
        id as ApiTokenId,
        calls_per_second.map(|n| n as i32),
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(TokenError::NotFound)?;
    let (name, old) = (changed.name, changed.old);
    audit::record(
        &mut *tx,
        actor,
        Action::ApiTokenRateChanged,
        None,
        None,
        json!({ "token": name, "old": rate_label(old.map(|n| n as u32)), "new": rate_label(calls_per_second) }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Every token, newest first, with its owner.
pub async fn list(db: &PgPool) -> Result<Vec<ApiToken>, sqlx::Error> {
    sqlx::query_as!(
        ApiToken,
        r#"select t.id as "id: ApiTokenId", t.name, t.scope as "scope: Scope", t.created_by,
                  o.email::text as owner,
                  t.created_at, t.expires_at, t.revoked_at, t.last_used_at, t.last_used_addr,
                  t.calls_per_second
           from api_tokens t left join operators o on o.id = t.owner_id
           order by t.created_at desc"#,
    )
    .fetch_all(db)
    .await
}

/// Revokes a token at once; audited.
pub async fn revoke(db: &PgPool, id: ApiTokenId, actor: &Actor) -> Result<(), TokenError> {
    let mut tx = db.begin().await?;
    let name = sqlx::query_scalar!(
        "update api_tokens set revoked_at = now() where id = $1 and revoked_at is null
         returning name",
        id as ApiTokenId
    )
    .fetch_optional(&mut *tx)
    .await?;
    let name = name.ok_or(TokenError::NotFound)?;
    audit::record(
        &mut *tx,
        actor,
        Action::ApiTokenRevoked,
        None,
        None,
        json!({ "token": name }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Revokes the live tokens operator `owner` (`email`) holds — only the write tokens when
/// `writes_only` (they stopped being an admin) — in the caller's transaction, each audited with
/// `reason`; returns how many.
pub async fn revoke_owned(
    conn: &mut PgConnection,
    owner: Uuid,
    email: &str,
    writes_only: bool,
    reason: &str,
    actor: &Actor,
) -> Result<u64, sqlx::Error> {
    let names = sqlx::query_scalar!(
        "update api_tokens set revoked_at = now()
         where owner_id = $1 and revoked_at is null and (not $2 or scope = 'write')
         returning name",
        owner,
        writes_only,
    )
    .fetch_all(&mut *conn)
    .await?;
    for name in &names {
        audit::record(
            &mut *conn,
            actor,
            Action::ApiTokenRevoked,
            None,
            None,
            json!({ "token": name, "owner": email, "reason": reason }),
        )
        .await?;
    }
    Ok(names.len() as u64)
}

/// The caller `presented` stands for; refused when the token is unknown, revoked or expired.
/// The lookup is by hash, so a token is never compared in the clear. A token checked within
/// [`CHECK_TTL`] is taken from `cache`; its use (time and `addr`) is recorded when due, off
/// the request path.
pub async fn authenticate(
    db: &PgPool,
    cache: &TokenCache,
    presented: &str,
    addr: &str,
) -> Result<Caller, TokenError> {
    if !presented.starts_with(PREFIX) || presented.len() > 200 {
        return Err(TokenError::Refused);
    }
    let hash: [u8; 32] = sha2::Sha256::digest(presented.as_bytes()).into();
    let caller = match cache.get(&hash) {
        Some(caller) => caller,
        None => {
            let row = sqlx::query!(
                r#"select id, name, scope as "scope: Scope", expires_at, calls_per_second from api_tokens
                 where token_sha256 = $1 and revoked_at is null and (expires_at is null or expires_at > now())
                   -- Revoked with their owner's role anyway; checked again so no path can miss it.
                   and (owner_id is null or exists (select 1 from operators o
                                                     where o.id = owner_id and (scope = 'read' or o.role = 'admin')))"#,
                hash.as_slice(),
            )
            .fetch_optional(db)
            .await?
            .ok_or(TokenError::Refused)?;
            let caller = Caller {
                token_id: row.id,
                name: row.name,
                scope: row.scope,
                calls_per_second: row.calls_per_second.map(|n| n as u32),
            };
            cache.put(hash, caller.clone(), row.expires_at);
            caller
        }
    };
    if cache.use_due(caller.token_id) {
        tokio::spawn(record_use(db.clone(), caller.token_id, addr.to_owned()));
    }
    Ok(caller)
}

/// Records that token `id` was just used from `addr`.
async fn record_use(db: PgPool, id: Uuid, addr: String) {
    let recorded = sqlx::query!(
        "update api_tokens set last_used_at = now(), last_used_addr = $2 where id = $1",
        id,
        addr,
    )
    .execute(&db)
    .await;
    // Not again before the interval: the last use then shows up to two intervals late.
    if let Err(error) = recorded {
        tracing::warn!(%error, token_id = %id, "recording an API token's last use failed");
    }
}
