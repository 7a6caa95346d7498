//! Sessions that end without their user's logout: the copy learned that the user was disabled,
//! deleted or left the tenant's sync scope, or the tenant was offboarded (or turned off). Each ends the user's (tenant's)
//! sessions, revokes every grant made through them and queues the back-channel logouts, like a
//! logout does ([`sessions::end_all`]). The directory store calls [`after_copy_changed`] in the
//! transaction of each page it applies, offboarding calls [`for_tenant`], and [`sweep`] (run
//! by the sign-in upkeep task) catches whatever either missed.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::SigninError;
use super::sessions;

/// Why sessions of a user the copy no longer admits end.
const USER_GONE: &str = "the user was disabled or deleted in the directory, or left its sync scope";
/// Why sessions of an offboarded or disabled tenant end.
const TENANT_GONE: &str = "the tenant was offboarded or disabled";

/// Ends, in `tx`, the sessions of tenant `tenant_id` (Gangway's id) whose user the copy now
/// knows as disabled, deleted or outside the sync scope, or no longer has once its users were copied in full (while
/// the first copy is running an absent user may simply not be copied yet). Returns how many
/// ended.
pub async fn after_copy_changed(
    tx: &mut PgConnection,
    tenant_id: Uuid,
) -> Result<usize, sqlx::Error> {
    // Planned each time, not kept prepared (a page of every sync runs it): kept, the plan made
    // while the copy was small joined each session to a scan of the whole copy.
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "select s.id from signin_sessions s
           left join directory_users u on u.tenant_id = s.tenant_id and u.object_id = s.object_id
         where s.tenant_id = $1 and s.ended_at is null
           and (u.account_enabled = false or u.soft_deleted_at is not null or not u.in_scope
                or (u.object_id is null and exists (
                      select 1 from sync_state st where st.tenant_id = $1
                        and st.resource = 'users' and st.last_round_at is not null)))",
    )
    .bind(tenant_id)
    .persistent(false)
    .fetch_all(&mut *tx)
    .await?;
    Ok(sessions::end_all(tx, &ids, USER_GONE).await?.len())
}

/// Ends every session of tenant `tenant_id` (Gangway's id): it was offboarded. Returns how
/// many ended.
pub async fn for_tenant(db: &PgPool, tenant_id: Uuid) -> Result<usize, SigninError> {
    let mut tx = db.begin().await?;
    let ids = sqlx::query_scalar!(
        "select id from signin_sessions where tenant_id = $1 and ended_at is null",
        tenant_id
    )
    .fetch_all(&mut *tx)
    .await?;
    let ended = sessions::end_all(&mut tx, &ids, TENANT_GONE).await?.len();
    tx.commit().await?;
    Ok(ended)
}

/// Ends the sessions that may no longer run: of tenants offboarded or disabled, and of users
/// the copy no longer admits. Returns how many ended.
pub async fn sweep(db: &PgPool) -> Result<usize, SigninError> {
    let mut tx = db.begin().await?;
    let ids = sqlx::query_scalar!(
        "select s.id from signin_sessions s join tenants t on t.id = s.tenant_id
         where s.ended_at is null and t.status in ('offboarded', 'disabled')"
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut ended = sessions::end_all(&mut tx, &ids, TENANT_GONE).await?.len();
    let tenants = sqlx::query_scalar!(
        "select distinct tenant_id from signin_sessions where ended_at is null"
    )
    .fetch_all(&mut *tx)
    .await?;
    for tenant in tenants {
        ended += after_copy_changed(&mut tx, tenant).await?;
    }
    tx.commit().await?;
    Ok(ended)
}
