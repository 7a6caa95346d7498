//! The background engine and its registry: one process's tasks (mail, webhooks, syncs and the
//! sweeps) run through one registry, report their state to the console and `/readyz`, run at
//! once on an admin's request, and all stop promptly on shutdown.

use std::future::Future;
use std::time::Duration;

use gangway::operators::Role;
use gangway::web::paths;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::browser::{ChromeDriver, check_page, click, console_sign_in, wait_for_text};
use crate::helpers::{TestApp, location, post_with_csrf, sign_in_as};
use crate::sync::{all_app_permissions, connect};
use crate::webhooks::{Receiver, add_endpoint};

/// Every task a portal with sync workers registers.
const PORTAL_TASKS: [&str; 11] = [
    "sync_scheduler",
    "sync_workers",
    "mail_outbox",
    "webhook_deliveries",
    "webhook_log_pruning",
    "backchannel_logouts",
    "signin_upkeep",
    "session_sweep",
    "rate_limit_pruning",
    "metrics_upkeep",
    "setup_sign_in",
];

/// The portal's background tasks (with `sync_workers` syncs at once), running until the token
/// is cancelled.
pub fn start_tasks(app: &TestApp, sync_workers: usize) -> (CancellationToken, JoinHandle<()>) {
    let stop = CancellationToken::new();
    let registry = gangway::runtime::portal_tasks(&app.state, sync_workers, stop.clone()).unwrap();
    (stop.clone(), tokio::spawn(registry.run(stop)))
}

/// Polls `check` every 100 ms until it holds, for at most 30 s.
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never: {what}");
}

/// How many times the task `name` has run, per its row (0 without one).
async fn runs(app: &TestApp, name: &str) -> i64 {
    sqlx::query_scalar("select coalesce(sum(runs), 0)::int8 from background_tasks where name = $1")
        .bind(name)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Waits until every task in `names` has run at least once, without an error.
async fn wait_for_first_runs(app: &TestApp, names: &[&str]) {
    wait_until("every task ran once without error", || async {
        let ok: Vec<String> = sqlx::query_scalar(
            "select name from background_tasks
             where runs > 0 and last_finished_at is not null and last_error is null",
        )
        .fetch_all(&app.db)
        .await
        .unwrap();
        names.iter().all(|n| ok.iter().any(|o| o == n))
    })
    .await;
}

/// Stops the tasks and insists they all end within two seconds.
async fn stop_promptly(stop: CancellationToken, tasks: JoinHandle<()>) {
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(2), tasks)
        .await
        .expect("every background loop ends promptly on shutdown")
        .unwrap();
}

#[tokio::test]
async fn one_registry_delivers_mail_and_webhooks_runs_syncs_and_stops_promptly() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url, &["*"]).await;
    let tenant = connect(&app, &app.customer(0).id.clone(), &all_app_permissions()).await;
    let issued = app
        .invite("delegated", &app.customer(1).admin.username, None)
        .await;

    let (stop, tasks) = start_tasks(&app, 1);
    wait_until("the invitation mail is delivered", || async {
        app.mail.messages().iter().any(|m| {
            m.to.iter()
                .any(|to| to.contains(&issued.invitation.admin_email))
        })
    })
    .await;
    wait_until("the tenant's first sync succeeds", || async {
        let done: i64 = sqlx::query_scalar(
            "select count(*) from sync_runs where tenant_id = $1 and outcome = 'succeeded'",
        )
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .unwrap();
        done == 1
    })
    .await;
    wait_until("the sync's webhook is delivered", || async {
        receiver
            .received()
            .iter()
            .any(|r| r.json()["type"] == "sync.completed")
    })
    .await;
    wait_for_first_runs(&app, &PORTAL_TASKS).await;

    stop_promptly(stop, tasks).await;
    let left: i64 = sqlx::query_scalar("select count(*) from background_tasks")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 0, "a process that stops removes its tasks' rows");
}

#[tokio::test]
async fn shutdown_in_the_middle_of_a_sync_gives_its_job_back_promptly() {
    let app = TestApp::spawn().await;
    let tenant = connect(&app, &app.customer(0).id.clone(), &all_app_permissions()).await;
    // Every Graph answer takes a while, so the sync is surely running when the stop comes.
    app.admin
        .post(
            "/_emulator/graph",
            &serde_json::json!({ "page_size": 2, "latency_ms": 200 }),
        )
        .await
        .unwrap();
    let (stop, tasks) = start_tasks(&app, 1);
    wait_until("the sync is running", || async {
        let running: i64 = sqlx::query_scalar(
            "select count(*) from jobs where tenant_id = $1 and status = 'running'",
        )
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .unwrap();
        running == 1
    })
    .await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), tasks)
        .await
        .expect("the sync stops after the page in hand")
        .unwrap();
    let (status, attempts): (String, i32) =
        sqlx::query_as("select status, attempts from jobs where tenant_id = $1")
            .bind(tenant)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(status, "queued", "given back, due again at once");
    assert_eq!(attempts, 0, "a shutdown does not cost an attempt");
}

#[tokio::test]
async fn run_now_in_the_console_activates_the_task_in_the_running_process() {
    let app = TestApp::spawn().await;
    let (stop, tasks) = start_tasks(&app, 0);
    wait_for_first_runs(&app, &["session_sweep"]).await;
    assert_eq!(runs(&app, "session_sweep").await, 1, "hourly: once so far");

    // A viewer sees the tasks but cannot run one.
    app.add_operator("viewer@provider.test", Role::Viewer).await;
    let viewer = app.new_browser();
    sign_in_as(&viewer, &app, "viewer@provider.test").await;
    let page = viewer
        .get(app.url(paths::BACKGROUND))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Session sweep"), "{page}");
    assert!(!page.contains("Run now"), "{page}");
    let refused = post_with_csrf(&viewer, &app, &paths::background_run("session_sweep"), &[]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // Without the CSRF token, nothing runs either.
    app.sign_in(Role::Admin).await;
    let forged = app
        .client
        .post(app.url(&paths::background_run("session_sweep")))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let response = app
        .post_form(&paths::background_run("session_sweep"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to = location(response).await;
    assert_eq!(to, "/console/background?ran=session_sweep");
    let page = app.get(&to).await.text().await.unwrap();
    assert!(
        page.contains("Session sweep was asked to run now"),
        "{page}"
    );
    wait_until("the sweep runs again on request", || async {
        runs(&app, "session_sweep").await == 2
    })
    .await;
    let audited: Value = sqlx::query_scalar(
        "select detail from audit_events where action = 'background_task.run_requested'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(audited["task"], "session_sweep");

    let unknown = app.post_form("/console/background/nothing/run", &[]).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    stop_promptly(stop, tasks).await;
}

#[tokio::test]
async fn readyz_and_the_page_show_every_task_and_flag_a_failed_overdue_or_silent_one() {
    let app = TestApp::spawn().await;
    let (stop, tasks) = start_tasks(&app, 1);
    wait_for_first_runs(&app, &PORTAL_TASKS).await;

    let body: Value = app.get(paths::READYZ).await.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["background"]["ok"], true, "{body}");
    let listed = body["background"]["tasks"].as_array().unwrap();
    for name in PORTAL_TASKS {
        let task = listed
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {body}"));
        assert!(task["runs"].as_i64().unwrap() >= 1, "{task}");
        assert!(task["process"].as_str().unwrap().contains(':'), "{task}");
    }

    sqlx::query("update background_tasks set last_error = 'the mail server said no' where name = 'session_sweep'")
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query(
        "update background_tasks set last_started_at = now() - interval '4 hours',
                last_finished_at = now() - interval '4 hours'
         where name = 'webhook_log_pruning'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "insert into background_tasks (name, process, description, period_ms, runs, heartbeat_at)
         values ('mail_outbox', 'gone-host:42', 'Sends mail', 3000, 7, now() - interval '10 minutes')",
    )
    .execute(&app.db)
    .await
    .unwrap();

    let response = app.get(paths::READYZ).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "a task's trouble is detail, not unreadiness"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["background"]["ok"], false, "{body}");
    let state = |name: &str, process: Option<&str>| {
        body["background"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name && process.is_none_or(|p| t["process"] == p))
            .map(|t| t["state"].clone())
            .unwrap()
    };
    assert_eq!(state("session_sweep", None), "errored");
    assert_eq!(state("webhook_log_pruning", None), "overdue");
    assert_eq!(state("mail_outbox", Some("gone-host:42")), "silent");

    app.sign_in(Role::Viewer).await;
    let page = app.get(paths::BACKGROUND).await.text().await.unwrap();
    assert!(page.contains("Needs a look"), "{page}");
    assert!(page.contains("href=\"#task-session-sweep\""), "{page}");
    assert!(page.contains("the mail server said no"), "{page}");
    assert!(page.contains("Overdue"), "{page}");
    assert!(page.contains("Process silent"), "{page}");
    assert!(page.contains("gone-host:42"), "{page}");
    stop_promptly(stop, tasks).await;
}

#[tokio::test]
async fn the_background_tasks_page_reads_well_and_passes_axe_in_a_real_browser() {
    let app = TestApp::spawn().await;
    connect(&app, &app.customer(0).id.clone(), &all_app_permissions()).await;
    let (stop, tasks) = start_tasks(&app, 1);
    wait_for_first_runs(&app, &PORTAL_TASKS).await;
    sqlx::query(
        "insert into background_tasks (name, process, description, period_ms, runs, last_started_at,
                last_finished_at, last_error, heartbeat_at)
         values ('webhook_deliveries', 'worker-7f3a9c2e41b8:1', 'POSTs events', 2000, 3,
                 now() - interval '1 minute', now() - interval '59 seconds',
                 'could not connect to the database: connection refused (os error 111)', now())",
    )
    .execute(&app.db)
    .await
    .unwrap();

    app.add_operator("ops@provider.test", Role::Admin).await;
    let driver = ChromeDriver::start().await;
    let browser = driver.browser().await;
    console_sign_in(&browser, &app, "ops@provider.test").await;
    browser.goto(&app.url(paths::BACKGROUND)).await.unwrap();
    wait_for_text(&browser, "Sync workers").await;
    check_page(&browser, "background-tasks", true).await;

    let before = runs(&app, "session_sweep").await;
    click(
        &browser,
        "#task-session-sweep form[action='/console/background/session_sweep/run'] button",
    )
    .await;
    wait_for_text(&browser, "Session sweep was asked to run now").await;
    wait_until("the sweep runs on request", || async {
        runs(&app, "session_sweep").await > before
    })
    .await;
    check_page(&browser, "background-tasks-run", true).await;
    browser.close().await.unwrap();
    stop_promptly(stop, tasks).await;
}
