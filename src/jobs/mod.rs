//! A durable job queue in Postgres: leases taken with `FOR UPDATE SKIP LOCKED` and committed at
//! once, attempts with backoff, and at most one running job per tenant, enforced by a unique
//! index. Any number of worker processes share it; a dead worker's job is taken over when its
//! lease runs out.

mod queue;
mod runner;

use std::fmt;

use time::OffsetDateTime;
use uuid::Uuid;

pub use queue::{
    MAX_TAKEOVERS, cancel_for_tenant, claim, complete, enqueue, enqueue_debounced, extend_lease,
    fail, release,
};
pub use runner::{JobFailure, Outcome, try_execute_job};

/// How many times a job is tried unless its [`NewJob`] says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;

/// A job's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type)]
#[sqlx(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for its `run_at` and a free worker.
    Queued,
    /// Leased by a worker.
    Running,
    /// Finished successfully.
    Done,
    /// Gave up: its attempts are used up.
    Failed,
    /// Dropped before it ran (or superseded by a queued job doing the same work).
    Cancelled,
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// What the job does, e.g. `directory_sync`; a worker's handler dispatches on it.
    pub kind: String,
    /// The tenant (`tenants.id`) it works on: one tenant never has two jobs running at once.
    pub tenant_id: Option<Uuid>,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// Attempts before the job fails for good.
    pub max_attempts: i32,
    /// When it becomes due; `None` is now.
    pub run_at: Option<OffsetDateTime>,
}

impl NewJob {
    /// A job of `kind` for `tenant_id`, due now, with an empty payload and the default attempts.
    pub fn new(kind: impl Into<String>, tenant_id: Option<Uuid>) -> Self {
        Self {
            kind: kind.into(),
            tenant_id,
            payload: serde_json::json!({}),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            run_at: None,
        }
    }
}

/// A job a worker has leased. Recording its result checks that the lease is still this one, so
/// a worker whose job was taken over can not overwrite the new holder's work.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    /// The job.
    pub id: JobId,
    /// What it does.
    pub kind: String,
    /// The tenant it works on.
    pub tenant_id: Option<Uuid>,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// This attempt's number, from 1.
    pub attempts: i32,
    /// Attempts before the job fails for good.
    pub max_attempts: i32,
    /// How many times a worker died holding it and another took it over (not attempts).
    pub takeovers: i32,
    /// The worker holding the lease.
    pub leased_by: String,
    /// When the lease runs out unless extended.
    pub lease_expires_at: OffsetDateTime,
}

/// What can go wrong with the queue.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The database failed.
    #[error("job queue database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The worker no longer holds the job: its lease ran out and another worker took it over,
    /// or its result was already recorded.
    #[error("job {0} is no longer leased by this worker")]
    LeaseLost(JobId),
}
