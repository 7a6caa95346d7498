//! Change notifications as triggers, against the emulator's subscriptions: a change made in
//! the directory reaches the copy and the provider's webhooks with nobody pressing "Sync now";
//! a burst is one or two rounds; forged notifications change nothing; subscriptions are
//! renewed, reauthorized, recreated when lost and deleted at offboarding; without a public
//! HTTPS URL there are none and the tenant page says so.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gangway::directory::runs::RunOutcome;
use gangway::directory::worker::{self, RunReport, WorkerConfig};
use gangway::jobs::Outcome;
use gangway::operators::Role;
use gangway::types::TenantRecordId;
use gangway::web::paths;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{Setup, TestApp};
use crate::sync::{all_app_permissions, connect, emulator, work};
use crate::webhooks::{Receiver, add_endpoint, deliver};

/// A portal and emulator that reach each other over plain HTTP on loopback.
async fn spawn() -> TestApp {
    TestApp::spawn_with(Setup {
        notifications_over_http: true,
        ..Setup::default()
    })
    .await
}

/// Connects customer 0, runs its first (full) round and subscribes; its ids.
async fn subscribed(app: &TestApp) -> (String, Uuid) {
    let tid = app.customer(0).id.clone();
    let tenant = connect(app, &tid, &all_app_permissions()).await;
    let first = work(app).await;
    assert_eq!(first.outcome, RunOutcome::Succeeded, "{:?}", first.error);
    let kept = app.state.subscriptions().keep_all().await.unwrap();
    assert_eq!((kept.created, kept.failed), (2, 0), "{kept:?}");
    (tid, tenant)
}

/// The emulator's subscriptions for `tid`.
async fn subscriptions_at_graph(app: &TestApp, tid: &str) -> Vec<Value> {
    let all = emulator(app, Method::GET, "/_emulator/subscriptions", None).await;
    all["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["tenantId"] == tid)
        .cloned()
        .collect()
}

/// The emulator's subscription on `resource` for `tid`.
async fn subscription_on(app: &TestApp, tid: &str, resource: &str) -> Value {
    subscriptions_at_graph(app, tid)
        .await
        .into_iter()
        .find(|s| s["resource"] == resource)
        .unwrap_or_else(|| panic!("no subscription on {resource}"))
}

/// Runs the next sync round as soon as one is due, waiting for it (nobody asks for one).
async fn next_round(app: &TestApp) -> RunReport {
    let syncer = gangway::runtime::syncer(&app.state);
    let cfg = WorkerConfig::new(1);
    let started = Instant::now();
    loop {
        match worker::work_one(&syncer, &cfg, "test-worker", &CancellationToken::new())
            .await
            .unwrap()
        {
            Outcome::Ran(_, Ok(report)) => return report,
            Outcome::Ran(_, Err(failure)) => panic!("the sync failed: {}", failure.error),
            Outcome::Idle => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "no round started"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn trigger_of(app: &TestApp, report: &RunReport) -> String {
    sqlx::query_scalar("select trigger from sync_runs where id = $1")
        .bind(report.run_id.unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn queued_syncs(app: &TestApp, tenant: Uuid) -> i64 {
    sqlx::query_scalar("select count(*) from jobs where tenant_id = $1 and status = 'queued'")
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_change_in_the_directory_reaches_the_copy_and_a_webhook_without_sync_now() {
    let app = spawn().await;
    app.sign_in(Role::Admin).await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url, &["directory.user.updated"]).await;
    let (tid, tenant) = subscribed(&app).await;
    let subs = subscriptions_at_graph(&app, &tid).await;
    assert_eq!(subs.len(), 2);
    for sub in &subs {
        assert_eq!(sub["changeType"], "updated,deleted");
        assert!(
            sub["notificationUrl"]
                .as_str()
                .unwrap()
                .ends_with(paths::GRAPH_NOTIFICATIONS)
        );
        assert!(sub["clientState"].as_str().unwrap().len() >= 32);
    }
    let states: Vec<&str> = subs
        .iter()
        .map(|s| s["clientState"].as_str().unwrap())
        .collect();
    assert_ne!(states[0], states[1], "each subscription has its own secret");

    let user: Uuid = sqlx::query_scalar(
        "select object_id from directory_users where tenant_id = $1 order by user_principal_name desc limit 1",
    )
    .bind(tenant)
    .fetch_one(&app.db)
    .await
    .unwrap();
    emulator(
        &app,
        Method::PATCH,
        &format!("/_emulator/tenants/{tid}/users/{user}"),
        Some(json!({"displayName": "Renamed Elsewhere"})),
    )
    .await;
    let changed_at = Instant::now();
    let round = next_round(&app).await;
    assert_eq!(round.outcome, RunOutcome::Succeeded, "{:?}", round.error);
    assert_eq!(trigger_of(&app, &round).await, "notification");
    assert!(changed_at.elapsed() < Duration::from_secs(10));
    let name: String = sqlx::query_scalar(
        "select display_name from directory_users where tenant_id = $1 and object_id = $2",
    )
    .bind(tenant)
    .bind(user)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(name, "Renamed Elsewhere");
    deliver(&app).await;
    let events: Vec<Value> = receiver.received().iter().map(|r| r.json()).collect();
    assert!(
        events.iter().any(|e| e["type"] == "directory.user.updated"
            && e.to_string().contains("Renamed Elsewhere")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_burst_of_a_thousand_changes_is_one_or_two_rounds() {
    let app = spawn().await;
    let (tid, tenant) = subscribed(&app).await;
    let http = reqwest::Client::new();
    let url = format!("{}/_emulator/tenants/{tid}/users", app.emulator.base_url());
    let created: Vec<StatusCode> = futures_util::stream::iter(0..1000)
        .map(|n| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.post(url)
                    .json(&json!({"displayName": format!("Burst {n}")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(created.iter().all(|s| *s == StatusCode::CREATED));

    let (mut rounds, started) = (0, Instant::now());
    let syncer = gangway::runtime::syncer(&app.state);
    let cfg = WorkerConfig::new(1);
    let mut quiet_since = Instant::now();
    loop {
        match worker::work_one(&syncer, &cfg, "test-worker", &CancellationToken::new())
            .await
            .unwrap()
        {
            Outcome::Ran(_, Ok(_)) => {
                rounds += 1;
                quiet_since = Instant::now();
            }
            Outcome::Ran(_, Err(failure)) => panic!("the sync failed: {}", failure.error),
            Outcome::Idle
                if queued_syncs(&app, tenant).await == 0
                    && quiet_since.elapsed() > Duration::from_secs(3) =>
            {
                break;
            }
            Outcome::Idle => tokio::time::sleep(Duration::from_millis(100)).await,
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the rounds never ended"
        );
    }
    let copied: i64 = sqlx::query_scalar(
        "select count(*) from directory_users where tenant_id = $1 and display_name like 'Burst %'",
    )
    .bind(tenant)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(copied, 1000, "every change is in the copy");
    let by_notification: i64 = sqlx::query_scalar(
        "select count(*) from sync_runs where tenant_id = $1 and trigger = 'notification'",
    )
    .bind(tenant)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(
        (1..=2).contains(&rounds) && by_notification == rounds,
        "{rounds} rounds, {by_notification} by notification"
    );
}

#[tokio::test]
async fn a_forged_notification_changes_nothing_and_the_validation_request_is_echoed() {
    let app = spawn().await;
    let (tid, tenant) = subscribed(&app).await;
    let users = subscription_on(&app, &tid, "users").await;
    let http = reqwest::Client::new();
    let note = |client_state: &str| {
        json!({"value": [{
            "subscriptionId": users["id"],
            "clientState": client_state,
            "changeType": "updated",
            "resource": format!("Users/{}", Uuid::new_v4()),
            "tenantId": tid,
        }]})
    };
    for forged in [
        note("not-the-secret"),
        note(""),
        json!({"value": [{"subscriptionId": Uuid::new_v4(), "clientState": users["clientState"]}]}),
    ] {
        let resp = http
            .post(app.url(paths::GRAPH_NOTIFICATIONS))
            .json(&forged)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(queued_syncs(&app, tenant).await, 0, "nothing was queued");
    let resp = http
        .post(app.url(paths::GRAPH_NOTIFICATIONS))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // The genuine secret queues one round.
    let resp = http
        .post(app.url(paths::GRAPH_NOTIFICATIONS))
        .json(&note(users["clientState"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(queued_syncs(&app, tenant).await, 1);

    let resp = http
        .post(format!(
            "{}?validationToken=Validation%3A+Testing+client+application+reachability",
            app.url(paths::GRAPH_NOTIFICATIONS)
        ))
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        resp.text().await.unwrap(),
        "Validation: Testing client application reachability"
    );
}

#[tokio::test]
async fn subscriptions_are_renewed_reauthorized_and_recreated_when_lost() {
    let app = spawn().await;
    let (tid, tenant) = subscribed(&app).await;
    let keeper = app.state.subscriptions();

    // Close to its expiry, the users subscription is renewed for weeks.
    sqlx::query(
        "update directory_subscriptions set expires_at = now() + interval '1 hour'
         where tenant_id = $1 and resource = 'users'",
    )
    .bind(tenant)
    .execute(&app.db)
    .await
    .unwrap();
    let before = subscription_on(&app, &tid, "users").await;
    assert_eq!(keeper.keep(tenant).await.unwrap(), (0, 1));
    let after = subscription_on(&app, &tid, "users").await;
    assert_eq!(after["id"], before["id"]);
    let days_left: f64 = sqlx::query_scalar(
        "select extract(epoch from expires_at - now())::float8 / 86400 from directory_subscriptions
         where tenant_id = $1 and resource = 'users'",
    )
    .bind(tenant)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(days_left > 28.0, "{days_left} days left");

    // Expired at Graph, or removed there: recreated.
    let groups = subscription_on(&app, &tid, "groups").await;
    emulator(
        &app,
        Method::POST,
        &format!(
            "/_emulator/subscriptions/{}/expire",
            groups["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    emulator(
        &app,
        Method::DELETE,
        &format!("/_emulator/subscriptions/{}", after["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(keeper.keep(tenant).await.unwrap(), (2, 0));
    let now = subscriptions_at_graph(&app, &tid).await;
    assert_eq!(now.len(), 2);
    assert!(
        now.iter()
            .all(|s| s["id"] != groups["id"] && s["id"] != after["id"])
    );

    // reauthorizationRequired arrives at the lifecycle URL and is answered by a reauthorize.
    let users = subscription_on(&app, &tid, "users").await;
    let id = users["id"].as_str().unwrap();
    emulator(
        &app,
        Method::POST,
        &format!("/_emulator/subscriptions/{id}/lifecycle"),
        Some(json!({"lifecycleEvent": "reauthorizationRequired"})),
    )
    .await;
    let started = Instant::now();
    while subscription_on(&app, &tid, "users").await["reauthorizationRequired"] != false {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never reauthorized"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(subscription_on(&app, &tid, "users").await["id"], id);
    // A change after it is notified again.
    emulator(
        &app,
        Method::POST,
        &format!("/_emulator/tenants/{tid}/users"),
        Some(json!({"displayName": "After Reauthorization"})),
    )
    .await;
    let round = next_round(&app).await;
    assert_eq!(trigger_of(&app, &round).await, "notification");
}

#[tokio::test]
async fn offboarding_deletes_the_tenants_subscriptions() {
    let app = spawn().await;
    app.sign_in(Role::Admin).await;
    let (tid, tenant) = subscribed(&app).await;
    let page = app
        .get(&paths::tenant(TenantRecordId::from(tenant)))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("On: changes reach the copy within seconds"),
        "{page}"
    );
    let resp = app
        .post_form(&paths::offboard_tenant(TenantRecordId::from(tenant)), &[])
        .await;
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert!(subscriptions_at_graph(&app, &tid).await.is_empty());
    let left: i64 =
        sqlx::query_scalar("select count(*) from directory_subscriptions where tenant_id = $1")
            .bind(tenant)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn without_a_public_https_url_there_are_no_subscriptions_and_the_tenant_page_says_so() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);
    let keeper = app.state.subscriptions();
    assert!(!keeper.enabled());
    assert_eq!(keeper.keep_all().await.unwrap(), Default::default());
    assert!(subscriptions_at_graph(&app, &tid).await.is_empty());
    let page = app
        .get(&paths::tenant(TenantRecordId::from(tenant)))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("no public HTTPS address Microsoft could deliver them to"),
        "{page}"
    );
}
