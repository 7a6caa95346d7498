//! `/v2.0/adminconsent` and legacy `/adminconsent`.

use reqwest::StatusCode;

use crate::helpers::*;

fn consent_url(base: &str, tenant: &str, client_id: &str, v2: bool) -> String {
    let mut url = url::Url::parse(&if v2 {
        format!("{base}/{tenant}/v2.0/adminconsent")
    } else {
        format!("{base}/{tenant}/adminconsent")
    })
    .unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "ac-1");
    if v2 {
        url.query_pairs_mut()
            .append_pair("scope", "https://graph.microsoft.com/.default");
    }
    url.to_string()
}

#[tokio::test]
async fn global_admin_grants_and_client_credentials_then_work() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(2);
    // Before consent, the app does not exist in the customer's tenant.
    let resp = t.client_credentials(&tid, &app).await;
    aad_error(resp, StatusCode::BAD_REQUEST, "unauthorized_client", 700016).await;

    let client = browser();
    let admin = t.admin(2);
    let url = consent_url(&t.base, "organizations", &app.client_id, true);
    let consent = open_and_sign_in(&client, &t.base, &url, &admin).await;
    assert!(
        consent.contains("Accept for your organization")
            && consent.contains("Organization.Read.All"),
        "{consent}"
    );
    let q = decided(&client, &t.base, &consent, "accept").await;
    assert_eq!(q["admin_consent"], "True");
    assert_eq!(q["tenant"], tid);
    assert_eq!(q["state"], "ac-1");
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    assert!(
        scopes.contains(&"https://graph.microsoft.com/User.Read.All")
            && scopes.contains(&"https://graph.microsoft.com/Organization.Read.All"),
        "{scopes:?}"
    );

    let token = t.app_token(&tid, &app).await;
    let org = t.graph_json(&token, "/v1.0/organization").await;
    assert_eq!(org["value"][0]["id"], tid);
}

#[tokio::test]
async fn legacy_endpoint_and_decline() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let admin = t.admin(1);
    let client = browser();
    let url = consent_url(&t.base, &t.tid(1), &app.client_id, false);
    let consent = open_and_sign_in(&client, &t.base, &url, &admin).await;
    let q = decided(&client, &t.base, &consent, "decline").await;
    assert_eq!(q["error"], "consent_required");
    // Microsoft keeps the flow's flag on the decline: only the error says it failed.
    assert_eq!(q["admin_consent"], "True");
    assert!(
        q["error_description"]
            .starts_with("AADSTS65004: User declined to consent to access the app.")
    );
    assert_eq!(q["state"], "ac-1");

    let (_, html) = page(
        &client,
        &consent_url(&t.base, &t.tid(1), &app.client_id, false),
    )
    .await;
    // The browser session is reused: straight to the consent page.
    assert!(!html.contains("idSIButton9"));
    let q = decided(&client, &t.base, &html, "accept").await;
    assert_eq!(q["admin_consent"], "True");
    assert_eq!(q["tenant"], t.tid(1));
    assert!(
        !q.contains_key("scope"),
        "the legacy endpoint returns no scope"
    );
}

#[tokio::test]
async fn a_member_cannot_grant_admin_consent() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let member = t.member(1);
    let client = browser();
    let url = consent_url(&t.base, "organizations", &app.client_id, true);
    let body = open_and_sign_in(&client, &t.base, &url, &member).await;
    assert!(body.contains("Need admin approval") && !body.contains("idBtn_Accept"));
    let q = return_to_app(&client, &t.base, &body).await;
    assert_eq!(q["error"], "access_denied");
    assert!(q["error_description"].starts_with("AADSTS90094"));
    let resp = t.client_credentials(&t.tid(1), &app).await;
    aad_error(resp, StatusCode::BAD_REQUEST, "unauthorized_client", 700016).await;
}

#[tokio::test]
async fn a_new_consent_is_usable_for_app_tokens_only_after_the_propagation_delay() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(2);
    let resp = t
        .admin_post(
            "/propagation",
            serde_json::json!({"consent_delay_ms": 1500}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        t.get_json("/_emulator/propagation").await["consent_delay_ms"],
        1500
    );

    let client = browser();
    let url = consent_url(&t.base, "organizations", &app.client_id, true);
    let consent = open_and_sign_in(&client, &t.base, &url, &t.admin(2)).await;
    let q = decided(&client, &t.base, &consent, "accept").await;
    assert_eq!(q["admin_consent"], "True");
    // The new service principal is not usable yet: AADSTS700016, as right after a real consent.
    let resp = t.client_credentials(&tid, &app).await;
    aad_error(resp, StatusCode::BAD_REQUEST, "unauthorized_client", 700016).await;
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let token = t.app_token(&tid, &app).await;
    let org = t.graph_json(&token, "/v1.0/organization").await;
    assert_eq!(org["value"][0]["id"], tid);
}
