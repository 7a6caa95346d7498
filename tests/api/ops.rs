//! Probes and metrics: `/healthz`, `/readyz` (database and schema), `/metrics` (route-labelled
//! HTTP metrics, gauges matching the database, its restrictions) and JSON logs with the
//! request id, all through the real HTTP interface.

use std::sync::{Arc, Mutex};

use gangway::config::{MetricsSettings, TrustedProxies};
use gangway::types::Secret;
use gangway::web::{Application, MetricsServer};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::helpers::{Setup, TestApp, consent};

#[tokio::test]
async fn healthz_and_its_alias_answer() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/health"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.text().await.unwrap(), "ok");
    }
}

#[tokio::test]
async fn readyz_is_ready_with_a_current_schema() {
    let app = TestApp::spawn().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["checks"]["database"]["ok"], true, "{body}");
    assert_eq!(body["checks"]["migrations"]["ok"], true, "{body}");
    assert_eq!(
        body["checks"]["migrations"]["missing"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn readyz_names_a_missing_migration() {
    let app = TestApp::spawn().await;
    let newest = gangway::db::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap();
    let newest_name = gangway::db::MIGRATOR
        .iter()
        .find(|m| m.version == newest)
        .map(|m| format!("{:04} {}", m.version, m.description))
        .unwrap();
    sqlx::query("delete from _sqlx_migrations where version = $1")
        .bind(newest)
        .execute(&app.db)
        .await
        .unwrap();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready", "{body}");
    assert_eq!(body["checks"]["database"]["ok"], true, "{body}");
    assert_eq!(body["checks"]["migrations"]["ok"], false, "{body}");
    assert_eq!(
        body["checks"]["migrations"]["missing"],
        serde_json::json!([newest_name]),
        "{body}"
    );
}

#[tokio::test]
async fn readyz_is_503_when_postgres_is_unreachable() {
    let app = TestApp::spawn().await;
    // A second portal over a pool whose database is gone: dropped with its sessions ended.
    let database = crate::helpers::fresh_database().await;
    let (pool, url) = (database.pool.clone(), database.url.clone());
    gangway::settings::prepare(&pool, &app.state.cfg.keys, &app.state.cfg.settings_seed())
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let portal =
        Application::with_listener((*app.state.cfg).clone(), pool.clone(), listener).unwrap();
    tokio::spawn(portal.run_until_stopped());
    let probe = reqwest::Client::new();
    let before = probe.get(format!("{address}/readyz")).send().await.unwrap();
    assert_eq!(before.status(), StatusCode::OK);

    gangway::db::drop_scratch(&url).await.unwrap();
    let response = probe.get(format!("{address}/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready", "{body}");
    assert_eq!(body["checks"]["database"]["ok"], false, "{body}");
    assert!(body["checks"]["database"]["error"].is_string(), "{body}");
    assert_eq!(body["checks"]["migrations"]["ok"], false, "{body}");
    // Liveness does not depend on the database.
    let alive = probe
        .get(format!("{address}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), StatusCode::OK);
}

/// A pooled connection Postgres cut while it sat idle (a restart, a proxy's timeout) is noticed
/// before a query gets it: one idle past [`gangway::db::PING_AFTER_IDLE`] is pinged first and
/// replaced, while one in steady use is handed out without the ping's round trip.
#[tokio::test]
async fn a_pooled_connection_cut_while_idle_is_replaced_before_use() {
    let database = crate::helpers::fresh_database().await;
    let pool = gangway::db::connect(&database.url, 1).await.unwrap();
    let backend = || sqlx::query_scalar::<_, i32>("select pg_backend_pid()").fetch_one(&pool);
    let first = backend().await.unwrap();
    let cut: bool = sqlx::query_scalar("select pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&database.pool)
        .await
        .unwrap();
    assert!(cut);
    tokio::time::sleep(gangway::db::PING_AFTER_IDLE + std::time::Duration::from_millis(200)).await;
    let second = backend()
        .await
        .expect("a fresh connection, not the cut one");
    assert_ne!(second, first);
    pool.close().await;
}

/// The value of the sample `series` (name and labels exactly as rendered).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_mirror_the_database() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    }
    let raw = "/console/tenants/0f0e6b1c-8f4e-4a57-9d7c-6c1b1b7f0a11";
    app.get(raw).await;
    app.get("/no/such/page-4f1c").await;
    // Invitations in three effective states, a connected tenant (its first sync is queued),
    // a job waiting since 90 s.
    let consented = app.invite("delegated", "admin@contoso.example", None).await;
    app.invite("application", "it@fabrikam.example", None).await;
    let revoked = app.invite("delegated", "it@northwind.example", None).await;
    sqlx::query("update invitations set status = 'revoked' where id = $1")
        .bind(revoked.invitation.id)
        .execute(&app.db)
        .await
        .unwrap();
    gangway::tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        consented.invitation.id,
        &consent(uuid::Uuid::new_v4()),
        &gangway::audit::Actor::System,
    )
    .await
    .unwrap();
    sqlx::query(
        "insert into jobs (kind, run_at) values ('ops-test', now() - interval '90 seconds')",
    )
    .execute(&app.db)
    .await
    .unwrap();

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let metrics = response.text().await.unwrap();

    // Other tests in this process count too: at least ours.
    let healthz = sample(
        &metrics,
        r#"gangway_http_requests_total{method="GET",route="/healthz",status="200"}"#,
    )
    .unwrap_or_else(|| panic!("no /healthz counter:\n{metrics}"));
    assert!(healthz >= 3.0, "{healthz}");
    assert!(
        sample(
            &metrics,
            r#"gangway_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}"#
        )
        .unwrap()
            >= 3.0,
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"gangway_http_request_duration_seconds_bucket{method="GET",route="/healthz",status="200",le="0.005"}"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"gangway_http_requests_total{method="GET",route="/console/tenants/{id}","#),
        "the route template labels the request:\n{metrics}"
    );
    assert!(
        metrics.contains(
            r#"gangway_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        "{metrics}"
    );
    assert!(!metrics.contains(raw), "never the raw path");
    assert!(!metrics.contains("page-4f1c"), "never the raw path");

    for (status, expected) in [
        ("pending", 1.0),
        ("consented", 1.0),
        ("revoked", 1.0),
        ("expired", 0.0),
    ] {
        assert_eq!(
            sample(
                &metrics,
                &format!("gangway_invitations{{status=\"{status}\"}}")
            ),
            Some(expected),
            "{status}:\n{metrics}"
        );
    }
    let by_status: Vec<(String, i64)> =
        sqlx::query_as("select effective_status, count(*) from invitation_view group by 1")
            .fetch_all(&app.db)
            .await
            .unwrap();
    for (status, n) in by_status {
        assert_eq!(
            sample(
                &metrics,
                &format!("gangway_invitations{{status=\"{status}\"}}")
            ),
            Some(n as f64)
        );
    }
    assert_eq!(
        sample(&metrics, r#"gangway_tenants{status="active"}"#),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, r#"gangway_tenants{status="offboarded"}"#),
        Some(0.0)
    );
    let (queued, running): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where status = 'queued'), count(*) filter (where status = 'running') from jobs",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(queued >= 2, "the tenant's first sync and ours");
    assert_eq!(
        sample(&metrics, r#"gangway_jobs{state="queued"}"#),
        Some(queued as f64)
    );
    assert_eq!(
        sample(&metrics, r#"gangway_jobs{state="running"}"#),
        Some(running as f64)
    );
    let oldest = sample(&metrics, "gangway_jobs_oldest_due_age_seconds").unwrap();
    assert!((90.0..600.0).contains(&oldest), "{oldest}");
    let unsent: i64 = sqlx::query_scalar("select count(*) from outbox where sent_at is null")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        sample(&metrics, "gangway_outbox_unsent"),
        Some(unsent as f64)
    );
    assert_eq!(sample(&metrics, "gangway_database_up"), Some(1.0));
    assert_eq!(
        sample(&metrics, r#"gangway_webhook_deliveries{state="failed"}"#),
        Some(0.0),
        "webhook deliveries are counted by state"
    );
}

#[tokio::test]
async fn a_metrics_token_is_required_when_configured() {
    let app = TestApp::spawn_with(Setup {
        metrics: MetricsSettings {
            token: Some(Secret::new("a-long-metrics-token-0123456789")),
            listen: None,
        },
        ..Setup::default()
    })
    .await;
    let client = reqwest::Client::new();
    let url = app.url("/metrics");
    let none = client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    for wrong in [
        "Bearer a-long-metrics-token-012345678",
        "Bearer a-long-metrics-token-0123456789x",
        "Basic a-long-metrics-token-0123456789",
        "a-long-metrics-token-0123456789",
    ] {
        let response = client
            .get(&url)
            .header("authorization", wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{wrong}");
    }
    let right = client
        .get(&url)
        .bearer_auth("a-long-metrics-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    assert!(right.text().await.unwrap().contains("gangway_invitations"));
}

#[tokio::test]
async fn without_restriction_metrics_are_served_to_loopback_only() {
    // The test's client is loopback; as a trusted proxy it may say it forwards someone else.
    let app = TestApp::spawn_with(Setup {
        trusted_proxies: TrustedProxies::parse("127.0.0.1").unwrap(),
        ..Setup::default()
    })
    .await;
    let client = reqwest::Client::new();
    let local = client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(local.status(), StatusCode::OK);
    let remote = client
        .get(app.url("/metrics"))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(remote.status(), StatusCode::FORBIDDEN);
    assert!(!remote.text().await.unwrap().contains("gangway_"));
}

#[tokio::test]
async fn a_metrics_listener_of_its_own_takes_metrics_off_the_portal() {
    let app = TestApp::spawn_with(Setup {
        metrics: MetricsSettings {
            token: None,
            listen: Some("127.0.0.1:0".parse().unwrap()),
        },
        ..Setup::default()
    })
    .await;
    assert_eq!(app.get("/metrics").await.status(), StatusCode::NOT_FOUND);
    let server = MetricsServer::bind(app.state.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run_until(std::future::pending()));
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let metrics = response.text().await.unwrap();
    assert!(
        metrics.contains("gangway_tenants{status=\"active\"} 0"),
        "{metrics}"
    );
}

/// Everything logged on this thread while it is alive.
#[derive(Clone)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn json_logs_carry_the_request_id() {
    let app = TestApp::spawn().await;
    let logs = CapturedLogs(Arc::new(Mutex::new(Vec::new())));
    let sink = logs.clone();
    // The test runtime is single-threaded, so the portal's tasks log on this thread.
    let _capture = tracing::subscriber::set_default(gangway::telemetry::json_subscriber(
        tracing_subscriber::EnvFilter::new("tower_http=debug,gangway=info"),
        move || sink.clone(),
    ));
    let response = app
        .client
        .get(app.url("/readyz"))
        .header("x-request-id", "ops-test-request-7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-request-id"], "ops-test-request-7");
    // One without an id of its own gets one, and it is logged too.
    let generated = app.get("/healthz").await;
    let generated_id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for id in ["ops-test-request-7", generated_id.as_str()] {
        assert!(
            lines
                .iter()
                .any(|l| l["span"]["request_id"] == id && l["span"]["name"] == "request"),
            "no log line with request_id {id}:\n{text}"
        );
    }
}

/// Connects the emulator's first customer tenant in application mode (its first sync queued).
async fn connect_first_customer(app: &TestApp) -> uuid::Uuid {
    let tenant = app.customer(0).clone();
    let scopes = gangway::types::permissions::application_scopes();
    app.admin
        .grant(&tenant.id, &app.app.client_id, &[], &scopes)
        .await
        .unwrap();
    let issued = app
        .invite_for("Ops Customer", "application", &tenant.admin.username, None)
        .await;
    let consent = gangway::tenants::Consent {
        entra_tenant_id: tenant.id.parse().unwrap(),
        display_name: tenant.display_name.clone(),
        verified_domains: vec![tenant.domain.clone()],
        mode: gangway::types::ConsentMode::Application,
        granted_scopes: scopes.iter().map(|s| s.to_string()).collect(),
        consented_by_oid: None,
        consented_by_upn: None,
        customer_client_id: None,
        credential: None,
    };
    gangway::tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        issued.invitation.id,
        &consent,
        &gangway::audit::Actor::System,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_sync_run_is_counted_and_its_logs_name_the_tenant_and_run() {
    use gangway::directory::worker::{self, WorkerConfig};
    use gangway::jobs::Outcome;
    let app = TestApp::spawn().await;
    let tenant = connect_first_customer(&app).await;
    let before = app.get("/metrics").await.text().await.unwrap();
    let succeeded = r#"gangway_sync_runs_total{outcome="succeeded"}"#;
    let added = r#"gangway_sync_objects_total{change="added"}"#;

    let logs = CapturedLogs(Arc::new(Mutex::new(Vec::new())));
    let sink = logs.clone();
    let capture = tracing::subscriber::set_default(gangway::telemetry::json_subscriber(
        tracing_subscriber::EnvFilter::new("gangway=info"),
        move || sink.clone(),
    ));
    let syncer = gangway::runtime::syncer(&app.state);
    let report = match worker::work_one(
        &syncer,
        &WorkerConfig::new(1),
        "ops-test-worker",
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap()
    {
        Outcome::Ran(_, Ok(report)) => report,
        Outcome::Ran(_, Err(failure)) => panic!("the sync failed: {}", failure.error),
        Outcome::Idle => panic!("no sync job was due"),
    };
    drop(capture);
    assert!(report.tally.added > 10, "{:?}", report.tally);

    let after = app.get("/metrics").await.text().await.unwrap();
    // Other tests in this process sync too: at least this run.
    let delta =
        |series: &str| sample(&after, series).unwrap() - sample(&before, series).unwrap_or(0.0);
    assert!(delta(succeeded) >= 1.0, "{after}");
    assert!(delta(added) >= f64::from(report.tally.added), "{after}");
    assert!(
        after.contains("gangway_sync_throttled_waits_total"),
        "{after}"
    );

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let run_id = report.run_id.unwrap();
    let finished = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["fields"]["message"] == "sync finished")
        .unwrap_or_else(|| panic!("no 'sync finished' line:\n{text}"));
    assert_eq!(
        finished["span"]["tenant_id"],
        tenant.to_string(),
        "{finished}"
    );
    assert_eq!(finished["span"]["run_id"], run_id, "{finished}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn serve_puts_metrics_on_their_own_listener_behind_the_token_and_logs_json() {
    let app = TestApp::spawn().await;
    let (port, metrics_port) = (free_port(), free_port());
    let mut serve = crate::cli::gangway(&app);
    serve
        .env("GANGWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "GANGWAY_METRICS_LISTEN",
            format!("127.0.0.1:{metrics_port}"),
        )
        .env("GANGWAY_METRICS_TOKEN", "serve-metrics-token-0123456789")
        .env("GANGWAY_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .arg("serve")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = serve.spawn().unwrap();
    let portal = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(format!("{portal}/readyz")).await {
            assert_eq!(response.status(), StatusCode::OK);
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "gangway serve never answered /readyz");
    assert_eq!(
        reqwest::get(format!("{portal}/metrics"))
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND,
        "not on the portal's listener"
    );
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    let client = reqwest::Client::new();
    assert_eq!(
        client.get(&metrics).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let scraped = client
        .get(&metrics)
        .bearer_auth("serve-metrics-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    let text = scraped.text().await.unwrap();
    assert!(
        text.contains(
            r#"gangway_http_requests_total{method="GET",route="/readyz",status="200"} 1"#
        ),
        "{text}"
    );

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let output = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("serve stops within 10 s of SIGTERM")
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "metrics are served on their own listener"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_malformed_metrics_setting_is_named_at_start() {
    let app = TestApp::spawn().await;
    let output = crate::cli::gangway(&app)
        .env("GANGWAY_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("GANGWAY_METRICS_LISTEN", "everywhere")
        .env("GANGWAY_METRICS_TOKEN", "short")
        .arg("serve")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("GANGWAY_METRICS_LISTEN"), "{stderr}");
    assert!(stderr.contains("GANGWAY_METRICS_TOKEN"), "{stderr}");
}
