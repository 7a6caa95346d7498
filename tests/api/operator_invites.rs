//! Admins invite operators from the console: the link goes out by real SMTP, sets a password
//! once, and the last admin is never offered for removal.

use gangway::operators::Role;
use gangway::web::paths;
use reqwest::StatusCode;
use url::Url;

use crate::helpers::{TestApp, browser, input_value, location, post_with_csrf};

/// The join link in an operator's mail.
fn join_link(text: &str) -> Url {
    let at = text
        .find("/console/join?token=")
        .expect("the mail carries a link");
    let start = text[..at].rfind("http").unwrap();
    let end = at
        + text[at..]
            .find(char::is_whitespace)
            .unwrap_or(text.len() - at);
    Url::parse(&text[start..end]).unwrap()
}

async fn text(response: reqwest::Response) -> String {
    response.text().await.unwrap()
}

#[tokio::test]
async fn an_invited_operator_sets_a_password_once_by_the_mailed_link_and_signs_in() {
    let app = TestApp::spawn().await;
    let admin = app.sign_in(Role::Admin).await;
    let invited = app
        .post_form(
            paths::OPERATOR_INVITE,
            &[("email", "new.viewer@provider.test"), ("role", "viewer")],
        )
        .await;
    let to = location(invited).await;
    let page = text(app.get(&to).await).await;
    let shown = input_value(&page, "operator_link").expect("the link is shown once");
    assert!(page.contains("Invited, not joined yet") && page.contains("new.viewer@provider.test"));
    assert!(
        input_value(&text(app.get(&to).await).await, "operator_link").is_none(),
        "a reload shows the link no more"
    );

    // The mail goes out over SMTP and carries the same link.
    assert_eq!(app.deliver_mail().await.sent, 1);
    let mail = app.mail.messages().pop().unwrap();
    assert!(mail.to[0].contains("new.viewer@provider.test"));
    let link = join_link(&mail.text());
    assert_eq!(link.as_str(), shown);
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from operator_invitations where position($1 in encode(token_sha256, 'escape')) > 0",
    )
    .bind(link.query_pairs().next().unwrap().1.to_string())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(stored, 0, "only the token's hash is kept");

    // The invitee opens it: the token leaves the address at once.
    let invitee = browser();
    let opened = invitee.get(link.as_str()).send().await.unwrap();
    assert_eq!(location(opened).await, paths::OPERATOR_JOIN);
    let form = text(
        invitee
            .get(app.url(paths::OPERATOR_JOIN))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        form.contains("as <strong>viewer</strong>") && form.contains("new.viewer@provider.test")
    );

    // Too short, or typed differently: refused, the link still good.
    let short = post_with_csrf(
        &invitee,
        &app,
        paths::OPERATOR_JOIN,
        &[("password", "short"), ("confirm", "short")],
    )
    .await;
    assert_eq!(short.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(short).await.contains("at least 12 characters"));
    let differ = post_with_csrf(
        &invitee,
        &app,
        paths::OPERATOR_JOIN,
        &[
            ("password", "correct horse battery"),
            ("confirm", "correct horse staple"),
        ],
    )
    .await;
    assert_eq!(differ.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let joined = post_with_csrf(
        &invitee,
        &app,
        paths::OPERATOR_JOIN,
        &[
            ("password", "correct horse battery"),
            ("confirm", "correct horse battery"),
        ],
    )
    .await;
    let login = location(joined).await;
    assert!(login.starts_with(paths::LOGIN), "{login}");
    let login_page = text(invitee.get(app.url(&login)).send().await.unwrap()).await;
    assert!(login_page.contains("Your account is ready"));
    let signed_in = post_with_csrf(
        &invitee,
        &app,
        paths::LOGIN,
        &[
            ("email", "new.viewer@provider.test"),
            ("password", "correct horse battery"),
        ],
    )
    .await;
    assert!(signed_in.status().is_redirection());
    assert_eq!(
        invitee
            .get(app.url(paths::OPERATORS))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN,
        "invited as viewer, a viewer"
    );

    // The link works once.
    let again = browser();
    again.get(link.as_str()).send().await.unwrap();
    let used = again
        .get(app.url(paths::OPERATOR_JOIN))
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), StatusCode::NOT_FOUND);
    assert!(text(used).await.contains("not valid any more"));

    let audit: String =
        sqlx::query_scalar("select actor from audit_events where action = 'operator.invited'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(audit.contains(&admin));
}

#[tokio::test]
async fn an_expired_link_or_a_taken_address_is_refused_with_a_message() {
    let app = TestApp::spawn().await;
    let admin = app.sign_in(Role::Admin).await;
    let taken = app
        .post_form(
            paths::OPERATOR_INVITE,
            &[("email", &admin), ("role", "admin")],
        )
        .await;
    assert_eq!(taken.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = text(taken).await;
    assert!(page.contains("already is an operator") && page.contains("Operators</h1>"));
    let junk = app
        .post_form(
            paths::OPERATOR_INVITE,
            &[("email", "not an address"), ("role", "admin")],
        )
        .await;
    assert_eq!(junk.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(junk).await.contains("is not one"),
        "in the console's layout"
    );

    app.post_form(
        paths::OPERATOR_INVITE,
        &[("email", "late@provider.test"), ("role", "admin")],
    )
    .await;
    app.deliver_mail().await;
    let link = join_link(&app.mail.messages().pop().unwrap().text());
    sqlx::query("update operator_invitations set expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    let invitee = browser();
    invitee.get(link.as_str()).send().await.unwrap();
    let refused = post_with_csrf(
        &invitee,
        &app,
        paths::OPERATOR_JOIN,
        &[
            ("password", "correct horse battery"),
            ("confirm", "correct horse battery"),
        ],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(refused).await.contains("expired"));
    let operators: i64 =
        sqlx::query_scalar("select count(*) from operators where email = 'late@provider.test'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(operators, 0);
}

#[tokio::test]
async fn the_only_admin_is_offered_neither_removal_nor_demotion_and_says_why() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let page = text(app.get(paths::OPERATORS).await).await;
    assert!(page.contains("Not removable: the only admin"), "{page}");
    assert!(!page.contains(">Remove<") && !page.contains("aria-label=\"Role of"));
    // With a second admin, both can be removed or demoted.
    app.add_operator("second@provider.test", Role::Admin).await;
    let page = text(app.get(paths::OPERATORS).await).await;
    assert_eq!(page.matches(">Remove<").count(), 2);
    assert!(!page.contains("the only admin"));
}
