//! The background tasks page: every task of every process with its state (what it is doing,
//! its last run and error, whether it is overdue), for every operator; admins can run one now.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{Chrome, Section, When};
use crate::audit::Actor;
use crate::background::status::{self, Health, TaskState};
use crate::background::{self, Task};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::paths;
use crate::web::session::{AdminOperator, CurrentOperator};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::BACKGROUND, get(page))
        .route(paths::BACKGROUND_RUN, post(run_now))
}

/// One task in one process.
struct ProcessRow {
    process: String,
    health: &'static str,
    badge: &'static str,
    doing: Option<String>,
    runs: i64,
    last_started: Option<When>,
    took: Option<String>,
    summary: Option<String>,
    error: Option<String>,
    heartbeat: When,
}

/// One task with its processes.
struct TaskCard {
    anchor: String,
    title: &'static str,
    name: &'static str,
    description: &'static str,
    period: String,
    run_url: String,
    rows: Vec<ProcessRow>,
    problem: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/background.html")]
struct Page {
    chrome: Chrome,
    tasks: Vec<TaskCard>,
    /// Tasks whose rows need a look, linked from the summary.
    problems: Vec<(String, &'static str)>,
    notice: Option<String>,
    overdue_periods: u32,
}

#[derive(Deserialize)]
struct Done {
    ran: Option<String>,
}

async fn page(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Query(done): Query<Done>,
) -> Result<Page> {
    let states = status::list(&state.db).await?;
    let now = OffsetDateTime::now_utc();
    let tasks: Vec<TaskCard> = Task::ALL
        .into_iter()
        .map(|task| card(task, &states, now))
        .collect();
    let problems = tasks
        .iter()
        .filter(|t| t.problem)
        .map(|t| (format!("#{}", t.anchor), t.title))
        .collect();
    let notice = done.ran.as_deref().and_then(Task::parse).map(|t| {
        format!(
            "{} was asked to run now in every process that runs it.",
            t.title()
        )
    });
    Ok(Page {
        chrome: Chrome::new(&state, &operator, csrf, Section::Background),
        tasks,
        problems,
        notice,
        overdue_periods: status::OVERDUE_PERIODS,
    })
}

fn card(task: Task, states: &[TaskState], now: OffsetDateTime) -> TaskCard {
    let rows: Vec<ProcessRow> = states
        .iter()
        .filter(|s| s.task() == Some(task))
        .map(|s| row(s, now))
        .collect();
    let period = states
        .iter()
        .find(|s| s.task() == Some(task))
        .map(|s| every(s.period))
        .unwrap_or_default();
    TaskCard {
        anchor: format!("task-{}", task.name().replace('_', "-")),
        title: task.title(),
        name: task.name(),
        description: task.description(),
        period,
        run_url: paths::background_run(task.name()),
        problem: states
            .iter()
            .any(|s| s.task() == Some(task) && s.health(now).is_problem()),
        rows,
    }
}

fn row(s: &TaskState, now: OffsetDateTime) -> ProcessRow {
    let health = s.health(now);
    let took = match (s.last_started_at, s.last_finished_at) {
        (Some(start), Some(end)) if end >= start => Some(took(end - start)),
        _ => None,
    };
    ProcessRow {
        process: s.process.clone(),
        health: match health {
            Health::Ok => "OK",
            Health::Running => "Running",
            Health::Waiting => "Not run yet",
            Health::Errored => "Last run failed",
            Health::Overdue => "Overdue",
            Health::Silent => "Process silent",
        },
        badge: match health {
            Health::Ok => "succeeded",
            Health::Running => "running",
            Health::Waiting => "pending",
            Health::Errored => "failed",
            Health::Overdue => "interrupted",
            Health::Silent => "abandoned",
        },
        doing: s.doing.clone(),
        runs: s.runs,
        last_started: s.last_started_at.map(When::new),
        took,
        summary: s.last_summary.clone(),
        error: s.last_error.clone(),
        heartbeat: When::new(s.heartbeat_at),
    }
}

/// `every 2 s`, `every 15 min`, `every hour`.
fn every(period: std::time::Duration) -> String {
    let secs = period.as_secs();
    match secs {
        0 => format!("every {} ms", period.as_millis()),
        1..60 => format!("every {secs} s"),
        60..3600 => format!("every {} min", secs / 60),
        3600 => "every hour".into(),
        _ => format!("every {} h", secs / 3600),
    }
}

/// `85 ms`, `4.2 s`, `3 min 5 s`: how long a run took.
fn took(d: time::Duration) -> String {
    let ms = d.whole_milliseconds().max(0);
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", d.as_seconds_f64()),
        _ => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
    }
}

async fn run_now(
    State(state): State<AppState>,
    AdminOperator(admin): AdminOperator,
    Path(name): Path<String>,
) -> Result<Redirect> {
    let task = Task::parse(&name).ok_or(Error::NotFound)?;
    background::request_run(&state.db, task, &Actor::Operator(admin.email)).await?;
    Ok(Redirect::to(&format!(
        "{}?ran={}",
        paths::BACKGROUND,
        task.name()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_durations_read_plainly() {
        assert_eq!(every(std::time::Duration::from_secs(2)), "every 2 s");
        assert_eq!(every(std::time::Duration::from_secs(900)), "every 15 min");
        assert_eq!(every(std::time::Duration::from_secs(3600)), "every hour");
        assert_eq!(took(time::Duration::milliseconds(85)), "85 ms");
        assert_eq!(took(time::Duration::milliseconds(4_200)), "4.2 s");
        assert_eq!(took(time::Duration::seconds(185)), "3 min 5 s");
    }
}
