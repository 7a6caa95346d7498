//! What a new user stumbled on: the audit trail's actors, the page after success, signing in to
//! the page asked for, unknown addresses.

use gangway::operators::Role;
use gangway::web::paths;
use reqwest::StatusCode;
use uuid::Uuid;

use crate::helpers::{Decision, OPERATOR_PASSWORD, TestApp, location};
use crate::wizard::Customer;

/// (actor, action) of an invitation's audit events, oldest first.
async fn actors(app: &TestApp, invitation: Uuid) -> Vec<(String, String)> {
    sqlx::query_as(
        "select actor, action from audit_events where invitation_id = $1 order by at, id",
    )
    .bind(invitation)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_audit_trail_names_who_acted_not_the_invited_email() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    let member = tenant.member.clone().unwrap();
    // A tenant-wide grant lets Microsoft issue the member a code; Gangway then refuses them.
    crate::wizard::grant_tenant_wide(&app, &tenant).await;
    let issued = app.invite("delegated", &tenant.admin.username, None).await;
    let customer = Customer::open(&app, &issued.link).await;
    let (_, refused) = customer.consent(&app, &member, Decision::Accept).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let (_, done) = customer
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert!(done.status().is_success() || done.status().is_redirection());

    let trail = actors(&app, issued.invitation.id.into()).await;
    let by = |action: &str| -> Vec<String> {
        trail
            .iter()
            .filter(|(_, a)| a == action)
            .map(|(who, _)| who.clone())
            .collect()
    };
    assert_eq!(by("invitation.opened"), ["link-holder:127.0.0.1"]);
    assert!(
        by("consent.started")
            .iter()
            .all(|a| a == "link-holder:127.0.0.1")
    );
    let failed = by("consent.failed");
    assert_eq!(failed.len(), 1, "{trail:?}");
    assert!(
        failed[0].starts_with(&format!("customer:{} (", member.username)),
        "the refused member, verified, is named: {failed:?}"
    );
    let granted = by("consent.granted");
    assert!(
        granted[0].starts_with(&format!("customer:{} (", tenant.admin.username)),
        "{granted:?}"
    );
    let oid = granted[0].rsplit_once('(').unwrap().1.trim_end_matches(')');
    assert!(
        Uuid::parse_str(oid).is_ok(),
        "the object id is recorded: {oid}"
    );

    // The console shows them as people read them.
    app.sign_in(Role::Viewer).await;
    let page = app
        .get(&paths::invitation(issued.invitation.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("link holder") && page.contains("from 127.0.0.1"),
        "{page}"
    );
    assert!(page.contains(&member.username));
}

#[tokio::test]
async fn failed_operator_sign_ins_are_audited_with_the_address() {
    let app = TestApp::spawn().await;
    let refused = app
        .post_form(
            paths::LOGIN,
            &[("email", "nobody@provider.test"), ("password", "guess")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let (actor, detail): (String, serde_json::Value) = sqlx::query_as(
        "select actor, detail from audit_events where action = 'operator.sign_in_failed'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(actor, "anonymous:127.0.0.1");
    assert_eq!(detail["email"], "nobody@provider.test");
    assert!(detail.to_string().contains("wrong password"));
    assert!(
        !detail.to_string().contains("guess"),
        "the password is never kept"
    );
}

#[tokio::test]
async fn signing_in_returns_to_the_page_that_was_asked_for() {
    let app = TestApp::spawn().await;
    let email = "returning@provider.test";
    app.add_operator(email, Role::Viewer).await;
    let asked = format!("{}?q=contoso", paths::TENANTS);
    let to_login = location(app.get(&asked).await).await;
    let login_page = app.get(&to_login).await.text().await.unwrap();
    let next = crate::helpers::input_value(&login_page, "next").unwrap();
    assert_eq!(next, asked);
    let signed_in = app
        .post_form(
            paths::LOGIN,
            &[
                ("email", email),
                ("password", OPERATOR_PASSWORD),
                ("next", &next),
            ],
        )
        .await;
    assert_eq!(location(signed_in).await, asked);

    // Elsewhere is never a destination.
    let other = app.new_browser();
    let token = crate::helpers::csrf_token(&other, &app).await;
    let offsite = other
        .post(app.url(paths::LOGIN))
        .form(&[
            ("email", email),
            ("password", OPERATOR_PASSWORD),
            ("next", "//evil.example/console/"),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(offsite).await, paths::INVITATIONS);
}

#[tokio::test]
async fn after_consent_a_token_free_result_page_shows_the_real_outcome_on_refresh_and_back() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    let issued = app.invite("delegated", &tenant.admin.username, None).await;
    let customer = Customer::open(&app, &issued.link).await;
    let microsoft = customer.start(&app).await;
    let callback = crate::helpers::consent_at_microsoft(
        &customer.browser,
        &microsoft,
        &tenant.admin,
        Decision::Accept,
    )
    .await;
    // The callback is processed once, then redirects away from the code-bearing URL.
    let processed = customer.browser.get(callback.clone()).send().await.unwrap();
    assert_eq!(processed.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(processed).await, paths::WIZARD_RESULT);
    for _ in 0..2 {
        let refreshed = customer.get(&app, paths::WIZARD_RESULT).await;
        assert_eq!(refreshed.status(), StatusCode::OK);
        assert!(refreshed.text().await.unwrap().contains("is connected"));
    }
    // Back to the callback URL: the real outcome again, not "nothing was connected".
    let back = customer.back(&callback).await;
    assert_eq!(back.status(), StatusCode::OK);
    let page = back.text().await.unwrap();
    assert!(
        page.contains("is connected") && !page.contains("Nothing was connected"),
        "{page}"
    );

    // A refusal is shown again on refresh too, with its status.
    let fresh = app.customer(1).clone();
    let second = app.invite("delegated", &fresh.admin.username, None).await;
    let other = Customer::open(&app, &second.link).await;
    let (_, declined) = other.consent(&app, &fresh.admin, Decision::Decline).await;
    assert!(declined.url().path().ends_with(paths::WIZARD_RESULT));
    let again = other.get(&app, paths::WIZARD_RESULT).await;
    assert!(again.text().await.unwrap().contains("You declined"));
    // A browser with nothing finished is told to open its link.
    let stranger = app
        .new_browser()
        .get(app.url(paths::WIZARD_RESULT))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_addresses_get_a_page_or_problem_json_not_an_empty_404() {
    let app = TestApp::spawn().await;
    let page = app.get("/console/nowhere").await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Not found") && html.contains(paths::CONSOLE),
        "{html}"
    );

    let json = app
        .client
        .get(app.url("/api/v1/nowhere"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::NOT_FOUND);
    assert_eq!(json.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = json.json().await.unwrap();
    assert_eq!(body["status"], 404);
}

/// The granted scopes recorded for the tenant `entra_tenant_id`.
async fn granted(app: &TestApp, entra_tenant_id: &str) -> Vec<String> {
    sqlx::query_scalar("select granted_scopes from tenants where entra_tenant_id = $1")
        .bind(Uuid::parse_str(entra_tenant_id).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_tenant_page_shows_the_application_permissions_granted_not_default() {
    let app = TestApp::spawn().await;
    // Application consent.
    let tenant = app.customer(1).clone();
    let issued = app
        .invite("application", &tenant.admin.username, None)
        .await;
    let (_, response) = Customer::open(&app, &issued.link)
        .await
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut expected = gangway::types::permissions::application_scopes();
    expected.sort();
    assert_eq!(granted(&app, &tenant.id).await, expected);

    // A customer's own app.
    let case =
        crate::wizard::customer_app_case(&app, 0, crate::wizard::CUSTOMER_APP_PERMISSIONS, false)
            .await;
    let response = case
        .customer
        .submit_app(&app, &case.tenant.id, &case.registered)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut expected: Vec<String> = crate::wizard::CUSTOMER_APP_PERMISSIONS
        .iter()
        .map(|s| s.to_string())
        .collect();
    expected.sort();
    assert_eq!(granted(&app, &case.tenant.id).await, expected);

    app.sign_in(Role::Viewer).await;
    let id: Uuid = sqlx::query_scalar("select id from tenants where entra_tenant_id = $1")
        .bind(Uuid::parse_str(&case.tenant.id).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    let page = app
        .get(&paths::tenant(id.into()))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("User.Read.All") && !page.contains(".default"),
        "{page}"
    );
}

#[tokio::test]
async fn the_console_speaks_of_people_and_permissions_by_name_and_warns_of_a_missing_contact() {
    let app = TestApp::spawn().await;
    let email = app.sign_in(Role::Admin).await;

    // Who made a token or an endpoint is their address, not a stored actor code.
    app.post_form(
        paths::API_TOKENS,
        &[("name", "crm"), ("scope", "read"), ("valid_days", "90")],
    )
    .await;
    let tokens = app.get(paths::API_TOKENS).await.text().await.unwrap();
    assert!(
        tokens.contains(&format!("<td data-label=\"Owner\">{email}</td>"))
            && !tokens.contains("operator:"),
        "{tokens}"
    );

    // A new webhook endpoint starts with every event ticked.
    let webhooks = app.get(paths::WEBHOOKS).await.text().await.unwrap();
    assert!(
        webhooks.contains("name=\"events\" value=\"*\" checked"),
        "{webhooks}"
    );

    // A delegated consent's scopes read as names, as an application consent's roles do.
    let tenant = crate::sync_console::tenant(&app, "Contoso").await;
    sqlx::query(
        "update tenants set granted_scopes = '{https://graph.microsoft.com/User.Read.All,offline_access}'
         where id = $1",
    )
    .bind(tenant)
    .execute(&app.db)
    .await
    .unwrap();
    let page = app
        .get(&paths::tenant(tenant.into()))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<code>User.Read.All</code>") && !page.contains("graph.microsoft.com/User")
    );

    // The application-mode wizard explains the sign-in permission Microsoft's page adds.
    let issued = app
        .invite("application", "admin@contoso.example", None)
        .await;
    let wizard = Customer::open(&app, &issued.link).await.wizard(&app).await;
    assert!(wizard.contains("Sign in and read user profile"), "{wizard}");

    // Without a support contact the operator is told so; the customer is pointed at a person.
    let form = app.get(paths::NEW_INVITATION).await.text().await.unwrap();
    assert!(form.contains("No support contact is set"), "{form}");
    app.deliver_mail().await;
    let mail = app.mail.messages().pop().unwrap().text();
    assert!(
        mail.contains("Contact the person at Test Provider who invited you")
            && !mail.contains("(your contact there)"),
        "{mail}"
    );
}
