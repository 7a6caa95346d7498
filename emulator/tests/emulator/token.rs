//! The token endpoint: client authentication, the three grants and their errors.

use entra_emulator::Options;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn client_credentials_with_post_and_basic_auth() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(1);
    t.grant(&tid, &app, &["User.Read.All"]).await;
    let resp = t.client_credentials(&tid, &app).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert!(
        v["expires_in"].is_u64() && v["ext_expires_in"].is_u64() && v["access_token"].is_string()
    );
    assert!(v.get("refresh_token").is_none() && v.get("id_token").is_none());

    let basic = async |secret: &str| {
        t.http
            .post(format!("{}/{tid}/oauth2/v2.0/token", t.base))
            .basic_auth(&app.client_id, Some(secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", GRAPH_DEFAULT),
            ])
            .send()
            .await
            .unwrap()
    };
    assert_eq!(basic(&app.secret).await.status(), StatusCode::OK);

    let resp = basic("nope").await;
    aad_error(resp, StatusCode::UNAUTHORIZED, "invalid_client", 7000215).await;
}

#[tokio::test]
async fn token_errors_have_microsofts_codes_and_shape() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(0);
    let (id, secret) = (app.client_id.as_str(), app.secret.as_str());
    let cc = |id, secret| {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", GRAPH_DEFAULT),
        ]
    };
    let unknown_tenant = "00000000-0000-0000-0000-0000000000ff";
    let cases = [
        (
            tid.as_str(),
            cc(id, "wrong"),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
        ),
        (
            &tid,
            cc("6b9a8a3e-0000-4000-8000-000000000000", secret),
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
        ),
        (
            unknown_tenant,
            cc(id, secret),
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
        ),
        (
            &tid,
            vec![("client_id", id), ("client_secret", secret)],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
        ),
        (
            &tid,
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "User.Read.All"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
        ),
        (
            &tid,
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("scope", GRAPH_DEFAULT),
            ],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
        ),
        (
            &tid,
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", id),
                ("client_secret", secret),
                ("code", "garbage"),
                ("redirect_uri", REDIRECT),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            9002313,
        ),
        (
            &tid,
            vec![
                ("grant_type", "password"),
                ("client_id", id),
                ("client_secret", secret),
            ],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
        ),
    ];
    for (tenant, form, status, error, code) in cases {
        aad_error(t.token(tenant, &form).await, status, error, code).await;
    }
    // Not a form at all.
    let resp = t
        .http
        .post(format!("{}/{tid}/oauth2/v2.0/token", t.base))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    aad_error(resp, StatusCode::BAD_REQUEST, "invalid_request", 9002313).await;

    // An expired secret is 7000222.
    let expired = t.register(json!({"home_tenant": tid, "multi_tenant": false, "redirect_uris": [], "secret_lifetime_days": -1})).await;
    let resp = t.client_credentials(&tid, &expired).await;
    aad_error(resp, StatusCode::UNAUTHORIZED, "invalid_client", 7000222).await;
}

#[tokio::test]
async fn customer_single_tenant_app_reads_graph_once_granted() {
    let t = TestEmu::start().await;
    let tid = t.tid(2);
    let app = t.register(json!({"home_tenant": tid, "multi_tenant": false, "display_name": "iPECS connector", "redirect_uris": []})).await;
    // Unconsented: a token without roles, and Graph says 403.
    let token = t.app_token(&tid, &app).await;
    assert_eq!(
        graph_error(t.graph(&token, "/v1.0/users").await, StatusCode::FORBIDDEN).await,
        "Authorization_RequestDenied"
    );
    t.grant(&tid, &app, &["User.Read.All"]).await;
    let token = t.app_token(&tid, &app).await;
    assert_eq!(
        t.graph(&token, "/v1.0/users").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        graph_error(t.graph(&token, "/v1.0/groups").await, StatusCode::FORBIDDEN).await,
        "Authorization_RequestDenied"
    );
    // The app is unknown in any other tenant.
    let resp = t.client_credentials(&t.tid(0), &app).await;
    aad_error(resp, StatusCode::BAD_REQUEST, "unauthorized_client", 700016).await;
}

async fn first_refresh_token(t: &TestEmu, app: &TestApp) -> String {
    let scope = "openid offline_access User.Read.All";
    let tokens = tokens_for(t, "organizations", app, scope, "", &t.admin(1)).await;
    tokens["refresh_token"].as_str().unwrap().to_string()
}

async fn refresh(t: &TestEmu, app: &TestApp, rt: &str) -> reqwest::Response {
    t.token(
        "organizations",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &app.client_id),
            ("client_secret", &app.secret),
            ("refresh_token", rt),
        ],
    )
    .await
}

#[tokio::test]
async fn refresh_tokens_rotate_and_die_when_consent_is_revoked() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let rt1 = first_refresh_token(&t, &app).await;
    let resp = refresh(&t, &app, &rt1).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    let rt2 = v["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2, "each use returns a new refresh token");
    assert!(v["id_token"].is_string() && v["access_token"].is_string());
    assert_eq!(
        t.graph(v["access_token"].as_str().unwrap(), "/v1.0/users")
            .await
            .status(),
        StatusCode::OK
    );
    // Like Microsoft, the previous one keeps working until it expires or is revoked.
    assert_eq!(refresh(&t, &app, &rt1).await.status(), StatusCode::OK);

    let resp = t
        .admin_delete(&format!("/tenants/{}/consents/{}", t.tid(1), app.client_id))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert!(v["refresh_tokens_revoked"].as_u64().unwrap() >= 3);
    for rt in [&rt1, &rt2] {
        aad_error(
            refresh(&t, &app, rt).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            65001,
        )
        .await;
    }
}

#[tokio::test]
async fn idle_refresh_tokens_expire_with_700082() {
    let t = TestEmu::with(Options {
        tenants: 2,
        users: 5,
        groups: 1,
        refresh_token_inactivity_secs: 1,
        ..Options::default()
    })
    .await;
    let app = t.provider_app().await;
    let rt = first_refresh_token(&t, &app).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    aad_error(
        refresh(&t, &app, &rt).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        700082,
    )
    .await;
}

#[tokio::test]
async fn code_redeem_checks_redirect_uri_and_client() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let other = t.provider_app().await;
    let back = consent_redirect(&t, "organizations", &app, "openid", "", &t.admin(0)).await;
    let code = params(&back)["code"].clone();
    let resp = redeem_with(&t, "organizations", &other, &code, REDIRECT, None).await;
    aad_error(resp, StatusCode::BAD_REQUEST, "invalid_grant", 700005).await;
    let wrong_redirect = "http://localhost:1/x";
    let resp = redeem_with(
        &t,
        "organizations",
        &app,
        &code,
        wrong_redirect,
        Some(VERIFIER),
    )
    .await;
    aad_error(resp, StatusCode::BAD_REQUEST, "invalid_grant", 500112).await;
    assert_eq!(
        redeem(&t, "organizations", &app, &code).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_code_is_redeemed_only_at_the_authority_path_it_was_requested_on() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(1);
    let admin = t.admin(1);
    let mut again = "";
    for (asked_at, redeemed_at) in [
        (tid.as_str(), "organizations"),
        ("organizations", tid.as_str()),
    ] {
        let back = consent_redirect(&t, asked_at, &app, "openid profile", again, &admin).await;
        again = "&prompt=consent";
        let code = params(&back)["code"].clone();
        let resp = redeem(&t, redeemed_at, &app, &code).await;
        let v = aad_error(resp, StatusCode::BAD_REQUEST, "invalid_grant", 700005).await;
        assert!(
            v["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS700005: Provided Authorization Code is intended to use against other tenant, thus rejected."),
            "{v}"
        );
        let resp = redeem(&t, asked_at, &app, &code).await;
        assert_eq!(resp.status(), StatusCode::OK, "{asked_at}");
    }
}
