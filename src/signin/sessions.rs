//! Gangway's own single sign-on session of a customer's user: made when Microsoft signs them
//! in, reused by later sign-ins to any application (sliding, [`SESSION_IDLE`] and at most
//! [`SESSION_MAX`]), named by the `sid` of the tokens, ended by logout.

use sqlx::{PgConnection, PgPool};
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

/// Ends session `id` (if not ended already), revokes every grant made through it and queues
/// its back-channel logouts.
pub async fn end(db: &PgPool, id: Uuid, reason: &str) -> Result<Option<Ended>, SigninError> {
    let mut tx = db.begin().await?;
    let ended = end_all(&mut tx, &[id], reason).await?;
    tx.commit().await?;
    Ok(ended.into_iter().next())
}

/// Ends, in `tx`, the sessions `ids` not ended already: revokes every grant made through them
/// and queues a back-channel logout for each application they signed in to (a code issued or
/// redeemed) that registered a back-channel logout URI. Returns the sessions it ended.
pub async fn end_all(
    tx: &mut PgConnection,
    ids: &[Uuid],
    reason: &str,
) -> Result<Vec<Ended>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query!(
        r#"with ended as (
               update signin_sessions s set ended_at = now() from tenants t
               where s.id = any($1) and s.ended_at is null and t.id = s.tenant_id
               returning s.id, t.entra_tenant_id
           ), revoked as (
               update signin_grants g set revoked_at = coalesce(g.revoked_at, now()),
                      revoked_reason = coalesce(g.revoked_reason, $2)
               from ended e where g.session_id = e.id
               returning g.session_id, g.application_id
           ), signed_in as (
               select session_id, application_id from revoked
               union
               select c.session_id, c.application_id from signin_codes c join ended e on e.id = c.session_id
           ), queued as (
               insert into signin_logouts (application_id, session_id, reason)
               select s.application_id, s.session_id, $2 from signed_in s
                 join signin_applications a on a.id = s.application_id
               where a.backchannel_logout_uri is not null
               on conflict on constraint signin_logouts_once do nothing
           )
           select e.entra_tenant_id,
                  coalesce(array_agg(s.application_id order by s.application_id)
                           filter (where s.application_id is not null), '{}') as "applications!"
           from ended e left join signed_in s on s.session_id = e.id
           group by e.id, e.entra_tenant_id"#,
        ids,
        reason
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Ended {
            entra_tenant_id: TenantId::from(r.entra_tenant_id),
            applications: r.applications,
        })
        .collect())
}
