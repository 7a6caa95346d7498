//! Sign-in seen and run by operators: applications registered, edited, given a new secret and
//! deleted in the console and through the JSON API; account links made and refused through
//! both, and carried by the tokens; an application that requires a link refuses the unlinked.

use base64::Engine;
use entra_emulator::EmulatedLogin;
use gangway::operators::Role;
use gangway::signin::AppKind;
use gangway::signin::applications;
use gangway::web::paths;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

use crate::helpers::{TestApp, location};
use crate::json_api::{call, token};
use crate::signin::{APP_CALLBACK, Case, sign_in_through};

async fn text(response: reqwest::Response) -> String {
    response.text().await.unwrap()
}

/// The audit actions recorded, oldest first.
async fn actions(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("select action from audit_events order by id")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

/// The client secret shown once on an application's page, if it is shown.
fn shown_secret(page: &str) -> Option<String> {
    page.split("id=\"client-secret\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
        .filter(|s| !s.is_empty())
}

/// Whether `secret` authenticates the application `client_id` at the token endpoint.
async fn authenticates(app: &TestApp, client_id: &str, secret: &str) -> bool {
    applications::authenticate(&app.db, client_id, Some(secret))
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn an_admin_registers_edits_rotates_and_deletes_an_application_and_a_viewer_only_reads() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;

    let empty = text(app.get(paths::APPLICATIONS).await).await;
    assert!(empty.contains("No applications yet"), "{empty}");

    let form = text(app.get(paths::NEW_APPLICATION).await).await;
    assert!(form.contains("name=\"redirect_uris\""));
    let fields = |redirect: &'static str| {
        vec![
            ("name", "Agent workspace"),
            ("kind", "web"),
            ("redirect_uris", redirect),
            ("post_logout_redirect_uris", ""),
            ("backchannel_logout_uri", ""),
            ("admitted", "all"),
            ("groups", "all"),
            ("groups_filter", ""),
            ("role_mapping", ""),
        ]
    };

    // A redirect URI that is not https is refused on its field, the form kept.
    let refused = app
        .post_form(paths::NEW_APPLICATION, &fields("http://app.example/cb"))
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = text(refused).await;
    assert!(page.contains("uses http"), "{page}");
    assert!(page.contains("href=\"#redirect_uris\""));
    assert!(
        page.contains("Agent workspace"),
        "the form keeps what was typed"
    );

    // Registered: the secret shows once, after the redirect, and works.
    let registered = app
        .post_form(
            paths::NEW_APPLICATION,
            &fields("https://workspace.example/callback\n  http://127.0.0.1:4000/cb  \n"),
        )
        .await;
    let to = location(registered).await;
    assert!(to.ends_with("?done=registered"), "{to}");
    let page = text(app.get(&to).await).await;
    let secret = shown_secret(&page).expect("the client secret is shown once");
    assert!(page.contains("shown only now"));
    let stored = applications::list(&app.db, None, 10, 0).await.unwrap().0;
    assert_eq!(stored.len(), 1);
    let registered = stored[0].clone();
    assert_eq!(
        registered.redirect_uris,
        [
            "https://workspace.example/callback",
            "http://127.0.0.1:4000/cb"
        ]
    );
    assert!(page.contains(&registered.client_id));
    assert!(authenticates(&app, &registered.client_id, &secret).await);
    let again = text(app.get(&to).await).await;
    assert_eq!(
        shown_secret(&again),
        None,
        "a reload shows the secret no more"
    );

    // The list names it with its client id to copy.
    let list = text(app.get(paths::APPLICATIONS).await).await;
    assert!(list.contains("Agent workspace") && list.contains(&registered.client_id));
    assert!(list.contains("data-copy=\"#client-id-1\""));
    assert!(list.contains("Every connected customer"));

    // A new secret replaces the old one at once.
    let page_url = paths::application(registered.id.into());
    let rotated = text(
        app.post_and_follow(&paths::application_rotate(registered.id.into()), &[])
            .await,
    )
    .await;
    let new_secret = shown_secret(&rotated).expect("the new secret is shown once");
    assert_ne!(new_secret, secret);
    assert!(!authenticates(&app, &registered.client_id, &secret).await);
    assert!(authenticates(&app, &registered.client_id, &new_secret).await);

    // Editing: refusals on their fields, then the settings saved.
    let edit = paths::edit_application(registered.id.into());
    let form = text(app.get(&edit).await).await;
    assert!(form.contains("https://workspace.example/callback"));
    let mut changes = vec![
        ("name", "Agent workspace"),
        ("redirect_uris", "https://workspace.example/callback"),
        ("post_logout_redirect_uris", "https://workspace.example/bye"),
        (
            "backchannel_logout_uri",
            "https://workspace.example/backchannel",
        ),
        ("admitted", "chosen"),
        ("groups", "filter"),
        ("groups_filter", "Sales"),
        (
            "role_mapping",
            "Sales Agents = agent\nSupervisors = supervisor",
        ),
        ("pairwise_subject", "on"),
    ];
    let refused = app.post_form(&edit, &changes).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(refused).await.contains("Choose at least one customer"));
    changes[4] = ("admitted", "all");
    changes[7] = ("role_mapping", "no equals sign");
    let refused = app.post_form(&edit, &changes).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(refused).await.contains("is not a mapping"));
    changes[7] = (
        "role_mapping",
        "Sales Agents = agent\nSupervisors = supervisor",
    );
    let saved = app.post_form(&edit, &changes).await;
    assert_eq!(location(saved).await, format!("{page_url}?done=updated"));
    let page = text(app.get(&page_url).await).await;
    assert!(
        page.contains("Groups whose names start with “Sales”"),
        "{page}"
    );
    assert!(page.contains("Sales Agents → <code>agent</code>"));
    assert!(page.contains("https://workspace.example/backchannel"));
    assert!(page.contains("Pairwise"));
    let changed = applications::by_id(&app.db, registered.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.kind, AppKind::Web, "the kind stays");
    assert!(changed.pairwise_subject);
    assert_eq!(changed.role_mapping["Supervisors"], "supervisor");
    assert!(
        authenticates(&app, &registered.client_id, &new_secret).await,
        "an edit keeps the secret"
    );

    // A viewer reads, and is refused every change.
    let viewer = app.new_browser();
    let viewer_email = format!("viewer-{}@provider.test", crate::helpers::short_id());
    app.add_operator(&viewer_email, Role::Viewer).await;
    crate::helpers::sign_in_as(&viewer, &app, &viewer_email).await;
    let seen = viewer.get(app.url(&page_url)).send().await.unwrap();
    assert_eq!(seen.status(), StatusCode::OK);
    let seen = text(seen).await;
    assert!(seen.contains("Agent workspace") && !seen.contains(&edit));
    for path in [
        edit.clone(),
        paths::application_rotate(registered.id.into()),
        paths::application_delete(registered.id.into()),
    ] {
        let response = crate::helpers::post_with_csrf(&viewer, &app, &path, &changes).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }

    // Deleted, with a confirmation asked first.
    assert!(page.contains("data-confirm=\"Delete Agent workspace?"));
    let gone = text(
        app.post_and_follow(&paths::application_delete(registered.id.into()), &[])
            .await,
    )
    .await;
    assert!(gone.contains("Application deleted"));
    assert!(gone.contains("No applications yet"));
    assert_eq!(app.get(&page_url).await.status(), StatusCode::NOT_FOUND);

    let actions = actions(&app).await;
    for action in [
        "signin.application_created",
        "signin.secret_rotated",
        "signin.application_updated",
        "signin.application_deleted",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

#[tokio::test]
async fn the_json_api_patches_and_deletes_applications_with_problem_details() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let write = token(&app, "apps", "write").await;
    let read = token(&app, "apps-read", "read").await;
    let register = |name: &'static str| json!({ "name": name, "kind": "spa", "redirect_uris": ["https://spa.example/cb"] });
    let (status, _, first) = call(
        &app,
        Method::POST,
        "/api/v1/applications",
        Some(&write),
        Some(register("First")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = first["application"]["id"].as_str().unwrap().to_owned();
    call(
        &app,
        Method::POST,
        "/api/v1/applications",
        Some(&write),
        Some(register("Second")),
    )
    .await;
    let one = format!("/api/v1/applications/{id}");

    let (status, _, patched) = call(
        &app,
        Method::PATCH,
        &one,
        Some(&write),
        Some(json!({
            "name": "First renamed",
            "groups": "filter", "groups_filter": "Agents",
            "backchannel_logout_uri": "https://spa.example/logout",
            "customers": [],
            "require_account_link": true,
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "First renamed");
    assert_eq!(patched["groups"], "filter");
    assert_eq!(patched["groups_filter"], "Agents");
    assert_eq!(patched["customers"], json!([]));
    assert_eq!(patched["require_account_link"], true);
    assert_eq!(
        patched["redirect_uris"],
        json!(["https://spa.example/cb"]),
        "what is absent stays"
    );

    // null clears; absent keeps.
    let (_, _, cleared) = call(
        &app,
        Method::PATCH,
        &one,
        Some(&write),
        Some(json!({ "backchannel_logout_uri": null, "customers": null })),
    )
    .await;
    assert_eq!(cleared["backchannel_logout_uri"], Value::Null);
    assert_eq!(cleared["customers"], Value::Null, "every customer again");
    assert_eq!(cleared["groups"], "filter");

    for (body, status) in [
        (json!({ "redirect_uris": ["http://spa.example/cb"] }), 422),
        (json!({ "name": "second" }), 409),
        (json!({ "groups_filter": "x" }), 422),
        (json!({ "kind": "web" }), 422),
        (json!({ "customers": [Uuid::new_v4()] }), 422),
        // Postgres refuses NUL in text: refused as input, not a 500.
        (json!({ "role_mapping": { "Agents\u{0}": "agent" } }), 422),
        (json!({ "name": "Tab\tname" }), 422),
        (
            json!({ "groups": "filter", "groups_filter": "A\u{0}" }),
            422,
        ),
    ] {
        let (got, headers, problem) =
            call(&app, Method::PATCH, &one, Some(&write), Some(body.clone())).await;
        assert_eq!(got.as_u16(), status, "{body}: {problem}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let (status, _, _) = call(&app, Method::PATCH, &one, Some(&read), Some(json!({}))).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a read token changes nothing"
    );
    let (status, _, _) = call(&app, Method::DELETE, &one, Some(&read), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _, _) = call(&app, Method::DELETE, &one, Some(&write), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, headers, _) = call(&app, Method::GET, &one, Some(&read), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-type"], "application/problem+json");
    let (status, _, _) = call(&app, Method::DELETE, &one, Some(&write), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(
        &app,
        Method::PATCH,
        "/api/v1/applications/not-a-uuid",
        Some(&write),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let doc = text(app.get(paths::API_OPENAPI).await).await;
    let doc: Value = serde_json::from_str(&doc).unwrap();
    let item = &doc["paths"]["/api/v1/applications/{id}"];
    assert!(item["patch"].is_object() && item["delete"].is_object());
    let links = &doc["paths"]["/api/v1/applications/{id}/links/{tid}/{oid}"];
    for method in ["get", "put", "delete"] {
        assert!(links[method].is_object(), "{method}");
    }
}

/// Signs `login` in to the case's web application (the login hint skips the email page):
/// the claims of the ID token, or Gangway's page when it refuses.
async fn sign_in(case: &Case, login: &EmulatedLogin) -> Result<Value, (StatusCode, String)> {
    let mut url = Url::parse(&case.app.url(paths::SIGNIN_AUTHORIZE)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", case.client_id())
        .append_pair("redirect_uri", APP_CALLBACK)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile email")
        .append_pair("nonce", "n1")
        .append_pair("login_hint", &login.username);
    let browser = case.app.new_browser();
    let answer = sign_in_through(case, &browser, url.as_str(), login).await;
    if answer.status() != StatusCode::SEE_OTHER {
        return Err((answer.status(), text(answer).await));
    }
    let back = Url::parse(&location(answer).await).unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code for the application");
    let secret = case.registered.client_secret.as_ref().unwrap().expose();
    let tokens: Value = reqwest::Client::new()
        .post(case.app.url(paths::SIGNIN_TOKEN))
        .basic_auth(case.client_id(), Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", APP_CALLBACK),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().expect("an ID token");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id_token.split('.').nth(1).unwrap())
        .unwrap();
    let userinfo: Value = reqwest::Client::new()
        .get(case.app.url(paths::SIGNIN_USERINFO))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut claims: Value = serde_json::from_slice(&payload).unwrap();
    claims["userinfo"] = userinfo;
    Ok(claims)
}

#[tokio::test]
async fn account_links_refuse_a_second_link_and_reach_the_tokens_and_an_unlinked_user_is_refused() {
    let case = Case::new(AppKind::Web).await;
    case.app.sign_in(Role::Admin).await;
    let write = token(&case.app, "links", "write").await;
    let app_id = case.registered.application.id;
    let admin = case.app.customer(0).admin.clone();
    let link = |oid: &str| {
        format!(
            "/api/v1/applications/{app_id}/links/{}/{oid}",
            case.entra_tenant_id
        )
    };
    let put = |oid: String, account: &'static str| {
        let write = write.clone();
        let path = link(&oid);
        let app = &case.app;
        async move {
            call(
                app,
                Method::PUT,
                &path,
                Some(&write),
                Some(json!({ "account_id": account })),
            )
            .await
        }
    };

    let counted_before = signins_counted(&case.app).await;
    let (status, _, made) = put(case.member.id.clone(), "ipecs-1").await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["account_id"], "ipecs-1");
    assert_eq!(made["user_principal_name"], case.member.username);
    assert_eq!(made["tid"], case.entra_tenant_id);
    let (status, _, _) = put(case.member.id.clone(), "ipecs-1").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the same link again changes nothing"
    );

    // A second link for the same user, or the same account for another user: refused.
    let (status, headers, problem) = put(case.member.id.clone(), "ipecs-2").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("already linked to account “ipecs-1”"),
        "{problem}"
    );
    let (status, _, problem) = put(admin.id.clone(), "ipecs-1").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("already linked to another user")
    );
    let (status, _, _) = put(Uuid::new_v4().to_string(), "ipecs-9").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "no such user");
    let (status, _, _) = put(admin.id.clone(), "  ").await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a blank account id"
    );
    // The database itself holds the rule.
    let tenant_id = case.tenant_id;
    let direct = sqlx::query(
        "insert into signin_account_links (application_id, tenant_id, object_id, account_id, created_by)
         values ($1, $2, $3, 'ipecs-3', 'test')",
    )
    .bind(app_id)
    .bind(tenant_id)
    .bind(Uuid::parse_str(&case.member.id).unwrap())
    .execute(&case.app.db)
    .await;
    assert!(direct.is_err(), "a second row for the same user is refused");

    let (status, _, page) = call(
        &case.app,
        Method::GET,
        &format!("/api/v1/applications/{app_id}/links"),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    // The linked user's tokens carry the account; the other's do not.
    let claims = sign_in(&case, &case.member).await.expect("signed in");
    assert_eq!(claims["account_id"], "ipecs-1", "{claims}");
    assert_eq!(claims["userinfo"]["account_id"], "ipecs-1");
    let claims = sign_in(&case, &admin).await.expect("signed in");
    assert!(claims.get("account_id").is_none(), "{claims}");

    // Requiring a link: the unlinked user gets a page, not a token.
    let (status, _, _) = call(
        &case.app,
        Method::PATCH,
        &format!("/api/v1/applications/{app_id}"),
        Some(&write),
        Some(json!({ "require_account_link": true })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = sign_in(&case, &admin).await.expect_err("refused");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        page.contains("Your account is not set up for Workspace"),
        "{page}"
    );
    assert!(page.contains("Contact "));
    assert!(
        !page.contains(APP_CALLBACK),
        "never sent to the application"
    );
    let reason: String = sqlx::query_scalar(
        "select detail->>'reason' from audit_events where action = 'signin.refused'
         order by id desc limit 1",
    )
    .fetch_one(&case.app.db)
    .await
    .unwrap();
    assert_eq!(reason, "no account link");
    assert_eq!(
        sign_in(&case, &case.member)
            .await
            .expect("linked: signed in")["account_id"],
        "ipecs-1"
    );

    let (status, _, _) = call(
        &case.app,
        Method::DELETE,
        &link(&case.member.id),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(
        &case.app,
        Method::GET,
        &link(&case.member.id),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let actions = actions(&case.app).await;
    assert!(actions.iter().any(|a| a == "signin.account_linked"));
    assert!(actions.iter().any(|a| a == "signin.account_unlinked"));

    // Operators see every sign-in: three successes and the refusal with its reason.
    let page = text(case.app.get(paths::SIGN_INS).await).await;
    assert_eq!(
        page.matches("badge active\">signed in").count(),
        3,
        "{page}"
    );
    assert!(page.contains("no account link") && page.contains(&case.member.username));
    let refused = text(
        case.app
            .get(&format!("{}?outcome=refused", paths::SIGN_INS))
            .await,
    )
    .await;
    assert!(refused.contains(&admin.username) && !refused.contains(&case.member.username));
    let searched = text(
        case.app
            .get(&format!("{}?q={}", paths::SIGN_INS, case.member.username))
            .await,
    )
    .await;
    assert_eq!(searched.matches("badge active\">signed in").count(), 2);
    let other = text(
        case.app
            .get(&format!(
                "{}?application={}",
                paths::SIGN_INS,
                Uuid::new_v4()
            ))
            .await,
    )
    .await;
    assert!(other.contains("No sign-ins match these filters"), "{other}");
    let tenant = text(case.app.get(&paths::tenant(case.tenant_id.into())).await).await;
    assert!(tenant.contains("Recent sign-ins") && tenant.contains(&case.member.username));
    let (succeeded, refused) = signins_counted(&case.app).await;
    assert!(succeeded >= counted_before.0 + 3.0, "{succeeded}");
    assert!(refused > counted_before.1, "{refused}");
}

/// `gangway_signins_total` by outcome (succeeded, refused), as `/metrics` renders them. The
/// counters are the process's: other tests add to them too.
async fn signins_counted(app: &TestApp) -> (f64, f64) {
    let metrics = text(app.get("/metrics").await).await;
    let sample = |outcome: &str| {
        let series = format!("gangway_signins_total{{outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    };
    (sample("succeeded"), sample("refused"))
}

#[tokio::test]
async fn the_console_links_accounts_by_upn_lists_them_and_refuses_a_second_link_on_the_form() {
    let case = Case::new(AppKind::Spa).await;
    let app = &case.app;
    app.sign_in(Role::Admin).await;
    let id = case.registered.application.id;
    let page_url = paths::application(id.into());
    let add = paths::application_link(id.into());
    let admin = app.customer(0).admin.clone();

    let page = text(app.get(&page_url).await).await;
    assert!(page.contains("No account links yet"), "{page}");
    assert!(
        !page.contains("New client secret"),
        "a public client has no secret"
    );

    let linked = app
        .post_form(
            &add,
            &[
                ("user", case.member.username.as_str()),
                ("account_id", "agent-7"),
            ],
        )
        .await;
    assert_eq!(location(linked).await, format!("{page_url}?done=linked"));
    for (user, account, says) in [
        (
            admin.username.as_str(),
            "agent-7",
            "already linked to another user",
        ),
        (
            case.member.username.as_str(),
            "agent-9",
            "already linked to account",
        ),
        (
            "nobody@nowhere.example",
            "agent-10",
            "No user “nobody@nowhere.example”",
        ),
    ] {
        let refused = app
            .post_form(&add, &[("user", user), ("account_id", account)])
            .await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = text(refused).await;
        assert!(page.contains(says), "{says}: {page}");
        assert!(
            page.contains(&format!("value=\"{account}\"")),
            "the form is kept"
        );
    }

    let by_object_id = app
        .post_form(
            &add,
            &[("user", admin.id.as_str()), ("account_id", "agent-8")],
        )
        .await;
    assert_eq!(by_object_id.status(), StatusCode::SEE_OTHER);
    let page = text(app.get(&page_url).await).await;
    assert!(page.contains("agent-7") && page.contains(&case.member.username));
    assert!(page.contains("agent-8") && page.contains(&admin.username));

    let found = text(app.get(&format!("{page_url}?q=agent-8")).await).await;
    assert!(found.contains(&admin.username) && !found.contains(&case.member.username));
    let none = text(app.get(&format!("{page_url}?q=zzz")).await).await;
    assert!(none.contains("No links match"), "{none}");

    let removed = app
        .post_form(
            &paths::application_unlink(id.into()),
            &[
                ("tenant_id", case.tenant_id.to_string().as_str()),
                ("object_id", case.member.id.as_str()),
            ],
        )
        .await;
    assert_eq!(location(removed).await, format!("{page_url}?done=unlinked"));
    let page = text(app.get(&page_url).await).await;
    assert!(!page.contains("agent-7") && page.contains("agent-8"));
}
