//! Reading the background tasks' state back, for the console and `/readyz`.

use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;

use super::Task;
use super::registry::HEARTBEAT;

/// A task that has not started within this many periods is overdue.
pub const OVERDUE_PERIODS: u32 = 3;
/// A process whose heartbeat is older than this many beats is taken for gone.
const SILENT_BEATS: u32 = 4;

/// One task in one process, as last recorded.
#[derive(Debug, Clone)]
pub struct TaskState {
    /// The task's name (`mail_outbox`); [`Self::task`] knows it unless a newer binary wrote it.
    pub name: String,
    /// The process running it (`host:pid`).
    pub process: String,
    /// What the task does.
    pub description: String,
    /// How often it runs unless activated sooner.
    pub period: Duration,
    /// What it is doing now, while it runs.
    pub doing: Option<String>,
    /// Runs since the process started.
    pub runs: i64,
    /// When the last run started.
    pub last_started_at: Option<OffsetDateTime>,
    /// When the last run ended.
    pub last_finished_at: Option<OffsetDateTime>,
    /// What the last run did, if it succeeded.
    pub last_summary: Option<String>,
    /// Why the last run failed, if it did.
    pub last_error: Option<String>,
    /// When the process last said it is alive.
    pub heartbeat_at: OffsetDateTime,
}

/// How a task stands, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// Its last run succeeded and the next is not late.
    Ok,
    /// Running now.
    Running,
    /// Registered, not run yet.
    Waiting,
    /// Its last run failed.
    Errored,
    /// It has not started within [`OVERDUE_PERIODS`] periods.
    Overdue,
    /// Its process stopped saying it is alive.
    Silent,
}

impl Health {
    /// The wire and CSS name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Errored => "errored",
            Self::Overdue => "overdue",
            Self::Silent => "silent",
        }
    }

    /// Whether an operator should look.
    pub fn is_problem(self) -> bool {
        self >= Self::Errored
    }
}

impl TaskState {
    /// The task, if this binary knows its name.
    pub fn task(&self) -> Option<Task> {
        Task::parse(&self.name)
    }

    /// How it stands at `now`.
    pub fn health(&self, now: OffsetDateTime) -> Health {
        if now - self.heartbeat_at > HEARTBEAT * SILENT_BEATS {
            return Health::Silent;
        }
        if self.doing.is_some() {
            return Health::Running;
        }
        let Some(started) = self.last_started_at else {
            return Health::Waiting;
        };
        // A run takes a while too: measured from its end, when it has one.
        let since = self.last_finished_at.unwrap_or(started).max(started);
        if now - since > self.period * OVERDUE_PERIODS + HEARTBEAT {
            Health::Overdue
        } else if self.last_error.is_some() {
            Health::Errored
        } else {
            Health::Ok
        }
    }
}

/// Every task of every process, by name then process.
pub async fn list(db: &PgPool) -> Result<Vec<TaskState>, sqlx::Error> {
    let rows = sqlx::query!(
        "select name, process, description, period_ms, doing, runs, last_started_at,
                last_finished_at, last_summary, last_error, heartbeat_at
         from background_tasks order by name, process"
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| TaskState {
            name: r.name,
            process: r.process,
            description: r.description,
            period: Duration::from_millis(u64::try_from(r.period_ms).unwrap_or(1)),
            doing: r.doing,
            runs: r.runs,
            last_started_at: r.last_started_at,
            last_finished_at: r.last_finished_at,
            last_summary: r.last_summary,
            last_error: r.last_error,
            heartbeat_at: r.heartbeat_at,
        })
        .collect())
}
