//! `/oauth2/v2.0/authorize`: sign-in, consent, declines, PKCE, prompt, response modes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::*;

/// The PKCE verifier every test uses, and its S256 challenge.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9ZcmYl2WTtAfeYg8Lh7TtVf0_verifier-with-43-chars";

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

/// An authorize URL with PKCE S256, state `st-1` and nonce `n-1`.
pub fn authorize_url(
    base: &str,
    tenant: &str,
    client_id: &str,
    scope: &str,
    extra: &str,
) -> String {
    let mut url = url::Url::parse(&format!("{base}/{tenant}/oauth2/v2.0/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", scope)
        .append_pair("state", "st-1")
        .append_pair("nonce", "n-1")
        .append_pair("code_challenge", &challenge())
        .append_pair("code_challenge_method", "S256");
    format!("{url}{extra}")
}

/// Signs in and accepts consent; returns the redirect back to the app.
pub async fn consent_flow(
    client: &Client,
    base: &str,
    url: &str,
    user: &(String, String),
) -> url::Url {
    let (status, html) = page(client, url).await;
    assert_eq!(status, StatusCode::OK);
    let resp = sign_in(client, base, &html, &user.0, &user.1).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    let resp = decide(client, base, &html, "accept").await;
    location(&resp)
}

/// Redeems a code with the PKCE verifier.
pub async fn redeem(t: &TestEmu, tenant: &str, app: &TestApp, code: &str) -> reqwest::Response {
    t.token(
        tenant,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &app.client_id),
            ("client_secret", &app.secret),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

/// Verifies an ID token against the JWKS and returns its claims.
pub async fn verify_id_token(t: &TestEmu, tid: &str, jwt: &str, aud: &str) -> Value {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let kid = header.kid.expect("kid");
    assert_eq!(header.x5t.as_deref(), Some(kid.as_str()));
    let jwks: Value = t
        .http
        .get(format!("{}/{tid}/discovery/v2.0/keys", t.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("signing key published");
    let key =
        DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap())
            .unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[aud]);
    v.set_issuer(&[format!("{}/{tid}/v2.0", t.base)]);
    jsonwebtoken::decode::<Value>(jwt, &key, &v).unwrap().claims
}

#[tokio::test]
async fn admin_signs_in_consents_and_gets_tokens_with_pkce() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let client = browser();
    let scope = "openid profile email offline_access https://graph.microsoft.com/User.Read.All Group.Read.All";
    let url = authorize_url(&t.base, "organizations", &app.client_id, scope, "");
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
    let resp = sign_in(&client, &t.base, &html, &admin.0, &admin.1).await;
    let consent = resp.text().await.unwrap();
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
    let claims = verify_id_token(
        &t,
        &tid,
        tokens["id_token"].as_str().unwrap(),
        &app.client_id,
    )
    .await;
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
    let me: Value = t.graph(at, "/v1.0/me").await.json().await.unwrap();
    assert_eq!(me["userPrincipalName"], admin.0.as_str());
    let users: Value = t.graph(at, "/v1.0/users").await.json().await.unwrap();
    assert_eq!(users["value"].as_array().unwrap().len(), 25);

    // A second authorize in the same browser reuses the session and the consent: straight back.
    let again = client
        .get(authorize_url(
            &t.base,
            "organizations",
            &app.client_id,
            scope,
            "&prompt=none",
        ))
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
    let url = authorize_url(
        &t.base,
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
    let html = sign_in(&client, &t.base, &html, &other.0, &other.1)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("AADSTS50034"));
}

#[tokio::test]
async fn declining_consent_redirects_with_access_denied() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let client = browser();
    let (_, html) = page(
        &client,
        &authorize_url(
            &t.base,
            "organizations",
            &app.client_id,
            "openid User.Read",
            "",
        ),
    )
    .await;
    let member = t.member(2);
    let consent = sign_in(&client, &t.base, &html, &member.0, &member.1)
        .await
        .text()
        .await
        .unwrap();
    let q = params(&location(
        &decide(&client, &t.base, &consent, "decline").await,
    ));
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
    let (_, html) = page(
        &client,
        &authorize_url(
            &t.base,
            "organizations",
            &app.client_id,
            "openid User.Read.All",
            "",
        ),
    )
    .await;
    let page_html = sign_in(&client, &t.base, &html, &member.0, &member.1)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page_html.contains("Need admin approval") && !page_html.contains("idBtn_Accept"),
        "{page_html}"
    );
    let start = page_html.find("href=\"").unwrap() + 6;
    let href = &page_html[start..start + page_html[start..].find('"').unwrap()];
    let q = params(&location(
        &client
            .get(format!("{}{href}", t.base))
            .send()
            .await
            .unwrap(),
    ));
    assert_eq!(q["error"], "access_denied");
    assert!(q["error_description"].starts_with("AADSTS90094"));

    // User.Read needs no admin: the member consents for themselves.
    let back = consent_flow(
        &browser(),
        &t.base,
        &authorize_url(
            &t.base,
            "organizations",
            &app.client_id,
            "openid User.Read",
            "",
        ),
        &member,
    )
    .await;
    let tokens: Value = redeem(&t, "organizations", &app, &params(&back)["code"])
        .await
        .json()
        .await
        .unwrap();
    let claims = verify_id_token(
        &t,
        &t.tid(1),
        tokens["id_token"].as_str().unwrap(),
        &app.client_id,
    )
    .await;
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
        .get(authorize_url(
            &t.base,
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
    let url = authorize_url(&t.base, "organizations", &app.client_id, "openid", "")
        .replace("8080", "8081");
    let resp = t.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());
    assert!(resp.text().await.unwrap().contains("AADSTS50011"));
    let resp = t
        .http
        .get(authorize_url(
            &t.base,
            "no-such-tenant.example",
            &app.client_id,
            "openid",
            "",
        ))
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
        .get(authorize_url(
            &t.base,
            "organizations",
            &app.client_id,
            "openid",
            "&prompt=none",
        ))
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
    let url = authorize_url(
        &t.base,
        "common",
        &app.client_id,
        "openid",
        "&response_mode=form_post",
    );
    let (_, html) = page(&client, &url).await;
    let admin = t.admin(0);
    let consent = sign_in(&client, &t.base, &html, &admin.0, &admin.1)
        .await
        .text()
        .await
        .unwrap();
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
    let url = authorize_url(&t.base, &t.tid(0), &app.client_id, "openid", "")
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

    let back = consent_flow(
        &browser(),
        &t.base,
        &authorize_url(
            &t.base,
            &t.tid(0),
            &app.client_id,
            "openid",
            "&prompt=consent",
        ),
        &admin,
    )
    .await;
    let resp = t
        .token(
            &t.tid(0),
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &app.client_id),
                ("client_secret", &app.secret),
                ("code", &params(&back)["code"]),
                ("redirect_uri", REDIRECT),
                ("code_verifier", "not-the-verifier"),
            ],
        )
        .await;
    aad_error(resp, StatusCode::BAD_REQUEST, "invalid_grant", 501481).await;
}

#[tokio::test]
async fn verified_domain_works_as_tenant_segment() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let domain = t.tenants[0]["domains"][1].as_str().unwrap().to_string();
    let back = consent_flow(
        &browser(),
        &t.base,
        &authorize_url(&t.base, &domain, &app.client_id, "openid profile", ""),
        &t.admin(0),
    )
    .await;
    let tokens: Value = redeem(&t, &domain, &app, &params(&back)["code"])
        .await
        .json()
        .await
        .unwrap();
    let claims = verify_id_token(
        &t,
        &t.tid(0),
        tokens["id_token"].as_str().unwrap(),
        &app.client_id,
    )
    .await;
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
        &authorize_url(&t.base, "organizations", &app.client_id, "openid", ""),
        &t.admin(0),
    )
    .await;
    let silent = authorize_url(
        &t.base,
        "organizations",
        &app.client_id,
        "openid",
        "&prompt=none",
    );
    assert!(params(&location(&client.get(&silent).send().await.unwrap())).contains_key("code"));
    let resp = client.get(format!("{}/organizations/oauth2/v2.0/logout?post_logout_redirect_uri=http%3A%2F%2Flocalhost%3A8080%2F", t.base)).send().await.unwrap();
    assert_eq!(location(&resp).as_str(), "http://localhost:8080/");
    assert_eq!(
        params(&location(&client.get(&silent).send().await.unwrap()))["error"],
        "login_required"
    );
}
