//! Sign-in for the customers' users: a customer's user signs in to a provider's application
//! through Gangway, federated to their own tenant at the emulator. The relying party is the
//! `openidconnect` crate used as a client (discovery, PKCE, code, ID-token verification by
//! JWKS, userinfo, refresh); refusals are driven through HTTP as a browser and an
//! application would meet them.

use std::collections::BTreeMap;

use entra_emulator::EmulatedLogin;
use gangway::audit::Actor;
use gangway::signin::applications::{self, Registered};
use gangway::signin::{AppKind, GroupsClaim, NewApplication};
use gangway::web::paths;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EmptyAdditionalClaims, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
    UserInfoClaims,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

use crate::helpers::{Decision, TestApp, consent_at_microsoft, form_action, input_value, location};
use crate::sync;

/// The application's redirect URI (nothing listens there: the test reads the redirect).
pub(crate) const APP_CALLBACK: &str = "http://127.0.0.1:9/callback";
/// Where the application wants users after logout.
pub(crate) const APP_SIGNED_OUT: &str = "http://127.0.0.1:9/signed-out";

/// A connected customer tenant with its copy synced, and a registered application.
pub(crate) struct Case {
    pub app: TestApp,
    /// Gangway's id of the connected tenant.
    pub tenant_id: Uuid,
    /// Microsoft's id of it.
    pub entra_tenant_id: String,
    /// A plain member of the tenant.
    pub member: EmulatedLogin,
    pub registered: Registered,
}

impl Case {
    /// A portal whose provider app also has the sign-in callback registered, customer tenant 0
    /// connected (its users may sign in to the provider's app) and synced, and a web
    /// application registered (or `kind`).
    pub async fn new(kind: AppKind) -> Self {
        Self::copied(kind, true).await
    }

    /// [`Case::new`], its first sync run (`synced`) or not yet.
    pub async fn copied(kind: AppKind, synced: bool) -> Self {
        let app = TestApp::spawn().await;
        let callback = format!("{}{}", app.address, paths::SIGNIN_CALLBACK);
        let consent_callback = format!("{}{}", app.address, paths::CALLBACK);
        sync::emulator(
            &app,
            reqwest::Method::PATCH,
            &format!("/_emulator/apps/{}", app.app.client_id),
            Some(json!({ "redirect_uris": [consent_callback, callback] })),
        )
        .await;
        let tenant = app.customer(0).clone();
        let tenant_id = sync::connect(&app, &tenant.id, &sync::all_app_permissions()).await;
        // The admin consent covers the registration's delegated sign-in permissions too.
        app.admin
            .grant(&tenant.id, &app.app.client_id, &["User.Read"], &[])
            .await
            .unwrap();
        if synced {
            sync::work(&app).await;
        }
        let registered = register(&app, "Workspace", kind).await;
        Case {
            tenant_id,
            entra_tenant_id: tenant.id.clone(),
            member: tenant
                .member
                .clone()
                .expect("the tenant has a plain member"),
            registered,
            app,
        }
    }

    pub fn issuer(&self) -> String {
        self.app.address.clone()
    }

    pub fn client_id(&self) -> &str {
        &self.registered.application.client_id
    }

    /// The `openidconnect` client of the registered application, from discovery.
    async fn client(&self) -> (CoreClientSet, reqwest::Client) {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let metadata =
            CoreProviderMetadata::discover_async(IssuerUrl::new(self.issuer()).unwrap(), &http)
                .await
                .expect("discovery");
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.client_id().to_owned()),
            self.registered
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_owned())),
        )
        .set_redirect_uri(RedirectUrl::new(APP_CALLBACK.into()).unwrap());
        (client, http)
    }
}

type CoreClientSet = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// An application with the sample redirect URIs, admitting every customer, with every group.
pub(crate) fn sample_application(name: &str, kind: AppKind) -> NewApplication {
    let redirect = if kind == AppKind::Native {
        "http://127.0.0.1/callback"
    } else {
        APP_CALLBACK
    };
    NewApplication {
        name: name.into(),
        kind,
        redirect_uris: vec![redirect.into()],
        post_logout_redirect_uris: vec![APP_SIGNED_OUT.into()],
        backchannel_logout_uri: None,
        customers: None,
        pairwise_subject: false,
        groups: GroupsClaim::All,
        role_mapping: BTreeMap::new(),
        require_account_link: false,
    }
}

/// Registers [`sample_application`].
async fn register(app: &TestApp, name: &str, kind: AppKind) -> Registered {
    applications::register(&app.db, &sample_application(name, kind), &Actor::Cli)
        .await
        .unwrap()
}

/// Follows a browser from the application's authorize URL through Gangway's email page (when
/// shown) and Microsoft's sign-in as `login`, back to Gangway's callback; returns Gangway's
/// answer to the callback.
pub(crate) async fn sign_in_through(
    case: &Case,
    browser: &reqwest::Client,
    authorize: &str,
    login: &EmulatedLogin,
) -> reqwest::Response {
    let response = browser.get(authorize).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "authorize answers with a redirect"
    );
    let mut to = location(response).await;
    if to == paths::SIGNIN_EMAIL {
        let page = browser.get(case.app.url(&to)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.unwrap();
        let csrf = input_value(&page, "csrf_token").expect("the email page has a CSRF token");
        assert_eq!(form_action(&page).as_deref(), Some(paths::SIGNIN_EMAIL));
        let response = browser
            .post(case.app.url(paths::SIGNIN_EMAIL))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", login.username.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "the email leads to Microsoft"
        );
        to = location(response).await;
    }
    assert!(
        to.starts_with(&format!(
            "{}/{}/oauth2/v2.0/authorize",
            case.app.emulator.base_url().trim_end_matches('/'),
            case.entra_tenant_id
        )),
        "the user is sent to their own tenant's sign-in: {to}"
    );
    let back = consent_at_microsoft(browser, &to, login, Decision::Accept).await;
    assert!(
        back.as_str()
            .starts_with(&case.app.url(paths::SIGNIN_CALLBACK))
    );
    browser.get(back).send().await.unwrap()
}

/// The `code` (and `state`) Gangway sent the application, asserting a redirect there.
pub(crate) async fn code_from(response: reqwest::Response) -> (String, Option<String>) {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to = Url::parse(&location(response).await).unwrap();
    assert!(
        to.as_str().starts_with(APP_CALLBACK),
        "back to the application: {to}"
    );
    let get = |k: &str| {
        to.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(get("error"), None, "no error: {to}");
    (get("code").expect("a code"), get("state"))
}

/// The claims of a JWT, unverified (the test verifies them with the client library first).
pub(crate) fn payload(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_customer_user_signs_in_to_a_web_application_through_the_openidconnect_client() {
    let case = Case::new(AppKind::Web).await;
    let (client, http) = case.client().await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let browser = case.app.new_browser();
    let answer = sign_in_through(&case, &browser, url.as_str(), &case.member).await;
    let (code, state) = code_from(answer).await;
    assert_eq!(state.as_deref(), Some(csrf.secret().as_str()));

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code is redeemed");
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("the ID token verifies against the JWKS");
    assert_eq!(claims.issuer().as_str(), case.issuer());
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some(case.member.username.as_str())
    );
    let raw = payload(&id_token.to_string());
    assert_eq!(
        raw["sub"],
        format!("{}:{}", case.entra_tenant_id, case.member.id)
    );
    assert_eq!(raw["tid"], case.entra_tenant_id);
    assert_eq!(raw["oid"], case.member.id);
    assert_eq!(
        raw["org_name"],
        format!("Customer {}", case.entra_tenant_id)
    );
    assert!(raw["sid"].is_string() && raw["auth_time"].is_number());
    assert!(raw["groups"].is_array(), "groups from the copy: {raw}");

    let info: UserInfoClaims<EmptyAdditionalClaims, CoreGenderClaim> = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo answers");
    assert_eq!(info.subject().as_str(), raw["sub"].as_str().unwrap());

    // Refresh rotates; using the old refresh token again revokes the whole family.
    let first = tokens
        .refresh_token()
        .expect("offline_access gives a refresh token");
    let refreshed = client
        .exchange_refresh_token(first)
        .unwrap()
        .request_async(&http)
        .await
        .expect("the refresh token works once");
    let second = refreshed
        .refresh_token()
        .expect("a new refresh token")
        .clone();
    assert_ne!(second.secret(), first.secret());
    let reuse = client
        .exchange_refresh_token(first)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(reuse.is_err(), "a used refresh token is refused");
    let after = client
        .exchange_refresh_token(&second)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(
        after.is_err(),
        "reuse revoked the family, the newest token too"
    );
    let userinfo = http
        .get(case.app.url(paths::SIGNIN_USERINFO))
        .bearer_auth(refreshed.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(
        userinfo.status(),
        StatusCode::UNAUTHORIZED,
        "and its access tokens"
    );

    // Single sign-on: the next authorize goes straight back with a code.
    let (url, _, _) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .url();
    let response = browser.get(url.as_str()).send().await.unwrap();
    code_from(response).await;

    let audited: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where action = 'signin.succeeded' and tenant_id = $1",
    )
    .bind(case.tenant_id)
    .fetch_one(&case.app.db)
    .await
    .unwrap();
    assert_eq!(audited, 2);
}

/// An authorize URL of the case's application with `extra` parameters.
pub(crate) fn authorize_url(case: &Case, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
    authorize_url_of(case, case.client_id(), redirect_uri, extra)
}

/// An authorize URL of application `client_id` with `extra` parameters.
pub(crate) fn authorize_url_of(
    case: &Case,
    client_id: &str,
    redirect_uri: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut url = Url::parse(&case.app.url(paths::SIGNIN_AUTHORIZE)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile email offline_access")
        .append_pair("state", "s1")
        .append_pair("nonce", "n1")
        .extend_pairs(extra);
    url.to_string()
}

/// Redeems `code` at the token endpoint as the web application.
async fn redeem(
    case: &Case,
    code: &str,
    verifier: Option<&str>,
    secret: &str,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", APP_CALLBACK),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    reqwest::Client::new()
        .post(case.app.url(paths::SIGNIN_TOKEN))
        .basic_auth(case.client_id(), Some(secret))
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn refusals_an_application_and_a_user_meet_through_http() {
    let case = Case::new(AppKind::Web).await;
    let secret = case
        .registered
        .client_secret
        .as_ref()
        .unwrap()
        .expose()
        .to_owned();
    let browser = case.app.new_browser();

    // An unregistered redirect URI: a page, never a redirect there.
    let response = browser
        .get(authorize_url(&case, "https://evil.example/callback", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());

    // A code, with the login hint skipping the email page.
    let hinted = authorize_url(
        &case,
        APP_CALLBACK,
        &[("login_hint", &case.member.username)],
    );
    let (code, _) = code_from(sign_in_through(&case, &browser, &hinted, &case.member).await).await;

    // A wrong client secret.
    let wrong = redeem(&case, &code, None, "not-the-secret").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    // The code works once; a replay is refused and revokes what the first use gave.
    let first = redeem(&case, &code, None, &secret).await;
    assert_eq!(first.status(), StatusCode::OK);
    let tokens: Value = first.json().await.unwrap();
    let replay = redeem(&case, &code, None, &secret).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        replay.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let userinfo = reqwest::Client::new()
        .get(case.app.url(paths::SIGNIN_USERINFO))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);

    // Logout: an unregistered post-logout redirect URI is never followed.
    let id_token = tokens["id_token"].as_str().unwrap();
    let mut logout = Url::parse(&case.app.url(paths::SIGNIN_LOGOUT)).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", "https://evil.example/");
    let response = browser.get(logout.as_str()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("location").is_none());
    // A registered one is, with the state.
    let mut logout = Url::parse(&case.app.url(paths::SIGNIN_LOGOUT)).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", APP_SIGNED_OUT)
        .append_pair("state", "bye");
    let response = browser.get(logout.as_str()).send().await.unwrap();
    assert_eq!(
        location(response).await,
        format!("{APP_SIGNED_OUT}?state=bye")
    );
    // Signed out: prompt=none finds no session.
    let silent = authorize_url(&case, APP_CALLBACK, &[("prompt", "none")]);
    let to = location(browser.get(silent).send().await.unwrap()).await;
    assert!(to.contains("error=login_required"), "{to}");

    // A domain no connected tenant has: a page, no trip to Microsoft.
    let fresh = case.app.new_browser();
    let unknown = authorize_url(
        &case,
        APP_CALLBACK,
        &[("login_hint", "ann@unconnected.example")],
    );
    let response = fresh.get(unknown).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.unwrap().contains("not connected"));

    // A user the copy knows as disabled (Microsoft still signs them in: the copy decides).
    let oid = &case.member.id;
    let user_path = format!("/_emulator/tenants/{}/users/{oid}", case.entra_tenant_id);
    sync::emulator(
        &case.app,
        reqwest::Method::PATCH,
        &user_path,
        Some(json!({"accountEnabled": false})),
    )
    .await;
    sync::sync_now(&case.app, case.tenant_id).await;
    sync::work(&case.app).await;
    sync::emulator(
        &case.app,
        reqwest::Method::PATCH,
        &user_path,
        Some(json!({"accountEnabled": true})),
    )
    .await;
    let response = sign_in_through(&case, &case.app.new_browser(), &hinted, &case.member).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.unwrap().contains("disabled"));

    // An offboarded tenant: a page before Microsoft.
    gangway::tenants::offboard(&case.app.db, case.tenant_id, &Actor::Cli)
        .await
        .unwrap();
    let response = case.app.new_browser().get(&hinted).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("no longer connected")
    );
}

#[tokio::test]
async fn a_public_client_must_prove_pkce() {
    let case = Case::new(AppKind::Native).await;
    let browser = case.app.new_browser();
    // Any loopback port; no PKCE challenge: refused back to the application.
    let redirect = "http://127.0.0.1:53123/callback";
    let response = browser
        .get(authorize_url(&case, redirect, &[]))
        .send()
        .await
        .unwrap();
    let to = location(response).await;
    assert!(
        to.starts_with(redirect) && to.contains("error=invalid_request"),
        "{to}"
    );

    let verifier = PkceCodeVerifier::new("a".repeat(43) + "bcdefgh");
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    let url = authorize_url(
        &case,
        redirect,
        &[
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", &case.member.username),
        ],
    );
    let answer = sign_in_through(&case, &browser, &url, &case.member).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let to = Url::parse(&location(answer).await).unwrap();
    let code = to
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let token = |verifier: &str| {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("client_id", case.client_id()),
            ("code_verifier", verifier),
        ];
        reqwest::Client::new()
            .post(case.app.url(paths::SIGNIN_TOKEN))
            .form(&form)
            .send()
    };
    let wrong = token(&"z".repeat(50)).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    // A wrong verifier spent the code: the right one no longer helps.
    let right = token(verifier.secret()).await.unwrap();
    assert_eq!(right.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn applications_are_registered_through_the_json_api_with_a_write_token() {
    let app = TestApp::spawn().await;
    app.sign_in(gangway::operators::Role::Admin).await;
    let read = crate::json_api::token(&app, "reader", "read").await;
    let write = crate::json_api::token(&app, "writer", "write").await;
    let body = json!({
        "name": "Agent Toolbar",
        "kind": "web",
        "redirect_uris": ["https://toolbar.example/callback"],
        "post_logout_redirect_uris": ["https://toolbar.example/"],
        "groups": "filter",
        "groups_filter": "Agents",
        "role_mapping": {"Agents - Supervisors": "supervisor"},
    });
    let (status, _, _) = post(&app, &read, body.clone()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a read token registers nothing"
    );
    let (status, _, created) = post(&app, &write, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["client_secret"]
        .as_str()
        .expect("the secret, once")
        .to_owned();
    let client_id = created["application"]["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created["application"]["groups_filter"], "Agents");
    let (status, _, _) = post(&app, &write, body).await;
    assert_eq!(status, StatusCode::CONFLICT, "names are unique");
    let (status, _, refused) = post(
        &app,
        &write,
        json!({"name": "Open", "kind": "spa", "redirect_uris": ["http://toolbar.example/cb"]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused["detail"].as_str().unwrap().contains("https"),
        "{refused}"
    );

    let id = created["application"]["id"].as_str().unwrap();
    let (status, _, one) = crate::json_api::call(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/applications/{id}"),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        one.get("client_secret").is_none(),
        "the secret is never read back"
    );
    // Only its hash is stored: the secret authenticates, a wrong one does not.
    assert!(
        applications::authenticate(&app.db, &client_id, Some(&secret))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        applications::authenticate(&app.db, &client_id, Some("nope"))
            .await
            .unwrap()
            .is_none()
    );
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from signin_applications where client_secret_sha256 = sha256($1::bytea)",
    )
    .bind(secret.as_bytes())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(stored, 1);
}

/// POSTs `body` to the applications API with `token`.
async fn post(
    app: &TestApp,
    token: &str,
    body: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    crate::json_api::call(
        app,
        reqwest::Method::POST,
        "/api/v1/applications",
        Some(token),
        Some(body),
    )
    .await
}
