//! Gangway's own single sign-on session of a customer's user: made when Microsoft signs them
//! in, reused by later sign-ins to any application (sliding, [`SESSION_IDLE`] and at most
//! [`SESSION_MAX`]), named by the `sid` of the tokens, ended by logout.

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{SESSION_IDLE, SESSION_MAX, SigninError, span};
use crate::crypto::random_token;
use crate::identity::SignedInUser;

/// A live session.
#[derive(Debug, Clone)]
pub struct SigninSession {
    /// Gangway's id (kept in the browser's session).
    pub id: Uuid,
    /// The `sid` claim.
    pub sid: String,
    /// Gangway's id of the user's tenant.
    pub tenant_id: Uuid,
    /// The user's object id there.
    pub object_id: Uuid,
    /// When Microsoft authenticated the user.
    pub auth_time: OffsetDateTime,
    /// How (`amr`), when Microsoft said.
    pub amr: Vec<String>,
}

/// Starts a session for `user` of tenant `tenant_id`, just signed in by Microsoft.
pub async fn start(
    db: &PgPool,
    tenant_id: Uuid,
    user: &SignedInUser,
) -> Result<SigninSession, SigninError> {
    let sid = random_token();
    let now = OffsetDateTime::now_utc();
    let id = sqlx::query_scalar!(
        "insert into signin_sessions
           (sid, tenant_id, object_id, username, auth_time, amr, upstream_sid, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8) returning id",
        sid,
        tenant_id,
        user.object_id,
        user.username,
        now,
        &user.amr,
        user.sid,
        now + span(SESSION_IDLE),
    )
    .fetch_one(db)
    .await?;
    Ok(SigninSession {
        id,
        sid,
        tenant_id,
        object_id: user.object_id,
        auth_time: now,
        amr: user.amr.clone(),
    })
}

/// The session `id` if it is still live, its idle deadline pushed back (never past
/// [`SESSION_MAX`] from its start).
pub async fn resume(db: &PgPool, id: Uuid) -> Result<Option<SigninSession>, SigninError> {
    let row = sqlx::query!(
        "update signin_sessions
         set last_seen_at = now(),
             expires_at = least(now() + make_interval(secs => $2), created_at + make_interval(secs => $3))
         where id = $1 and ended_at is null and expires_at > now()
         returning id, sid, tenant_id, object_id, auth_time, amr",
        id,
        SESSION_IDLE.as_secs_f64(),
        SESSION_MAX.as_secs_f64(),
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| SigninSession {
        id: r.id,
        sid: r.sid,
        tenant_id: r.tenant_id,
        object_id: r.object_id,
        auth_time: r.auth_time,
        amr: r.amr,
    }))
}

/// Ends session `id` and revokes every grant made through it; returns the ids of the
/// applications it had signed in to (for back-channel logout).
pub async fn end(db: &PgPool, id: Uuid, reason: &str) -> Result<Vec<Uuid>, SigninError> {
    let mut tx = db.begin().await?;
    sqlx::query!(
        "update signin_sessions set ended_at = now() where id = $1 and ended_at is null",
        id
    )
    .execute(&mut *tx)
    .await?;
    let apps = sqlx::query_scalar!(
        r#"update signin_grants set revoked_at = coalesce(revoked_at, now()),
                  revoked_reason = coalesce(revoked_reason, $2)
           where session_id = $1 returning application_id"#,
        id,
        reason
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut apps = apps;
    apps.sort();
    apps.dedup();
    Ok(apps)
}
