//! One turn of a worker: claim a job, run its handler outside any transaction while keeping
//! the lease alive, record the result — the job queue as a kind of [`Leased`] work.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use sqlx::PgPool;

use super::{Claimed, JobError, JobId, queue};
use crate::background::{self, Leased};

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

/// The job queue as a kind of leased work: one job per claim, its lease extended every third
/// of `lease` while its handler runs.
struct Queue<'a, T> {
    worker_id: &'a str,
    lease: Duration,
    result: PhantomData<fn() -> T>,
}

impl<T: Send + Sync> Leased for Queue<'_, T> {
    type Item = Claimed;
    type Done = Result<T, JobFailure>;
    type Error = JobError;

    fn describe(&self, _: usize) -> String {
        "running a job".into()
    }

    async fn claim(&self, db: &PgPool) -> Result<Vec<Claimed>, JobError> {
        Ok(queue::claim(db, self.worker_id, self.lease)
            .await?
            .into_iter()
            .collect())
    }

    fn lease(&self) -> Duration {
        self.lease
    }

    fn heartbeat(&self) -> Option<Duration> {
        Some(self.lease / 3)
    }

    async fn extend(&self, db: &PgPool, job: &Claimed) -> Result<(), JobError> {
        queue::extend_lease(db, job, self.lease).await.map(|_| ())
    }

    fn transient(error: &JobError) -> bool {
        matches!(error, JobError::Database(_))
    }

    async fn record(
        &self,
        db: &PgPool,
        job: &Claimed,
        done: &Result<T, JobFailure>,
    ) -> Result<(), JobError> {
        match done {
            Ok(_) => queue::complete(db, job).await,
            Err(failure) if failure.release => queue::release(db, job).await,
            Err(failure) => {
                let retry = queue::fail(db, job, &failure.error, failure.retry_after).await?;
                tracing::warn!(kind = ?job.kind, attempts = job.attempts, error = ?queue::capped(&failure.error), retry_at = ?retry, "job failed");
                Ok(())
            }
        }
    }

    async fn give_back(&self, db: &PgPool, job: &Claimed) -> Result<(), JobError> {
        queue::release(db, job).await
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
    T: Send + Sync,
    F: FnOnce(Claimed) -> Fut,
    Fut: Future<Output = Result<T, JobFailure>>,
{
    let queue = Queue {
        worker_id,
        lease,
        result: PhantomData,
    };
    let Some(job) = queue.claim(db).await?.pop() else {
        return Ok(Outcome::Idle);
    };
    tracing::Span::current().record("job_id", job.id.0);
    let result = background::work_on(&queue, db, &job, handler(job.clone())).await?;
    Ok(Outcome::Ran(job.id, result))
}
