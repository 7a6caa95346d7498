//! Sign-in for the customers' users in a real browser: a small sample application served on
//! loopback by the test sends a user of a connected customer to Gangway, which finds their
//! tenant from their email and sends them to Microsoft's sign-in (the emulator), and back to
//! the application with a code it redeems. Gangway's own pages on the way (the email page, a
//! refusal) and the console's new pages are measured at phone and desktop width and checked
//! with axe-core.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{Html, Redirect};
use axum::routing::get;
use base64::Engine;
use fantoccini::{Client, Locator};
use gangway::audit::Actor;
use gangway::operators::Role;
use gangway::signin::applications::{self, Registered};
use gangway::signin::{AppKind, GroupsClaim, NewApplication};
use gangway::web::paths;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::browser::{ChromeDriver, check_page, click, fill, wait_for_text};
use crate::helpers::OPERATOR_PASSWORD;
use crate::signin::Case;

/// What the sample application knows: Gangway's address, its own, its client id and secret.
#[derive(Clone)]
struct Sample {
    gangway: String,
    callback: String,
    client_id: String,
    secret: String,
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    error: Option<String>,
}

/// `/`: off to Gangway to sign in.
async fn start(State(sample): State<Sample>) -> Redirect {
    let mut url = Url::parse(&format!("{}{}", sample.gangway, paths::SIGNIN_AUTHORIZE)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &sample.client_id)
        .append_pair("redirect_uri", &sample.callback)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile email")
        .append_pair("state", "sample-state")
        .append_pair("nonce", "sample-nonce");
    Redirect::to(url.as_str())
}

/// `/callback`: redeems the code and greets the user by the ID token's claims.
async fn come_back(State(sample): State<Sample>, Query(q): Query<Callback>) -> Html<String> {
    let Some(code) = q.code else {
        return Html(format!(
            "<!doctype html><title>Sample</title><h1>Not signed in</h1><p>{}</p>",
            q.error.unwrap_or_default()
        ));
    };
    let tokens: Value = reqwest::Client::new()
        .post(format!("{}{}", sample.gangway, paths::SIGNIN_TOKEN))
        .basic_auth(&sample.client_id, Some(&sample.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", sample.callback.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payload = tokens["id_token"]
        .as_str()
        .and_then(|t| t.split('.').nth(1))
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
        .unwrap_or_default();
    Html(format!(
        "<!doctype html><title>Sample</title><h1>Signed in to the sample</h1><p id=\"who\">{} of {}</p>",
        payload["preferred_username"].as_str().unwrap_or("?"),
        payload["org_name"].as_str().unwrap_or("?"),
    ))
}

/// Serves the sample application on a loopback port and registers it with Gangway.
async fn sample_application(case: &Case) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let callback = format!("{base}/callback");
    let Registered {
        application,
        client_secret,
    } = applications::register(
        &case.app.db,
        &NewApplication {
            name: "Sample workspace".into(),
            kind: AppKind::Web,
            redirect_uris: vec![callback.clone()],
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            customers: None,
            pairwise_subject: false,
            groups: GroupsClaim::All,
            role_mapping: Default::default(),
            require_account_link: false,
        },
        &Actor::Cli,
    )
    .await
    .unwrap();
    let sample = Sample {
        gangway: case.app.address.clone(),
        callback,
        client_id: application.client_id,
        secret: client_secret.unwrap().expose().to_owned(),
    };
    let router = axum::Router::new()
        .route("/", get(start))
        .route("/callback", get(come_back))
        .with_state(sample);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

/// Signs in at Microsoft's page (the emulator) as `username`, accepting a consent page if one
/// is shown, until the browser is back at `base`.
async fn sign_in_at_microsoft(browser: &Client, username: &str, password: &str, base: &str) {
    wait_for_text(browser, "idSIButton9").await;
    fill(browser, "#i0116", username).await;
    fill(browser, "#i0118", password).await;
    click(browser, "#idSIButton9").await;
    for _ in 0..100 {
        let url = browser.current_url().await.unwrap();
        if url.as_str().starts_with(base) {
            return;
        }
        if browser.find(Locator::Css("#idBtn_Accept")).await.is_ok() {
            click(browser, "#idBtn_Accept").await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "never back at the sample: {}",
        browser.current_url().await.unwrap()
    );
}

#[tokio::test]
async fn a_customer_user_signs_in_to_a_sample_application_in_a_real_browser() {
    let case = Case::new(AppKind::Web).await;
    let base = sample_application(&case).await;
    let driver = ChromeDriver::start().await;
    let user = driver.browser().await;

    // The sample sends the user to Gangway, which asks for their work email.
    user.goto(&base).await.unwrap();
    wait_for_text(&user, "Sign in to Sample workspace").await;
    assert_eq!(
        user.current_url().await.unwrap().path(),
        paths::SIGNIN_EMAIL
    );
    check_page(&user, "signin-email", false).await;

    // A domain no connected tenant uses: a clear page, no trip to Microsoft.
    fill(&user, "input[name=email]", "someone@unconnected.example").await;
    click(&user, "form button[type=submit]").await;
    wait_for_text(&user, "Your organization is not connected").await;
    check_page(&user, "signin-refused", false).await;

    // The right email: Microsoft's sign-in for the user's own tenant, then back at the sample.
    user.goto(&base).await.unwrap();
    wait_for_text(&user, "Sign in to Sample workspace").await;
    fill(&user, "input[name=email]", &case.member.username).await;
    click(&user, "form button[type=submit]").await;
    sign_in_at_microsoft(&user, &case.member.username, &case.member.password, &base).await;
    let page = wait_for_text(&user, "Signed in to the sample").await;
    assert!(page.contains(&case.member.username), "{page}");
    assert!(page.contains(&format!("Customer {}", case.entra_tenant_id)));
    user.close().await.unwrap();

    // The operator's side: the applications, one application, its form, the sign-ins.
    case.app
        .add_operator("ops@provider.test", Role::Admin)
        .await;
    let operator = driver.browser().await;
    operator.goto(&case.app.url(paths::LOGIN)).await.unwrap();
    fill(&operator, "input[name=email]", "ops@provider.test").await;
    fill(&operator, "input[name=password]", OPERATOR_PASSWORD).await;
    click(
        &operator,
        "form[action='/console/login'] button[type=submit]",
    )
    .await;
    wait_for_text(&operator, "New invitation").await;
    operator
        .goto(&case.app.url(paths::APPLICATIONS))
        .await
        .unwrap();
    wait_for_text(&operator, "Sample workspace").await;
    check_page(&operator, "applications", true).await;
    click(&operator, "td.lead a").await;
    wait_for_text(&operator, "Account links").await;
    check_page(&operator, "application", true).await;
    let id = case.registered.application.id;
    operator
        .goto(&case.app.url(&paths::edit_application(id.into())))
        .await
        .unwrap();
    wait_for_text(&operator, "Redirect URIs").await;
    check_page(&operator, "application-form", true).await;
    operator
        .goto(&case.app.url(paths::NEW_APPLICATION))
        .await
        .unwrap();
    wait_for_text(&operator, "Register an application").await;
    check_page(&operator, "application-new", true).await;
    operator.goto(&case.app.url(paths::SIGN_INS)).await.unwrap();
    let page = wait_for_text(&operator, "badge active").await;
    assert!(page.contains(&case.member.username) && page.contains("badge revoked\">refused"));
    check_page(&operator, "sign-ins", true).await;
    operator.close().await.unwrap();
}
