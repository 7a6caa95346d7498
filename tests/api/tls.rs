//! Gangway against an HTTPS authority whose CA it is told to trust (`GANGWAY_EXTRA_CA_FILE`),
//! as with the emulator run with `--tls`, and refusing one it is not told to trust.

use reqwest::StatusCode;

use crate::helpers::{Decision, Setup, TestApp};
use crate::wizard::{Customer, tenant_count};

#[tokio::test]
async fn an_admin_consent_over_https_is_confirmed_when_the_ca_is_configured() {
    let app = TestApp::spawn_with(Setup {
        emulator_tls: true,
        ..Setup::default()
    })
    .await;
    assert!(app.emulator.base_url().starts_with("https://"));
    let tenant = app.customer(0).clone();
    let issued = app
        .invite("application", &tenant.admin.username, None)
        .await;
    let customer = Customer::open(&app, &issued.link).await;
    let (_, response) = customer
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("is connected"));
    assert_eq!(tenant_count(&app).await, 1);
}

#[tokio::test]
async fn an_untrusted_authority_certificate_fails_the_consent_and_records_nothing() {
    let app = TestApp::spawn_with(Setup {
        emulator_tls: true,
        trust_emulator_ca: false,
        ..Setup::default()
    })
    .await;
    let tenant = app.customer(0).clone();
    let issued = app.invite("delegated", &tenant.admin.username, None).await;
    let customer = Customer::open(&app, &issued.link).await;
    let (_, response) = customer
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    // The browser trusted the emulator; Gangway, redeeming the code, did not.
    assert_ne!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(!page.contains("is connected"), "{page}");
    assert!(page.contains("Microsoft could not be reached"), "{page}");
    assert_eq!(tenant_count(&app).await, 0);
    let (status, attempts, _): (String, i32, Option<String>) =
        crate::wizard::invitation_state(&app, issued.invitation.id.into()).await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
}
