//! The provider app's certificate credential against the emulator: Gangway's token requests
//! signed with a certificate (the secret no longer needed), the emulator refusing bad client
//! assertions, rotation with overlap while a sync runs, and the doctor on the certificate.

use std::time::Duration;

use gangway::audit::Actor;
use gangway::credentials::rotation::{self, Outcome, Provider};
use gangway::credentials::{self, CertificateState};
use gangway::directory::runs::RunOutcome;
use gangway::identity::{ClientCertificate, JWT_BEARER};
use gangway::operators::Role;
use gangway::settings::{self, Edit, Key};
use gangway::types::TenantId;
use gangway::web::paths;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, post_with_csrf};
use crate::sync::{all_app_permissions, connect, sync_now, work};

/// Names the provider's tenant in System Settings and lets the app read its own registration
/// there (Application.Read.All), as the doctor asks.
async fn provider_tenant(app: &TestApp) -> TenantId {
    let tenants = app.admin.tenants().await.unwrap();
    let home = tenants[0].id.clone();
    app.admin
        .grant(&home, &app.app.client_id, &[], &["Application.Read.All"])
        .await
        .unwrap();
    let edits = [Edit {
        key: Key::ProviderTenantId,
        raw: home.clone(),
    }];
    settings::save(&app.db, &app.state.cfg.keys, &edits, &Actor::Cli)
        .await
        .unwrap();
    app.state.settings.invalidate();
    home.parse().unwrap()
}

/// Uploads `cert` on the provider app as a person does in the portal.
async fn upload(app: &TestApp, cert: &credentials::Certificate) {
    app.admin
        .post(
            &format!("/_emulator/apps/{}/certificates", app.app.client_id),
            &json!({"certificate": cert.pem()}),
        )
        .await
        .unwrap();
}

/// The provider app's client secret stops working, so only a certificate can authenticate.
async fn expire_secret(app: &TestApp) {
    app.admin
        .patch(
            &format!("/_emulator/apps/{}", app.app.client_id),
            &json!({"secret_expires_in_days": -1}),
        )
        .await
        .unwrap();
}

async fn activate(app: &TestApp, tenant: &TenantId, id: Uuid) {
    let live = app.state.live().await.unwrap();
    let provider = Provider {
        entra: live.entra().unwrap(),
        graph: &app.state.graph,
        tenant,
        client_id: live.client_id().unwrap(),
    };
    rotation::activate_registered(&app.db, &app.state.cfg.keys, provider, &Actor::Cli, id)
        .await
        .unwrap();
    app.state.settings.invalidate();
}

/// The AADSTS code of a token request Gangway's own client made.
fn aad_code(e: &gangway::identity::IdentityError) -> Option<u32> {
    match e {
        gangway::identity::IdentityError::Aad(aad) => aad.code(),
        _ => None,
    }
}

#[tokio::test]
async fn a_certificate_signs_gangways_token_requests() {
    let app = TestApp::spawn().await;
    let tenant = provider_tenant(&app).await;
    app.sign_in(Role::Admin).await;

    // An admin creates a certificate in the console and downloads its public part.
    let resp = post_with_csrf(&app.client, &app, paths::CERTIFICATES, &[]).await;
    assert_eq!(resp.status(), reqwest::StatusCode::SEE_OTHER);
    let certs = credentials::list(&app.db).await.unwrap();
    assert_eq!(certs.len(), 1);
    let cert = certs[0].clone();
    assert_eq!(cert.state, CertificateState::Pending);
    let page = app
        .client
        .get(app.url(paths::CERTIFICATES))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&cert.thumbprint),
        "the thumbprint is shown to copy"
    );
    let pem = app
        .client
        .get(app.url(&paths::certificate_pem(cert.id)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(pem, cert.pem());
    assert!(
        !pem.contains("PRIVATE"),
        "only the public certificate leaves Gangway"
    );
    let sealed: Vec<u8> = sqlx::query_scalar!("select key_ciphertext from provider_certificates")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"),
        "sealed at rest"
    );

    // Not registered yet: activating it is refused with Microsoft's answer, nothing changes.
    let resp = post_with_csrf(
        &app.client,
        &app,
        &paths::certificate_activate(cert.id),
        &[],
    )
    .await;
    assert_eq!(resp.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.text().await.unwrap().contains("AADSTS700027"));
    assert_eq!(
        credentials::get(&app.db, cert.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        CertificateState::Pending
    );

    // Uploaded in the portal, it activates; then the secret may expire and Gangway still works.
    upload(&app, &cert).await;
    let resp = post_with_csrf(
        &app.client,
        &app,
        &paths::certificate_activate(cert.id),
        &[],
    )
    .await;
    assert_eq!(resp.status(), reqwest::StatusCode::SEE_OTHER);
    expire_secret(&app).await;
    let live = app.state.live().await.unwrap();
    assert_eq!(
        live.entra().unwrap().certificate_thumbprint().as_deref(),
        Some(cert.x5t_s256.as_str())
    );
    live.entra()
        .unwrap()
        .app_token(&tenant, None)
        .await
        .expect("a certificate-authenticated client-credentials token");

    // And a customer's tenant syncs with certificate-authenticated tokens.
    let customer = app.customer(0).id.clone();
    let tenant_id = connect(&app, &customer, &all_app_permissions()).await;
    sync_now(&app, tenant_id).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);

    let actions: Vec<String> = sqlx::query_scalar!(
        "select action from audit_events where action like 'certificate.%' order by id"
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(actions, ["certificate.created", "certificate.activated"]);
}

#[tokio::test]
async fn the_emulator_refuses_bad_assertions() {
    let app = TestApp::spawn().await;
    let tenant = provider_tenant(&app).await;
    let registered = credentials::create(&app.db, &app.state.cfg.keys, &Actor::Cli, 30)
        .await
        .unwrap();
    upload(&app, &registered).await;
    let stranger = credentials::create(&app.db, &app.state.cfg.keys, &Actor::Cli, 30)
        .await
        .unwrap();
    let signer = |id| credentials::signer(&app.db, &app.state.cfg.keys, id);
    let good = signer(registered.id).await.unwrap();
    let live = app.state.live().await.unwrap();
    let endpoint = live.entra().unwrap().token_endpoint(&tenant.to_string());
    let client_id = app.app.client_id.clone();
    let post = async |assertion: String| -> Value {
        reqwest::Client::new()
            .post(&endpoint)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion.as_str()),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let code = |v: &Value| v["error_codes"][0].as_u64();

    let assertion = good.assertion(&client_id, &endpoint);
    assert!(post(assertion.clone()).await["access_token"].is_string());
    assert_eq!(
        code(&post(assertion).await),
        Some(50013),
        "a jti is used once"
    );

    let wrong_aud = good.assertion(
        &client_id,
        "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    );
    assert_eq!(code(&post(wrong_aud).await), Some(700023));

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expired = good.sign(&json!({
        "aud": endpoint, "iss": client_id, "sub": client_id, "jti": Uuid::new_v4().to_string(),
        "nbf": now - 900, "exp": now - 300,
    }));
    assert_eq!(code(&post(expired).await), Some(700024));

    // A certificate never uploaded: Gangway's client reports Microsoft's refusal.
    let unknown = live
        .entra()
        .unwrap()
        .with_certificate(signer(stranger.id).await.unwrap())
        .app_token(&tenant, None)
        .await
        .unwrap_err();
    assert_eq!(aad_code(&unknown), Some(700027), "{unknown}");

    // The registered thumbprint over another key's signature.
    let key = sqlx::query!(
        "select key_ciphertext, key_id from provider_certificates where id = $1",
        stranger.id
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let other_key = app
        .state
        .cfg
        .keys
        .open(&key.key_id, &key.key_ciphertext)
        .unwrap();
    let forged = ClientCertificate::new(&other_key, &registered.der).unwrap();
    assert_eq!(
        code(&post(forged.assertion(&client_id, &endpoint)).await),
        Some(700027)
    );
}

#[tokio::test]
async fn rotation_overlaps_while_a_sync_runs() {
    let app = TestApp::spawn().await;
    let tenant = provider_tenant(&app).await;
    // The first certificate, uploaded by hand, expires within the 30-day window.
    let old = credentials::create(&app.db, &app.state.cfg.keys, &Actor::Cli, 10)
        .await
        .unwrap();
    upload(&app, &old).await;
    activate(&app, &tenant, old.id).await;
    expire_secret(&app).await;
    let customer = app.customer(0).id.clone();
    let tenant_id = connect(&app, &customer, &all_app_permissions()).await;

    let live = app.state.live().await.unwrap();
    let provider = Provider {
        entra: live.entra().unwrap(),
        graph: &app.state.graph,
        tenant: &tenant,
        client_id: live.client_id().unwrap(),
    };
    let old_signer = credentials::signer(&app.db, &app.state.cfg.keys, old.id)
        .await
        .unwrap();

    // A sync and the rotation at once: the sync completes on either certificate.
    sync_now(&app, tenant_id).await;
    let keys = app.state.cfg.keys.clone();
    let (report, rotated) = tokio::join!(
        work(&app),
        rotation::rotate(&app.db, &keys, provider, 30, Duration::from_secs(3600)),
    );
    assert_eq!(report.outcome, RunOutcome::Succeeded, "{:?}", report.error);
    let Outcome::Rotated(thumbprint) = rotated.unwrap() else {
        panic!("a new certificate was due");
    };
    let certs = credentials::list(&app.db).await.unwrap();
    let new = certs.iter().find(|c| c.thumbprint == thumbprint).unwrap();
    assert_eq!(new.state, CertificateState::Active);
    assert!(
        new.graph_key_id.is_some(),
        "registered by Gangway with addKey"
    );
    assert_eq!(
        certs.iter().find(|c| c.id == old.id).unwrap().state,
        CertificateState::Retiring
    );
    assert_eq!(
        live.entra().unwrap().certificate_thumbprint().as_deref(),
        Some(new.x5t_s256.as_str())
    );

    // During the overlap both work: a process still signing with the old one is fine.
    live.entra()
        .unwrap()
        .with_certificate(old_signer.clone())
        .app_token(&tenant, None)
        .await
        .expect("the old certificate still works during the overlap");
    assert_eq!(
        rotation::rotate(&app.db, &keys, provider, 30, Duration::from_secs(3600))
            .await
            .unwrap(),
        Outcome::Idle
    );

    // After the overlap the old one is removed from the app and stops working.
    let removed = rotation::rotate(&app.db, &keys, provider, 30, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(removed, Outcome::Removed(vec![old.thumbprint.clone()]));
    let refused = live
        .entra()
        .unwrap()
        .with_certificate(old_signer)
        .app_token(&tenant, None)
        .await
        .unwrap_err();
    assert_eq!(aad_code(&refused), Some(700027), "{refused}");
    live.entra()
        .unwrap()
        .app_token(&tenant, None)
        .await
        .expect("the new one signs");
    sync_now(&app, tenant_id).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);

    // The rotation is announced with the new certificate's key id and expiry, and counted.
    let events = app.event_data("credential.rotated").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["kind"], "certificate");
    assert_eq!(events[0]["thumbprint"], new.thumbprint.as_str());
    assert_eq!(
        events[0]["key_id"],
        new.graph_key_id.map(|k| k.to_string()).unwrap()
    );
    assert!(events[0]["expires_at"].is_string());
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("gangway_credential_rotations_total{kind=\"certificate\"}"),
        "the rotation is counted"
    );

    let actions: Vec<String> = sqlx::query_scalar!(
        "select action from audit_events where action like 'certificate.%' order by id"
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "certificate.created",
            "certificate.activated",
            "certificate.created",
            "certificate.registered",
            "certificate.activated",
            "certificate.removed",
        ]
    );
}

#[tokio::test]
async fn the_doctor_passes_with_a_certificate_and_names_an_unregistered_one() {
    let app = TestApp::spawn().await;
    let tenant = provider_tenant(&app).await;
    let cert = credentials::create(&app.db, &app.state.cfg.keys, &Actor::Cli, 365)
        .await
        .unwrap();
    upload(&app, &cert).await;
    activate(&app, &tenant, cert.id).await;
    let doctor = async || {
        let live = app.state.live().await.unwrap();
        gangway::doctor::run(
            &app.db,
            &app.state.cfg.keys,
            &live,
            &app.state.graph,
            &app.state.cfg.public_url,
            &app.state.cfg.authority,
        )
        .await
    };
    let report = doctor().await;
    let check = report
        .checks
        .iter()
        .find(|c| c.id == "certificate")
        .unwrap();
    assert_eq!(
        check.status,
        gangway::doctor::CheckStatus::Pass,
        "{check:?}"
    );

    // A certificate that was never registered made active: the token request fails and the
    // doctor names the certificate to upload.
    let stray = credentials::create(&app.db, &app.state.cfg.keys, &Actor::Cli, 365)
        .await
        .unwrap();
    credentials::activate(&app.db, &Actor::Cli, stray.id)
        .await
        .unwrap();
    app.state.settings.invalidate();
    let report = doctor().await;
    let check = report
        .checks
        .iter()
        .find(|c| c.id == "certificate")
        .unwrap();
    assert_eq!(
        check.status,
        gangway::doctor::CheckStatus::Fail,
        "{check:?}"
    );
    assert!(check.detail.contains("AADSTS700027"), "{}", check.detail);
    assert!(check.fix.as_deref().unwrap().contains(&stray.thumbprint));
    assert!(!report.passed());
}
