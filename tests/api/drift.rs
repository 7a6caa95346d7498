//! Consent drift: each way a customer's admin can take away what the provider's app was
//! granted — a permission removed, the enterprise app disabled or deleted — and a permission
//! granted beyond the profile, detected from the emulator and cleared again, the missing grants
//! by a re-consent through the real wizard; for application permissions and for a delegated
//! grant.

use gangway::operators::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Decision, TestApp, input_value};
use crate::json_api::{call, token};
use crate::sync::emulator;
use crate::wizard::Customer;

/// Connects customer 0 in consent `mode` through the wizard; Gangway's tenant id.
async fn connect(app: &TestApp, mode: &str) -> Uuid {
    let tenant = app.customer(0).clone();
    let issued = app.invite(mode, &tenant.admin.username, None).await;
    let (_, response) = Customer::open(app, &issued.link)
        .await
        .consent(app, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    sqlx::query_scalar("select id from tenants where entra_tenant_id = $1")
        .bind(Uuid::parse_str(&tenant.id).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Checks the tenant's consent now through the API.
async fn check(app: &TestApp, write: &str, tenant: Uuid) -> Value {
    let (status, _, body) = call(
        app,
        Method::POST,
        &format!("/api/v1/tenants/{tenant}/consent"),
        Some(write),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The admin sends a re-consent invitation from the tenant's page; the customer's admin
/// consents through the wizard. The invitation mail's text.
async fn reconsent(app: &TestApp, tenant: Uuid) -> String {
    let page = app
        .get(&format!("/console/tenants/{tenant}"))
        .await
        .text()
        .await
        .unwrap();
    let csrf = input_value(&page, "csrf_token").unwrap();
    let response = app
        .post_and_follow(
            &format!("/console/tenants/{tenant}/reconsent"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    app.deliver_mail().await;
    let mail = app.mail.messages().last().unwrap().clone();
    let link = mail.link();
    let customer = app.customer(0).clone();
    let (_, response) = Customer::open(app, &link)
        .await
        .consent(app, &customer.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    mail.text()
}

async fn drift_events(app: &TestApp, tenant: Uuid) -> i64 {
    sqlx::query_scalar(
        "select count(*) from audit_events where tenant_id = $1 and action = 'tenant.consent_drifted'",
    )
    .bind(tenant)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn each_kind_of_drift_is_detected_and_cleared() {
    let app = TestApp::spawn().await;
    let tenant = connect(&app, "application").await;
    app.sign_in(Role::Admin).await;
    let write = token(&app, "drift", "write").await;
    let tid = app.customer(0).id.clone();
    let client = app.app.client_id.clone();
    let consents = format!("/_emulator/tenants/{tid}/consents/{client}");

    // The daily check finds the new tenant unchecked, and then has nothing due.
    let checker = app.state.consent_checker();
    assert_eq!(
        checker.check_due().await.unwrap(),
        "checked 1 tenant(s): 0 drifted, 0 could not be checked"
    );
    assert!(
        checker
            .check_due()
            .await
            .unwrap()
            .starts_with("checked 0 tenant(s)")
    );

    let fine = check(&app, &write, tenant).await;
    assert_eq!(fine["drifted"], false, "{fine}");
    assert_eq!(fine["service_principal"], "enabled");
    // The built-in profile does not grant reading service principals: the token says it.
    assert_eq!(fine["source"], "token");
    let (_, _, last) = call(
        &app,
        Method::GET,
        &format!("/api/v1/tenants/{tenant}/consent"),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(last["drifted"], false);

    // 1. A permission removed.
    emulator(
        &app,
        Method::DELETE,
        &format!("{consents}/permissions/Group.Read.All"),
        None,
    )
    .await;
    let removed = check(&app, &write, tenant).await;
    assert_eq!(removed["missing"], json!(["Group.Read.All"]), "{removed}");
    assert_eq!(
        removed["summary"],
        "consent drifted: Group.Read.All missing"
    );
    assert_eq!(drift_events(&app, tenant).await, 1);
    check(&app, &write, tenant).await;
    assert_eq!(
        drift_events(&app, tenant).await,
        1,
        "the same drift is raised once"
    );
    let page = app
        .get(&format!("/console/tenants/{tenant}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("consent drifted: Group.Read.All missing"),
        "{page}"
    );
    let list = app.get("/console/tenants").await.text().await.unwrap();
    assert!(
        list.contains("consent drifted: Group.Read.All missing"),
        "the tenants list says it too"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("gangway_consent_checks_total{result=\"drifted\"}"),
        "the check is counted"
    );
    let mail = reconsent(&app, tenant).await;
    assert!(
        mail.contains("your tenant no longer grants it Group.Read.All"),
        "the invitation names what is missing: {mail}"
    );
    assert_eq!(check(&app, &write, tenant).await["drifted"], false);

    // 2. A permission granted beyond the profile (here one that lets Graph show the grants).
    app.admin
        .grant(&tid, &client, &[], &["Directory.Read.All"])
        .await
        .unwrap();
    let extra = check(&app, &write, tenant).await;
    assert_eq!(extra["source"], "graph", "{extra}");
    assert_eq!(extra["extra"], json!(["Directory.Read.All"]));
    assert_eq!(extra["missing"], json!([]));
    assert_eq!(
        extra["summary"],
        "consent drifted: Directory.Read.All granted beyond the profile"
    );
    emulator(
        &app,
        Method::DELETE,
        &format!("{consents}/permissions/Directory.Read.All"),
        None,
    )
    .await;
    assert_eq!(check(&app, &write, tenant).await["drifted"], false);

    // 3. The enterprise app disabled: the admin enables it again and consents.
    emulator(
        &app,
        Method::PATCH,
        &consents,
        Some(json!({"account_enabled": false})),
    )
    .await;
    let disabled = check(&app, &write, tenant).await;
    assert_eq!(disabled["service_principal"], "disabled", "{disabled}");
    assert_eq!(
        disabled["summary"],
        "consent drifted: the app is disabled in the tenant"
    );
    emulator(
        &app,
        Method::PATCH,
        &consents,
        Some(json!({"account_enabled": true})),
    )
    .await;
    reconsent(&app, tenant).await;
    assert_eq!(check(&app, &write, tenant).await["drifted"], false);

    // 4. The enterprise app deleted.
    emulator(&app, Method::DELETE, &consents, None).await;
    let deleted = check(&app, &write, tenant).await;
    assert_eq!(deleted["service_principal"], "missing", "{deleted}");
    assert_eq!(
        deleted["summary"],
        "consent drifted: the app was removed from the tenant"
    );
    reconsent(&app, tenant).await;
    let again = check(&app, &write, tenant).await;
    assert_eq!(again["drifted"], false, "{again}");
    assert!(drift_events(&app, tenant).await >= 4);
}

#[tokio::test]
async fn a_scope_removed_from_the_delegated_grant_is_drift_that_a_reconsent_clears() {
    let app = TestApp::spawn().await;
    let tenant = connect(&app, "delegated").await;
    app.sign_in(Role::Admin).await;
    let write = token(&app, "drift", "write").await;
    let tid = app.customer(0).id.clone();
    let client = app.app.client_id.clone();
    let fine = check(&app, &write, tenant).await;
    assert_eq!(fine["drifted"], false, "{fine}");
    assert_eq!(fine["service_principal"], "enabled");

    // The customer's admin takes a scope out of the tenant's delegated permission grant.
    emulator(
        &app,
        Method::DELETE,
        &format!("/_emulator/tenants/{tid}/consents/{client}/permissions/Group.Read.All"),
        None,
    )
    .await;
    let removed = check(&app, &write, tenant).await;
    assert_eq!(removed["missing"], json!(["Group.Read.All"]), "{removed}");
    assert_eq!(
        removed["summary"],
        "consent drifted: Group.Read.All missing"
    );
    assert_eq!(drift_events(&app, tenant).await, 1);

    // A re-consent through the wizard grants it again.
    let mail = reconsent(&app, tenant).await;
    assert!(mail.contains("Group.Read.All"), "{mail}");
    let again = check(&app, &write, tenant).await;
    assert_eq!(again["drifted"], false, "{again}");
    assert_eq!(again["missing"], json!([]));
}
