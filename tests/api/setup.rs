//! Zero-touch setup and client-secret rotation against the emulator: an administrator of the
//! provider's tenant signs in once (a device code, on the console's Setup page or from `gangway
//! setup`); Gangway registers a new multi-tenant app through Graph with a certificate it signs
//! its token requests with, the doctor then passes with no manual step and a customer onboards
//! with the new app; a second run changes nothing; a declined or expired sign-in changes nothing
//! and says why. Where a client secret Gangway added is still used, rotation adds a new one,
//! keeps the old one working until every process switched, then removes it.

use gangway::audit::Actor;
use gangway::directory::runs::RunOutcome;
use gangway::doctor::{self, CheckStatus, Expected};
use gangway::operators::Role;
use gangway::settings::profiles;
use gangway::settings::{self as settings_store, Edit, Key};
use gangway::setup::rotation::{self, Rotation};
use gangway::setup::{self, Credential, Current, SECRET_LIFETIME_DAYS, SECRET_NAME, SETUP_SCOPES};
use gangway::types::{ClientId, Secret, TenantId};
use gangway::web::paths;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::browser::{ChromeDriver, check_page, click, console_sign_in, fill, wait_for_text};
use crate::cli;
use crate::helpers::{Decision, Setup, TestApp, consent_at_microsoft, input_value, location};
use crate::sync::{all_app_permissions, connect, emulator, sync_now, work};
use crate::wizard::Customer;

/// Where the sign-in tool gets its code back (never contacted: the browser stops there).
const TOOL_REDIRECT: &str = "http://127.0.0.1:9/setup/callback";
const VERIFIER: &str = "setup-verifier-0123456789-0123456789-0123456789";

/// The provider's tenant, as the emulator seeded it.
async fn provider(app: &TestApp) -> entra_emulator::EmulatedTenant {
    app.admin.tenants().await.unwrap().remove(0)
}

/// The provider's Global Administrator signs in to a tool app asking for the setup's delegated
/// permissions; their Graph access token.
async fn admin_token(app: &TestApp) -> Secret {
    let provider = provider(app).await;
    let tool = app
        .admin
        .register_app(&json!({
            "home_tenant": provider.id,
            "display_name": "Setup sign-in",
            "redirect_uris": [TOOL_REDIRECT],
            "permissions": {"delegated": SETUP_SCOPES},
        }))
        .await
        .unwrap();
    let base = app.emulator.base_url().trim_end_matches('/');
    let scope = SETUP_SCOPES
        .map(|s| format!("https://graph.microsoft.com/{s}"))
        .join(" ");
    let mut start =
        url::Url::parse(&format!("{base}/{}/oauth2/v2.0/authorize", provider.id)).unwrap();
    start
        .query_pairs_mut()
        .append_pair("client_id", &tool.client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", TOOL_REDIRECT)
        .append_pair("scope", &scope)
        .append_pair("state", "setup")
        .append_pair("code_challenge", VERIFIER)
        .append_pair("code_challenge_method", "plain");
    let back = consent_at_microsoft(
        &app.new_browser(),
        start.as_str(),
        &provider.admin,
        Decision::Accept,
    )
    .await;
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let tokens: Value = reqwest::Client::new()
        .post(format!("{base}/{}/oauth2/v2.0/token", provider.id))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", tool.client_id.as_str()),
            ("client_secret", tool.client_secret.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", TOOL_REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Secret::new(tokens["access_token"].as_str().expect("an access token"))
}

/// What the doctor expects of the registration with the settings now.
async fn expected(app: &TestApp) -> Expected {
    let live = app.state.settings.current().await.unwrap();
    let in_use = profiles::in_use(&app.db).await.unwrap();
    Expected::new(&live.settings, &app.state.cfg.public_url, &in_use, false)
}

/// Runs the setup as the CLI would and stores what it made; the outcome.
async fn run_setup(app: &TestApp, token: &Secret, current: &Current) -> setup::Outcome {
    let tenant = TenantId::parse(&provider(app).await.id).unwrap();
    let outcome = setup::run(
        &app.state.graph,
        token,
        tenant,
        &expected(app).await,
        current,
        30,
    )
    .await
    .expect("the setup runs");
    setup::store(&app.db, &app.state.cfg.keys, &outcome, &Actor::Cli)
        .await
        .expect("the outcome is stored");
    app.state.settings.invalidate();
    outcome
}

async fn doctor(app: &TestApp) -> doctor::Report {
    let live = app.state.settings.current().await.unwrap();
    let cfg = &app.state.cfg;
    doctor::run(
        &app.db,
        &cfg.keys,
        &live,
        &app.state.graph,
        &cfg.public_url,
        &cfg.authority,
    )
    .await
}

/// A client-credentials token for Graph in the provider's tenant with this secret: Entra's answer.
async fn client_credentials(app: &TestApp, client_id: Uuid, secret: &str) -> Value {
    let tid = provider(app).await.id;
    let base = app.emulator.base_url().trim_end_matches('/');
    reqwest::Client::new()
        .post(format!("{base}/{tid}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id.to_string().as_str()),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// An installation that authenticates with a client secret Gangway added (as setups did before
/// they added certificates): the harness's registration set up, a secret added through Graph
/// and recorded as Gangway's, and no certificate. Its client id and the secret.
async fn secret_installation(app: &TestApp) -> (Uuid, String) {
    let token = admin_token(app).await;
    let harness = ClientId::parse(&app.app.client_id).unwrap();
    let current = setup::current(&app.db, Some(harness)).await.unwrap();
    let outcome = run_setup(app, &token, &current).await;
    let expires = time::OffsetDateTime::now_utc() + time::Duration::days(SECRET_LIFETIME_DAYS);
    let new = app
        .state
        .graph
        .add_password(&token, &outcome.object_id.to_string(), SECRET_NAME, expires)
        .await
        .unwrap();
    let edits = [
        Edit {
            key: Key::ClientSecret,
            raw: new.secret_text.expose().to_owned(),
        },
        Edit {
            key: Key::ClientSecretExpires,
            raw: new.end_date_time.date().to_string(),
        },
    ];
    settings_store::save(&app.db, &app.state.cfg.keys, &edits, &Actor::Cli)
        .await
        .unwrap();
    sqlx::query("update provider_registration set secret_key_id = $1, secret_expires_at = $2")
        .bind(new.key_id)
        .bind(new.end_date_time)
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("delete from provider_certificates")
        .execute(&app.db)
        .await
        .unwrap();
    app.state.settings.invalidate();
    (outcome.client_id, new.secret_text.expose().to_owned())
}

#[tokio::test]
async fn one_sign_in_registers_the_app_the_doctor_passes_a_customer_onboards_and_a_rerun_changes_nothing()
 {
    let app = TestApp::spawn().await;
    let token = admin_token(&app).await;

    // Gangway knows no registration yet: the setup creates one and does every step.
    let first = run_setup(&app, &token, &Current::default()).await;
    let changed: Vec<&str> = first
        .steps
        .iter()
        .filter(|s| s.changed)
        .map(|s| s.title)
        .collect();
    assert_eq!(
        changed,
        [
            "App registration",
            "Registration properties",
            "Service principal",
            "Owner of the registration",
            "Permissions in your tenant",
            "Credential"
        ],
        "{:#?}",
        first.steps
    );
    let live = app.state.settings.current().await.unwrap();
    assert_eq!(
        live.client_id().unwrap().to_string(),
        first.client_id.to_string()
    );
    assert_eq!(
        live.settings.provider_tenant_id.map(|t| t.to_string()),
        Some(provider(&app).await.id)
    );

    // The doctor passes with nothing done by hand.
    let report = doctor(&app).await;
    let not_passed: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.status != CheckStatus::Pass)
        .map(|c| format!("{} {}: {}", c.status.label(), c.title, c.detail))
        .collect();
    assert!(report.passed(), "{not_passed:#?}");
    assert!(
        report
            .checks
            .iter()
            .all(|c| c.status != CheckStatus::Skip && c.status != CheckStatus::Fail),
        "{not_passed:#?}"
    );
    // Token requests are signed with the certificate the setup added, and the doctor says so.
    let Credential::NewCertificate(made) = &first.credential else {
        panic!("a first setup adds a certificate");
    };
    let accepted = report
        .checks
        .iter()
        .find(|c| c.id == "client_credentials")
        .unwrap();
    assert_eq!(
        accepted.title, "Your tenant accepts the app's certificate",
        "{accepted:?}"
    );
    let certificate = report
        .checks
        .iter()
        .find(|c| c.id == "certificate")
        .unwrap();
    assert_eq!(certificate.status, CheckStatus::Pass, "{certificate:?}");
    assert!(
        certificate
            .detail
            .contains(&gangway::credentials::thumbprint(&made.certificate)),
        "{certificate:?}"
    );

    // A customer onboards with the new app, through the real wizard.
    let tenant = app.customer(0).clone();
    let issued = app
        .invite("application", &tenant.admin.username, None)
        .await;
    let (_, response) = Customer::open(&app, &issued.link)
        .await
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let recorded: i64 =
        sqlx::query_scalar("select count(*) from tenants where entra_tenant_id = $1")
            .bind(Uuid::parse_str(&tenant.id).unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(recorded, 1);

    // A second run finds everything as it should be and says so.
    let client_id = ClientId::parse(&first.client_id.to_string()).unwrap();
    let current = setup::current(&app.db, Some(client_id)).await.unwrap();
    let second = run_setup(&app, &token, &current).await;
    assert!(!second.changed(), "{:#?}", second.steps);
    assert_eq!(second.client_id, first.client_id);
    assert!(matches!(second.credential, Credential::Kept));
    assert!(doctor(&app).await.passed());
}

#[tokio::test]
async fn rotation_adds_a_secret_keeps_the_old_until_every_process_switched_then_removes_it() {
    let app = TestApp::spawn().await;
    let (client_id, old_secret) = secret_installation(&app).await;
    let live = app.state.settings.current().await.unwrap();
    assert!(matches!(
        rotation::try_rotate(&app.db, &app.state.cfg.keys, &live, &app.state.graph)
            .await
            .unwrap(),
        Rotation::NotDue(_)
    ));

    // The secret now expires in 5 days, in Entra and in Gangway's record.
    app.admin
        .patch(
            &format!("/_emulator/apps/{client_id}"),
            &json!({"secret_expires_in_days": 5}),
        )
        .await
        .unwrap();
    sqlx::query("update provider_registration set secret_expires_at = now() + interval '5 days'")
        .execute(&app.db)
        .await
        .unwrap();

    let added = rotation::try_rotate(&app.db, &app.state.cfg.keys, &live, &app.state.graph)
        .await
        .unwrap();
    assert!(matches!(added, Rotation::Added { .. }), "{added:?}");
    app.state.settings.invalidate();
    let live = app.state.settings.current().await.unwrap();
    let new_secret = live
        .settings
        .client_secret
        .as_ref()
        .unwrap()
        .expose()
        .to_owned();
    assert_ne!(new_secret, old_secret, "the new secret is stored");
    // Both work while processes switch.
    for secret in [&old_secret, &new_secret] {
        let answer = client_credentials(&app, client_id, secret).await;
        assert!(answer["access_token"].is_string(), "{answer}");
    }
    // Right after the switch, the old secret stays.
    assert_eq!(
        rotation::try_rotate(&app.db, &app.state.cfg.keys, &live, &app.state.graph)
            .await
            .unwrap(),
        Rotation::Waiting
    );
    // As a minute later: every live process has heartbeated since (every 15 seconds).
    sqlx::query("update provider_registration set switched_at = now() - interval '1 minute'")
        .execute(&app.db)
        .await
        .unwrap();
    let removed = rotation::try_rotate(&app.db, &app.state.cfg.keys, &live, &app.state.graph)
        .await
        .unwrap();
    assert!(matches!(removed, Rotation::Removed { .. }), "{removed:?}");
    let refused = client_credentials(&app, client_id, &old_secret).await;
    assert_eq!(refused["error"], "invalid_client", "{refused}");
    let answer = client_credentials(&app, client_id, &new_secret).await;
    assert!(answer["access_token"].is_string(), "{answer}");
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where action = 'setup.client_secret_rotated'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    assert!(matches!(
        rotation::try_rotate(&app.db, &app.state.cfg.keys, &live, &app.state.graph)
            .await
            .unwrap(),
        Rotation::NotDue(_)
    ));
}

#[tokio::test]
async fn gangway_setup_repairs_the_configured_registration_prints_the_checklist_and_the_doctor_then_a_rerun_changes_nothing()
 {
    let app = TestApp::spawn().await;
    let token = admin_token(&app).await;
    let file = std::env::temp_dir().join(format!("gangway-setup-{}", Uuid::new_v4()));
    std::fs::write(&file, token.expose()).unwrap();
    let tenant = provider(&app).await.id;
    let args = ["setup", "--tenant", tenant.as_str(), "--token-file"];
    let path = file.to_str().unwrap();

    let first = cli::run(cli::gangway(&app), &[&args[..], &[path]].concat()).await;
    let out = cli::stdout(&first);
    assert!(first.status.success(), "{out}{}", cli::stderr(&first));
    // System Settings name the harness's registration: the setup repairs it, keeping its name.
    assert!(
        out.contains("OK    App registration — Found \"Gangway Test Provider\""),
        "{out}"
    );
    assert!(
        out.contains("DONE  Registration properties — Set "),
        "{out}"
    );
    assert!(
        out.contains("DONE  Credential — Added certificate "),
        "{out}"
    );
    assert!(out.contains("0 failed"), "{out}");
    assert!(!out.contains(token.expose()), "the token is never printed");

    let second = cli::run(cli::gangway(&app), &[&args[..], &[path]].concat()).await;
    let out = cli::stdout(&second);
    assert!(second.status.success(), "{out}{}", cli::stderr(&second));
    assert!(out.contains("Nothing to change"), "{out}");
    assert!(!out.contains("DONE"), "{out}");
    std::fs::remove_file(&file).unwrap();
}

#[tokio::test]
async fn a_sync_running_while_the_secret_rotates_completes_and_the_old_secret_goes_once_every_process_switched()
 {
    let app = TestApp::spawn().await;
    let (client_id, old_secret) = secret_installation(&app).await;
    let customer = app.customer(0).id.clone();
    // Connecting queues the tenant's first sync.
    let tenant_id = connect(&app, &customer, &all_app_permissions()).await;
    // Graph answers slowly and in small pages: the sync spans the rotation.
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/graph",
        Some(json!({"latency_ms": 150, "page_size": 5})),
    )
    .await;
    // A worker process, alive and reading its settings every few seconds.
    sqlx::query(
        "insert into background_tasks (name, process, description, period_ms)
         values ('secret_rotation', 'worker-2', 'rotates the client secret', 30000)",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query("update provider_registration set secret_expires_at = now() + interval '5 days'")
        .execute(&app.db)
        .await
        .unwrap();
    let live = app.state.settings.current().await.unwrap();
    assert_eq!(
        live.settings.client_secret.as_ref().unwrap().expose(),
        old_secret
    );

    let keys = app.state.cfg.keys.clone();
    let (report, added) = tokio::join!(work(&app), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        rotation::try_rotate(&app.db, &keys, &live, &app.state.graph).await
    });
    assert_eq!(report.outcome, RunOutcome::Succeeded, "{:?}", report.error);
    assert!(
        report.tally.pages > 2,
        "the sync ran in pages across the rotation"
    );
    let Rotation::Added { key_id } = added.unwrap() else {
        panic!("the secret was due");
    };
    app.state.settings.invalidate();
    let new_secret = app
        .state
        .settings
        .current()
        .await
        .unwrap()
        .settings
        .client_secret
        .as_ref()
        .unwrap()
        .expose()
        .to_owned();
    assert_ne!(new_secret, old_secret);

    // The new secret is announced (never its text) and counted.
    let events = app.event_data("credential.rotated").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["kind"], "secret");
    assert_eq!(events[0]["key_id"], key_id.to_string());
    assert!(events[0]["expires_at"].is_string(), "{}", events[0]);
    assert!(!events[0].to_string().contains(&new_secret));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("gangway_credential_rotations_total{kind=\"secret\"}"),
        "the rotation is counted"
    );

    // Until the worker has read its settings again, the old secret stays: it still works.
    tokio::time::sleep(rotation::SETTLE + std::time::Duration::from_secs(1)).await;
    assert_eq!(
        rotation::try_rotate(&app.db, &keys, &live, &app.state.graph)
            .await
            .unwrap(),
        Rotation::Waiting
    );
    let answer = client_credentials(&app, client_id, &old_secret).await;
    assert!(answer["access_token"].is_string(), "{answer}");

    // The worker heartbeats (its settings cache has expired since the switch): the old secret
    // goes, and the next sync runs on the new one.
    sqlx::query("update background_tasks set heartbeat_at = now() where process = 'worker-2'")
        .execute(&app.db)
        .await
        .unwrap();
    let live = app.state.settings.current().await.unwrap();
    let removed = rotation::try_rotate(&app.db, &keys, &live, &app.state.graph)
        .await
        .unwrap();
    assert!(matches!(removed, Rotation::Removed { .. }), "{removed:?}");
    let refused = client_credentials(&app, client_id, &old_secret).await;
    assert_eq!(refused["error"], "invalid_client", "{refused}");
    sync_now(&app, tenant_id).await;
    let again = work(&app).await;
    assert_eq!(again.outcome, RunOutcome::Succeeded, "{:?}", again.error);
}

/// The administrator's part of the device code sign-in, in a browser elsewhere: enters
/// `user_code` at the emulator's verification page, signs in as `login` and accepts or declines
/// the permissions; the page they end on.
async fn enter_code_at_microsoft(
    app: &TestApp,
    user_code: &str,
    login: &entra_emulator::EmulatedLogin,
    decision: Decision,
) -> String {
    let base = app.emulator.base_url().trim_end_matches('/');
    let browser = app.new_browser();
    let page = browser
        .post(format!("{base}/devicelogin"))
        .form(&[("otc", user_code)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ctx = input_value(&page, "ctx").expect("the sign-in page");
    let page = browser
        .post(format!("{base}/{}/login", provider(app).await.id))
        .form(&[
            ("ctx", ctx.as_str()),
            ("login", login.username.as_str()),
            ("passwd", login.password.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ctx = input_value(&page, "ctx").unwrap_or_else(|| panic!("the consent page: {page}"));
    let decision = if decision == Decision::Accept {
        "accept"
    } else {
        "decline"
    };
    browser
        .post(format!("{base}/{}/consent", provider(app).await.id))
        .form(&[("ctx", ctx.as_str()), ("decision", decision)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The code the Setup page shows while it waits for the sign-in.
fn user_code_on(page: &str) -> String {
    let at = page
        .find("id=\"user-code\"")
        .expect("the page shows a code");
    let value = page[at..].find("value=\"").unwrap() + at + "value=\"".len();
    page[value..value + page[value..].find('"').unwrap()].to_owned()
}

/// Loads the Setup page until `marker` shows, doing the Setup sign-in background task's steps
/// meanwhile (it polls Microsoft no faster than the interval it gave, 5 seconds); that page.
async fn setup_page_showing(app: &TestApp, marker: &str) -> String {
    for _ in 0..30 {
        gangway::runtime::follow_setup_step(&app.state)
            .await
            .unwrap();
        let page = app.get(paths::SETUP).await.text().await.unwrap();
        if page.contains(marker) {
            return page;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    panic!("the Setup page never showed {marker}");
}

/// Starts the sign-in on the Setup page; the code it shows.
async fn sign_in_with_microsoft(app: &TestApp) -> String {
    let tenant = provider(app).await.id;
    let response = app
        .post_form(paths::SETUP_SIGN_IN, &[("tenant", tenant.as_str())])
        .await;
    assert_eq!(location(response).await, paths::SETUP);
    user_code_on(&app.get(paths::SETUP).await.text().await.unwrap())
}

#[tokio::test]
async fn from_an_empty_provider_tenant_one_sign_in_on_the_setup_page_registers_the_app_the_doctor_passes_and_a_customer_onboards()
 {
    let app = TestApp::spawn_with(Setup {
        empty_provider: true,
        ..Setup::default()
    })
    .await;
    app.sign_in(Role::Admin).await;
    let doctor = app.get(paths::DOCTOR).await.text().await.unwrap();
    assert!(doctor.contains("id=\"first-run\""), "{doctor}");
    assert!(doctor.contains(paths::SETUP), "the doctor links the setup");
    assert!(doctor.contains("Not set up"), "{doctor}");

    // Started with no app at all: a customer invited now is told the portal is not ready
    // (nothing is sent to Microsoft), and the same link works once the setup is done.
    let tenant = app.customer(0).clone();
    let issued = app
        .invite("application", &tenant.admin.username, None)
        .await;
    let refused = Customer::open(&app, &issued.link)
        .await
        .press_start(&app)
        .await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let refused = refused.text().await.unwrap();
    assert!(refused.contains("Not ready yet"), "{refused}");
    assert!(!refused.contains(app.emulator.base_url()), "{refused}");

    let user_code = sign_in_with_microsoft(&app).await;
    let waiting = app.get(paths::SETUP).await.text().await.unwrap();
    assert!(waiting.contains("data-reload-after=\"5\""), "{waiting}");
    assert!(waiting.contains("/devicelogin"), "{waiting}");

    let admin = provider(&app).await.admin;
    let done = enter_code_at_microsoft(&app, &user_code, &admin, Decision::Accept).await;
    assert!(done.contains("deviceApproved"), "{done}");

    let page = setup_page_showing(&app, "id=\"setup-checklist\"").await;
    for step in [
        "App registration",
        "Registration properties",
        "Service principal",
        "Owner of the registration",
        "Permissions in your tenant",
        "Credential",
    ] {
        assert!(page.contains(step), "{step} missing: {page}");
    }
    assert!(page.contains("The doctor passes."), "{page}");
    let live = app.state.settings.current().await.unwrap();
    assert!(
        live.settings.client_id.is_some(),
        "the setup stored the registered app"
    );
    assert_eq!(
        live.settings.provider_tenant_id.map(|t| t.to_string()),
        Some(provider(&app).await.id)
    );
    assert!(doctor_after(&app).await.passed());
    let code_left: Option<Vec<u8>> = sqlx::query_scalar("select device_code from setup_sign_ins")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(code_left.is_none(), "the device code is deleted when done");

    // The customer invited before the setup onboards with the app it registered, through
    // the real wizard.
    let (_, response) = Customer::open(&app, &issued.link)
        .await
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let recorded: i64 =
        sqlx::query_scalar("select count(*) from tenants where entra_tenant_id = $1")
            .bind(Uuid::parse_str(&tenant.id).unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(recorded, 1);
}

async fn doctor_after(app: &TestApp) -> doctor::Report {
    app.state.settings.invalidate();
    doctor(app).await
}

#[tokio::test]
async fn a_declined_or_expired_sign_in_says_so_keeps_the_tenant_and_changes_nothing() {
    let app = TestApp::spawn_with(Setup {
        empty_provider: true,
        ..Setup::default()
    })
    .await;
    app.sign_in(Role::Admin).await;
    let tenant = provider(&app).await;

    let user_code = sign_in_with_microsoft(&app).await;
    enter_code_at_microsoft(&app, &user_code, &tenant.admin, Decision::Decline).await;
    let page = setup_page_showing(&app, "id=\"setup-failed\"").await;
    assert!(page.contains("The sign-in was declined"), "{page}");
    assert!(
        page.contains(&format!("value=\"{}\"", tenant.id)),
        "the tenant id is kept"
    );

    sign_in_with_microsoft(&app).await;
    app.admin
        .post("/_emulator/device-codes/expire", &json!({}))
        .await
        .unwrap();
    let page = setup_page_showing(&app, "The code expired").await;
    assert!(page.contains("Nothing was changed"), "{page}");

    let live = app.state.settings.current().await.unwrap();
    assert!(live.settings.client_id.is_none(), "nothing was registered");
    assert!(live.settings.provider_tenant_id.is_none());
    let failures: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where action = 'setup.sign_in_failed'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(failures, 2);
    let ran: i64 =
        sqlx::query_scalar("select count(*) from audit_events where action = 'setup.ran'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(ran, 0);
    let codes: i64 =
        sqlx::query_scalar("select count(*) from setup_sign_ins where device_code is not null")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(codes, 0);

    // A tenant id that is not one stays in the form with a message.
    let refused = app
        .post_form(paths::SETUP_SIGN_IN, &[("tenant", "contoso")])
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = refused.text().await.unwrap();
    assert!(page.contains("value=\"contoso\""), "{page}");
    assert!(page.contains("Tenant ID"), "{page}");
}

#[tokio::test]
async fn gangway_setup_without_a_token_file_prints_microsofts_message_waits_for_the_sign_in_and_sets_up()
 {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let app = TestApp::spawn_with(Setup {
        empty_provider: true,
        ..Setup::default()
    })
    .await;
    let tenant = provider(&app).await;
    let mut child = cli::gangway(&app)
        .args(["setup", "--tenant", tenant.id.as_str()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let message = lines
        .next_line()
        .await
        .unwrap()
        .expect("Microsoft's message");
    assert!(message.contains("/devicelogin"), "{message}");
    let user_code = message
        .split("enter the code ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the code in the message")
        .to_owned();
    enter_code_at_microsoft(&app, &user_code, &tenant.admin, Decision::Accept).await;
    let mut out = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        out.push_str(&line);
        out.push('\n');
    }
    let status = child.wait().await.unwrap();
    assert!(status.success(), "{out}");
    assert!(out.contains("DONE  App registration — Created"), "{out}");
    assert!(out.contains("0 failed"), "{out}");
}

#[tokio::test]
async fn the_setup_page_follows_the_sign_in_by_itself_and_looks_finished_in_a_real_browser() {
    let app = TestApp::spawn_with(Setup {
        empty_provider: true,
        ..Setup::default()
    })
    .await;
    app.add_operator("setup@provider.test", Role::Admin).await;
    // The portal's background tasks: the one that follows the sign-in is woken by its start.
    let (stop, tasks) = crate::background::start_tasks(&app, 0);
    let driver = ChromeDriver::start().await;
    let operator = driver.browser().await;
    console_sign_in(&operator, &app, "setup@provider.test").await;

    operator.goto(&app.url(paths::DOCTOR)).await.unwrap();
    click(&operator, "#first-run a").await;
    wait_for_text(&operator, "Sign in with Microsoft").await;
    check_page(&operator, "setup", true).await;
    let tenant = provider(&app).await;
    fill(&operator, "input[name=tenant]", &tenant.id).await;
    click(&operator, "form[action='/console/setup/sign-in'] button").await;
    let waiting = wait_for_text(&operator, "id=\"setup-waiting\"").await;
    check_page(&operator, "setup-waiting", true).await;

    enter_code_at_microsoft(
        &app,
        &user_code_on(&waiting),
        &tenant.admin,
        Decision::Accept,
    )
    .await;
    // The page reloads itself every interval (5 s) until the checklist shows.
    for _ in 0..30 {
        if operator
            .source()
            .await
            .unwrap()
            .contains("id=\"setup-checklist\"")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let done = wait_for_text(&operator, "The doctor passes.").await;
    assert!(done.contains("id=\"setup-checklist\""), "{done}");
    check_page(&operator, "setup-done", true).await;
    // Ends the session: killing ChromeDriver alone leaves its Chromium running.
    operator.close().await.unwrap();
    stop.cancel();
    tasks.await.unwrap();
}
