//! Gangway's own single sign-on session of a customer's user: made when Microsoft signs them
//! in, reused by later sign-ins to any application (sliding, [`SESSION_IDLE`] and at most
//! [`SESSION_MAX`]), named by the `sid` of the tokens, ended by logout.

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{SESSION_IDLE, SESSION_MAX, SigninError, span};
use crate::crypto::random_token;
use crate::identity::SignedInUser;
use crate::types::TenantId;

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

/// Session `id` unless it was ended (logged out); whether it idled out does not matter here:
/// tokens issued in it outlive the browser's single sign-on.
pub async fn get(db: &PgPool, id: Uuid) -> Result<Option<SigninSession>, SigninError> {
    Ok(sqlx::query_as!(
        SigninSession,
        "select id, sid, tenant_id, object_id, auth_time, amr from signin_sessions
         where id = $1 and ended_at is null",
        id
    )
    .fetch_optional(db)
    .await?)
}

/// A session just ended.
#[derive(Debug, Clone)]
pub struct Ended {
    /// Microsoft's id of the user's tenant (for Entra ID's own sign-out).
    pub entra_tenant_id: TenantId,
    /// The applications it had signed in to (for back-channel logout).
    pub applications: Vec<Uuid>,
}

/// The id of the live session named by `sid`.
pub async fn by_sid(db: &PgPool, sid: &str) -> Result<Option<Uuid>, SigninError> {
    Ok(sqlx::query_scalar!(
        "select id from signin_sessions where sid = $1 and ended_at is null",
        sid
    )
    .fetch_optional(db)
    .await?)
}

/// Ends session `id` (if not ended already) and revokes every grant made through it.
pub async fn end(db: &PgPool, id: Uuid, reason: &str) -> Result<Option<Ended>, SigninError> {
    let mut tx = db.begin().await?;
    let tenant = sqlx::query_scalar!(
        "update signin_sessions s set ended_at = now() from tenants t
         where s.id = $1 and s.ended_at is null and t.id = s.tenant_id
         returning t.entra_tenant_id",
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(tenant) = tenant else {
        return Ok(None);
    };
    let mut applications = sqlx::query_scalar!(
        "update signin_grants set revoked_at = coalesce(revoked_at, now()),
                revoked_reason = coalesce(revoked_reason, $2)
         where session_id = $1 returning application_id",
        id,
        reason
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    applications.sort();
    applications.dedup();
    Ok(Some(Ended {
        entra_tenant_id: TenantId::from(tenant),
        applications,
    }))
}
