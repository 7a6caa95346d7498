//! The registry of background tasks, after omicron's activated background tasks: each task
//! runs on its period or when activated ("Run now", from any process), one activation at a
//! time, and its state (last run, last error, what it is doing now) is written to
//! `background_tasks` per process with a heartbeat, so the console and `/readyz` show every
//! process's tasks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Task;
use crate::audit::{self, Action, Actor};

/// The notification channel "Run now" speaks on; its payload is the task's name.
/// The trigger of migration 0056 wakes the SCIM push on it by these names too.
const CHANNEL: &str = "gangway_background_tasks";
/// How often a process says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Rows of a process silent this long are deleted: it is gone.
const FORGET_AFTER_DAYS: i32 = 1;

/// A background task's body: one activation does what is due and says what it did.
pub trait BackgroundTask: Send + 'static {
    /// Runs once; `Ok` carries a short summary ("sent 2"), `Err` what went wrong. Long work
    /// watches `stop` and finishes the item in hand, or gives it back, when it is cancelled.
    fn activate<'a>(
        &'a mut self,
        activity: &'a Activity,
        stop: &'a CancellationToken,
    ) -> BoxFuture<'a, anyhow::Result<String>>;

    /// Called once the task's loop has stopped: work it left running ends here.
    fn stopped(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A task whose activation is a plain function: for small periodic chores.
pub struct FnTask<F>(F);

/// The task activating `f`.
pub fn from_fn<F>(f: F) -> FnTask<F>
where
    F: FnMut() -> BoxFuture<'static, anyhow::Result<String>> + Send + 'static,
{
    FnTask(f)
}

impl<F> BackgroundTask for FnTask<F>
where
    F: FnMut() -> BoxFuture<'static, anyhow::Result<String>> + Send + 'static,
{
    fn activate<'a>(
        &'a mut self,
        _: &'a Activity,
        _: &'a CancellationToken,
    ) -> BoxFuture<'a, anyhow::Result<String>> {
        (self.0)()
    }
}

/// Where a running task reports what it is doing; a detached one (tests driving the `try_…`
/// entry points) reports nowhere.
#[derive(Clone, Default)]
pub struct Activity {
    row: Option<(PgPool, Task, Arc<str>)>,
    /// Wakes the task's loop.
    wake: Arc<Notify>,
    /// Work that outlives an activation (running syncs), shown once it returns.
    ongoing: Arc<Mutex<Option<String>>>,
}

impl Activity {
    /// Reports nowhere.
    pub fn detached() -> Self {
        Self::default()
    }

    /// Activates the task again as soon as its current activation ends.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Says what goes on after the activation returns (`None`: nothing).
    pub fn ongoing(&self, what: Option<String>) {
        *self.ongoing.lock().unwrap_or_else(|e| e.into_inner()) = what;
    }

    /// Says what the task is doing now ("delivering 3 webhooks").
    pub async fn doing(&self, what: &str) {
        let Some((db, task, process)) = &self.row else {
            return;
        };
        let written = sqlx::query!(
            "update background_tasks set doing = $3 where name = $1 and process = $2",
            task.name(),
            &**process,
            what
        )
        .execute(db)
        .await;
        if let Err(e) = written {
            tracing::warn!(task = task.name(), error = %e, "could not record what a task is doing");
        }
    }
}

/// Asks every process running `task` to run it now, audited as `actor`'s request; the request
/// reaches the processes when the audit event commits.
pub async fn request_run(db: &PgPool, task: Task, actor: &Actor) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    audit::record(
        &mut *tx,
        actor,
        Action::BackgroundTaskRunRequested,
        None,
        None,
        serde_json::json!({ "task": task.name() }),
    )
    .await?;
    sqlx::query_scalar!("select pg_notify($1, $2)::text", CHANNEL, task.name())
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await
}

/// Wakes `task` in every process running it once the caller's transaction commits, without
/// an audit event: for work that follows a change (a sync that changed a tenant's copy).
pub async fn wake(conn: &mut sqlx::PgConnection, task: Task) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!("select pg_notify($1, $2)::text", CHANNEL, task.name())
        .fetch_one(conn)
        .await?;
    Ok(())
}

struct Entry {
    task: Task,
    period: Duration,
    body: Box<dyn BackgroundTask>,
}

/// The background tasks one process runs.
pub struct Registry {
    db: PgPool,
    process: Arc<str>,
    entries: Vec<Entry>,
}

impl Registry {
    /// An empty registry for this process (named `host:pid` on the console).
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            process: process_name().into(),
            entries: Vec::new(),
        }
    }

    /// This process's name as its rows carry it.
    pub fn process(&self) -> &str {
        &self.process
    }

    /// Adds `task`, activated every `period` (and on request) by `body`.
    pub fn register(&mut self, task: Task, period: Duration, body: impl BackgroundTask) {
        self.entries.push(Entry {
            task,
            period,
            body: Box::new(body),
        });
    }

    /// Runs every task until `stop` is cancelled: each finishes (or gives back) the work in
    /// hand and ends, then this process's rows are deleted.
    pub async fn run(self, stop: CancellationToken) {
        let Self {
            db,
            process,
            entries,
        } = self;
        let names: Vec<String> = entries.iter().map(|e| e.task.name().to_owned()).collect();
        let mut wakers = HashMap::new();
        let mut loops = tokio::task::JoinSet::new();
        for entry in entries {
            if let Err(e) = register_row(&db, &process, entry.task, entry.period).await {
                tracing::warn!(task = entry.task.name(), error = %e, "could not record a background task");
            }
            let activity = Activity {
                row: Some((db.clone(), entry.task, process.clone())),
                ..Activity::default()
            };
            wakers.insert(entry.task, activity.wake.clone());
            loops.spawn(run_task(entry, activity, stop.clone()));
        }
        let upkeep =
            async { tokio::join!(listen(&db, &wakers, &stop), heartbeat(&db, &process, &stop)) };
        tokio::join!(upkeep, async { while loops.join_next().await.is_some() {} });
        let deleted = sqlx::query!(
            "delete from background_tasks where process = $1 and name = any($2)",
            &*process,
            &names
        )
        .execute(&db)
        .await;
        if let Err(e) = deleted {
            tracing::warn!(error = %e, "could not remove this process's background tasks");
        }
        tracing::info!("background tasks stopped");
    }
}

/// `host:pid`, as the sync workers' ids begin.
pub fn process_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}", std::process::id())
}

async fn register_row(
    db: &PgPool,
    process: &str,
    task: Task,
    period: Duration,
) -> Result<(), sqlx::Error> {
    let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1);
    sqlx::query!(
        "insert into background_tasks (name, process, description, period_ms)
         values ($1, $2, $3, $4)
         on conflict (name, process) do update
         set description = excluded.description, period_ms = excluded.period_ms, doing = null,
             runs = 0, last_started_at = null, last_finished_at = null, last_summary = null,
             last_error = null, heartbeat_at = now()",
        task.name(),
        process,
        task.description(),
        period_ms
    )
    .execute(db)
    .await?;
    Ok(())
}

/// One task's loop: activate at once, then on each period or request, until `stop`.
async fn run_task(mut entry: Entry, activity: Activity, stop: CancellationToken) {
    let name = entry.task.name();
    loop {
        if stop.is_cancelled() {
            break;
        }
        started(&activity).await;
        let result = entry.body.activate(&activity, &stop).await;
        if let Err(e) = &result {
            tracing::warn!(task = name, error = %format!("{e:#}"), "background task failed");
        }
        finished(&activity, &result).await;
        tokio::select! {
            () = tokio::time::sleep(entry.period) => {}
            () = activity.wake.notified() => tracing::debug!(task = name, "background task activated"),
            () = stop.cancelled() => {}
        }
    }
    entry.body.stopped().await;
}

async fn started(activity: &Activity) {
    let Some((db, task, process)) = &activity.row else {
        return;
    };
    let written = sqlx::query!(
        "update background_tasks set runs = runs + 1, last_started_at = now(), doing = 'running'
         where name = $1 and process = $2",
        task.name(),
        &**process
    )
    .execute(db)
    .await;
    if let Err(e) = written {
        tracing::warn!(task = task.name(), error = %e, "could not record a task's start");
    }
}

async fn finished(activity: &Activity, result: &anyhow::Result<String>) {
    let Some((db, task, process)) = &activity.row else {
        return;
    };
    let (summary, error) = match result {
        Ok(summary) => (Some(summary.as_str()), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let ongoing = activity
        .ongoing
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let written = sqlx::query!(
        "update background_tasks set last_finished_at = now(), doing = $5, last_summary = $3,
                last_error = $4
         where name = $1 and process = $2",
        task.name(),
        &**process,
        summary,
        error,
        ongoing
    )
    .execute(db)
    .await;
    if let Err(e) = written {
        tracing::warn!(task = task.name(), error = %e, "could not record a task's end");
    }
}

/// Wakes the tasks named on [`CHANNEL`] until `stop`.
async fn listen(db: &PgPool, wakers: &HashMap<Task, Arc<Notify>>, stop: &CancellationToken) {
    let mut listener = loop {
        let connected = async {
            let mut listener = PgListener::connect_with(db).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match connected.await {
            Ok(listener) => break listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for \"Run now\"; trying again");
                tokio::select! {
                    () = tokio::time::sleep(HEARTBEAT) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    };
    loop {
        tokio::select! {
            received = listener.recv() => match received {
                Ok(note) => {
                    if let Some(wake) = Task::parse(note.payload()).and_then(|t| wakers.get(&t)) {
                        wake.notify_one();
                    }
                }
                // It reconnects on the next call; a pause keeps a dead server from spinning it.
                Err(e) => {
                    tracing::warn!(error = %e, "lost the \"Run now\" channel; reconnecting");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = stop.cancelled() => return,
                    }
                }
            },
            () = stop.cancelled() => return,
        }
    }
}

/// Marks this process's rows alive every [`HEARTBEAT`] and forgets processes long silent.
async fn heartbeat(db: &PgPool, process: &str, stop: &CancellationToken) {
    let mut every = tokio::time::interval(HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        let beat = sqlx::query!(
            "update background_tasks set heartbeat_at = now() where process = $1",
            process
        )
        .execute(db)
        .await;
        let forgotten = sqlx::query!(
            "delete from background_tasks where heartbeat_at < now() - make_interval(days => $1)",
            FORGET_AFTER_DAYS
        )
        .execute(db)
        .await;
        if let Err(e) = beat.and(forgotten) {
            tracing::warn!(error = %e, "could not record the background tasks' heartbeat");
        }
    }
}
