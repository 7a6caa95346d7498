//! Sync workers and the scheduler. A worker claims a `directory_sync` job from the queue, runs
//! the tenant's sync outside any transaction and records the run; the scheduler enqueues the
//! syncs tenants' schedules (and the 6-day rule) make due. Any number of processes run both:
//! the queue keeps one tenant to one running sync, `SKIP LOCKED` keeps schedulers apart.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::runs::{RunOutcome, RunTrigger};
use super::schedule;
use super::store::Tally;
use super::sync::{SyncError, Syncer, tenant_access};
use crate::jobs::{self, Claimed, JobFailure, NewJob, Outcome};
use crate::settings;
use crate::tenants::{self, SYNC_JOB};
use crate::types::Schedule;

/// How workers run.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Syncs run at once in this process.
    pub concurrency: usize,
    /// A job's lease; renewed every third of it while the sync runs.
    pub lease: Duration,
    /// How long an idle worker waits before looking for work again.
    pub poll: Duration,
    /// How often the scheduler looks for due tenants.
    pub schedule_every: Duration,
}

impl WorkerConfig {
    /// `concurrency` workers with a one-minute lease, polling every two seconds.
    pub fn new(concurrency: usize) -> Self {
        Self {
            concurrency: concurrency.max(1),
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(2),
            schedule_every: Duration::from_secs(15),
        }
    }
}

/// What one job's sync did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The `sync_runs` row (none when the tenant was not active any more).
    pub run_id: Option<i64>,
    /// How it ended.
    pub outcome: RunOutcome,
    /// This attempt's counts.
    pub tally: Tally,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Whether trying again soon may help; a missing permission or a dead grant waits for
    /// the customer instead (the next scheduled sync tries again).
    pub retry: bool,
}

/// Runs `cfg.concurrency` workers and a scheduler until `stop` is cancelled; each worker
/// finishes the page in hand, commits, gives its job back and returns.
pub async fn run(syncer: Syncer, cfg: WorkerConfig, stop: CancellationToken) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    let mut set = tokio::task::JoinSet::new();
    for n in 0..cfg.concurrency {
        let id = format!("{host}:{}:{n}", std::process::id());
        set.spawn(worker(syncer.clone(), cfg.clone(), id, stop.clone()));
    }
    set.spawn(scheduler(syncer.db().clone(), cfg, stop));
    while set.join_next().await.is_some() {}
    tracing::info!("sync workers stopped");
}

/// One worker: claim, sync, record; idle workers poll.
async fn worker(syncer: Syncer, cfg: WorkerConfig, id: String, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let idle = match work_one(&syncer, &cfg, &id, &stop).await {
            Ok(Outcome::Ran(..)) => false,
            Ok(Outcome::Idle) => true,
            Err(e) => {
                tracing::warn!(error = %e, "sync worker could not use the job queue");
                true
            }
        };
        if idle {
            tokio::select! {
                () = tokio::time::sleep(cfg.poll) => {}
                () = stop.cancelled() => {}
            }
        }
    }
}

/// One worker turn as `worker_id`: claims a due sync job, runs it outside any transaction
/// (keeping its lease alive) and records it; `Idle` when nothing was due.
pub async fn work_one(
    syncer: &Syncer,
    cfg: &WorkerConfig,
    worker_id: &str,
    stop: &CancellationToken,
) -> Result<Outcome<RunReport>, jobs::JobError> {
    jobs::try_execute_job(syncer.db(), worker_id, cfg.lease, |job| {
        run_job(syncer, job, stop)
    })
    .await
}

/// The handler of a `directory_sync` job.
async fn run_job(
    syncer: &Syncer,
    job: Claimed,
    stop: &CancellationToken,
) -> Result<RunReport, JobFailure> {
    let Some(tenant) = job.tenant_id.filter(|_| job.kind == SYNC_JOB) else {
        return Err(JobFailure::new(format!("not a sync job: {}", job.kind)));
    };
    let trigger = if job.attempts > 1 {
        RunTrigger::Retry
    } else {
        serde_json::from_value(job.payload["trigger"].clone()).unwrap_or(RunTrigger::Schedule)
    };
    sync_once(syncer, tenant, Some(job.id.0), trigger, stop)
        .await
        .map_err(JobFailure::new)
        .and_then(|report| match report.outcome {
            RunOutcome::Failed if report.retry => {
                Err(JobFailure::new(report.error.clone().unwrap_or_default()))
            }
            RunOutcome::Interrupted if stop.is_cancelled() => {
                Err(JobFailure::released("stopped for shutdown"))
            }
            _ => Ok(report),
        })
}

/// Syncs `tenant` once, recording the run (trigger, counts, outcome) and the tenant's sync
/// health; a dead grant marks the tenant `reconsent_required`. The job id is kept on the run.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, run_id))]
pub async fn sync_once(
    syncer: &Syncer,
    tenant: Uuid,
    job_id: Option<i64>,
    trigger: RunTrigger,
    stop: &CancellationToken,
) -> Result<RunReport, sqlx::Error> {
    let db = syncer.db();
    let Some(access) = tenant_access(db, tenant).await? else {
        // Offboarded or waiting for consent since the job was queued: nothing to do.
        return Ok(RunReport {
            run_id: None,
            outcome: RunOutcome::Interrupted,
            tally: Tally::default(),
            error: Some("the tenant is not active".into()),
            retry: false,
        });
    };
    // Only one sync of a tenant runs at a time, so a run still marked running is one whose
    // worker died.
    sqlx::query(
        "update sync_runs set outcome = 'abandoned', finished_at = now(),
                error = 'the worker stopped during this run; the next run went on from its last page'
         where tenant_id = $1 and outcome = 'running'",
    )
    .bind(tenant)
    .execute(db)
    .await?;
    let run_id: i64 = sqlx::query_scalar(
        "insert into sync_runs (tenant_id, job_id, trigger) values ($1, $2, $3) returning id",
    )
    .bind(tenant)
    .bind(job_id)
    .bind(trigger)
    .fetch_one(db)
    .await?;
    tracing::Span::current().record("run_id", run_id);
    let result = syncer.sync(&access, run_id, stop).await;
    match &result {
        Ok(tally) => tracing::info!(
            objects = tally.objects(),
            pages = tally.pages,
            "sync finished"
        ),
        Err(e) => tracing::warn!(error = %e, "sync did not finish"),
    }
    let (outcome, error) = match &result {
        Ok(_) => (RunOutcome::Succeeded, None),
        Err(SyncError::Stopped | SyncError::TenantInactive | SyncError::TakenOver) => (
            RunOutcome::Interrupted,
            result.as_ref().err().map(|e| e.to_string()),
        ),
        Err(e) => (RunOutcome::Failed, Some(e.to_string())),
    };
    // The run's end and its webhook are one transaction: both happen or neither.
    let mut tx = db.begin().await?;
    sqlx::query("update sync_runs set outcome = $2, error = $3, finished_at = now() where id = $1")
        .bind(run_id)
        .bind(outcome)
        .bind(&error)
        .execute(&mut *tx)
        .await?;
    match (&result, outcome) {
        (Ok(tally), _) => {
            crate::webhooks::emit(
                &mut tx,
                &crate::webhooks::Event::new(
                    crate::webhooks::EventType::SyncCompleted,
                    serde_json::json!({
                        "tenant_id": tenant,
                        "run_id": run_id,
                        "trigger": trigger,
                        "added": tally.added,
                        "updated": tally.updated,
                        "soft_deleted": tally.soft_deleted,
                        "removed": tally.removed,
                        "members_added": tally.members_added,
                        "members_removed": tally.members_removed,
                        "pages": tally.pages,
                    }),
                ),
            )
            .await?;
        }
        (Err(_), RunOutcome::Failed) => {
            let data = serde_json::json!({
                "tenant_id": tenant, "run_id": run_id, "trigger": trigger, "error": error,
            });
            let event = crate::webhooks::Event::new(crate::webhooks::EventType::SyncFailed, data);
            crate::webhooks::emit(&mut tx, &event).await?;
        }
        _ => {}
    }
    // The tenant's health changes with the run's end, so no page shows a finished run beside a
    // tenant that looks as before.
    let now = OffsetDateTime::now_utc();
    match &result {
        Ok(_) => {
            let schedule = schedule::of_tenant(db, tenant).await?;
            sqlx::query(
                "update tenants set last_sync_success_at = now(), sync_failures = 0, sync_error = null,
                        sync_failure_kind = null, next_sync_at = $2
                 where id = $1",
            )
            .bind(tenant)
            .bind(schedule::next_due(&schedule, now, Some(now)))
            .execute(&mut *tx)
            .await?;
        }
        Err(SyncError::ReconsentRequired(_)) => {}
        Err(e) if outcome == RunOutcome::Failed => {
            sqlx::query(
                "update tenants set sync_failures = sync_failures + 1, sync_error = $2,
                        sync_failure_kind = $3
                 where id = $1",
            )
            .bind(tenant)
            .bind(e.to_string())
            .bind(e.failure_kind().as_str())
            .execute(&mut *tx)
            .await?;
        }
        Err(_) => {}
    }
    tx.commit().await?;
    // Its own transaction (it cancels queued syncs and audits), after the run's end.
    if let Err(SyncError::ReconsentRequired(why)) = &result {
        tenants::require_reconsent(db, tenant, why).await?;
    }
    crate::metrics::record_sync_run(
        outcome.as_str(),
        result.as_ref().ok().map(|t| crate::metrics::SyncCounts {
            added: t.added,
            updated: t.updated,
            soft_deleted: t.soft_deleted,
            removed: t.removed,
            throttled_waits: t.throttled_waits,
            throttled_seconds: t.throttled_seconds,
        }),
    );
    let retry = !matches!(
        result,
        Err(SyncError::ReconsentRequired(_)
            | SyncError::PermissionMissing(_)
            | SyncError::TenantNotFound(_))
    );
    Ok(RunReport {
        run_id: Some(run_id),
        outcome,
        tally: result.unwrap_or_default(),
        error,
        retry,
    })
}

/// Every `cfg.schedule_every`, enqueues the syncs that are due.
async fn scheduler(db: PgPool, cfg: WorkerConfig, stop: CancellationToken) {
    let mut tick = tokio::time::interval(cfg.schedule_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let due = match settings::stored_default_schedule(&db).await {
            Ok(default) => enqueue_due(&db, &default).await,
            Err(e) => Err(e),
        };
        match due {
            Ok(0) => {}
            Ok(n) => tracing::info!(tenants = n, "scheduled syncs enqueued"),
            Err(e) => tracing::warn!(error = %e, "the sync scheduler could not run"),
        }
    }
}

/// Enqueues a sync for every active tenant whose next sync is due and moves its next time
/// on; returns how many. Tenants are locked `SKIP LOCKED`, so schedulers in several
/// processes never enqueue one tenant twice, and a queued sync absorbs a new one.
pub async fn enqueue_due(db: &PgPool, default: &Schedule) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    let due: Vec<(Uuid, Option<String>, Option<OffsetDateTime>)> = sqlx::query_as(
        "select id, sync_schedule, last_sync_success_at from tenants
         where status = 'active' and next_sync_at <= now()
         order by next_sync_at limit 500
         for update skip locked",
    )
    .fetch_all(&mut *tx)
    .await?;
    let now = OffsetDateTime::now_utc();
    for (tenant, stored, last_success) in &due {
        let schedule = Schedule::from_column(stored.as_deref(), default);
        let forced = last_success.is_none_or(|t| now - t >= schedule::FORCED_AFTER);
        let trigger = if forced && matches!(schedule, Schedule::Manual) {
            RunTrigger::Forced
        } else {
            RunTrigger::Schedule
        };
        jobs::enqueue(
            &mut *tx,
            &NewJob {
                payload: json!({ "trigger": trigger }),
                ..NewJob::new(SYNC_JOB, Some(*tenant))
            },
        )
        .await?;
        sqlx::query("update tenants set next_sync_at = $2 where id = $1")
            .bind(tenant)
            .bind(schedule::next_due(&schedule, now, *last_success))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(due.len())
}
