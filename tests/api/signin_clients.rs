//! Independent relying parties sign a customer's user in through Gangway, unchanged:
//! `openid-client` (npm, OpenID Certified), driven as a child process by
//! `tests/oidc-clients/openid-client.mjs`. It does discovery, the code flow with PKCE, ID-token
//! verification against the JWKS, userinfo, refresh (and sees reuse refused) and builds the
//! RP-initiated logout URL, which the browser then follows.

use std::path::PathBuf;
use std::process::Stdio;

use gangway::signin::AppKind;
use reqwest::StatusCode;
use serde_json::Value;
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

/// Signs the case's member in with openid-client as the case's application; the script's
/// final report.
async fn openid_client_signs_in(case: &Case) -> Value {
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
    if let Some(secret) = &case.registered.client_secret {
        command.env("CLIENT_SECRET", secret.expose());
    }
    let mut child = command.spawn().expect("node runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(NODE_WAIT, out.next_line())
        .await
        .expect("openid-client answers in time")
        .unwrap()
        .expect("openid-client prints the authorize URL");
    let first: Value = serde_json::from_str(&first).unwrap();
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
    let report = openid_client_signs_in(&case).await;
    assert_member_claims(&case, &report);
}

#[tokio::test]
async fn openid_client_signs_a_user_in_to_a_public_client_with_pkce() {
    let case = Case::new(AppKind::Spa).await;
    let report = openid_client_signs_in(&case).await;
    assert_member_claims(&case, &report);
}
