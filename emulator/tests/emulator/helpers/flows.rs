//! Whole authorize flows: URLs with PKCE, sign-in plus consent, code redemption and ID token
//! verification.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{REDIRECT, TestApp, TestEmu, browser, decide, location, page, params, sign_in};

/// The PKCE verifier every test uses, and its S256 challenge.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9ZcmYl2WTtAfeYg8Lh7TtVf0_verifier-with-43-chars";

/// The S256 challenge of [`VERIFIER`].
pub fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

impl TestEmu {
    /// An authorize URL on `segment` with PKCE S256, state `st-1` and nonce `n-1`.
    pub fn authorize_url(
        &self,
        segment: &str,
        client_id: &str,
        scope: &str,
        extra: &str,
    ) -> String {
        let base = &self.base;
        let mut url = url::Url::parse(&format!("{base}/{segment}/oauth2/v2.0/authorize")).unwrap();
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
    redeem_with(t, tenant, app, code, REDIRECT, Some(VERIFIER)).await
}

/// Redeems a code with the given redirect URI and PKCE verifier (`None`: none sent).
pub async fn redeem_with(
    t: &TestEmu,
    tenant: &str,
    app: &TestApp,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", &app.client_id),
        ("client_secret", &app.secret),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    form.extend(verifier.map(|v| ("code_verifier", v)));
    t.token(tenant, &form).await
}

/// Verifies an ID token against the JWKS and returns its claims.
pub async fn verify_id_token(t: &TestEmu, tid: &str, jwt: &str, aud: &str) -> Value {
    verify_jwt(t, tid, jwt, aud, &format!("{}/{tid}/v2.0", t.base)).await
}

/// Checks a JWT's signature against the tenant's published keys, its `aud` and `iss`; returns
/// its claims.
pub async fn verify_jwt(t: &TestEmu, tid: &str, jwt: &str, aud: &str, iss: &str) -> Value {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let kid = header.kid.expect("kid");
    assert_eq!(header.x5t.as_deref(), Some(kid.as_str()));
    let jwks = t.get_json(&format!("/{tid}/discovery/v2.0/keys")).await;
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
    v.set_issuer(&[iss]);
    jsonwebtoken::decode::<Value>(jwt, &key, &v).unwrap().claims
}

/// Signs `user` in through a fresh browser on `segment`'s authorize endpoint and accepts
/// consent; returns the redirect back to the app.
pub async fn consent_redirect(
    t: &TestEmu,
    segment: &str,
    app: &TestApp,
    scope: &str,
    extra: &str,
    user: &(String, String),
) -> url::Url {
    let url = t.authorize_url(segment, &app.client_id, scope, extra);
    consent_flow(&browser(), &t.base, &url, user).await
}

/// [`consent_redirect`], then redeems the code on `segment`; returns the token answer.
pub async fn tokens_for(
    t: &TestEmu,
    segment: &str,
    app: &TestApp,
    scope: &str,
    extra: &str,
    user: &(String, String),
) -> Value {
    let back = consent_redirect(t, segment, app, scope, extra, user).await;
    redeem(t, segment, app, &params(&back)["code"])
        .await
        .json()
        .await
        .unwrap()
}

/// The verified claims of the ID token in a token answer issued to `app` by tenant `tid`.
pub async fn id_claims(t: &TestEmu, tid: &str, tokens: &Value, app: &TestApp) -> Value {
    verify_id_token(t, tid, tokens["id_token"].as_str().unwrap(), &app.client_id).await
}

/// The user's half of a device code sign-in, as a browser does it: enters `user_code` at the
/// verification page `{base}/devicelogin`, signs in as `user` and clicks `decision` (`accept`
/// or `decline`) on the consent page; the page the browser ends on.
pub async fn device_sign_in(
    client: &Client,
    base: &str,
    user_code: &str,
    user: &(String, String),
    decision: &str,
) -> (StatusCode, String) {
    let (status, html) = page(client, &format!("{base}/devicelogin")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("name=\"otc\""), "not the code page:\n{html}");
    let resp = client
        .post(format!("{base}/devicelogin"))
        .form(&[("otc", user_code)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    let resp = sign_in(client, base, &html, &user.0, &user.1).await;
    let html = resp.text().await.unwrap();
    let resp = decide(client, base, &html, decision).await;
    (resp.status(), resp.text().await.unwrap())
}
