//! Sessions: what the session table holds, when a session is created and how long it lives,
//! the operator read on every request, ending an operator's sessions, and cookie names.

use base64::Engine;
use gangway::config::parse_public_url;
use gangway::crypto::{EncryptionKey, sha256};
use gangway::operators::Role;
use gangway::types::OperatorId;
use gangway::web::Application;
use gangway::web::paths;
use reqwest::StatusCode;
use tokio::net::TcpListener;
use url::Url;
use uuid::Uuid;

use crate::helpers::{
    TestApp, browser, csrf_token, input_value, location, post_with_csrf, set_cookie, sign_in_as,
};
use crate::security::{contains, everything_stored};
use crate::wizard::audit_count;

async fn session_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from sessions")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn operator_id(app: &TestApp, email: &str) -> Uuid {
    sqlx::query_scalar("select id from operators where email = $1")
        .bind(email)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// The CSRF token of the console page at `path`, as `browser` sees it.
async fn page_token(browser: &reqwest::Client, app: &TestApp, path: &str) -> String {
    let page = browser.get(app.url(path)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "{path}");
    input_value(&page.text().await.unwrap(), "csrf_token").expect("the page has a form")
}

/// Whether `browser` is still signed in to the console.
async fn signed_in(browser: &reqwest::Client, app: &TestApp) -> bool {
    let response = browser
        .get(app.url(paths::INVITATIONS))
        .send()
        .await
        .unwrap();
    match response.status() {
        StatusCode::OK => true,
        _ => {
            assert!(location(response).await.starts_with(paths::LOGIN));
            false
        }
    }
}

/// An admin action on operator `email` from `browser`'s console.
async fn operator_action(
    browser: &reqwest::Client,
    app: &TestApp,
    route: fn(OperatorId) -> String,
    email: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let path = route(operator_id(app, email).await.into());
    post_with_csrf(browser, app, &path, fields).await
}

#[tokio::test]
async fn session_table_holds_only_a_hash_of_the_cookie_and_no_readable_payload() {
    let app = TestApp::spawn().await;
    // An operator signs in …
    let email = "ops@provider.test";
    app.add_operator(email, Role::Admin).await;
    let operator = browser();
    let operator_cookie = sign_in_as(&operator, &app, email).await;
    let operator_csrf = page_token(&operator, &app, paths::INVITATIONS).await;
    // … and a customer leaves for Microsoft's sign-in.
    let tenant = app.customer(0).clone();
    let issued = app.invite("delegated", &tenant.admin.username, None).await;
    let customer = browser();
    let opened = customer
        .get(app.url(&app.path_of(&issued.link)))
        .send()
        .await
        .unwrap();
    let customer_cookie = set_cookie(&opened, "gangway_session").expect("a session");
    let customer_csrf = page_token(&customer, &app, paths::WIZARD).await;
    let started = customer
        .post(app.url(paths::WIZARD_START))
        .form(&[("csrf_token", &customer_csrf)])
        .send()
        .await
        .unwrap();
    let microsoft = Url::parse(&location(started).await).unwrap();
    let param = |name: &str| {
        microsoft
            .query_pairs()
            .find(|(k, _)| k == name)
            .unwrap()
            .1
            .into_owned()
    };

    // Rows are keyed by the SHA-256 of the cookie's id, and their payload opens only with the key.
    #[derive(sqlx::FromRow)]
    struct Row {
        id_sha256: Vec<u8>,
        operator_id: Option<Uuid>,
        payload_key_id: String,
        payload_ciphertext: Vec<u8>,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "select id_sha256, operator_id, payload_key_id, payload_ciphertext from sessions
         order by operator_id nulls first",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    let id_hash = |cookie: &str| {
        sha256(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(cookie)
                .unwrap(),
        )
    };
    assert_eq!(rows[0].id_sha256, id_hash(&customer_cookie));
    assert_eq!(rows[0].operator_id, None);
    assert_eq!(rows[1].id_sha256, id_hash(&operator_cookie));
    assert_eq!(rows[1].operator_id, Some(operator_id(&app, email).await));
    let key = EncryptionKey::from_base64(&app.key_b64).unwrap();
    let pending: serde_json::Value = serde_json::from_slice(
        &key.open(&rows[0].payload_key_id, &rows[0].payload_ciphertext)
            .unwrap(),
    )
    .unwrap();
    let verifier = pending["pending_consent"]["pkce_verifier"]
        .as_str()
        .expect("the sealed payload holds the PKCE verifier")
        .to_owned();
    assert_eq!(pending["csrf_token"], customer_csrf.as_str());

    let secrets = [
        ("operator's session cookie", operator_cookie),
        ("customer's session cookie", customer_cookie),
        ("operator's CSRF token", operator_csrf),
        ("customer's CSRF token", customer_csrf),
        ("state", param("state")),
        ("nonce", param("nonce")),
        ("PKCE verifier", verifier),
        ("session key name", "pending_consent".into()),
    ];
    for (place, value) in everything_stored(&app).await {
        for (what, secret) in &secrets {
            assert!(
                !contains(&value, secret.as_bytes()),
                "the {what} is readable in {place}"
            );
        }
    }
}

#[tokio::test]
async fn anonymous_gets_store_no_session() {
    let app = TestApp::spawn().await;
    let visitor = browser();
    let callback = format!("{}?code=abc&state=def", paths::CALLBACK);
    for path in [
        paths::LOGIN,
        paths::WIZARD,
        paths::INVITATIONS,
        "/authenticate?token=not-a-token",
        callback.as_str(),
        paths::LOGIN,
    ] {
        visitor.get(app.url(path)).send().await.unwrap();
    }
    let email = "ops@provider.test";
    app.add_operator(email, Role::Viewer).await;
    let wrong = post_with_csrf(
        &visitor,
        &app,
        paths::LOGIN,
        &[("email", email), ("password", "not the password")],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(session_count(&app).await, 0);

    // The sign-in form still works from a page that stored nothing: one session, the operator's.
    sign_in_as(&visitor, &app, email).await;
    assert!(signed_in(&visitor, &app).await);
    assert_eq!(session_count(&app).await, 1);
}

#[tokio::test]
async fn pre_login_session_is_short_lived() {
    let app = TestApp::spawn().await;
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    let customer = browser();
    let opened = customer
        .get(app.url(&app.path_of(&issued.link)))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), StatusCode::SEE_OTHER);
    app.sign_in(Role::Viewer).await;

    let lifetimes: Vec<(bool, i64)> = sqlx::query_as(
        "select operator_id is not null, extract(epoch from expires_at - now())::bigint
         from sessions order by 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let [(false, customer), (true, operator)] = lifetimes[..] else {
        panic!("one customer and one operator session: {lifetimes:?}");
    };
    assert!(
        (3_500..=3_600).contains(&customer),
        "a link just opened keeps its session an hour, not {customer} s"
    );
    assert!(
        (8 * 3_600 - 100..=8 * 3_600).contains(&operator),
        "a signed-in operator keeps 8 hours, not {operator} s"
    );
}

#[tokio::test]
async fn demoted_admin_loses_admin_rights_at_the_next_request() {
    let app = TestApp::spawn().await;
    let demoted = app.sign_in(Role::Admin).await;
    assert_eq!(
        app.get(paths::NEW_INVITATION).await.status(),
        StatusCode::OK
    );

    // The role is read on every request, not remembered by the session.
    sqlx::query("update operators set role = 'viewer' where email = $1")
        .bind(&demoted)
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        app.get(paths::NEW_INVITATION).await.status(),
        StatusCode::FORBIDDEN
    );
    let page = app.get(paths::INVITATIONS).await.text().await.unwrap();
    assert!(
        !page.contains(paths::OPERATORS),
        "no Operators entry for a viewer"
    );
    sqlx::query("update operators set role = 'admin' where email = $1")
        .bind(&demoted)
        .execute(&app.db)
        .await
        .unwrap();

    // Demoted by another admin from the Operators page: signed out everywhere at once.
    let other = browser();
    app.add_operator("second-admin@provider.test", Role::Admin)
        .await;
    sign_in_as(&other, &app, "second-admin@provider.test").await;
    let page = other.get(app.url(paths::OPERATORS)).send().await.unwrap();
    assert!(page.text().await.unwrap().contains(&demoted));
    let response = operator_action(
        &other,
        &app,
        paths::operator_role,
        &demoted,
        &[("role", "viewer")],
    )
    .await;
    assert_eq!(
        location(response).await,
        format!("{}?done=role", paths::OPERATORS)
    );
    assert!(!signed_in(&app.client, &app).await);
    let role: String = sqlx::query_scalar("select role from operators where email = $1")
        .bind(&demoted)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(role, "viewer");
    assert_eq!(audit_count(&app, "operator.role_changed").await, 1);
    // Back as a viewer, the Operators page is closed.
    sign_in_as(&app.client, &app, &demoted).await;
    assert_eq!(
        app.get(paths::OPERATORS).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn removed_operator_is_signed_out() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let viewer = browser();
    let email = "leaver@provider.test";
    app.add_operator(email, Role::Viewer).await;
    sign_in_as(&viewer, &app, email).await;
    assert!(signed_in(&viewer, &app).await);

    let response = app
        .post_form(
            &paths::remove_operator(operator_id(&app, email).await.into()),
            &[],
        )
        .await;
    assert_eq!(
        location(response).await,
        format!("{}?done=removed", paths::OPERATORS)
    );
    assert!(!signed_in(&viewer, &app).await);
    let page = app.get(paths::OPERATORS).await.text().await.unwrap();
    let (current, removed) =
        page.split_at(page.find("Removed operators").expect("listed as removed"));
    assert!(!current.contains(email), "no longer listed as an operator");
    assert!(removed.contains(email), "listed as removed, to restore");
    assert_eq!(
        session_count(&app).await,
        1,
        "only the admin's session is left"
    );
    assert_eq!(audit_count(&app, "operator.removed").await, 1);
    let again = post_with_csrf(
        &viewer,
        &app,
        paths::LOGIN,
        &[
            ("email", email),
            ("password", crate::helpers::OPERATOR_PASSWORD),
        ],
    )
    .await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admin_signs_out_an_operators_other_sessions() {
    let app = TestApp::spawn().await;
    let admin = app.sign_in(Role::Admin).await;
    let email = "traveller@provider.test";
    app.add_operator(email, Role::Viewer).await;
    let (laptop, phone) = (browser(), browser());
    sign_in_as(&laptop, &app, email).await;
    sign_in_as(&phone, &app, email).await;
    let page = app.get(paths::OPERATORS).await.text().await.unwrap();
    assert!(page.contains("Sign out everywhere"), "{page}");

    let response = operator_action(&app.client, &app, paths::operator_sign_out, email, &[]).await;
    assert_eq!(
        location(response).await,
        format!("{}?done=signed-out", paths::OPERATORS)
    );
    assert!(!signed_in(&laptop, &app).await);
    assert!(!signed_in(&phone, &app).await);
    assert!(signed_in(&app.client, &app).await);

    // An admin signing themselves out elsewhere keeps the session they do it from.
    let elsewhere = browser();
    sign_in_as(&elsewhere, &app, &admin).await;
    let response = operator_action(&app.client, &app, paths::operator_sign_out, &admin, &[]).await;
    assert!(response.status().is_redirection());
    assert!(!signed_in(&elsewhere, &app).await);
    assert!(signed_in(&app.client, &app).await);
    assert_eq!(audit_count(&app, "operator.sessions_ended").await, 2);
}

#[tokio::test]
async fn last_admin_cannot_be_demoted_or_removed() {
    let app = TestApp::spawn().await;
    let admin = app.sign_in(Role::Admin).await;
    app.add_operator("viewer@provider.test", Role::Viewer).await;

    for (action, route, fields) in [
        (
            "role",
            paths::operator_role as fn(_) -> _,
            &[("role", "viewer")][..],
        ),
        ("remove", paths::remove_operator, &[][..]),
    ] {
        let response = operator_action(&app.client, &app, route, &admin, fields).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{action}");
        assert!(response.text().await.unwrap().contains("last admin"));
    }
    assert_eq!(
        app.get(paths::NEW_INVITATION).await.status(),
        StatusCode::OK
    );

    // With a second admin, the first may step down.
    let response = operator_action(
        &app.client,
        &app,
        paths::operator_role,
        "viewer@provider.test",
        &[("role", "admin")],
    )
    .await;
    assert!(response.status().is_redirection());
    let response = operator_action(
        &app.client,
        &app,
        paths::operator_role,
        &admin,
        &[("role", "viewer")],
    )
    .await;
    assert!(response.status().is_redirection());
    assert!(!signed_in(&app.client, &app).await);
}

#[tokio::test]
async fn csrf_token_changes_at_sign_in() {
    let app = TestApp::spawn().await;
    let email = "ops@provider.test";
    app.add_operator(email, Role::Admin).await;
    let operator = browser();
    let before = csrf_token(&operator, &app).await;
    let form = [
        ("email", email),
        ("password", crate::helpers::OPERATOR_PASSWORD),
        ("csrf_token", &before),
    ];
    let response = operator
        .post(app.url(paths::LOGIN))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(location(response).await, paths::INVITATIONS);
    let after = page_token(&operator, &app, paths::INVITATIONS).await;
    assert_ne!(before, after, "the CSRF token is rotated at sign-in");

    // The token from before signing in no longer works.
    let stale = operator
        .post(app.url(paths::LOGOUT))
        .form(&[("csrf_token", &before)])
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert!(signed_in(&operator, &app).await);
    let out = operator
        .post(app.url(paths::LOGOUT))
        .form(&[("csrf_token", &after)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(out).await, paths::LOGIN);
}

#[tokio::test]
async fn https_cookie_has_host_prefix() {
    let app = TestApp::spawn().await;
    // The same portal, configured for https (served on plain loopback: only the headers count).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = (*app.state.cfg).clone();
    cfg.public_url = parse_public_url("https://portal.example.com").unwrap();
    cfg.listen = listener.local_addr().unwrap();
    let https = Application::with_listener(cfg, app.db.clone(), listener).unwrap();
    let address = format!("http://127.0.0.1:{}", https.port());
    tokio::spawn(https.run_until_stopped());
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let set_cookie_header = |response: &reqwest::Response| {
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned()
    };

    let login = plain
        .get(format!("{address}{}", paths::LOGIN))
        .send()
        .await
        .unwrap();
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    let opened = plain
        .get(format!("{address}{}", app.path_of(&issued.link)))
        .send()
        .await
        .unwrap();
    for (cookie, name) in [
        (set_cookie_header(&login), "__Host-gangway_csrf="),
        (set_cookie_header(&opened), "__Host-gangway_session="),
    ] {
        assert!(cookie.starts_with(name), "{cookie}");
        for required in ["Secure", "HttpOnly", "Path=/"] {
            assert!(cookie.contains(required), "{cookie} lacks {required}");
        }
        assert!(!cookie.contains("Domain"), "{cookie}");
    }
}
