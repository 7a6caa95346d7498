//! The queue's statements: enqueue, claim, extend, and record how a run ended.

use std::time::Duration;

use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Claimed, JobError, JobId, NewJob};
use crate::background::Backoff;

/// The index that keeps a tenant to one running job.
const ONE_RUNNING: &str = "jobs_one_running_per_tenant";
/// The index that keeps a tenant to one queued job of a kind.
const ONE_QUEUED: &str = "jobs_one_queued_per_tenant_kind";
/// Each conflict on those indexes means another worker has just committed, so a retry sees
/// it; a few retries are plenty.
const TRIES: usize = 5;
/// Errors are stored for operators to read, not whole.
const MAX_ERROR_CHARS: usize = 2_000;
/// 30 s, 1 min, 2 min … after attempts 1, 2, 3 …, capped at an hour, each between half and
/// all of that so that jobs failing together do not retry together.
const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(30),
    cap: Duration::from_secs(3_600),
    jitter: (0.5, 1.0),
};
/// A job whose worker died this many times while running it fails: it is what kills them.
pub const MAX_TAKEOVERS: i32 = 10;

/// Enqueues `job` and returns its id; runs inside the caller's transaction if given one. A job
/// of the same kind already queued for the tenant absorbs it instead: its id is returned, its
/// payload kept, and it becomes due at the sooner of the two times ("Sync now" on a tenant
/// whose sync is queued makes that sync due now). Jobs without a tenant never coalesce.
pub async fn enqueue(db: impl PgExecutor<'_>, job: &NewJob) -> Result<JobId, sqlx::Error> {
    let id = sqlx::query_scalar!(
        "insert into jobs (kind, tenant_id, payload, max_attempts, run_at)
         values ($1, $2, $3, $4, coalesce($5, now()))
         on conflict (tenant_id, kind) where status = 'queued'
         do update set run_at = least(jobs.run_at, excluded.run_at)
         returning id",
        job.kind,
        job.tenant_id,
        job.payload,
        job.max_attempts,
        job.run_at
    )
    .fetch_one(db)
    .await?;
    Ok(JobId(id))
}

/// Enqueues `job` to run once things are quiet: due `quiet` from now, and a job of the same
/// kind and payload already queued for the tenant waits `quiet` more at each new request (at
/// most until `max_wait` after it was first queued), so a burst of requests is one run. A
/// queued job of another payload absorbs it as [`enqueue`] does (becoming due `quiet` from
/// now if it was later).
pub async fn enqueue_debounced(
    db: impl PgExecutor<'_>,
    job: &NewJob,
    quiet: Duration,
    max_wait: Duration,
) -> Result<JobId, sqlx::Error> {
    let id = sqlx::query_scalar!(
        "insert into jobs (kind, tenant_id, payload, max_attempts, run_at)
         values ($1, $2, $3, $4, now() + make_interval(secs => $5))
         on conflict (tenant_id, kind) where status = 'queued'
         do update set run_at = case
             when jobs.payload = excluded.payload then least(
                 greatest(jobs.run_at, excluded.run_at),
                 jobs.created_at + make_interval(secs => $6))
             else least(jobs.run_at, excluded.run_at) end
         returning id",
        job.kind,
        job.tenant_id,
        job.payload,
        job.max_attempts,
        quiet.as_secs_f64(),
        max_wait.as_secs_f64(),
    )
    .fetch_one(db)
    .await?;
    Ok(JobId(id))
}

/// Leases the most overdue job for `worker_id` for `lease` and commits at once so the work runs
/// outside any transaction. Takes a due queued job whose tenant has nothing running (counting
/// an attempt), or takes over a running job whose lease ran out (its worker died: counted as a
/// takeover, not as an attempt, since the job did not fail). `None` when nothing is claimable.
pub async fn claim(
    db: &PgPool,
    worker_id: &str,
    lease: Duration,
) -> Result<Option<Claimed>, JobError> {
    for _ in 0..TRIES {
        match try_claim(db, worker_id, lease).await {
            // Another worker started a job of the same tenant meanwhile; it has committed now.
            Err(e) if violates(&e, ONE_RUNNING) => continue,
            other => return Ok(other?),
        }
    }
    Ok(None)
}

async fn try_claim(
    db: &PgPool,
    worker_id: &str,
    lease: Duration,
) -> Result<Option<Claimed>, sqlx::Error> {
    // One statement, so a claim is one round trip and one commit. A job whose workers keep
    // dying on it is failed (`given_up`) rather than taken over forever; the claim leaves those
    // alone, so no row is changed twice. On the right of `set`, `status` is the row's status
    // before this update.
    sqlx::query_as!(
        Claimed,
        r#"with given_up as (
             update jobs set status = 'failed', finished_at = now(), leased_by = null,
                    lease_expires_at = null,
                    last_error = format('its worker stopped %s times while running it (the lease ran out each time)',
                                        takeovers + 1)
             where status = 'running' and lease_expires_at <= now() and takeovers + 1 >= $3
         )
         update jobs set status = 'running', leased_by = $1,
                attempts = attempts + (status = 'queued')::int,
                takeovers = takeovers + (status = 'running')::int,
                lease_expires_at = now() + make_interval(secs => $2)
         where id = (
             select j.id from jobs j
             where (j.status = 'queued' and j.run_at <= now()
                    and not exists (select 1 from jobs r
                                    where r.tenant_id = j.tenant_id and r.status = 'running'))
                or (j.status = 'running' and j.lease_expires_at <= now() and j.takeovers + 1 < $3)
             order by j.run_at, j.id
             limit 1
             for update skip locked)
         returning id as "id: JobId", kind, tenant_id, payload, attempts, max_attempts,
                   takeovers, leased_by as "leased_by!", lease_expires_at as "lease_expires_at!""#,
        worker_id,
        lease.as_secs_f64(),
        MAX_TAKEOVERS
    )
    .fetch_optional(db)
    .await
}

/// Extends the lease on `job` to `lease` from now (a heartbeat); returns the new expiry.
pub async fn extend_lease(
    db: &PgPool,
    job: &Claimed,
    lease: Duration,
) -> Result<OffsetDateTime, JobError> {
    sqlx::query_scalar!(
        r#"update jobs set lease_expires_at = now() + make_interval(secs => $5)
         where id = $1 and status = 'running' and leased_by = $2 and attempts = $3
               and takeovers = $4
         returning lease_expires_at as "lease_expires_at!""#,
        job.id.0,
        job.leased_by,
        job.attempts,
        job.takeovers,
        lease.as_secs_f64()
    )
    .fetch_optional(db)
    .await?
    .ok_or(JobError::LeaseLost(job.id))
}

/// Marks `job` done.
pub async fn complete(db: &PgPool, job: &Claimed) -> Result<(), JobError> {
    let done = sqlx::query!(
        "update jobs set status = 'done', finished_at = now(), leased_by = null,
                lease_expires_at = null, last_error = null
         where id = $1 and status = 'running' and leased_by = $2 and attempts = $3
               and takeovers = $4",
        job.id.0,
        job.leased_by,
        job.attempts,
        job.takeovers
    )
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(JobError::LeaseLost(job.id));
    }
    Ok(())
}

/// Records that `job`'s run failed with `error`. While attempts remain it is queued again
/// after `retry_after` (e.g. a server's `Retry-After`) or else exponential backoff with jitter,
/// and the retry time is returned; after the last attempt it fails for good (`None`).
pub async fn fail(
    db: &PgPool,
    job: &Claimed,
    error: &str,
    retry_after: Option<Duration>,
) -> Result<Option<OffsetDateTime>, JobError> {
    let error = capped(error);
    if job.attempts < job.max_attempts {
        let failures = u32::try_from(job.attempts - 1).unwrap_or(0);
        let wait = retry_after.unwrap_or_else(|| BACKOFF.after(failures));
        return requeue(db, job, wait, Some(error), 0).await.map(Some);
    }
    let failed = sqlx::query!(
        "update jobs set status = 'failed', finished_at = now(), leased_by = null,
                lease_expires_at = null, last_error = $5
         where id = $1 and status = 'running' and leased_by = $2 and attempts = $3
               and takeovers = $4",
        job.id.0,
        job.leased_by,
        job.attempts,
        job.takeovers,
        error
    )
    .execute(db)
    .await?;
    if failed.rows_affected() == 0 {
        return Err(JobError::LeaseLost(job.id));
    }
    Ok(None)
}

/// Gives `job` back unrun (e.g. on shutdown): due again at once, its attempt not counted.
pub async fn release(db: &PgPool, job: &Claimed) -> Result<(), JobError> {
    requeue(db, job, Duration::ZERO, None, 1).await.map(|_| ())
}

/// Cancels the tenant's queued jobs and returns how many; runs inside the caller's transaction
/// if given one. A running job is left to finish: stopping it is its handler's business.
pub async fn cancel_for_tenant(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
) -> Result<u64, sqlx::Error> {
    let cancelled = sqlx::query!(
        "update jobs set status = 'cancelled', finished_at = now()
         where tenant_id = $1 and status = 'queued'",
        tenant_id
    )
    .execute(db)
    .await?;
    Ok(cancelled.rows_affected())
}

/// Puts `job` back in the queue, due after `wait`, giving back `uncount` attempts. If the
/// tenant got a queued job of the same kind while this one ran, that one carries the work: it
/// is made due no later than this one would have been and this one is cancelled.
async fn requeue(
    db: &PgPool,
    job: &Claimed,
    wait: Duration,
    error: Option<&str>,
    uncount: i32,
) -> Result<OffsetDateTime, JobError> {
    let mut tries = 1;
    loop {
        let mut tx = db.begin().await?;
        match try_requeue(&mut tx, job, wait, error, uncount).await {
            // A sibling was enqueued meanwhile and has committed now: the retry finds it.
            Err(JobError::Database(e)) if violates(&e, ONE_QUEUED) && tries < TRIES => {
                tries += 1;
            }
            Err(e) => return Err(e),
            Ok(run_at) => {
                tx.commit().await?;
                return Ok(run_at);
            }
        }
    }
}

async fn try_requeue(
    tx: &mut Transaction<'_, Postgres>,
    job: &Claimed,
    wait: Duration,
    error: Option<&str>,
    uncount: i32,
) -> Result<OffsetDateTime, JobError> {
    let held = sqlx::query_scalar!(
        "select id from jobs
         where id = $1 and status = 'running' and leased_by = $2 and attempts = $3
               and takeovers = $4
         for update",
        job.id.0,
        job.leased_by,
        job.attempts,
        job.takeovers
    )
    .fetch_optional(&mut **tx)
    .await?;
    if held.is_none() {
        return Err(JobError::LeaseLost(job.id));
    }
    let sibling = sqlx::query_scalar!(
        "update jobs set run_at = least(run_at, now() + make_interval(secs => $3))
         where tenant_id = $1 and kind = $2 and status = 'queued'
         returning run_at",
        job.tenant_id,
        job.kind,
        wait.as_secs_f64()
    )
    .fetch_optional(&mut **tx)
    .await?;
    let (status, finished) = match sibling {
        Some(_) => ("cancelled", true),
        None => ("queued", false),
    };
    let run_at = sqlx::query_scalar!(
        "update jobs set status = $4, finished_at = case when $5 then now() end,
                run_at = case when $5 then run_at else now() + make_interval(secs => $6) end,
                attempts = attempts - $7, last_error = coalesce($8, last_error),
                leased_by = null, lease_expires_at = null
         where id = $1 and leased_by = $2 and attempts = $3
         returning run_at",
        job.id.0,
        job.leased_by,
        job.attempts,
        status,
        finished,
        wait.as_secs_f64(),
        uncount,
        error
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(sibling.unwrap_or(run_at))
}

/// `error` cut to a length fit to store and log.
pub(super) fn capped(error: &str) -> &str {
    error
        .char_indices()
        .nth(MAX_ERROR_CHARS)
        .map_or(error, |(end, _)| &error[..end])
}

fn violates(error: &sqlx::Error, constraint: &str) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.constraint() == Some(constraint))
}
