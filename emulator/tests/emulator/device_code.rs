//! The device authorization grant: the device asks `/devicecode` for codes, the user enters the
//! code at `/devicelogin`, signs in and consents, and the device's polls at the token endpoint
//! answer `authorization_pending`, then the tokens once; declined and expired sign-ins end the
//! polls with their documented errors.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// Microsoft's "Microsoft Graph Command Line Tools": a public client known in every tenant.
const PUBLIC_CLIENT: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";
const SCOPE: &str = "https://graph.microsoft.com/Application.ReadWrite.All https://graph.microsoft.com/Directory.Read.All";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The device authorization request at tenant `tid`.
async fn device_code(t: &TestEmu, tid: &str) -> Value {
    let resp = t
        .http
        .post(format!("{}/{tid}/oauth2/v2.0/devicecode", t.base))
        .form(&[("client_id", PUBLIC_CLIENT), ("scope", SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// One poll of the token endpoint, as the device sends it (no client secret).
async fn poll(t: &TestEmu, tid: &str, started: &Value) -> reqwest::Response {
    t.token(
        tid,
        &[
            ("grant_type", GRANT),
            ("client_id", PUBLIC_CLIENT),
            ("device_code", started["device_code"].as_str().unwrap()),
        ],
    )
    .await
}

#[tokio::test]
async fn an_admin_enters_the_code_signs_in_and_consents_then_the_device_gets_a_graph_token_once() {
    let t = TestEmu::start().await;
    let tid = t.tid(0);
    let started = device_code(&t, &tid).await;
    assert_eq!(started["expires_in"], 900);
    assert_eq!(started["interval"], 5);
    assert_eq!(
        started["verification_uri"],
        format!("{}/devicelogin", t.base)
    );
    let user_code = started["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    let message = started["message"].as_str().unwrap();
    assert!(
        message.contains(user_code) && message.contains("/devicelogin"),
        "{message}"
    );

    aad_error(
        poll(&t, &tid, &started).await,
        StatusCode::BAD_REQUEST,
        "authorization_pending",
        70016,
    )
    .await;

    let (status, html) =
        device_sign_in(&browser(), &t.base, user_code, &t.admin(0), "accept").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"deviceApproved\""), "{html}");
    assert!(
        html.contains("Microsoft Graph Command Line Tools"),
        "{html}"
    );

    let resp = poll(&t, &tid, &started).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    let token = tokens["access_token"].as_str().unwrap();
    let apps = t.graph(token, "/v1.0/applications").await;
    assert_eq!(
        apps.status(),
        StatusCode::OK,
        "the delegated token reads Graph"
    );

    // The device code is spent.
    aad_error(
        poll(&t, &tid, &started).await,
        StatusCode::BAD_REQUEST,
        "bad_verification_code",
        70018,
    )
    .await;
}

#[tokio::test]
async fn a_declined_consent_ends_the_polls_with_authorization_declined() {
    let t = TestEmu::start().await;
    let tid = t.tid(0);
    let started = device_code(&t, &tid).await;
    let user_code = started["user_code"].as_str().unwrap();
    let (status, html) =
        device_sign_in(&browser(), &t.base, user_code, &t.admin(0), "decline").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("AADSTS65004"), "{html}");
    for _ in 0..2 {
        aad_error(
            poll(&t, &tid, &started).await,
            StatusCode::BAD_REQUEST,
            "authorization_declined",
            65004,
        )
        .await;
    }
}

#[tokio::test]
async fn an_expired_code_ends_the_polls_with_expired_token_and_the_page_refuses_it() {
    let t = TestEmu::start().await;
    let tid = t.tid(0);
    let started = device_code(&t, &tid).await;
    let expired = t
        .admin_post("/device-codes/expire", serde_json::json!({}))
        .await;
    assert_eq!(expired.status(), StatusCode::OK);
    aad_error(
        poll(&t, &tid, &started).await,
        StatusCode::BAD_REQUEST,
        "expired_token",
        70019,
    )
    .await;
    let resp = t
        .http
        .post(format!("{}/devicelogin", t.base))
        .form(&[("otc", started["user_code"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let html = resp.text().await.unwrap();
    assert!(html.contains("That code has expired"), "{html}");
    let resp = t
        .http
        .post(format!("{}/devicelogin", t.base))
        .form(&[("otc", "NOTACODE1")])
        .send()
        .await
        .unwrap();
    let html = resp.text().await.unwrap();
    assert!(html.contains("That code didn"), "{html}");
}

#[tokio::test]
async fn a_member_cannot_grant_admin_only_permissions_so_the_device_is_declined() {
    let t = TestEmu::start().await;
    let tid = t.tid(0);
    let started = device_code(&t, &tid).await;
    let client = browser();
    let resp = client
        .post(format!("{}/devicelogin", t.base))
        .form(&[("otc", started["user_code"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let html = resp.text().await.unwrap();
    let member = t.member(0);
    let html = signed_in(&client, &t.base, &html, &member).await;
    assert!(html.contains("id=\"needAdmin\""), "{html}");
    let start = html.find("href=\"").unwrap() + 6;
    let href = &html[start..start + html[start..].find('"').unwrap()];
    let resp = client
        .get(format!("{}{href}", t.base))
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().contains("AADSTS90094"));
    aad_error(
        poll(&t, &tid, &started).await,
        StatusCode::BAD_REQUEST,
        "authorization_declined",
        65004,
    )
    .await;
}

#[tokio::test]
async fn a_user_of_another_tenant_cannot_sign_in_for_a_code_requested_at_this_one() {
    let t = TestEmu::start().await;
    let started = device_code(&t, &t.tid(0)).await;
    let client = browser();
    let resp = client
        .post(format!("{}/devicelogin", t.base))
        .form(&[("otc", started["user_code"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let html = resp.text().await.unwrap();
    let html = signed_in(&client, &t.base, &html, &t.admin(1)).await;
    assert!(html.contains("AADSTS50034"), "{html}");
}
