//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a session ends — the
//! user logs out, the copy learns the user was disabled, the tenant is offboarded — each
//! application it signed in to is sent a logout token, which a relying party validates with
//! `jose` (`tests/oidc-clients/backchannel-logout.mjs`: signature by the JWKS, claims, type);
//! the session's tokens stop working.

use std::path::PathBuf;
use std::process::Stdio;

use gangway::audit::Actor;
use gangway::signin::{AppKind, applications, backchannel};
use gangway::web::paths;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout, Command};
use url::Url;

use crate::helpers::location;
use crate::signin::{
    APP_CALLBACK, APP_SIGNED_OUT, Case, authorize_url_of, code_from, payload, sample_application,
    sign_in_through,
};
use crate::sync;

/// How long the receiver may take for a step.
const NODE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A relying party's back-channel logout endpoint, validating with `jose`.
struct Receiver {
    url: String,
    stdin: ChildStdin,
    out: Lines<BufReader<ChildStdout>>,
    _child: tokio::process::Child,
}

impl Receiver {
    async fn start(case: &Case) -> Self {
        let modules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/oidc-clients");
        let jose = modules.join("node_modules/jose/dist/webapi/index.js");
        assert!(
            jose.exists(),
            "jose is not installed at {}: run `npm install --prefix target/oidc-clients openid-client@6` (scripts/test does; jose comes with it)",
            jose.display()
        );
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/oidc-clients/backchannel-logout.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .env("JOSE", jose)
            .env("ISSUER", case.issuer())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut receiver = Self {
            url: String::new(),
            stdin,
            out,
            _child: child,
        };
        receiver.url = receiver.next().await["listening"]
            .as_str()
            .expect("the receiver listens")
            .to_owned();
        receiver
    }

    /// Tells the receiver which application it is (the tokens' audience).
    async fn serve(&mut self, client_id: &str) {
        self.stdin
            .write_all(format!("{client_id}\n").as_bytes())
            .await
            .unwrap();
    }

    /// What the receiver said next.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(NODE_WAIT, self.out.next_line())
            .await
            .expect("the receiver answers in time")
            .unwrap()
            .expect("the receiver is running");
        serde_json::from_str(&line).unwrap()
    }
}

/// A web application with a back-channel logout URI, signed in to by the case's member: its
/// client id, secret and token response.
struct SignedIn {
    client_id: String,
    tokens: Value,
}

/// Registers "Agent Toolbar" with `backchannel` as its back-channel logout URI and signs the
/// case's member in to it (code redeemed, refresh token issued).
async fn sign_in_with_backchannel(case: &Case, backchannel: &str) -> SignedIn {
    let mut new = sample_application("Agent Toolbar", AppKind::Web);
    new.backchannel_logout_uri = Some(backchannel.to_owned());
    let registered = applications::register(&case.app.db, &new, &Actor::Cli)
        .await
        .unwrap();
    let client_id = registered.application.client_id.clone();
    let secret = registered.client_secret.unwrap().expose().to_owned();
    let url = authorize_url_of(
        case,
        &client_id,
        APP_CALLBACK,
        &[("login_hint", case.member.username.as_str())],
    );
    let browser = case.app.new_browser();
    let (code, _) = code_from(sign_in_through(case, &browser, &url, &case.member).await).await;
    let response = reqwest::Client::new()
        .post(case.app.url(paths::SIGNIN_TOKEN))
        .basic_auth(&client_id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", APP_CALLBACK),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut tokens: Value = response.json().await.unwrap();
    tokens["client_secret"] = json!(secret);
    SignedIn { client_id, tokens }
}

/// Sends the queued logouts once; what the round did.
async fn deliver(case: &Case) -> backchannel::Round {
    backchannel::deliver_due(
        &case.app.db,
        &case.app.state.cfg.keys,
        &case.issuer(),
        &backchannel::client(),
    )
    .await
    .unwrap()
}

/// The refresh token is refused now.
async fn assert_refresh_refused(case: &Case, signed_in: &SignedIn) {
    let response = reqwest::Client::new()
        .post(case.app.url(paths::SIGNIN_TOKEN))
        .basic_auth(
            &signed_in.client_id,
            signed_in.tokens["client_secret"].as_str(),
        )
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                signed_in.tokens["refresh_token"].as_str().unwrap(),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

/// The receiver validated a logout token of the member's session with `signed_in`.
async fn assert_logout_token(receiver: &mut Receiver, case: &Case, signed_in: &SignedIn) {
    let said = receiver.next().await;
    let validated = &said["validated"];
    assert!(validated.is_object(), "jose validated the token: {said}");
    let id_token = payload(signed_in.tokens["id_token"].as_str().unwrap());
    let claims = &validated["claims"];
    assert_eq!(validated["header"]["typ"], "logout+jwt");
    assert_eq!(claims["iss"], case.issuer());
    assert_eq!(claims["aud"], signed_in.client_id.as_str());
    assert_eq!(claims["sid"], id_token["sid"]);
    assert_eq!(claims["sub"], id_token["sub"]);
    assert!(claims["jti"].is_string() && claims.get("nonce").is_none());
}

#[tokio::test]
async fn a_logout_sends_each_application_a_logout_token_that_jose_validates() {
    let case = Case::new(AppKind::Web).await;
    crate::webhooks::allow_loopback(&case.app).await;
    let mut receiver = Receiver::start(&case).await;
    let signed_in = sign_in_with_backchannel(&case, &receiver.url).await;
    receiver.serve(&signed_in.client_id).await;

    // RP-initiated logout through the browser.
    let mut logout = Url::parse(&case.app.url(paths::SIGNIN_LOGOUT)).unwrap();
    logout
        .query_pairs_mut()
        .append_pair(
            "id_token_hint",
            signed_in.tokens["id_token"].as_str().unwrap(),
        )
        .append_pair("post_logout_redirect_uri", APP_SIGNED_OUT);
    let response = case.app.new_browser().get(logout).send().await.unwrap();
    assert_eq!(location(response).await, APP_SIGNED_OUT);

    let round = deliver(&case).await;
    assert_eq!(round.delivered, 1, "{round:?}");
    assert_logout_token(&mut receiver, &case, &signed_in).await;
    assert_refresh_refused(&case, &signed_in).await;
    // Sent once: nothing more is due.
    assert_eq!(deliver(&case).await, backchannel::Round::default());
}

#[tokio::test]
async fn when_the_copy_learns_a_user_is_disabled_their_sessions_end_and_applications_are_told() {
    let case = Case::new(AppKind::Web).await;
    crate::webhooks::allow_loopback(&case.app).await;
    let mut receiver = Receiver::start(&case).await;
    let signed_in = sign_in_with_backchannel(&case, &receiver.url).await;
    receiver.serve(&signed_in.client_id).await;

    sync::emulator(
        &case.app,
        reqwest::Method::PATCH,
        &format!(
            "/_emulator/tenants/{}/users/{}",
            case.entra_tenant_id, case.member.id
        ),
        Some(json!({"accountEnabled": false})),
    )
    .await;
    sync::sync_now(&case.app, case.tenant_id).await;
    sync::work(&case.app).await;

    assert_refresh_refused(&case, &signed_in).await;
    let userinfo = reqwest::Client::new()
        .get(case.app.url(paths::SIGNIN_USERINFO))
        .bearer_auth(signed_in.tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(deliver(&case).await.delivered, 1);
    assert_logout_token(&mut receiver, &case, &signed_in).await;
}

#[tokio::test]
async fn offboarding_ends_the_tenants_sessions_and_tells_the_applications() {
    let case = Case::new(AppKind::Web).await;
    crate::webhooks::allow_loopback(&case.app).await;
    let mut receiver = Receiver::start(&case).await;
    let signed_in = sign_in_with_backchannel(&case, &receiver.url).await;
    receiver.serve(&signed_in.client_id).await;

    case.app.sign_in(gangway::operators::Role::Admin).await;
    let write = crate::json_api::token(&case.app, "writer", "write").await;
    let (status, _, _) = crate::json_api::call(
        &case.app,
        reqwest::Method::POST,
        &format!("/api/v1/tenants/{}/offboard", case.tenant_id),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    assert_refresh_refused(&case, &signed_in).await;
    assert_eq!(deliver(&case).await.delivered, 1);
    assert_logout_token(&mut receiver, &case, &signed_in).await;
}

#[tokio::test]
async fn the_upkeep_sweep_ends_sessions_of_a_tenant_offboarded_without_the_hook() {
    let case = Case::new(AppKind::Web).await;
    let signed_in = sign_in_with_backchannel(&case, "https://toolbar.example/logout").await;
    gangway::tenants::offboard(&case.app.db, case.tenant_id, &Actor::Cli)
        .await
        .unwrap();
    // Offboarded, the copy is gone, yet the user does not read as "not copied yet".
    assert_refresh_refused(&case, &signed_in).await;
    let summary = gangway::signin::upkeep(&case.app.db, &case.app.state.cfg.keys)
        .await
        .unwrap();
    assert!(summary.contains("1 sessions ended"), "{summary}");
    let queued: i64 =
        sqlx::query_scalar("select count(*) from signin_logouts where delivered_at is null")
            .fetch_one(&case.app.db)
            .await
            .unwrap();
    assert_eq!(queued, 1);
}

#[tokio::test]
async fn a_logout_token_is_never_sent_to_an_internal_address_unless_allowed() {
    let case = Case::new(AppKind::Web).await;
    let internal = "http://127.0.0.1:9/logout";
    // Registering refuses it, as saving a webhook endpoint does.
    let mut new = sample_application("Internal", AppKind::Web);
    new.backchannel_logout_uri = Some(internal.into());
    let refused = applications::register(&case.app.db, &new, &Actor::Cli)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("loopback"), "{refused}");
    // Allowed when registered, then no longer: the send checks again.
    crate::webhooks::allow_loopback(&case.app).await;
    let signed_in = sign_in_with_backchannel(&case, internal).await;
    gangway::settings::save(
        &case.app.db,
        &case.app.state.cfg.keys,
        &[gangway::settings::Edit {
            key: gangway::settings::Key::WebhookAllowedNetworks,
            raw: String::new(),
        }],
        &Actor::Cli,
    )
    .await
    .unwrap();
    let mut logout = Url::parse(&case.app.url(paths::SIGNIN_LOGOUT)).unwrap();
    logout.query_pairs_mut().append_pair(
        "id_token_hint",
        signed_in.tokens["id_token"].as_str().unwrap(),
    );
    case.app.new_browser().get(logout).send().await.unwrap();
    let round = deliver(&case).await;
    assert_eq!(round.retried, 1, "{round:?}");
    let error: Option<String> = sqlx::query_scalar("select last_error from signin_logouts")
        .fetch_one(&case.app.db)
        .await
        .unwrap();
    let error = error.unwrap();
    assert!(
        error.starts_with("not sent: 127.0.0.1 is a loopback address"),
        "{error}"
    );
}

#[tokio::test]
async fn upkeep_deletes_sessions_ended_long_ago_with_what_was_made_through_them() {
    let case = Case::new(AppKind::Web).await;
    let signed_in = sign_in_with_backchannel(&case, "https://toolbar.example/logout").await;
    let mut logout = Url::parse(&case.app.url(paths::SIGNIN_LOGOUT)).unwrap();
    logout.query_pairs_mut().append_pair(
        "id_token_hint",
        signed_in.tokens["id_token"].as_str().unwrap(),
    );
    case.app.new_browser().get(logout).send().await.unwrap();
    let count = |table: &'static str| {
        let db = case.app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("select count(*) from {table}"))
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    gangway::signin::upkeep(&case.app.db, &case.app.state.cfg.keys)
        .await
        .unwrap();
    assert_eq!(count("signin_sessions").await, 1, "ended lately: kept");
    sqlx::query("update signin_sessions set ended_at = now() - interval '31 days'")
        .execute(&case.app.db)
        .await
        .unwrap();
    gangway::signin::upkeep(&case.app.db, &case.app.state.cfg.keys)
        .await
        .unwrap();
    for table in ["signin_sessions", "signin_grants", "signin_logouts"] {
        assert_eq!(count(table).await, 0, "{table}");
    }
}
