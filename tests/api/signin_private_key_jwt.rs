//! `private_key_jwt` client authentication (RFC 7523): a web application registers its public
//! keys and proves itself at the token endpoint with JWTs it signs; each check of the
//! assertion refuses through HTTP with `invalid_client`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gangway::audit::Actor;
use gangway::operators::Role;
use gangway::signin::applications::ApplicationError;
use gangway::signin::{AppKind, assertions};
use gangway::web::paths;
use openidconnect::core::{CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, PrivateSigningKey};
use reqwest::{Method, StatusCode};
use rsa::RsaPrivateKey;
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use serde_json::{Value, json};

use crate::json_api::{call, token};
use crate::signin::{APP_CALLBACK, Case, authorize_url, code_from, sign_in_through};

/// A fresh RSA key named `kid`.
fn key(kid: &str) -> CoreRsaPrivateSigningKey {
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = key.to_pkcs1_pem(LineEnding::LF).unwrap();
    CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(kid.into()))).unwrap()
}

/// `claims` signed RS256 by `key`, named by `kid`.
fn assertion(key: &CoreRsaPrivateSigningKey, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key
        .sign(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            input.as_bytes(),
        )
        .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn a_web_application_authenticates_with_a_signed_assertion_each_used_once() {
    let case = Case::new(AppKind::Web).await;
    let app = &case.registered.application;
    let signing = key("toolbar-1");
    let public = json!({ "keys": [signing.as_verification_key()] });
    // Only a JWK Set of RSA keys with a kid is taken.
    let refused =
        assertions::register_keys(&case.app.db, app.id, &json!({"keys": []}), &Actor::Cli)
            .await
            .unwrap_err();
    assert!(
        matches!(refused, ApplicationError::Invalid { .. }),
        "{refused}"
    );
    assertions::register_keys(&case.app.db, app.id, &public, &Actor::Cli)
        .await
        .unwrap();

    let discovery: Value = reqwest::get(case.app.url(paths::OIDC_DISCOVERY))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        discovery["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("private_key_jwt"))
    );

    let browser = case.app.new_browser();
    let hinted = authorize_url(
        &case,
        APP_CALLBACK,
        &[("login_hint", case.member.username.as_str())],
    );
    let (code, _) = code_from(sign_in_through(&case, &browser, &hinted, &case.member).await).await;
    let token_url = case.app.url(paths::SIGNIN_TOKEN);
    let post = |credentials: Vec<(&'static str, String)>, grant: Vec<(&'static str, String)>| {
        let mut form = grant;
        form.extend(credentials);
        reqwest::Client::new().post(&token_url).form(&form).send()
    };
    let by = |jwt: String| {
        vec![
            (
                "client_assertion_type",
                assertions::ASSERTION_TYPE.to_owned(),
            ),
            ("client_assertion", jwt),
        ]
    };
    let claims = |jti: &str, aud: &str, exp: i64| json!({"iss": app.client_id, "sub": app.client_id, "aud": aud, "exp": exp, "jti": jti});
    let code_grant = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.clone()),
        ("redirect_uri", APP_CALLBACK.to_owned()),
    ];

    // The secret it had no longer works.
    let secret = case.registered.client_secret.as_ref().unwrap().expose();
    let with_secret = reqwest::Client::new()
        .post(&token_url)
        .basic_auth(&app.client_id, Some(secret))
        .form(&code_grant)
        .send()
        .await
        .unwrap();
    assert_eq!(with_secret.status(), StatusCode::UNAUTHORIZED);

    let good = assertion(
        &signing,
        "toolbar-1",
        &claims("a-1", &token_url, now() + 60),
    );
    let redeemed = post(by(good.clone()), code_grant).await.unwrap();
    assert_eq!(redeemed.status(), StatusCode::OK);
    let tokens: Value = redeemed.json().await.unwrap();
    let refresh = |token: &Value| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            (
                "refresh_token",
                token["refresh_token"].as_str().unwrap().to_owned(),
            ),
        ]
    };

    // Each refused with invalid_client, the refresh token untouched.
    let other = key("toolbar-1");
    for (why, jwt) in [
        ("used before", good),
        (
            "another audience",
            assertion(
                &signing,
                "toolbar-1",
                &claims("a-2", "https://elsewhere.example/token", now() + 60),
            ),
        ),
        (
            "expired",
            assertion(
                &signing,
                "toolbar-1",
                &claims("a-3", &token_url, now() - 300),
            ),
        ),
        (
            "too far ahead",
            assertion(
                &signing,
                "toolbar-1",
                &claims("a-4", &token_url, now() + 3600),
            ),
        ),
        (
            "signed by a key it did not register",
            assertion(&other, "toolbar-1", &claims("a-5", &token_url, now() + 60)),
        ),
        (
            "sub differs from iss",
            assertion(
                &signing,
                "toolbar-1",
                &json!({"iss": app.client_id, "sub": "someone", "aud": token_url, "exp": now() + 60, "jti": "a-6"}),
            ),
        ),
    ] {
        let refused = post(by(jwt), refresh(&tokens)).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(
            refused.json::<Value>().await.unwrap()["error"],
            "invalid_client",
            "{why}"
        );
    }
    // A fresh assertion, addressed to the issuer, refreshes.
    let fresh = assertion(
        &signing,
        "toolbar-1",
        &claims("a-7", &case.issuer(), now() + 60),
    );
    let refreshed = post(by(fresh), refresh(&tokens)).await.unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
}

/// A code for the member's sign-in to the case's application.
async fn fresh_code(case: &Case) -> String {
    let hinted = authorize_url(
        case,
        APP_CALLBACK,
        &[("login_hint", case.member.username.as_str())],
    );
    let browser = case.app.new_browser();
    code_from(sign_in_through(case, &browser, &hinted, &case.member).await)
        .await
        .0
}

/// The status of redeeming `code` at the token endpoint, proving the client with `credentials`.
async fn redeem(case: &Case, code: &str, credentials: &[(&str, &str)]) -> StatusCode {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", APP_CALLBACK),
    ];
    form.extend_from_slice(credentials);
    reqwest::Client::new()
        .post(case.app.url(paths::SIGNIN_TOKEN))
        .form(&form)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_api_registers_keys_then_the_secret_no_longer_works_and_an_assertion_does() {
    let case = Case::new(AppKind::Web).await;
    let app = &case.registered.application;
    case.app.sign_in(Role::Admin).await;
    let write = token(&case.app, "keys", "write").await;
    let keys = format!("/api/v1/applications/{}/keys", app.id);
    let signing = key("crm-2026");

    // A set Gangway cannot check RS256 signatures with is refused with problem details.
    for (why, bad) in [
        (
            "a symmetric key",
            json!({"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}),
        ),
        (
            "no kid",
            json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}),
        ),
        ("no keys", json!({"keys": []})),
        ("not a set", json!({"keys": "none"})),
    ] {
        let (status, headers, problem) =
            call(&case.app, Method::PUT, &keys, Some(&write), Some(bad)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {problem}");
        assert_eq!(headers["content-type"], "application/problem+json", "{why}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{why}"
        );
    }
    let (status, _, _) = call(
        &case.app,
        Method::PUT,
        &format!("/api/v1/applications/{}/keys", uuid::Uuid::new_v4()),
        Some(&write),
        Some(json!({"keys": [signing.as_verification_key()]})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let read = token(&case.app, "keys-read", "read").await;
    let (status, _, _) = call(
        &case.app,
        Method::PUT,
        &keys,
        Some(&read),
        Some(json!({"keys": [signing.as_verification_key()]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a read token sets no keys");

    // The secret still works until keys are registered.
    let secret = case.registered.client_secret.as_ref().unwrap().expose();
    let with_secret = [
        ("client_id", app.client_id.as_str()),
        ("client_secret", secret),
    ];
    assert_eq!(
        redeem(&case, &fresh_code(&case).await, &with_secret).await,
        StatusCode::OK
    );

    let (status, _, answer) = call(
        &case.app,
        Method::PUT,
        &keys,
        Some(&write),
        Some(json!({"keys": [signing.as_verification_key()]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"token_endpoint_auth_method": "private_key_jwt", "key_ids": ["crm-2026"]})
    );

    let code = fresh_code(&case).await;
    assert_eq!(
        redeem(&case, &code, &with_secret).await,
        StatusCode::UNAUTHORIZED
    );
    let token_url = case.app.url(paths::SIGNIN_TOKEN);
    let jwt = assertion(
        &signing,
        "crm-2026",
        &json!({"iss": app.client_id, "sub": app.client_id, "aud": token_url, "exp": now() + 60, "jti": "api-1"}),
    );
    let by_assertion = [
        ("client_assertion_type", assertions::ASSERTION_TYPE),
        ("client_assertion", jwt.as_str()),
    ];
    assert_eq!(redeem(&case, &code, &by_assertion).await, StatusCode::OK);
}

#[tokio::test]
async fn an_admin_pastes_keys_on_the_application_page_and_a_bad_set_is_refused_there() {
    let case = Case::new(AppKind::Web).await;
    let app = &case.registered.application;
    case.app.sign_in(Role::Admin).await;
    let page_path = paths::application(app.id.into());
    let keys_path = paths::application_keys(app.id.into());
    let page = case.app.get(&page_path).await.text().await.unwrap();
    assert!(
        page.contains("Client secret (<code>client_secret_basic</code>"),
        "{page}"
    );
    assert!(page.contains(&format!("action=\"{keys_path}\"")), "{page}");
    assert!(page.contains(&paths::application_rotate(app.id.into())));

    let refused = case
        .app
        .post_form(&keys_path, &[("jwks", "not json")])
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains("This is not JSON"));
    let symmetric = r#"{"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}"#;
    let refused = case.app.post_form(&keys_path, &[("jwks", symmetric)]).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("Each key must be an RSA public key with a kid"),
        "{page}"
    );
    assert!(
        page.contains("{&quot;keys&quot;: [{&quot;kty&quot;: &quot;oct&quot;")
            || page.contains("{&#34;keys&#34;: [{&#34;kty&#34;: &#34;oct&#34;"),
        "what was pasted is kept, escaped: {page}"
    );
    assert!(page.contains("Client secret (<code>client_secret_basic</code>"));

    let signing = key("toolbar-2026");
    let jwks = json!({"keys": [signing.as_verification_key()]}).to_string();
    let page = case
        .app
        .post_and_follow(&keys_path, &[("jwks", &jwks)])
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Keys registered"), "{page}");
    assert!(
        page.contains(
            "(<code>private_key_jwt</code>, RS256) with the keys <code>toolbar-2026</code>"
        ),
        "{page}"
    );
    let secret = case.registered.client_secret.as_ref().unwrap().expose();
    let code = fresh_code(&case).await;
    assert_eq!(
        redeem(
            &case,
            &code,
            &[
                ("client_id", app.client_id.as_str()),
                ("client_secret", secret)
            ]
        )
        .await,
        StatusCode::UNAUTHORIZED
    );

    // An application has keys or a secret, never both: no new secret is offered, and asking
    // anyway is refused with the reason (not a failed write).
    assert!(
        !page.contains(&paths::application_rotate(app.id.into())),
        "{page}"
    );
    let refused = case
        .app
        .post_form(&paths::application_rotate(app.id.into()), &[])
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("it has no client secret to replace")
    );
}
