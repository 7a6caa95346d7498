//! The operator console through HTTP, as an operator sees it: signing in, invitations (list,
//! create, detail, resend, revoke), tenants, the audit log, and the shared list behaviour.

use gangway::audit::Actor;
use gangway::invitations::{self, NewInvitation};
use gangway::operators::Role;
use gangway::tenants::{self, Consent};
use gangway::types::Secret;
use gangway::web::paths;
use reqwest::StatusCode;
use uuid::Uuid;

use crate::customers::tag_with_id;
use crate::helpers::{
    Decision, OPERATOR_PASSWORD, Setup, TestApp, browser, consent, csrf_token, input_value,
    location,
};
use crate::wizard::Customer;

/// The form a valid invitation is created with.
fn valid_form<'a>() -> Vec<(&'a str, &'a str)> {
    vec![
        ("customer_name", "Fabrikam Inc"),
        ("admin_email", "admin@fabrikam.example"),
        ("mode", "application"),
        ("tenant_domain", ""),
        ("valid_for", "3d"),
    ]
}

async fn invitation_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from invitations")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Creates `count` invitations through the domain, named `Customer 00`… with their own domains.
async fn create_many(app: &TestApp, count: usize) -> Vec<invitations::Issued> {
    let mut issued = Vec::new();
    for i in 0..count {
        let new = NewInvitation::parse(
            &format!("Customer {i:02}"),
            &format!("admin{i}@customer{i}.example"),
            "delegated",
            None,
            Some("7d"),
        )
        .unwrap();
        issued.push(
            invitations::create(
                &app.db,
                app.state
                    .invitation_context(&app.state.live().await.unwrap()),
                &new,
                &Actor::Cli,
                None,
            )
            .await
            .unwrap(),
        );
    }
    issued
}

async fn body(response: reqwest::Response) -> String {
    response.text().await.unwrap()
}

/// The session id a response sets, if any.
fn session_cookie(response: &reqwest::Response) -> Option<String> {
    crate::helpers::set_cookie(response, "gangway_session")
}

/// `html` with the entities askama writes for `&` and `'` decoded, for asserting on text.
fn decoded(html: &str) -> String {
    html.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
}

#[tokio::test]
async fn operators_sign_in_and_a_wrong_password_gets_401_and_no_session() {
    let app = TestApp::spawn().await;
    let email = "ops@provider.test";
    app.add_operator(email, Role::Admin).await;

    let login = app.get(paths::LOGIN).await;
    assert_eq!(login.status(), StatusCode::OK);
    let page = body(login).await;
    assert!(page.contains("Sign in to the console") && page.contains("Test Provider"));

    let wrong = app
        .post_form(
            paths::LOGIN,
            &[("email", email), ("password", "not the password")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let page = body(wrong).await;
    assert!(page.contains("Email or password is incorrect"), "{page}");
    assert_eq!(
        input_value(&page, "email").as_deref(),
        Some(email),
        "the email is kept"
    );
    assert!(
        location(app.get(paths::INVITATIONS).await)
            .await
            .starts_with(paths::LOGIN),
        "no session after a failure"
    );

    let unknown = app
        .post_form(
            paths::LOGIN,
            &[("email", "nobody@provider.test"), ("password", "whatever")],
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);

    let ok = app
        .post_form(
            paths::LOGIN,
            &[("email", email), ("password", OPERATOR_PASSWORD)],
        )
        .await;
    assert_eq!(location(ok).await, paths::INVITATIONS);
    let home = app.get(paths::INVITATIONS).await;
    assert_eq!(home.status(), StatusCode::OK);
    let page = body(home).await;
    assert!(
        page.contains(email) && page.contains("<h1>Invitations</h1>") && page.contains("Sign out")
    );

    // A browser with a session (here: from an earlier sign-in): the session id it had before
    // signing in is not the one it has after.
    let fresh = browser();
    let token = csrf_token(&fresh, &app).await;
    let form = [
        ("email", email),
        ("password", OPERATOR_PASSWORD),
        ("csrf_token", &token),
    ];
    let first = fresh
        .post(app.url(paths::LOGIN))
        .form(&form)
        .send()
        .await
        .unwrap();
    let before = session_cookie(&first).expect("signing in sets the session cookie");
    let token = csrf_token(&fresh, &app).await;
    let form = [
        ("email", email),
        ("password", OPERATOR_PASSWORD),
        ("csrf_token", &token),
    ];
    let signed_in = fresh
        .post(app.url(paths::LOGIN))
        .form(&form)
        .send()
        .await
        .unwrap();
    let after = session_cookie(&signed_in).expect("signing in sets the session cookie");
    assert_ne!(before, after, "the session id is cycled at sign-in");

    let out = app.post_form(paths::LOGOUT, &[]).await;
    assert_eq!(location(out).await, paths::LOGIN);
    assert!(
        location(app.get(paths::INVITATIONS).await)
            .await
            .starts_with(paths::LOGIN),
        "signed out for good"
    );
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_sign_in() {
    let app = TestApp::spawn().await;
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    let detail = paths::invitation(issued.invitation.id);
    for path in ["/", paths::CONSOLE] {
        assert_eq!(
            location(app.get(path).await).await,
            paths::INVITATIONS,
            "{path}"
        );
    }
    for path in [
        paths::INVITATIONS,
        paths::NEW_INVITATION,
        &detail,
        paths::TENANTS,
        paths::AUDIT,
    ] {
        // Sent to sign in, with the page asked for to come back to.
        let to = location(app.get(path).await).await;
        let expected = format!(
            "{}?{}",
            paths::LOGIN,
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", path)
                .finish()
        );
        assert_eq!(to, expected, "{path}");
    }
    let create = app.post_form(paths::NEW_INVITATION, &valid_form()).await;
    assert_eq!(location(create).await, paths::LOGIN);
    let revoke = app
        .post_form(&paths::revoke_invitation(issued.invitation.id), &[])
        .await;
    assert_eq!(location(revoke).await, paths::LOGIN);
    assert_eq!(invitation_count(&app).await, 1);
    assert_eq!(
        invitations::get(&app.db, issued.invitation.id)
            .await
            .unwrap()
            .status,
        invitations::InvitationStatus::Pending
    );
}

#[tokio::test]
async fn viewers_may_look_but_see_no_buttons_and_cannot_act() {
    let app = TestApp::spawn().await;
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    let id = issued.invitation.id;
    app.sign_in(Role::Viewer).await;

    let list = body(app.get(paths::INVITATIONS).await).await;
    assert!(list.contains("Contoso Ltd"), "viewers see the list");
    assert!(
        !list.contains(&format!("href=\"{}\"", paths::NEW_INVITATION)),
        "no New invitation button"
    );
    let detail = body(app.get(&paths::invitation(id)).await).await;
    assert!(detail.contains("admin@contoso.example"));
    assert!(
        !detail.contains(&paths::resend_invitation(id)),
        "no Resend button"
    );
    assert!(
        !detail.contains(&paths::revoke_invitation(id)),
        "no Revoke button"
    );

    assert_eq!(
        app.get(paths::NEW_INVITATION).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post_form(paths::NEW_INVITATION, &valid_form())
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let revoke = app.post_form(&paths::revoke_invitation(id), &[]).await;
    assert_eq!(revoke.status(), StatusCode::FORBIDDEN);
    let resend = app.post_form(&paths::resend_invitation(id), &[]).await;
    assert_eq!(resend.status(), StatusCode::FORBIDDEN);

    assert_eq!(invitation_count(&app).await, 1);
    assert_eq!(
        invitations::get(&app.db, id).await.unwrap().status,
        invitations::InvitationStatus::Pending
    );
    // The old link still works: nothing was resent or revoked.
    let opened = browser()
        .get(app.url(&app.path_of(&issued.link)))
        .send()
        .await
        .unwrap();
    assert_eq!(location(opened).await, paths::WIZARD);
}

#[tokio::test]
async fn invalid_input_is_shown_next_to_its_field_and_all_input_is_kept() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let form = app.get(paths::NEW_INVITATION).await;
    assert_eq!(form.status(), StatusCode::OK);
    let page = body(form).await;
    assert!(
        page.contains("value=\"7d\" selected"),
        "7 days is the default validity"
    );
    assert!(
        decoded(&page).contains("Customer's own app"),
        "every mode is explained"
    );

    let response = app
        .post_form(
            paths::NEW_INVITATION,
            &[
                ("customer_name", "Fabrikam <Europe>"),
                ("admin_email", "not-an-email"),
                ("mode", "sideways"),
                ("tenant_domain", "fabrikam.example"),
                ("valid_for", "14d"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = body(response).await;
    assert!(
        page.contains("id=\"admin_email-error\"") && page.contains("is not an email address"),
        "{page}"
    );
    assert!(page.contains("id=\"mode-error\""), "{page}");
    assert!(
        !page.contains("id=\"customer_name-error\"")
            && !page.contains("id=\"tenant_domain-error\"")
    );
    assert!(!page.contains("<Europe>"), "input is escaped");
    assert_eq!(
        input_value(&page, "customer_name")
            .map(|v| decoded(&v))
            .as_deref(),
        Some("Fabrikam <Europe>")
    );
    assert_eq!(
        input_value(&page, "admin_email").as_deref(),
        Some("not-an-email")
    );
    assert_eq!(
        input_value(&page, "tenant_domain").as_deref(),
        Some("fabrikam.example")
    );
    assert!(
        page.contains("value=\"14d\" selected"),
        "the chosen validity is kept"
    );

    let mut bad_domain = valid_form();
    bad_domain[3] = ("tenant_domain", "not a domain");
    bad_domain[0] = ("customer_name", "  ");
    let response = app.post_form(paths::NEW_INVITATION, &bad_domain).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = body(response).await;
    assert!(
        page.contains("id=\"tenant_domain-error\"") && page.contains("id=\"customer_name-error\"")
    );
    assert!(
        page.contains("value=\"application\" checked"),
        "the chosen mode is kept"
    );
    assert_eq!(invitation_count(&app).await, 0);
}

#[tokio::test]
async fn a_created_invitation_shows_its_link_once_and_the_link_opens_the_wizard() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let created = app.post_form(paths::NEW_INVITATION, &valid_form()).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER, "post/redirect/get");
    let to = location(created).await;
    assert!(
        !to.contains("token"),
        "the link is not in the redirect: {to}"
    );
    let response = app.get(&to).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let page = body(response).await;
    let link = input_value(&page, "invitation_link").expect("the link is shown");
    assert!(link.starts_with(&app.url("/authenticate?token=")), "{link}");
    assert!(page.contains("data-copy=\"#invitation-link\""));
    assert!(page.contains("shown only now"));
    assert!(page.contains("on its way to <strong>admin@fabrikam.example</strong>"));

    let customer = browser();
    let opened = customer.get(&link).send().await.unwrap();
    assert_eq!(location(opened).await, paths::WIZARD);

    assert_eq!(app.deliver_mail().await.sent, 1);
    let mails = app.mail.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].link().as_str(),
        link,
        "the mail carries the same link"
    );

    let list = body(app.get(paths::INVITATIONS).await).await;
    assert!(
        list.contains("Fabrikam Inc")
            && list.contains(&gangway::format::breakable("admin@fabrikam.example"))
    );
    assert!(list.contains("Application (admin consent)"));
    assert!(list.contains("badge opened") || list.contains("badge pending"));
    assert!(!list.contains(&link), "the link is never shown again");

    // Reloading the page that showed the link repeats nothing and shows it no more.
    let reloaded = app.get(&to).await;
    let detail = location(reloaded).await;
    assert!(
        detail.starts_with(&paths::invitation(invitation_id(&app).await.into())),
        "{detail}"
    );
    let detail = body(app.get(&detail).await).await;
    assert!(
        !detail.contains(&link),
        "the link is not shown a second time"
    );
    assert!(detail.contains("shown once"), "{detail}");
    assert_eq!(invitation_count(&app).await, 1, "no second invitation");
    assert_eq!(app.deliver_mail().await.sent, 0, "no second mail");
    let still = browser().get(&link).send().await.unwrap();
    assert_eq!(location(still).await, paths::WIZARD, "the link still works");
}

/// The id of the only invitation.
async fn invitation_id(app: &TestApp) -> Uuid {
    sqlx::query_scalar("select id from invitations")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn without_a_mail_server_the_operator_is_told_to_send_the_link() {
    let app = TestApp::spawn_with(Setup {
        smtp: false,
        ..Setup::default()
    })
    .await;
    app.sign_in(Role::Admin).await;
    let response = app
        .post_and_follow(paths::NEW_INVITATION, &valid_form())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = body(response).await;
    assert!(page.contains("No mail server is configured"), "{page}");
    assert!(!page.contains("on its way"));
}

#[tokio::test]
async fn the_list_filters_searches_and_pages() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;

    let empty = body(app.get(paths::INVITATIONS).await).await;
    assert!(empty.contains("No invitations yet — create the first one"));

    let issued = create_many(&app, 30).await;
    // The three oldest are revoked and one of the newest has expired: closed invitations sort
    // after the open ones, newest first among themselves.
    for i in &issued[..3] {
        invitations::revoke(&app.db, i.invitation.id, &Actor::Cli)
            .await
            .unwrap();
    }
    sqlx::query("update invitations set expires_at = now() - interval '1 minute' where id = $1")
        .bind(issued[28].invitation.id)
        .execute(&app.db)
        .await
        .unwrap();

    let first = body(app.get(paths::INVITATIONS).await).await;
    assert!(first.contains("Showing 1–25 of 30"), "{first}");
    assert!(first.contains(&format!("href=\"{}?page=2\"", paths::INVITATIONS)));
    assert!(
        !first.contains("badge revoked") && !first.contains("badge expired"),
        "open invitations come first"
    );
    assert!(first.contains("Customer 29") && !first.contains("Customer 28"));
    assert!(first.contains("Customer 04") && !first.contains("Customer 03"));
    let second = body(app.get(&format!("{}?page=2", paths::INVITATIONS)).await).await;
    assert!(second.contains("Showing 26–30 of 30"));
    let order: Vec<usize> = ["Customer 03", "Customer 28", "Customer 02", "Customer 00"]
        .iter()
        .map(|name| {
            second
                .find(name)
                .unwrap_or_else(|| panic!("{name} on page 2"))
        })
        .collect();
    assert!(
        order.is_sorted(),
        "the last open one, then the expired and the revoked ones newest first"
    );
    assert!(second.contains("badge revoked") && second.contains("badge expired"));
    assert!(
        second.contains(&format!("href=\"{}\"", paths::INVITATIONS)),
        "a link back to page 1"
    );

    let revoked = body(
        app.get(&format!("{}?status=revoked", paths::INVITATIONS))
            .await,
    )
    .await;
    assert!(revoked.contains("Showing 1–3 of 3"));
    assert!(
        revoked.contains("<option value=\"revoked\" selected>"),
        "the filter is kept"
    );
    assert!(!revoked.contains("badge pending"));

    let pending = body(
        app.get(&format!("{}?status=pending", paths::INVITATIONS))
            .await,
    )
    .await;
    assert!(
        pending.contains("Showing 1–25 of 26"),
        "the expired one is not pending"
    );
    assert!(
        decoded(&pending).contains("?status=pending&page=2"),
        "next keeps the filter: {}",
        &pending[pending.find("class=\"pager\"").unwrap()..]
    );

    let search = body(
        app.get(&format!("{}?q=customer7.example", paths::INVITATIONS))
            .await,
    )
    .await;
    assert!(
        search.contains("Showing 1–1 of 1")
            && search.contains(&gangway::format::breakable("admin7@customer7.example"))
    );
    assert!(
        search.contains("value=\"customer7.example\""),
        "the search is kept"
    );
    let by_name = body(
        app.get(&format!("{}?q=customer+1", paths::INVITATIONS))
            .await,
    )
    .await;
    assert!(by_name.contains("of 10"), "Customer 10–19");

    let nothing = body(
        app.get(&format!("{}?q=zzz-nothing", paths::INVITATIONS))
            .await,
    )
    .await;
    assert!(nothing.contains("No invitations match these filters"));
    assert!(!nothing.contains("No invitations yet"));

    let junk = app
        .get(&format!("{}?page=abc&status=bogus", paths::INVITATIONS))
        .await;
    assert_eq!(
        junk.status(),
        StatusCode::OK,
        "junk parameters mean defaults, not an error"
    );
}

#[tokio::test]
async fn resend_gives_a_new_link_and_the_old_one_stops_working() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    let id = issued.invitation.id;

    let detail = body(app.get(&paths::invitation(id)).await).await;
    assert!(
        detail.contains(&paths::resend_invitation(id)),
        "admins see Resend"
    );

    let resent = app.post_form(&paths::resend_invitation(id), &[]).await;
    let to = location(resent).await;
    let response = app.get(&to).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let page = body(response).await;
    let fresh = input_value(&page, "invitation_link").expect("the new link is shown");
    assert_ne!(fresh, issued.link.as_str());
    assert!(page.contains("previous link no longer works"));
    // A reload mints no further link: the one just shown keeps working.
    let reloaded = app.get(&to).await;
    assert!(reloaded.status().is_redirection());
    let again = body(app.get(&location(reloaded).await).await).await;
    assert!(
        !again.contains(&fresh),
        "the link is not shown a second time"
    );

    let old = browser().get(issued.link.as_str()).send().await.unwrap();
    assert_eq!(
        old.status(),
        StatusCode::NOT_FOUND,
        "the old link is unknown now"
    );
    let old_page = body(old).await;
    assert!(
        old_page.contains("not valid") || old_page.contains("replaced"),
        "{old_page}"
    );
    let new = browser().get(&fresh).send().await.unwrap();
    assert_eq!(location(new).await, paths::WIZARD);

    let timeline = body(app.get(&paths::invitation(id)).await).await;
    assert!(timeline.contains("invitation.resent"));
}

#[tokio::test]
async fn revoke_closes_the_link_for_good() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    let id = issued.invitation.id;
    let revoke_path = paths::revoke_invitation(id);

    let detail = body(app.get(&paths::invitation(id)).await).await;
    assert!(
        detail.contains(&revoke_path) && detail.contains("data-confirm"),
        "admins see a confirmed Revoke"
    );

    let response = app.post_form(&revoke_path, &[]).await;
    let target = location(response).await;
    assert_eq!(target, format!("{}?done=revoked", paths::invitation(id)));
    let page = body(app.get(&target).await).await;
    assert!(page.contains("Invitation revoked") && page.contains("badge revoked"));
    assert!(!page.contains(&revoke_path), "nothing left to revoke");

    let link = browser().get(issued.link.as_str()).send().await.unwrap();
    assert_eq!(link.status(), StatusCode::GONE);
    let link_page = body(link).await.to_lowercase();
    assert!(
        link_page.contains("withdr") || link_page.contains("revoked"),
        "{link_page}"
    );

    let again = app.post_form(&revoke_path, &[]).await;
    assert_eq!(
        again.status(),
        StatusCode::BAD_REQUEST,
        "a clear page, not a 500"
    );
    assert!(body(again).await.contains("revoked"));
    let resend = app.post_form(&paths::resend_invitation(id), &[]).await;
    assert_eq!(resend.status(), StatusCode::BAD_REQUEST);
    let missing = app
        .post_form(&paths::revoke_invitation(Uuid::new_v4().into()), &[])
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn posts_without_the_csrf_token_are_refused() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let response = app
        .client
        .post(app.url(paths::NEW_INVITATION))
        .form(&valid_form())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let mut forged = valid_form();
    forged.push(("csrf_token", "forged"));
    let response = app
        .client
        .post(app.url(paths::NEW_INVITATION))
        .form(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(invitation_count(&app).await, 0);

    // Another browser's token is no good either.
    let other = browser();
    let token = csrf_token(&other, &app).await;
    let mut foreign = valid_form();
    foreign.push(("csrf_token", &token));
    let response = app
        .client
        .post(app.url(paths::NEW_INVITATION))
        .form(&foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let logout = app
        .client
        .post(app.url(paths::LOGOUT))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(paths::INVITATIONS).await.status(),
        StatusCode::OK,
        "still signed in"
    );
}

#[tokio::test]
async fn the_detail_shows_facts_mail_state_and_timeline() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let issued = app
        .invite(
            "customer-app",
            "admin@contoso.example",
            Some("contoso.example"),
        )
        .await;
    let path = paths::invitation(issued.invitation.id);

    let queued = body(app.get(&path).await).await;
    assert!(decoded(&queued).contains("Customer's own app"), "{queued}");
    assert!(queued.contains("contoso.example") && queued.contains("badge pending"));
    assert!(queued.contains("Queued") && queued.contains("Invitation created"));
    assert!(
        !queued.contains(issued.link.as_str()),
        "the link is never shown again"
    );

    app.deliver_mail().await;
    let sent = body(app.get(&path).await).await;
    assert!(sent.contains("Sent") && sent.contains("Invitation email delivered"));

    assert_eq!(
        app.get(&paths::invitation(Uuid::new_v4().into()))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/console/invitations/not-a-uuid").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn tenants_appear_once_consented_and_never_show_credentials() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Viewer).await;
    let empty = body(app.get(paths::TENANTS).await).await;
    assert!(
        empty.contains("No tenants yet") && empty.contains("when a customer"),
        "{empty}"
    );

    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    let entra_id = Uuid::new_v4();
    let oid = Uuid::new_v4();
    let consent = Consent {
        display_name: "Contoso Europe".into(),
        verified_domains: vec!["contoso.example".into(), "contoso-eu.example".into()],
        consented_by_oid: Some(oid),
        credential: Some(Secret::new("refresh-token-that-must-stay-hidden")),
        ..consent(entra_id)
    };
    let tenant_id = tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        issued.invitation.id,
        &consent,
        &gangway::audit::Actor::System,
    )
    .await
    .unwrap();

    let list = body(app.get(paths::TENANTS).await).await;
    assert!(list.contains("Contoso Europe") && list.contains(&entra_id.to_string()));
    assert!(list.contains("contoso.example, contoso-eu.example") && list.contains("badge active"));
    assert!(list.contains("data-copy=") && list.contains("Showing 1–1 of 1"));
    let search = body(app.get(&format!("{}?q=contoso-eu", paths::TENANTS)).await).await;
    assert!(search.contains("Contoso Europe"));
    let none = body(app.get(&format!("{}?q=fabrikam", paths::TENANTS)).await).await;
    assert!(none.contains("No tenants match"));

    let detail = body(app.get(&paths::tenant(tenant_id.into())).await).await;
    for expected in [
        "Contoso Europe",
        "User.Read.All",
        "Group.Read.All",
        "admin@contoso.example",
        "Consent granted",
    ] {
        assert!(detail.contains(expected), "{expected} in {detail}");
    }
    assert!(detail.contains(&oid.to_string()) && detail.contains(&entra_id.to_string()));
    assert!(
        !detail.contains("refresh-token-that-must-stay-hidden") && !list.contains("refresh-token")
    );

    let invitation = body(app.get(&paths::invitation(issued.invitation.id)).await).await;
    assert!(
        invitation.contains(&paths::tenant(tenant_id.into())),
        "the invitation links its tenant"
    );
    assert!(invitation.contains("badge consented"));
    assert_eq!(
        app.get(&paths::tenant(Uuid::new_v4().into()))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_audit_log_lists_what_operators_did() {
    let app = TestApp::spawn().await;
    let email = app.sign_in(Role::Admin).await;
    let page = body(
        app.post_and_follow(paths::NEW_INVITATION, &valid_form())
            .await,
    )
    .await;
    assert!(page.contains("Invitation created for Fabrikam Inc"));
    let id: Uuid = sqlx::query_scalar("select id from invitations")
        .fetch_one(&app.db)
        .await
        .unwrap();
    app.post_form(&paths::revoke_invitation(id.into()), &[])
        .await;

    let log = body(app.get(paths::AUDIT).await).await;
    for expected in [
        "operator.signed_in",
        "invitation.created",
        "invitation.revoked",
        email.as_str(),
    ] {
        assert!(log.contains(expected), "{expected} in {log}");
    }
    assert!(
        log.contains(&paths::invitation(id.into())),
        "events link their invitation"
    );
    let revoked_at = log.find("invitation.revoked").unwrap();
    assert!(
        revoked_at < log.find("invitation.created").unwrap(),
        "newest first"
    );

    let search = body(app.get(&format!("{}?q=revoked", paths::AUDIT)).await).await;
    assert!(search.contains("invitation.revoked") && !search.contains("invitation.created"));
    assert!(search.contains("Showing 1–1 of 1"));
    let none = body(app.get(&format!("{}?q=zzz-nothing", paths::AUDIT)).await).await;
    assert!(none.contains("No events match"));
}

#[tokio::test]
async fn the_audit_log_names_customers_and_tenants_and_labels_its_details() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Viewer).await;
    let issued = app
        .invite(
            "delegated",
            "admin@contoso.example",
            Some("contoso.example"),
        )
        .await;
    let tenant = tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        issued.invitation.id,
        &consent(Uuid::new_v4()),
        &Actor::System,
    )
    .await
    .unwrap();

    let log = body(app.get(paths::AUDIT).await).await;
    assert!(
        log.contains("Invitation for Contoso Ltd (admin@<wbr>contoso<wbr>.example)</a>"),
        "{log}"
    );
    assert!(log.contains("Tenant Contoso</a>"), "{log}");
    // Ids stay within reach, on hover.
    let short = &tenant.simple().to_string()[..8];
    assert!(log.contains(&format!("title=\"Tenant {short}\"")), "{log}");
    assert!(
        log.contains("Tenant domain: contoso.example") && !log.contains("tenant_domain:"),
        "{log}"
    );
}

#[tokio::test]
async fn addresses_in_narrow_cells_wrap_at_their_at_sign_and_dots_not_mid_word() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Viewer).await;
    let issued = app
        .invite("delegated", "admin@fabrikam308a.onmicrosoft.com", None)
        .await;
    let wrapped = "admin@<wbr>fabrikam308a<wbr>.onmicrosoft<wbr>.com";
    for page in [
        paths::INVITATIONS.to_owned(),
        paths::invitation(issued.invitation.id),
        paths::customer(issued.invitation.customer_id),
        paths::AUDIT.to_owned(),
    ] {
        let html = body(app.get(&page).await).await;
        assert!(html.contains(wrapped), "{page}: {html}");
    }

    // A synced directory's users and a group's members: their UPN and mail alike.
    let tenant = crate::sync_console::tenant(&app, "Fabrikam").await;
    let upn = "adele.vance@fabrikam308a.onmicrosoft.com";
    let user = crate::sync_console::user(&app, tenant, "Adele Vance", upn, Some(upn), false).await;
    let group = crate::sync_console::group(&app, tenant, "Sales", Some(upn)).await;
    crate::sync_console::member(&app, tenant, group, user, "user").await;
    let wrapped = "adele<wbr>.vance@<wbr>fabrikam308a<wbr>.onmicrosoft<wbr>.com";
    for page in [
        paths::tenant_users(tenant.into()),
        paths::tenant_group(tenant.into(), group),
    ] {
        let html = body(app.get(&page).await).await;
        assert!(!html.contains(upn), "{page}: {html}");
        assert!(html.contains(wrapped), "{page}: {html}");
    }
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_client() {
    let app = TestApp::spawn_with(Setup {
        sign_in_rate: gangway::config::RateLimit {
            burst: 3,
            period: std::time::Duration::from_secs(3600),
        },
        ..Setup::default()
    })
    .await;
    app.add_operator("ops@provider.test", Role::Admin).await;
    for _ in 0..3 {
        let response = app
            .post_form(
                paths::LOGIN,
                &[
                    ("email", "ops@provider.test"),
                    ("password", "guess guess guess"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Out of attempts: even the right password waits.
    let response = app
        .post_form(
            paths::LOGIN,
            &[
                ("email", "ops@provider.test"),
                ("password", OPERATOR_PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0);
    assert!(response.text().await.unwrap().contains("Too many attempts"));
    assert!(
        app.get(paths::INVITATIONS).await.status().is_redirection(),
        "still signed out"
    );
}

#[tokio::test]
async fn offboarding_erases_the_credential_and_lets_another_customer_connect_the_tenant() {
    let app = TestApp::spawn().await;
    let entra_id = Uuid::new_v4();
    let first = app.invite("delegated", "admin@contoso.example", None).await;
    let tenant_id = tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        first.invitation.id,
        &consent(entra_id),
        &gangway::audit::Actor::System,
    )
    .await
    .unwrap();
    // Another customer's invitation for the same directory is refused until an operator decides.
    let second = app
        .invite_for("Fabrikam Inc", "delegated", "admin@contoso.example", None)
        .await;
    let refused = tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        second.invitation.id,
        &consent(entra_id),
        &gangway::audit::Actor::System,
    )
    .await;
    assert!(
        matches!(refused, Err(tenants::ConsentError::OwnedByAnother { .. })),
        "{refused:?}"
    );

    let detail = paths::tenant(tenant_id.into());
    let offboard = paths::offboard_tenant(tenant_id.into());
    app.sign_in(Role::Viewer).await;
    assert!(
        !body(app.get(&detail).await)
            .await
            .contains("Offboard tenant"),
        "viewers see no button"
    );
    assert_eq!(
        app.post_form(&offboard, &[]).await.status(),
        StatusCode::FORBIDDEN
    );

    app.sign_in(Role::Admin).await;
    let page = body(app.get(&detail).await).await;
    assert!(page.contains("Offboard tenant"));
    let title = &page[..page.find("</title>").unwrap()];
    assert!(
        title.ends_with("<title>Contoso · Tenant · Gangway"),
        "the title is plain text: {title}"
    );
    let to = location(app.post_form(&offboard, &[]).await).await;
    assert_eq!(to, format!("{detail}?done=offboarded"));
    let page = body(app.get(&to).await).await;
    assert!(
        page.contains("Tenant offboarded") && page.contains("badge offboarded"),
        "{page}"
    );
    assert!(
        !page.contains("Offboard tenant"),
        "nothing left to offboard"
    );
    let credential: Option<Vec<u8>> =
        sqlx::query_scalar("select credential_ciphertext from tenants where id = $1")
            .bind(tenant_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(credential.is_none(), "the credential is erased");
    assert_eq!(
        app.post_form(&offboard, &[]).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert!(
        body(app.get(paths::AUDIT).await)
            .await
            .contains("Tenant offboarded")
    );

    // Now the other customer may connect it.
    tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        second.invitation.id,
        &consent(entra_id),
        &gangway::audit::Actor::System,
    )
    .await
    .unwrap();
    let status: String = sqlx::query_scalar("select status from tenants where id = $1")
        .bind(tenant_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(status, "active");
}

#[tokio::test]
async fn a_decline_stays_visible_and_findable_after_the_admin_reopens_the_link() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let tenant = app.customer(0).clone();
    let declined = app.invite("delegated", &tenant.admin.username, None).await;
    let untouched = app
        .invite_for("Fabrikam Inc", "delegated", "admin@fabrikam.example", None)
        .await;
    let admin = Customer::open(&app, &declined.link).await;
    let (_, response) = admin.consent(&app, &tenant.admin, Decision::Decline).await;
    assert_eq!(response.status(), StatusCode::OK);
    // The admin comes back through the same link: the invitation is `opened` again.
    Customer::open(&app, &declined.link).await;
    let detail = paths::invitation(declined.invitation.id);
    let page = body(app.get(&detail).await).await;
    assert!(page.contains("badge opened"), "{page}");

    let filtered = body(
        app.get(&format!("{}?status=declined", paths::INVITATIONS))
            .await,
    )
    .await;
    assert!(
        filtered.contains(&detail),
        "the Declined filter still finds it"
    );
    assert!(!filtered.contains(&paths::invitation(untouched.invitation.id)));
    assert!(filtered.contains("Showing 1–1 of 1"));
    let row = &filtered[filtered.find("<tbody>").unwrap()..];
    assert!(
        row.contains("badge opened") && row.contains("last-outcome") && row.contains("Declined"),
        "the list shows the earlier decline: {row}"
    );
    let opened = body(
        app.get(&format!("{}?status=opened", paths::INVITATIONS))
            .await,
    )
    .await;
    assert!(opened.contains(&detail), "it is opened all the same");

    let decoded_page = decoded(&page);
    let outcome = &decoded_page[decoded_page.find("<dt>Last outcome</dt>").unwrap()..];
    assert!(
        outcome[..outcome.find("</dd>").unwrap()].contains("Declined"),
        "the detail shows the last outcome"
    );
}

#[tokio::test]
async fn validation_messages_are_sentences_and_the_first_invalid_field_is_focused() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let fresh = body(app.get(paths::NEW_INVITATION).await).await;
    assert!(
        !fresh.contains("autofocus"),
        "nothing is focused before a mistake"
    );

    let response = app
        .post_form(
            paths::NEW_INVITATION,
            &[
                ("customer_name", ""),
                ("admin_email", ""),
                ("mode", "delegated"),
                ("tenant_domain", ""),
                ("valid_for", "7d"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = decoded(&body(response).await);
    assert!(page.contains("Enter the customer's name."), "{page}");
    assert!(page.contains("Enter the admin's email address."), "{page}");
    assert!(
        page.contains("href=\"#customer_name\"") && page.contains("href=\"#admin_email\""),
        "the summary links each message to its field"
    );
    assert!(tag_with_id(&page, "customer_name").contains("autofocus"));
    assert!(!tag_with_id(&page, "admin_email").contains("autofocus"));

    let response = app
        .post_form(
            paths::NEW_INVITATION,
            &[
                ("customer_name", "Fabrikam"),
                ("admin_email", "admin@fabrikam.example"),
                ("mode", "delegated"),
                ("tenant_domain", "not a domain"),
                ("valid_for", "7d"),
            ],
        )
        .await;
    let page = decoded(&body(response).await);
    assert!(
        page.contains("Enter a domain name such as contoso.com"),
        "{page}"
    );
    assert!(tag_with_id(&page, "tenant_domain").contains("autofocus"));
    assert!(!tag_with_id(&page, "customer_name").contains("autofocus"));
    assert_eq!(invitation_count(&app).await, 0);
}

#[tokio::test]
async fn a_consented_invitation_shows_its_attempts_and_no_expiry() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Viewer).await;
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    let path = paths::invitation(issued.invitation.id);
    let open = body(app.get(&path).await).await;
    assert!(
        open.contains("<dt>Expires</dt>"),
        "an open link has an expiry"
    );

    tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        issued.invitation.id,
        &consent(Uuid::new_v4()),
        &gangway::audit::Actor::System,
    )
    .await
    .unwrap();
    let page = body(app.get(&path).await).await;
    assert!(page.contains("badge consented"));
    assert!(
        !page.contains("<dt>Expires</dt>"),
        "a used link does not expire: {page}"
    );
    assert!(
        page.contains("<dt>Attempts</dt><dd>1 (consented at the first attempt)</dd>"),
        "{page}"
    );
}

#[tokio::test]
async fn empty_lists_show_one_call_to_action_and_no_filters() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let invitations = body(app.get(paths::INVITATIONS).await).await;
    assert!(invitations.contains("No invitations yet"));
    assert_eq!(
        invitations
            .matches(&format!("href=\"{}\"", paths::NEW_INVITATION))
            .count(),
        1,
        "one call to action: {invitations}"
    );
    assert!(!invitations.contains("role=\"search\""), "no filters");
    let tenants = body(app.get(paths::TENANTS).await).await;
    assert!(tenants.contains("No tenants yet") && !tenants.contains("role=\"search\""));
    assert_eq!(
        tenants
            .matches(&format!("class=\"button\" href=\"{}\"", paths::INVITATIONS))
            .count(),
        1
    );

    // Viewers get no button at all, and are told why.
    app.sign_in(Role::Viewer).await;
    let page = decoded(&body(app.get(paths::INVITATIONS).await).await);
    assert!(!page.contains(&format!("href=\"{}\"", paths::NEW_INVITATION)));
    assert!(page.contains("Ask an admin to create one"));

    // With something to list, the filters and the header button come back.
    app.invite("delegated", "admin@contoso.example", None).await;
    app.sign_in(Role::Admin).await;
    let page = body(app.get(paths::INVITATIONS).await).await;
    assert!(page.contains("role=\"search\"") && page.contains("Contoso Ltd"));
    assert!(page.contains(&format!("href=\"{}\"", paths::NEW_INVITATION)));
}

#[tokio::test]
async fn every_list_search_takes_underscore_and_percent_literally() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Viewer).await;
    // `_` and `%` are LIKE wildcards: typed in a search they must match only themselves, so
    // "Acme_Corp" finds Acme_Corp and not AcmeXCorp.
    for (customer, email, tenant) in [
        ("Acme_Corp", "admin@acme.example", "Acme_Europe"),
        ("AcmeXCorp", "admin@acmex.example", "AcmeXEurope"),
        ("Acme%Labs", "admin@acmelabs.example", "Acme%Asia"),
    ] {
        let issued = app.invite_for(customer, "delegated", email, None).await;
        tenants::record_consent(
            &app.db,
            &app.state.cfg.keys,
            issued.invitation.id,
            &Consent {
                display_name: tenant.into(),
                ..consent(Uuid::new_v4())
            },
            &Actor::System,
        )
        .await
        .unwrap();
    }
    // Each search is part of a name, so the page shows the name only in a row it found.
    for (list, search, found, not_found) in [
        (paths::CUSTOMERS, "me_Co", "Acme_Corp", "AcmeXCorp"),
        (paths::INVITATIONS, "me_Co", "Acme_Corp", "AcmeXCorp"),
        (paths::TENANTS, "me_Eu", "Acme_Europe", "AcmeXEurope"),
        (paths::AUDIT, "me_Co", "Acme_Corp", "AcmeXCorp"),
        (paths::CUSTOMERS, "me%", "Acme%Labs", "Acme_Corp"),
        (paths::TENANTS, "me%", "Acme%Asia", "Acme_Europe"),
    ] {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", search)
            .finish();
        let page = body(app.get(&format!("{list}?{query}")).await).await;
        assert!(page.contains(found), "{list}?{query} finds {found}: {page}");
        assert!(
            !page.contains(not_found),
            "{list}?{query} does not find {not_found}: {page}"
        );
    }
}
