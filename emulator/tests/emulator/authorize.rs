//! `/oauth2/v2.0/authorize`: sign-in, consent, declines, PKCE, prompt, response modes.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn admin_signs_in_consents_and_gets_tokens_with_pkce() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let client = browser();
    let scope = "openid profile email offline_access https://graph.microsoft.com/User.Read.All Group.Read.All";
    let url = t.authorize_url("organizations", &app.client_id, scope, "");
    let (status, html) = page(&client, &url).await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        "name=\"login\"",
        "name=\"passwd\"",
        "id=\"idSIButton9\"",
        "<label",
    ] {
        assert!(html.contains(needle), "{needle} missing");
    }
    let admin = t.admin(1);
    let consent = signed_in(&client, &t.base, &html, &admin).await;
    assert!(
        consent.contains("User.Read.All") && consent.contains("Group.Read.All"),
        "{consent}"
    );
    let back = location(&decide(&client, &t.base, &consent, "accept").await);
    assert!(back.as_str().starts_with(REDIRECT));
    let q = params(&back);
    assert_eq!(q["state"], "st-1");
    let resp = redeem(&t, "organizations", &app, &q["code"]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_u64().unwrap() > 0 && tokens["ext_expires_in"].is_u64());
    assert!(tokens["refresh_token"].is_string());
    let scope = tokens["scope"].as_str().unwrap();
    assert!(
        scope.contains("https://graph.microsoft.com/User.Read.All") && scope.contains("openid"),
        "{scope}"
    );

    let tid = t.tid(1);
    let claims = id_claims(&t, &tid, &tokens, &app).await;
    assert_eq!(claims["tid"], tid);
    assert_eq!(claims["oid"], t.tenants[1]["admin"]["id"]);
    assert_eq!(claims["preferred_username"], admin.0.as_str());
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["wids"][0], "62e90394-69f5-4237-9190-012177145e10");
    assert!(claims["name"].is_string() && claims["email"].is_string() && claims["sub"].is_string());
    for c in ["iat", "nbf", "exp"] {
        assert!(claims[c].is_i64(), "{c}");
    }
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );

    // The code is single use.
    aad_error(
        redeem(&t, "organizations", &app, &q["code"]).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        54005,
    )
    .await;

    // The delegated token reads Graph in the signer's tenant.
    let at = tokens["access_token"].as_str().unwrap();
    let me = t.graph_json(at, "/v1.0/me").await;
    assert_eq!(me["userPrincipalName"], admin.0.as_str());
    let users = t.graph_json(at, "/v1.0/users").await;
    assert_eq!(users["value"].as_array().unwrap().len(), 25);

    // A second authorize in the same browser reuses the session and the consent: straight back.
    let again = client
        .get(t.authorize_url("organizations", &app.client_id, scope, "&prompt=none"))
        .send()
        .await
        .unwrap();
    assert!(params(&location(&again)).contains_key("code"));
}

#[tokio::test]
async fn wrong_password_and_unknown_user_stay_on_the_sign_in_page() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let client = browser();
    let url = t.authorize_url(
        &t.tid(0),
        &app.client_id,
        "openid User.Read",
        "&login_hint=someone%40example.com",
    );
    let (_, html) = page(&client, &url).await;
    assert!(
        html.contains("value=\"someone@example.com\""),
        "login_hint prefills"
    );
    let resp = sign_in(&client, &t.base, &html, &t.admin(0).0, "wrong").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(html.contains("AADSTS50126"), "{html}");
    let resp = sign_in(&client, &t.base, &html, "nobody@nowhere.example", "x").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(html.contains("AADSTS50034"));
    // A user of another tenant does not exist in a tenant-specific authority.
    let other = t.admin(1);
    let html = signed_in(&client, &t.base, &html, &other).await;
    assert!(html.contains("AADSTS50034"));
}

#[tokio::test]
async fn declining_consent_redirects_with_access_denied() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let client = browser();
    let member = t.member(2);
    let url = t.authorize_url("organizations", &app.client_id, "openid User.Read", "");
    let consent = open_and_sign_in(&client, &t.base, &url, &member).await;
    let q = decided(&client, &t.base, &consent, "decline").await;
    assert_eq!(q["error"], "access_denied");
    assert!(q["error_description"].starts_with("AADSTS65004: User declined to consent"));
    assert!(q.contains_key("error_uri"));
    assert_eq!(q["state"], "st-1");
}

#[tokio::test]
async fn member_needs_admin_approval_for_admin_scopes_but_not_for_user_read() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let member = t.member(1);
    let client = browser();
    let url = t.authorize_url("organizations", &app.client_id, "openid User.Read.All", "");
    let page_html = open_and_sign_in(&client, &t.base, &url, &member).await;
    assert!(
        page_html.contains("Need admin approval") && !page_html.contains("idBtn_Accept"),
        "{page_html}"
    );
    let q = return_to_app(&client, &t.base, &page_html).await;
    assert_eq!(q["error"], "access_denied");
    assert!(q["error_description"].starts_with("AADSTS90094"));

    // User.Read needs no admin: the member consents for themselves.
    let tokens = tokens_for(&t, "organizations", &app, "openid User.Read", "", &member).await;
    let claims = id_claims(&t, &t.tid(1), &tokens, &app).await;
    assert!(claims.get("wids").is_none(), "members carry no admin role");
    assert!(
        tokens.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
    let code = graph_error(
        t.graph(tokens["access_token"].as_str().unwrap(), "/v1.0/users")
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(code, "Authorization_RequestDenied");
}

#[tokio::test]
async fn unknown_client_and_unregistered_redirect_show_error_pages_never_redirect() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let resp = t
        .http
        .get(t.authorize_url(
            "organizations",
            "11111111-2222-3333-4444-555555555555",
            "openid",
            "",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("AADSTS700016"));
    let url = t
        .authorize_url("organizations", &app.client_id, "openid", "")
        .replace("8080", "8081");
    let resp = t.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());
    assert!(resp.text().await.unwrap().contains("AADSTS50011"));
    let resp = t
        .http
        .get(t.authorize_url("no-such-tenant.example", &app.client_id, "openid", ""))
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().contains("AADSTS90002"));
}

#[tokio::test]
async fn prompt_none_without_session_is_login_required() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let resp = browser()
        .get(t.authorize_url("organizations", &app.client_id, "openid", "&prompt=none"))
        .send()
        .await
        .unwrap();
    let q = params(&location(&resp));
    assert_eq!(q["error"], "login_required");
    assert!(q["error_description"].starts_with("AADSTS50058"));
}

#[tokio::test]
async fn form_post_mode_answers_with_an_auto_submitting_form() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let client = browser();
    let url = t.authorize_url(
        "common",
        &app.client_id,
        "openid",
        "&response_mode=form_post",
    );
    let admin = t.admin(0);
    let consent = open_and_sign_in(&client, &t.base, &url, &admin).await;
    let resp = decide(&client, &t.base, &consent, "accept").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let form = resp.text().await.unwrap();
    assert!(form.contains(&format!("action=\"{REDIRECT}\"")) && form.contains("method=\"POST\""));
    let code = hidden(&form, "code");
    assert_eq!(hidden(&form, "state"), "st-1");
    assert_eq!(
        redeem(&t, "common", &app, &code).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn pkce_plain_works_and_a_wrong_verifier_is_501481() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let admin = t.admin(0);
    let url = t
        .authorize_url(&t.tid(0), &app.client_id, "openid", "")
        .replace(
            &format!("code_challenge={}", challenge()),
            &format!("code_challenge={VERIFIER}"),
        )
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let back = consent_flow(&browser(), &t.base, &url, &admin).await;
    assert_eq!(
        redeem(&t, &t.tid(0), &app, &params(&back)["code"])
            .await
            .status(),
        StatusCode::OK
    );

    let back = consent_redirect(&t, &t.tid(0), &app, "openid", "&prompt=consent", &admin).await;
    let code = &params(&back)["code"];
    let resp = redeem_with(
        &t,
        &t.tid(0),
        &app,
        code,
        REDIRECT,
        Some("not-the-verifier"),
    )
    .await;
    aad_error(resp, StatusCode::BAD_REQUEST, "invalid_grant", 501481).await;
}

#[tokio::test]
async fn verified_domain_works_as_tenant_segment() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let domain = t.tenants[0]["domains"][1].as_str().unwrap().to_string();
    let tokens = tokens_for(&t, &domain, &app, "openid profile", "", &t.admin(0)).await;
    let claims = id_claims(&t, &t.tid(0), &tokens, &app).await;
    assert_eq!(claims["tid"], t.tid(0));
}

#[tokio::test]
async fn logout_ends_the_browser_session() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let client = browser();
    consent_flow(
        &client,
        &t.base,
        &t.authorize_url("organizations", &app.client_id, "openid", ""),
        &t.admin(0),
    )
    .await;
    let silent = t.authorize_url("organizations", &app.client_id, "openid", "&prompt=none");
    assert!(params(&location(&client.get(&silent).send().await.unwrap())).contains_key("code"));
    // The app signed in to in this session registered the URI: straight there.
    let resp = client
        .get(format!(
            "{}/organizations/oauth2/v2.0/logout?post_logout_redirect_uri={}",
            t.base,
            url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp).as_str(), REDIRECT);
    assert_eq!(
        params(&location(&client.get(&silent).send().await.unwrap()))["error"],
        "login_required"
    );
}
