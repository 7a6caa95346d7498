//! Sync workers and the scheduler. A worker claims a `directory_sync` job from the queue, runs
//! the tenant's sync outside any transaction and records the run; the scheduler enqueues the
//! syncs tenants' schedules (and the 6-day rule) make due. Any number of processes run both:
//! the queue keeps one tenant to one running sync, `SKIP LOCKED` keeps schedulers apart.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::runs::{RunOutcome, RunTrigger};
use super::schedule;
use super::store::Tally;
use super::sync::{SyncError, Syncer, tenant_access};
use crate::background::{Activity, BackgroundTask, Registry, Task, registry};
use crate::format;
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
    let mut registry = Registry::new(syncer.db().clone());
    register(&mut registry, syncer, cfg, stop.clone());
    registry.run(stop).await;
    tracing::info!("sync workers stopped");
}

/// Adds the sync scheduler and the sync workers to `registry`; `stop` must be the token the
/// registry runs until (running syncs watch it).
pub fn register(
    registry: &mut Registry,
    syncer: Syncer,
    cfg: WorkerConfig,
    stop: CancellationToken,
) {
    registry.register(
        Task::SyncScheduler,
        cfg.schedule_every,
        SchedulerTask {
            db: syncer.db().clone(),
        },
    );
    registry.register(
        Task::SyncWorkers,
        cfg.poll,
        WorkersTask::new(syncer, cfg, stop),
    );
}

/// The sync scheduler as a background task.
struct SchedulerTask {
    db: PgPool,
}

impl BackgroundTask for SchedulerTask {
    fn activate<'a>(
        &'a mut self,
        _: &'a Activity,
        _: &'a CancellationToken,
    ) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move {
            let default = settings::stored_default_schedule(&self.db).await?;
            let queued = enqueue_due(&self.db, &default).await?;
            if queued > 0 {
                tracing::info!(tenants = queued, "scheduled syncs enqueued");
            }
            Ok(format!(
                "queued {}",
                format::count(i64::try_from(queued).unwrap_or(i64::MAX), "sync")
            ))
        })
    }
}

/// What a worker slot's turn came to.
type Turn = (String, Result<Outcome<RunReport>, jobs::JobError>);

/// The sync workers as a background task. Each activation collects the turns that ended and
/// starts one in every free slot (a turn claims a due sync and runs it); syncs outlive the
/// activation that started them, and a turn that ran one activates the task again at once.
struct WorkersTask {
    syncer: Syncer,
    cfg: WorkerConfig,
    stop: CancellationToken,
    free: Vec<String>,
    turns: JoinSet<Turn>,
    /// Slots running a sync now (a turn counts only once it has claimed one).
    syncing: Arc<AtomicUsize>,
    /// For slot ids made after a turn panicked.
    next_slot: usize,
}

impl WorkersTask {
    fn new(syncer: Syncer, cfg: WorkerConfig, stop: CancellationToken) -> Self {
        let process = registry::process_name();
        Self {
            free: (0..cfg.concurrency)
                .map(|n| format!("{process}:{n}"))
                .collect(),
            next_slot: cfg.concurrency,
            syncer,
            cfg,
            stop,
            turns: JoinSet::new(),
            syncing: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// Counts a running sync for as long as it lives, however its future ends.
struct Syncing(Arc<AtomicUsize>);

impl Syncing {
    fn start(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for Syncing {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl BackgroundTask for WorkersTask {
    fn activate<'a>(
        &'a mut self,
        activity: &'a Activity,
        _: &'a CancellationToken,
    ) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move {
            let (mut finished, mut failed, mut error) = (0, 0, None);
            while let Some(joined) = self.turns.try_join_next() {
                match joined {
                    Ok((slot, result)) => {
                        self.free.push(slot);
                        match result {
                            Ok(Outcome::Ran(_, Ok(_))) => finished += 1,
                            Ok(Outcome::Ran(_, Err(_))) => failed += 1,
                            Ok(Outcome::Idle) => {}
                            Err(e) => error = Some(e),
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "a sync worker's turn panicked");
                        self.free
                            .push(format!("{}:{}", registry::process_name(), self.next_slot));
                        self.next_slot += 1;
                    }
                }
            }
            if !self.stop.is_cancelled() {
                for slot in self.free.drain(..) {
                    let (syncer, cfg, stop) =
                        (self.syncer.clone(), self.cfg.clone(), self.stop.clone());
                    let (syncing, activity) = (self.syncing.clone(), activity.clone());
                    self.turns.spawn(async move {
                        let result =
                            jobs::try_execute_job(syncer.db(), &slot, cfg.lease, |job| async {
                                let _counted = Syncing::start(&syncing);
                                run_job(&syncer, job, &stop).await
                            })
                            .await;
                        if matches!(result, Ok(Outcome::Ran(..))) {
                            // The slot is free again: fill it without waiting for the period.
                            activity.wake();
                        }
                        (slot, result)
                    });
                }
            }
            let now = self.syncing.load(Ordering::Relaxed);
            activity.ongoing((now > 0).then(|| {
                format!(
                    "syncing {}",
                    format::count(i64::try_from(now).unwrap_or(i64::MAX), "tenant")
                )
            }));
            if let Some(e) = error {
                return Err(anyhow::Error::new(e).context("the job queue could not be used"));
            }
            Ok(format!(
                "{finished} finished, {failed} failed since the last look; {now} running"
            ))
        })
    }

    fn stopped(&mut self) -> BoxFuture<'_, ()> {
        // Each running sync commits the page in hand and gives its job back.
        Box::pin(async move { while self.turns.join_next().await.is_some() {} })
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
    // worker died. Closing it and starting this one is one statement (one commit).
    let run_id = sqlx::query_scalar!(
        "with abandoned as (
             update sync_runs set outcome = 'abandoned', finished_at = now(),
                    error = 'the worker stopped during this run; the next run went on from its last page'
             where tenant_id = $1 and outcome = 'running'
         )
         insert into sync_runs (tenant_id, job_id, trigger) values ($1, $2, $3) returning id",
        tenant,
        job_id,
        trigger as RunTrigger
    )
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
    sqlx::query!(
        "update sync_runs set outcome = $2, error = $3, finished_at = now() where id = $1",
        run_id,
        outcome as RunOutcome,
        error
    )
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
            let schedule = schedule::of_tenant(&mut *tx, tenant).await?;
            sqlx::query!(
                "update tenants set last_sync_success_at = now(), sync_failures = 0, sync_error = null,
                        sync_failure_kind = null, next_sync_at = $2
                 where id = $1",
                tenant,
                schedule::next_due(&schedule, now, Some(now))
            )
            .execute(&mut *tx)
            .await?;
        }
        Err(SyncError::ReconsentRequired(_)) => {}
        Err(e) if outcome == RunOutcome::Failed => {
            sqlx::query!(
                "update tenants set sync_failures = sync_failures + 1, sync_error = $2,
                        sync_failure_kind = $3
                 where id = $1",
                tenant,
                e.to_string(),
                e.failure_kind().as_str()
            )
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

/// Enqueues a sync for every active tenant whose next sync is due and moves its next time
/// on; returns how many. Tenants are locked `SKIP LOCKED`, so schedulers in several
/// processes never enqueue one tenant twice, and a queued sync absorbs a new one.
pub async fn enqueue_due(db: &PgPool, default: &Schedule) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    let due = sqlx::query!(
        "select id, sync_schedule, last_sync_success_at from tenants
         where status = 'active' and next_sync_at <= now()
         order by next_sync_at limit 500
         for update skip locked"
    )
    .fetch_all(&mut *tx)
    .await?;
    let now = OffsetDateTime::now_utc();
    for row in &due {
        let (tenant, stored, last_success) =
            (&row.id, &row.sync_schedule, &row.last_sync_success_at);
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
        sqlx::query!(
            "update tenants set next_sync_at = $2 where id = $1",
            tenant,
            schedule::next_due(&schedule, now, *last_success)
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(due.len())
}
