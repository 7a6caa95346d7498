//! Zero-touch setup and client-secret rotation against the emulator: an administrator of the
//! provider's tenant signs in once; Gangway registers a new multi-tenant app through Graph with a
//! certificate it signs its token requests with, the doctor then passes with no manual step and
//! a customer onboards with the new app; a second run changes nothing. Where a client secret
//! Gangway added is still used, rotation adds a new one, keeps the old one working until every
//! process switched, then removes it.

use gangway::audit::Actor;
use gangway::directory::runs::RunOutcome;
use gangway::doctor::{self, CheckStatus, Expected};
use gangway::settings::profiles;
use gangway::settings::{self as settings_store, Edit, Key};
use gangway::setup::rotation::{self, Rotation};
use gangway::setup::{self, Credential, Current, SECRET_LIFETIME_DAYS, SECRET_NAME, SETUP_SCOPES};
use gangway::types::{ClientId, Secret, TenantId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::cli;
use crate::helpers::{Decision, TestApp, consent_at_microsoft};
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
        live.settings.client_id.to_string(),
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
    let new_secret = live.settings.client_secret.expose().to_owned();
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
    assert_eq!(live.settings.client_secret.expose(), old_secret);

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
        .expose()
        .to_owned();
    assert_ne!(new_secret, old_secret);

    // The new secret is announced (never its text) and counted.
    let events: Vec<Value> = sqlx::query_scalar(
        "select data from events where event_type = 'credential.rotated' order by position",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
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
