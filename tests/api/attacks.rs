//! What an outsider tried against the journey and must not get: a tenant connected by a forged
//! admin-consent answer, an expired link that still consents, another customer's name, a 500
//! from a NUL byte, a forged log line.

use std::sync::{Arc, Mutex};

use gangway::types::permissions;
use gangway::web::paths;
use reqwest::StatusCode;
use url::Url;
use uuid::Uuid;

use crate::helpers::{Decision, TestApp, consent_at_microsoft, location};
use crate::wizard::{Customer, invitation_state, tenant_count};

/// The state a round-trip is waiting for, read off the Microsoft URL the wizard sent us to.
fn state_of(microsoft: &str) -> String {
    Url::parse(microsoft)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned()
}

async fn tenant_status(app: &TestApp, entra_tenant_id: &str) -> Option<String> {
    sqlx::query_scalar("select status from tenants where entra_tenant_id = $1")
        .bind(Uuid::parse_str(entra_tenant_id).unwrap())
        .fetch_optional(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn forged_admin_consent_answer_connects_nothing_without_that_tenants_admin() {
    let app = TestApp::spawn().await;
    let (attacker, victim) = (app.customer(0).clone(), app.customer(1).clone());
    // The provider's app already has consent in the victim's tenant, granted outside Gangway.
    app.admin
        .grant(
            &victim.id,
            &app.app.client_id,
            &[],
            &permissions::application_scopes(),
        )
        .await
        .unwrap();
    // The attacker holds an application-mode link of their own and never meets Microsoft:
    // they answer the callback themselves, naming the victim's tenant.
    let issued = app
        .invite_for("Mallory Ltd", "application", &attacker.admin.username, None)
        .await;
    let customer = Customer::open(&app, &issued.link).await;
    let microsoft = customer.start(&app).await;
    let mut forged = app.url(paths::CALLBACK).parse::<Url>().unwrap();
    forged
        .query_pairs_mut()
        .append_pair("admin_consent", "True")
        .append_pair("tenant", &victim.id)
        .append_pair("state", &state_of(&microsoft));
    let response = customer.back(&forged).await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "nothing is recorded yet"
    );
    assert_eq!(tenant_count(&app).await, 0);
    let sign_in = location(response).await;
    assert!(sign_in.contains(&format!("/{}/oauth2/v2.0/authorize", victim.id)));

    // They rewrite the sign-in to their own tenant, where they are a Global Administrator.
    let own = sign_in
        .replace(&victim.id, &attacker.id)
        .replace("prompt=none", "prompt=select_account");
    let (callback, response) = customer
        .through_microsoft(&app, &own, &attacker.admin, Decision::Accept)
        .await;
    assert!(callback.query_pairs().any(|(k, _)| k == "code"));
    // Gangway redeems the code at the victim's tenant, where its sign-in was sent, and Microsoft
    // refuses a code acquired at another tenant there (AADSTS700005).
    let page = response.text().await.unwrap();
    assert!(page.contains("AADSTS700005"), "{page}");
    assert!(!page.contains("is connected"));
    assert_eq!(tenant_count(&app).await, 0);
    let (status, _, last_error) = invitation_state(&app, issued.invitation.id.into()).await;
    assert_eq!(status, "failed");
    assert!(last_error.unwrap().contains("700005"));
}

#[tokio::test]
async fn an_offboarded_tenant_is_reconnected_only_by_its_own_signed_in_admin() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(1).clone();
    let first = app
        .invite("application", &tenant.admin.username, None)
        .await;
    let (_, response) = Customer::open(&app, &first.link)
        .await
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let id: Uuid = sqlx::query_scalar("select id from tenants")
        .fetch_one(&app.db)
        .await
        .unwrap();
    gangway::tenants::offboard(&app.db, id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();

    // A forged answer for the offboarded tenant leads only to a sign-in there.
    let second = app
        .invite("application", &tenant.admin.username, None)
        .await;
    let customer = Customer::open(&app, &second.link).await;
    let microsoft = customer.start(&app).await;
    let mut forged = app.url(paths::CALLBACK).parse::<Url>().unwrap();
    forged
        .query_pairs_mut()
        .append_pair("admin_consent", "True")
        .append_pair("tenant", &tenant.id)
        .append_pair("state", &state_of(&microsoft));
    let response = customer.back(&forged).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        tenant_status(&app, &tenant.id).await.as_deref(),
        Some("offboarded")
    );

    // The tenant's own Global Administrator signs in there: now it is connected again.
    let sign_in = location(response).await;
    let (_, response) = customer
        .through_microsoft(&app, &sign_in, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        tenant_status(&app, &tenant.id).await.as_deref(),
        Some("active")
    );
}

/// Declines once, then lets the link pass its expiry.
async fn declined_then_expired(app: &TestApp) -> (gangway::invitations::Issued, Customer) {
    let tenant = app.customer(0).clone();
    let issued = app.invite("delegated", &tenant.admin.username, None).await;
    let customer = Customer::open(app, &issued.link).await;
    let (_, response) = customer
        .consent(app, &tenant.admin, Decision::Decline)
        .await;
    assert!(response.text().await.unwrap().contains("You declined"));
    assert_eq!(
        invitation_state(app, issued.invitation.id.into()).await.0,
        "declined"
    );
    sqlx::query("update invitations set expires_at = now() - interval '1 minute' where id = $1")
        .bind(issued.invitation.id)
        .execute(&app.db)
        .await
        .unwrap();
    (issued, customer)
}

#[tokio::test]
async fn declined_and_failed_invitations_expire_like_any_other() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    let (issued, customer) = declined_then_expired(&app).await;
    assert_eq!(
        invitation_state(&app, issued.invitation.id.into()).await.0,
        "expired"
    );

    // The link, the wizard and the start button all say it expired.
    let link = app
        .new_browser()
        .get(app.url(&app.path_of(&issued.link)))
        .send()
        .await
        .unwrap();
    assert_eq!(link.status(), StatusCode::GONE);
    assert!(link.text().await.unwrap().contains("expired"));
    let wizard = customer.get(&app, paths::WIZARD).await;
    assert_eq!(wizard.status(), StatusCode::GONE);

    // A round-trip started before the expiry cannot consent after it.
    sqlx::query("update invitations set expires_at = now() + interval '1 hour' where id = $1")
        .bind(issued.invitation.id)
        .execute(&app.db)
        .await
        .unwrap();
    let microsoft = customer.start(&app).await;
    sqlx::query("update invitations set expires_at = now() - interval '1 minute', status = 'failed' where id = $1")
        .bind(issued.invitation.id)
        .execute(&app.db)
        .await
        .unwrap();
    let callback = consent_at_microsoft(
        &customer.browser,
        &microsoft,
        &tenant.admin,
        Decision::Accept,
    )
    .await;
    let response = customer.back(&callback).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(tenant_count(&app).await, 0);

    // The domain refuses too, and the console files it under Expired.
    let refused = gangway::tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        issued.invitation.id,
        &crate::helpers::consent(Uuid::parse_str(&tenant.id).unwrap()),
        &gangway::audit::Actor::System,
    )
    .await;
    assert!(
        matches!(refused, Err(gangway::tenants::ConsentError::InvitationClosed(s)) if s == gangway::invitations::InvitationStatus::Expired),
        "{refused:?}"
    );
    app.sign_in(gangway::operators::Role::Viewer).await;
    let expired = app
        .get(&format!("{}?status=expired", paths::INVITATIONS))
        .await
        .text()
        .await
        .unwrap();
    let listed = gangway::format::breakable(issued.invitation.admin_email.as_str());
    assert!(expired.contains(&listed), "{expired}");
    let failed = app
        .get(&format!("{}?status=failed", paths::INVITATIONS))
        .await
        .text()
        .await
        .unwrap();
    assert!(!failed.contains(&listed));
}

#[tokio::test]
async fn a_customer_never_learns_which_other_customer_owns_their_tenant() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    let owner = app
        .invite_for(
            "Northwind Secret Account",
            "delegated",
            &tenant.admin.username,
            None,
        )
        .await;
    let (_, response) = Customer::open(&app, &owner.link)
        .await
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let second = app
        .invite_for("Fabrikam", "delegated", &tenant.admin.username, None)
        .await;
    let customer = Customer::open(&app, &second.link).await;
    let (_, response) = customer
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let page = response.text().await.unwrap();
    assert!(page.contains("already connected"), "{page}");
    assert!(!page.contains("Northwind"), "{page}");
    // Nor on the wizard when they come back to retry.
    let wizard = customer.wizard(&app).await;
    assert!(wizard.contains("already connected"), "{wizard}");
    assert!(!wizard.contains("Northwind"), "{wizard}");

    // The operator sees who owns it.
    app.sign_in(gangway::operators::Role::Viewer).await;
    let console = app
        .get(&paths::invitation(second.invitation.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(console.contains("Northwind Secret Account"), "{console}");
}

#[tokio::test]
async fn nul_bytes_in_text_inputs_get_a_clear_400_never_a_500() {
    let app = TestApp::spawn().await;
    let login = app
        .post_form(
            paths::LOGIN,
            &[("email", "ops\0@example.com"), ("password", "x")],
        )
        .await;
    assert_eq!(login.status(), StatusCode::BAD_REQUEST);
    assert!(login.text().await.unwrap().contains("not allowed"));

    app.sign_in(gangway::operators::Role::Admin).await;
    let create = app
        .post_form(
            paths::NEW_INVITATION,
            &[
                ("customer_name", "Contoso\0"),
                ("admin_email", "admin@contoso.example"),
                ("mode", "delegated"),
                ("tenant_domain", ""),
                ("valid_for", "7d"),
            ],
        )
        .await;
    assert_eq!(create.status(), StatusCode::BAD_REQUEST);
    for list in [paths::INVITATIONS, paths::TENANTS, paths::AUDIT] {
        let response = app.get(&format!("{list}?q=%00")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{list}");
    }

    // The callback's `error`, with a valid state.
    let tenant = app.customer(0).clone();
    let issued = app.invite("delegated", &tenant.admin.username, None).await;
    let customer = Customer::open(&app, &issued.link).await;
    let microsoft = customer.start(&app).await;
    let state = state_of(&microsoft);
    let response = customer
        .get(
            &app,
            &format!("{}?error=access_denied%00&state={state}", paths::CALLBACK),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(tenant_count(&app).await, 0);
}

/// Everything the portal logs on this thread while it is alive.
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
async fn attacker_values_in_the_callback_cannot_forge_log_lines() {
    let app = TestApp::spawn().await;
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = logs.clone();
    // The test runtime is single-threaded, so the portal's tasks log on this thread.
    let _capture = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_env_filter("gangway=info")
            .with_ansi(false)
            .with_writer(move || CapturedLogs(sink.clone()))
            .finish(),
    );
    let tenant = app.customer(0).clone();
    let issued = app.invite("delegated", &tenant.admin.username, None).await;
    let customer = Customer::open(&app, &issued.link).await;
    let state = state_of(&customer.start(&app).await);
    let forged =
        "\n2026-12-01T00:00:00.000000Z  INFO gangway: FORGED operator admin@provider signed in";
    let mut callback = app.url(paths::CALLBACK).parse::<Url>().unwrap();
    callback
        .query_pairs_mut()
        .append_pair("error", &format!("access_denied{forged}"))
        .append_pair(
            "error_description",
            &format!("AADSTS65004: declined{forged}{}", "x".repeat(10_000)),
        )
        .append_pair("state", &state);
    let response = customer.back(&callback).await;
    assert_eq!(response.status(), StatusCode::OK);

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(text.contains("Microsoft returned an error"), "{text}");
    assert!(
        !text
            .lines()
            .any(|l| l.contains("FORGED") && l.trim_start().starts_with("2026-12-01T00:00:00")),
        "a forged line made it into the log:\n{text}"
    );
    assert!(
        text.lines().all(|l| l.len() < 2_000),
        "log lines are capped"
    );
}

#[tokio::test]
async fn a_control_character_in_the_sign_in_next_gets_the_sign_in_page_and_the_default_next() {
    let app = TestApp::spawn().await;
    let next = "/console/tenants%0d%0aSet-Cookie:%20x=1%01";
    let page = app.get(&format!("{}?next={next}", paths::LOGIN)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert_eq!(
        crate::helpers::input_value(&page, "next").as_deref(),
        Some(paths::INVITATIONS),
        "{page}"
    );

    let email = format!("ops-{}@provider.test", crate::helpers::short_id());
    app.add_operator(&email, gangway::operators::Role::Viewer)
        .await;
    let decoded = "/console/tenants\r\nSet-Cookie: x=1\u{1}";
    let signed_in = app
        .post_form(
            paths::LOGIN,
            &[
                ("email", email.as_str()),
                ("password", crate::helpers::OPERATOR_PASSWORD),
                ("next", decoded),
            ],
        )
        .await;
    assert_eq!(location(signed_in).await, paths::INVITATIONS);
}
