//! Independent relying parties sign a customer's user in through Gangway, unchanged:
//! `openid-client` (npm, OpenID Certified), driven as a child process by
//! `tests/oidc-clients/openid-client.mjs`. It does discovery, the code flow with PKCE, ID-token
//! verification against the JWKS, userinfo, refresh (and sees reuse refused) and builds the
//! RP-initiated logout URL, which the browser then follows. A web application may also prove
//! itself with openid-client's `private_key_jwt`.

use std::path::PathBuf;
use std::process::Stdio;

use gangway::audit::Actor;
use gangway::signin::{AppKind, assertions};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::helpers::location;
use crate::signin::{APP_CALLBACK, APP_SIGNED_OUT, Case, sign_in_through};

/// How long the client may take for a step.
const NODE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// openid-client's module, installed by `scripts/test` under target/oidc-clients.
fn openid_client() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/oidc-clients/node_modules/openid-client/build/index.js");
    assert!(
        path.exists(),
        "openid-client is not installed at {}: run `npm install --prefix target/oidc-clients openid-client@6` (scripts/test does)",
        path.display()
    );
    path
}

/// How the application proves itself at the token endpoint.
#[derive(PartialEq)]
enum ClientAuth {
    /// Its client secret (web) or nothing (public clients).
    Registered,
    /// `private_key_jwt`, with a key openid-client makes and the test registers.
    PrivateKeyJwt,
}

/// Signs the case's member in with openid-client as the case's application; the script's
/// final report.
async fn openid_client_signs_in(case: &Case, auth: ClientAuth) -> Value {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-clients/openid-client.mjs");
    let mut command = Command::new("node");
    command
        .arg(script)
        .env("OPENID_CLIENT", openid_client())
        .env("ISSUER", case.issuer())
        .env("CLIENT_ID", case.client_id())
        .env("REDIRECT_URI", APP_CALLBACK)
        .env("POST_LOGOUT_REDIRECT_URI", APP_SIGNED_OUT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    match (&auth, &case.registered.client_secret) {
        (ClientAuth::PrivateKeyJwt, _) => {
            command.env("PRIVATE_KEY_JWT", "1");
        }
        (ClientAuth::Registered, Some(secret)) => {
            command.env("CLIENT_SECRET", secret.expose());
        }
        (ClientAuth::Registered, None) => {}
    }
    let mut child = command.spawn().expect("node runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(NODE_WAIT, out.next_line())
            .await
            .expect("openid-client answers in time")
            .unwrap()
            .expect("openid-client prints its next step");
        serde_json::from_str(&line).unwrap()
    };
    if auth == ClientAuth::PrivateKeyJwt {
        let jwk = next().await["jwk"].clone();
        assertions::register_keys(
            &case.app.db,
            case.registered.application.id,
            &json!({ "keys": [jwk] }),
            &Actor::Cli,
        )
        .await
        .expect("openid-client's public key registers");
        stdin.write_all(b"registered\n").await.unwrap();
    }
    let first = next().await;
    let authorize = first["authorize"].as_str().unwrap().to_owned();

    let browser = case.app.new_browser();
    let answer = sign_in_through(case, &browser, &authorize, &case.member).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let back = location(answer).await;
    stdin
        .write_all(format!("{back}\n").as_bytes())
        .await
        .unwrap();
    // The script's stdin closes: nothing more comes, and node may end.
    drop(stdin);
    let report = tokio::time::timeout(NODE_WAIT, out.next_line())
        .await
        .expect("openid-client answers in time")
        .unwrap();
    let status = tokio::time::timeout(NODE_WAIT, child.wait())
        .await
        .expect("openid-client ends")
        .unwrap();
    let report = report.unwrap_or_else(|| panic!("openid-client failed ({status})"));
    let report: Value = serde_json::from_str(&report).unwrap();

    // The logout URL it built ends the session and comes back to the application.
    let end = report["end_session"].as_str().unwrap();
    let response = browser.get(end).send().await.unwrap();
    assert_eq!(
        location(response).await,
        format!("{APP_SIGNED_OUT}?state=signed-out")
    );
    report
}

fn assert_member_claims(case: &Case, report: &Value) {
    let claims = &report["claims"];
    assert_eq!(claims["iss"], case.issuer());
    assert_eq!(claims["aud"], serde_json::json!([case.client_id()]));
    assert_eq!(claims["tid"], case.entra_tenant_id);
    assert_eq!(claims["oid"], case.member.id);
    assert_eq!(claims["preferred_username"], case.member.username);
    assert!(claims["sid"].is_string());
    assert_eq!(report["userinfo"]["sub"], claims["sub"]);
    assert_eq!(report["userinfo"]["oid"], case.member.id);
    assert_eq!(report["refreshed_claims"]["sub"], claims["sub"]);
    assert_eq!(report["refresh_reused_error"], "invalid_grant");
}

#[tokio::test]
async fn openid_client_signs_a_user_in_to_a_confidential_web_application() {
    let case = Case::new(AppKind::Web).await;
    let report = openid_client_signs_in(&case, ClientAuth::Registered).await;
    assert_member_claims(&case, &report);
}

#[tokio::test]
async fn openid_client_signs_a_user_in_to_a_public_client_with_pkce() {
    let case = Case::new(AppKind::Spa).await;
    let report = openid_client_signs_in(&case, ClientAuth::Registered).await;
    assert_member_claims(&case, &report);
}

#[tokio::test]
async fn openid_client_authenticates_a_web_application_with_private_key_jwt() {
    let case = Case::new(AppKind::Web).await;
    let report = openid_client_signs_in(&case, ClientAuth::PrivateKeyJwt).await;
    assert_member_claims(&case, &report);
}
