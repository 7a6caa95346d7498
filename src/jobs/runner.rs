//! One turn of a worker: claim a job, run its handler outside any transaction while keeping
//! the lease alive, record the result.

use std::fmt;
use std::time::Duration;

use sqlx::PgPool;

use super::{Claimed, JobError, JobId, queue};

/// What one call of [`try_execute_job`] did.
#[derive(Debug)]
pub enum Outcome<T> {
    /// A job ran; its handler's result (already recorded in the queue).
    Ran(JobId, Result<T, JobFailure>),
    /// Nothing was claimable.
    Idle,
}

/// Why a job's run failed, and when the queue should try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// What went wrong, kept on the job for operators.
    pub error: String,
    /// Retry after this long instead of the queue's backoff (e.g. a server's `Retry-After`).
    pub retry_after: Option<Duration>,
    /// The handler stopped early on request (shutdown) with its work saved: the job goes back
    /// to the queue at once, its attempt not counted.
    pub release: bool,
}

impl JobFailure {
    /// A failure retried with the queue's backoff.
    pub fn new(error: impl fmt::Display) -> Self {
        Self {
            error: error.to_string(),
            retry_after: None,
            release: false,
        }
    }

    /// The handler stopped early on request with its work saved; see [`Self::release`].
    pub fn released(why: impl fmt::Display) -> Self {
        Self {
            release: true,
            ..Self::new(why)
        }
    }
}

/// Claims one job for `worker_id` and runs `handler` on it outside any transaction, extending
/// the lease every third of `lease` while it runs, then records the result: done, or failed
/// and retried with backoff. If the lease is lost meanwhile (it ran out and another worker
/// took the job over) the handler is dropped at its next await and `LeaseLost` returned, so a
/// job is never worked on by two workers at once.
#[tracing::instrument(skip_all, fields(worker_id = worker_id, job_id))]
pub async fn try_execute_job<T, F, Fut>(
    db: &PgPool,
    worker_id: &str,
    lease: Duration,
    handler: F,
) -> Result<Outcome<T>, JobError>
where
    F: FnOnce(Claimed) -> Fut,
    Fut: Future<Output = Result<T, JobFailure>>,
{
    let Some(job) = queue::claim(db, worker_id, lease).await? else {
        return Ok(Outcome::Idle);
    };
    tracing::Span::current().record("job_id", job.id.0);
    let work = handler(job.clone());
    tokio::pin!(work);
    // `interval` refuses a zero period.
    let mut heartbeat = tokio::time::interval((lease / 3).max(Duration::from_millis(10)));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            _ = heartbeat.tick() => match queue::extend_lease(db, &job, lease).await {
                Ok(_) => {}
                // A passing database hiccup should not stop the work; the next beat may pass.
                Err(JobError::Database(e)) => {
                    tracing::warn!(error = %e, "could not extend a job's lease");
                }
                Err(lost) => return Err(lost),
            },
        }
    };
    match &result {
        Ok(_) => queue::complete(db, &job).await?,
        Err(failure) if failure.release => queue::release(db, &job).await?,
        Err(failure) => {
            let retry = queue::fail(db, &job, &failure.error, failure.retry_after).await?;
            tracing::warn!(kind = ?job.kind, attempts = job.attempts, error = ?queue::capped(&failure.error), retry_at = ?retry, "job failed");
        }
    }
    Ok(Outcome::Ran(job.id, result))
}
