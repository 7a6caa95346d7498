//! What operators (and the CLI) do to a tenant's sync: ask for one now, change its schedule.
//! Both lock the tenant's row first, so two clicks at once are applied one after the other.

use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::SYNC_JOB;
use super::schedule::{self, next_due};
use crate::audit::{self, Action, Actor};
use crate::jobs::{self, JobError, JobId, NewJob};
use crate::tenants::TenantStatus;
use crate::types::Schedule;

/// Why a sync could not be requested or a schedule changed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No tenant has this id.
    #[error("no such tenant")]
    NotFound,
    /// The tenant is not synced in its current state.
    #[error("{}", not_syncable(*.0))]
    NotSyncable(TenantStatus),
    /// The job queue failed.
    #[error(transparent)]
    Job(#[from] JobError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn not_syncable(status: TenantStatus) -> &'static str {
    match status {
        TenantStatus::Offboarded => {
            "This tenant is offboarded: its credential is erased, so its directory is no longer synced."
        }
        TenantStatus::ReconsentRequired => {
            "This tenant's access stopped working: its directory syncs again once the customer's admin consents again."
        }
        TenantStatus::Disabled => {
            "This tenant is disabled: its directory is not synced until it is enabled again."
        }
        TenantStatus::Active | TenantStatus::Syncing => "This tenant can be synced.",
    }
}

/// The tenant's row, locked for this transaction: its status, stored schedule and last success.
struct Locked {
    status: TenantStatus,
    sync_schedule: Option<String>,
    last_sync_success_at: Option<OffsetDateTime>,
}

async fn lock(tx: &mut Transaction<'_, Postgres>, tenant_id: Uuid) -> Result<Locked, ControlError> {
    sqlx::query_as!(
        Locked,
        r#"select status as "status: TenantStatus", sync_schedule, last_sync_success_at
           from tenants where id = $1 for update"#,
        tenant_id,
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(ControlError::NotFound)
}

/// Whether a tenant in `status` is synced at all.
pub fn syncable(status: TenantStatus) -> bool {
    matches!(status, TenantStatus::Active | TenantStatus::Syncing)
}

/// Asks for a sync of the tenant now and returns the job that will run it. A sync already
/// queued for the tenant absorbs the request (and becomes due now) instead of a second one
/// being queued; a running sync is followed by this one. Refused for a tenant that is not
/// synced (offboarded, waiting for a new consent, disabled). Audited as
/// [`Action::SyncRequested`].
pub async fn request_sync(
    db: &PgPool,
    tenant_id: Uuid,
    actor: &Actor,
) -> Result<JobId, ControlError> {
    let mut tx = db.begin().await?;
    let tenant = lock(&mut tx, tenant_id).await?;
    if !syncable(tenant.status) {
        return Err(ControlError::NotSyncable(tenant.status));
    }
    let already_queued = sqlx::query_scalar!(
        r#"select exists (select 1 from jobs where tenant_id = $1 and kind = $2 and status = 'queued')
               as "queued!""#,
        tenant_id,
        SYNC_JOB,
    )
    .fetch_one(&mut *tx)
    .await?;
    let job = jobs::enqueue(
        &mut *tx,
        &NewJob {
            payload: json!({ "trigger": "manual" }),
            ..NewJob::new(SYNC_JOB, Some(tenant_id))
        },
    )
    .await?;
    audit::record(
        &mut *tx,
        actor,
        Action::SyncRequested,
        None,
        Some(tenant_id),
        json!({ "job": job.0, "already_queued": already_queued }),
    )
    .await?;
    tx.commit().await?;
    Ok(job)
}

/// Sets the tenant's sync schedule and when it next syncs ([`next_due`] from now and its last
/// success). Audited as [`Action::SyncScheduleChanged`] with the old and new schedule, unless
/// nothing changed. Refused for an offboarded tenant.
pub async fn set_schedule(
    db: &PgPool,
    tenant_id: Uuid,
    schedule: &Schedule,
    actor: &Actor,
) -> Result<(), ControlError> {
    let mut tx = db.begin().await?;
    let tenant = lock(&mut tx, tenant_id).await?;
    if tenant.status == TenantStatus::Offboarded {
        return Err(ControlError::NotSyncable(tenant.status));
    }
    let old = schedule::effective(db, tenant.sync_schedule.as_deref()).await?;
    let next = next_due(
        schedule,
        OffsetDateTime::now_utc(),
        tenant.last_sync_success_at,
    );
    sqlx::query!(
        "update tenants set sync_schedule = $2, next_sync_at = $3 where id = $1",
        tenant_id,
        schedule.to_string(),
        next,
    )
    .execute(&mut *tx)
    .await?;
    if tenant.sync_schedule.as_deref() != Some(schedule.to_string().as_str()) {
        let from = match &tenant.sync_schedule {
            Some(_) => old.to_string(),
            None => format!("{old} (default)"),
        };
        audit::record(
            &mut *tx,
            actor,
            Action::SyncScheduleChanged,
            None,
            Some(tenant_id),
            json!({ "from": from, "to": schedule.to_string(), "next_sync_at": crate::format::datetime(next) }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
