//! Certificate credentials: an uploaded certificate listed in `keyCredentials`, client
//! assertions checked as Microsoft documents (each refusal with its code), and `addKey` /
//! `removeKey` proven by a current certificate.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::helpers::*;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A self-signed RSA certificate and its key, as the portal would be given it.
pub struct Cert {
    pub pem: String,
    pub der: Vec<u8>,
    pub pkcs8_pem: String,
    key: EncodingKey,
}

impl Cert {
    pub fn new() -> Self {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let pkcs8_pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let pair =
            rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pkcs8_pem, &rcgen::PKCS_RSA_SHA256)
                .unwrap();
        let cert = rcgen::CertificateParams::new(vec!["daemon".into()])
            .unwrap()
            .self_signed(&pair)
            .unwrap();
        let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).unwrap();
        Self {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            pkcs8_pem,
            key: EncodingKey::from_rsa_pem(pkcs1.as_bytes()).unwrap(),
        }
    }

    /// SHA-1 thumbprint in hex, as MSAL takes it.
    pub fn thumbprint(&self) -> String {
        Sha1::digest(&self.der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha1::digest(&self.der))
    }

    /// A JWT of `claims` signed by this key, its header naming `named` (by `x5t`, or by
    /// `x5t#S256` with PS256).
    fn sign_as(&self, named: &Cert, claims: &Value, s256: bool) -> String {
        let mut header = Header::new(if s256 {
            Algorithm::PS256
        } else {
            Algorithm::RS256
        });
        if s256 {
            header.x5t_s256 = Some(URL_SAFE_NO_PAD.encode(Sha256::digest(&named.der)));
        } else {
            header.x5t = Some(named.x5t());
        }
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(self, claims, false)
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Assertion claims for `client_id` at `aud`, valid from now for five minutes.
pub fn claims(client_id: &str, aud: &str) -> Value {
    json!({
        "aud": aud, "iss": client_id, "sub": client_id,
        "jti": uuid::Uuid::new_v4().to_string(), "nbf": now(), "exp": now() + 300,
    })
}

async fn upload(t: &TestEmu, app: &TestApp, cert: &Cert) -> Value {
    let resp = t
        .admin_post(
            &format!("/apps/{}/certificates", app.client_id),
            json!({"certificate": cert.pem, "display_name": "CN=daemon"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.json().await.unwrap()
}

/// A client-credentials request of `app` in `tid` authenticated by `assertion`.
pub async fn with_assertion(
    t: &TestEmu,
    tid: &str,
    app: &TestApp,
    assertion: &str,
) -> reqwest::Response {
    t.token(
        tid,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &app.client_id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("scope", GRAPH_DEFAULT),
        ],
    )
    .await
}

#[tokio::test]
async fn each_bad_assertion_is_refused_with_its_code() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(0);
    t.grant(&tid, &app, &["Application.Read.All"]).await;
    let cert = Cert::new();
    let uploaded = upload(&t, &app, &cert).await;
    assert_eq!(uploaded["thumbprint"], cert.thumbprint());
    let aud = format!("{}/{tid}/oauth2/v2.0/token", t.base);

    // Graph lists the uploaded certificate, named by its SHA-1 thumbprint.
    let token = t.app_token(&tid, &app).await;
    let apps: Value = t
        .graph(
            &token,
            &format!("/v1.0/applications?$filter=appId eq '{}'", app.client_id),
        )
        .await
        .json()
        .await
        .unwrap();
    let key = &apps["value"][0]["keyCredentials"][0];
    assert_eq!(key["type"], "AsymmetricX509Cert", "{apps}");
    assert_eq!(key["usage"], "Verify");
    assert_eq!(key["keyId"], uploaded["key_id"]);
    assert_eq!(
        key["customKeyIdentifier"],
        base64::engine::general_purpose::STANDARD.encode(Sha1::digest(&cert.der))
    );

    // RS256 with x5t, and PS256 with x5t#S256, both authenticate.
    let good = cert.sign(&claims(&app.client_id, &aud));
    let resp = with_assertion(&t, &tid, &app, &good).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ps = cert.sign_as(&cert, &claims(&app.client_id, &aud), true);
    assert_eq!(
        with_assertion(&t, &tid, &app, &ps).await.status(),
        StatusCode::OK
    );

    // The same assertion (its jti) only once.
    let again = with_assertion(&t, &tid, &app, &good).await;
    aad_error(again, StatusCode::UNAUTHORIZED, "invalid_client", 50013).await;

    let mut c = claims(
        &app.client_id,
        "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    );
    let resp = with_assertion(&t, &tid, &app, &cert.sign(&c)).await;
    aad_error(resp, StatusCode::UNAUTHORIZED, "invalid_client", 700023).await;

    c = claims(&app.client_id, &aud);
    c["exp"] = json!(now() - 60);
    c["nbf"] = json!(now() - 600);
    let resp = with_assertion(&t, &tid, &app, &cert.sign(&c)).await;
    aad_error(resp, StatusCode::UNAUTHORIZED, "invalid_client", 700024).await;

    c = claims(&app.client_id, &aud);
    c["nbf"] = json!(now() + 600);
    c["exp"] = json!(now() + 900);
    let resp = with_assertion(&t, &tid, &app, &cert.sign(&c)).await;
    aad_error(resp, StatusCode::UNAUTHORIZED, "invalid_client", 700024).await;

    c = claims(&app.client_id, &aud);
    c["iss"] = json!(uuid::Uuid::new_v4().to_string());
    let resp = with_assertion(&t, &tid, &app, &cert.sign(&c)).await;
    aad_error(resp, StatusCode::UNAUTHORIZED, "invalid_client", 700021).await;

    // A certificate never uploaded, and a registered thumbprint over another key's signature.
    let stranger = Cert::new();
    let resp = with_assertion(
        &t,
        &tid,
        &app,
        &stranger.sign(&claims(&app.client_id, &aud)),
    )
    .await;
    let body = aad_error(resp, StatusCode::UNAUTHORIZED, "invalid_client", 700027).await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("key was not found"),
        "{body}"
    );
    let forged = stranger.sign_as(&cert, &claims(&app.client_id, &aud), false);
    let resp = with_assertion(&t, &tid, &app, &forged).await;
    let body = aad_error(resp, StatusCode::UNAUTHORIZED, "invalid_client", 700027).await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{body}"
    );

    let resp = with_assertion(&t, &tid, &app, "not.a.jwt").await;
    aad_error(resp, StatusCode::UNAUTHORIZED, "invalid_client", 50027).await;
}

/// `addKey`/`removeKey` as the app itself (no permission needed for its own keys).
async fn key_action(
    t: &TestEmu,
    token: &str,
    object_id: &str,
    action: &str,
    body: Value,
) -> reqwest::Response {
    t.http
        .post(format!("{}/v1.0/applications/{object_id}/{action}", t.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn proof(by: &Cert, object_id: &str, aud: &str, lifetime: i64) -> String {
    by.sign(&json!({"aud": aud, "iss": object_id, "nbf": now(), "exp": now() + lifetime}))
}

const PROOF_AUD: &str = "00000002-0000-0000-c000-000000000000";

#[tokio::test]
async fn add_key_and_remove_key_need_a_proof_signed_by_a_current_certificate() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(0);
    t.grant(&tid, &app, &["Application.Read.All"]).await;
    let token = t.app_token(&tid, &app).await;
    let apps: Value = t
        .graph(
            &token,
            &format!("/v1.0/applications?$filter=appId eq '{}'", app.client_id),
        )
        .await
        .json()
        .await
        .unwrap();
    let object_id = apps["value"][0]["id"].as_str().unwrap().to_owned();
    let (first, second) = (Cert::new(), Cert::new());
    let b64 = |c: &Cert| base64::engine::general_purpose::STANDARD.encode(&c.der);
    let add = |proof: String, cert: &Cert| {
        json!({
            "keyCredential": {"type": "AsymmetricX509Cert", "usage": "Verify", "key": b64(cert), "displayName": "CN=next"},
            "passwordCredential": null,
            "proof": proof,
        })
    };

    // Without a registered certificate nothing can prove possession.
    let resp = key_action(
        &t,
        &token,
        &object_id,
        "addKey",
        add(proof(&first, &object_id, PROOF_AUD, 600), &second),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    upload(&t, &app, &first).await;

    // Wrong audience, a lifetime over ten minutes, the wrong issuer, an unregistered signer.
    for bad in [
        proof(&first, &object_id, "https://graph.microsoft.com", 600),
        proof(&first, &object_id, PROOF_AUD, 3600),
        proof(&first, &app.client_id, PROOF_AUD, 600),
        proof(&second, &object_id, PROOF_AUD, 600),
    ] {
        let resp = key_action(&t, &token, &object_id, "addKey", add(bad, &second)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "Request_BadRequest", "{v}");
    }

    let resp = key_action(
        &t,
        &token,
        &object_id,
        "addKey",
        add(proof(&first, &object_id, PROOF_AUD, 600), &second),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let added: Value = resp.json().await.unwrap();
    assert_eq!(added["type"], "AsymmetricX509Cert");
    let aud = format!("{}/{tid}/oauth2/v2.0/token", t.base);
    let resp = with_assertion(&t, &tid, &app, &second.sign(&claims(&app.client_id, &aud))).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the added certificate authenticates"
    );

    // Another app's token may not roll this app's keys without Application.ReadWrite.*.
    let other = t.register(json!({"home_tenant": tid})).await;
    let other_token = t.app_token(&tid, &other).await;
    let first_key = apps_key_id(&t, &token, &app, &first).await;
    let resp = key_action(
        &t,
        &other_token,
        &object_id,
        "removeKey",
        json!({"keyId": first_key, "proof": proof(&second, &object_id, PROOF_AUD, 600)}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    let resp = key_action(
        &t,
        &token,
        &object_id,
        "removeKey",
        json!({"keyId": first_key, "proof": proof(&second, &object_id, PROOF_AUD, 600)}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = with_assertion(&t, &tid, &app, &first.sign(&claims(&app.client_id, &aud))).await;
    aad_error(resp, StatusCode::UNAUTHORIZED, "invalid_client", 700027).await;
}

/// The `keyId` of `cert` on `app`, from Graph's `keyCredentials`.
async fn apps_key_id(t: &TestEmu, token: &str, app: &TestApp, cert: &Cert) -> String {
    let apps: Value = t
        .graph(
            token,
            &format!("/v1.0/applications?$filter=appId eq '{}'", app.client_id),
        )
        .await
        .json()
        .await
        .unwrap();
    let want = base64::engine::general_purpose::STANDARD.encode(Sha1::digest(&cert.der));
    apps["value"][0]["keyCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["customKeyIdentifier"] == want)
        .map(|k| k["keyId"].as_str().unwrap().to_owned())
        .expect("the certificate is registered")
}
