//! What ID tokens say about the user beyond who they are: `groups` (as the registration's
//! `groupMembershipClaims` asks, with the overage claim past 200), `roles` (app role
//! assignments), `sid` (the browser session), and front-channel logout by that `sid`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const LOGOUT_URL: &str = "http://localhost:8080/console/sso/logout";

/// A user of tenant 0 with a known password: (object id, (upn, password)).
async fn new_user(t: &TestEmu, name: &str) -> (String, (String, String)) {
    let domain = t.tenants[0]["domain"].as_str().unwrap();
    let upn = format!("{name}@{domain}");
    let user = t
        .admin_create(
            &format!("/tenants/{}/users", t.tid(0)),
            json!({"userPrincipalName": upn, "password": "Pa55word!"}),
        )
        .await;
    (
        user["id"].as_str().unwrap().to_owned(),
        (upn, "Pa55word!".to_owned()),
    )
}

async fn new_group(t: &TestEmu, name: &str, body: Value) -> String {
    let mut body = body;
    body["displayName"] = json!(name);
    let group = t
        .admin_create(&format!("/tenants/{}/groups", t.tid(0)), body)
        .await;
    group["id"].as_str().unwrap().to_owned()
}

/// A single-tenant app of tenant 0 registered with `extra` fields.
async fn home_app(t: &TestEmu, extra: Value) -> TestApp {
    let mut body = json!({"home_tenant": t.tid(0), "redirect_uris": [REDIRECT]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    t.register(body).await
}

/// Signs `user` in to `app` on tenant 0 in `client`, accepting consent when it is asked (the
/// first time only); returns the token answer.
async fn sign_in_tokens(
    t: &TestEmu,
    client: &reqwest::Client,
    app: &TestApp,
    scope: &str,
    user: &(String, String),
) -> Value {
    let url = t.authorize_url(&t.tid(0), &app.client_id, scope, "");
    let (_, html) = page(client, &url).await;
    let resp = if html.contains("id=\"idSIButton9\"") {
        sign_in(client, &t.base, &html, &user.0, &user.1).await
    } else {
        client.get(&url).send().await.unwrap()
    };
    let resp = if resp.status() == StatusCode::FOUND {
        resp
    } else {
        let html = resp.text().await.unwrap();
        decide(client, &t.base, &html, "accept").await
    };
    redeem(t, &t.tid(0), app, &params(&location(&resp))["code"])
        .await
        .json()
        .await
        .unwrap()
}

/// Signs `user` in to `app` on tenant 0 (fresh browser) and returns the ID token's claims.
async fn claims_of(t: &TestEmu, app: &TestApp, user: &(String, String)) -> Value {
    let tokens = sign_in_tokens(t, &browser(), app, "openid profile", user).await;
    id_claims(t, &t.tid(0), &tokens, app).await
}

#[tokio::test]
async fn groups_claim_follows_the_registrations_group_membership_claims() {
    let t = TestEmu::start().await;
    let (oid, user) = new_user(&t, "grace").await;
    let security = new_group(&t, "Ops", json!({"members": [oid]})).await;
    let m365 = new_group(
        &t,
        "Lunch club",
        json!({"members": [oid], "securityEnabled": false, "mailEnabled": true}),
    )
    .await;
    let _other = new_group(&t, "Not hers", json!({})).await;

    let plain = home_app(&t, json!({})).await;
    let claims = claims_of(&t, &plain, &user).await;
    assert!(claims.get("groups").is_none(), "{claims}");
    assert!(claims.get("roles").is_none(), "{claims}");

    let app = home_app(&t, json!({"group_membership_claims": "SecurityGroup"})).await;
    assert_eq!(
        claims_of(&t, &app, &user).await["groups"],
        json!([security])
    );

    let resp = t
        .admin_patch(
            &format!("/apps/{}", app.client_id),
            json!({"group_membership_claims": "All"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["group_membership_claims"],
        "All"
    );
    let mut groups: Vec<String> =
        serde_json::from_value(claims_of(&t, &app, &user).await["groups"].clone()).unwrap();
    groups.sort();
    let mut expected = vec![security.clone(), m365];
    expected.sort();
    assert_eq!(groups, expected);

    t.admin_patch(
        &format!("/apps/{}", app.client_id),
        json!({"group_membership_claims": "None"}),
    )
    .await;
    assert!(claims_of(&t, &app, &user).await.get("groups").is_none());

    let resp = t
        .admin_post(
            "/apps",
            json!({"home_tenant": t.tid(0), "group_membership_claims": "Everything"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn more_than_200_groups_give_the_overage_claim_instead() {
    let t = TestEmu::start().await;
    let (oid, user) = new_user(&t, "hub").await;
    let app = home_app(&t, json!({"group_membership_claims": "SecurityGroup"})).await;
    for i in 0..200 {
        new_group(&t, &format!("G{i}"), json!({"members": [oid]})).await;
    }
    assert_eq!(
        claims_of(&t, &app, &user).await["groups"]
            .as_array()
            .unwrap()
            .len(),
        200
    );
    new_group(&t, "G200", json!({"members": [oid]})).await;
    let claims = claims_of(&t, &app, &user).await;
    assert!(claims.get("groups").is_none(), "{claims}");
    assert_eq!(claims["_claim_names"], json!({"groups": "src1"}));
    assert_eq!(
        claims["_claim_sources"]["src1"]["endpoint"],
        format!("https://graph.microsoft.com/v1.0/users/{oid}/getMemberObjects")
    );
}

#[tokio::test]
async fn roles_claim_names_the_users_app_role_assignments() {
    let t = TestEmu::start().await;
    let (oid, user) = new_user(&t, "rita").await;
    let admin_role = "8a4e4c9e-2f7c-4d55-9a2b-6c2f1c0d3e41";
    let app = home_app(
        &t,
        json!({"app_roles": [
            {"value": "Gangway.Admin", "id": admin_role, "allowedMemberTypes": ["User"]},
            {"value": "Gangway.Viewer", "id": "1b7f5a3c-9d2e-4f6a-8b1c-2d3e4f5a6b7c", "allowedMemberTypes": ["User"]},
            {"value": "Sync.Run", "id": "5c6d7e8f-1a2b-4c3d-9e4f-5a6b7c8d9e0f", "allowedMemberTypes": ["Application"]},
        ]}),
    )
    .await;
    let assignments = format!(
        "/tenants/{}/apps/{}/role-assignments",
        t.tid(0),
        app.client_id
    );
    let by_upn = t
        .admin_create(
            &assignments,
            json!({"user": user.0, "role": "Gangway.Admin"}),
        )
        .await;
    assert_eq!(by_upn["appRoleId"], admin_role);
    assert_eq!(by_upn["principalId"], oid.as_str());
    let again = t
        .admin_post(&assignments, json!({"user": oid, "role": "Gangway.Admin"}))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    for role in ["Nope", "Sync.Run"] {
        let refused = t
            .admin_post(&assignments, json!({"user": oid, "role": role}))
            .await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{role}");
    }
    t.admin_create(&assignments, json!({"user": oid, "role": "Gangway.Viewer"}))
        .await;
    assert_eq!(
        claims_of(&t, &app, &user).await["roles"],
        json!(["Gangway.Admin", "Gangway.Viewer"])
    );

    let gone = t
        .admin_delete(&format!("{assignments}/{}", by_upn["id"].as_str().unwrap()))
        .await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        claims_of(&t, &app, &user).await["roles"],
        json!(["Gangway.Viewer"])
    );

    // Another user holds nothing; a single-tenant app has no service principal elsewhere.
    assert!(
        claims_of(&t, &app, &t.member(0))
            .await
            .get("roles")
            .is_none()
    );
    let elsewhere = t
        .admin_post(
            &format!(
                "/tenants/{}/apps/{}/role-assignments",
                t.tid(1),
                app.client_id
            ),
            json!({"user": t.tenants[1]["member"]["id"], "role": "Gangway.Admin"}),
        )
        .await;
    assert_eq!(elsewhere.status(), StatusCode::BAD_REQUEST);

    // Roles appear on the registration as Graph shows it.
    let bad = t
        .admin_patch(
            &format!("/apps/{}", app.client_id),
            json!({"app_roles": [
                {"value": "Two words", "id": admin_role, "allowedMemberTypes": ["User"]}
            ]}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn id_tokens_carry_the_browser_sessions_sid() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let client = browser();
    let user = t.admin(0);
    let first = consent_flow(
        &client,
        &t.base,
        &t.authorize_url(
            &t.tid(0),
            &app.client_id,
            "openid profile offline_access",
            "",
        ),
        &user,
    )
    .await;
    let tokens: Value = redeem(&t, &t.tid(0), &app, &params(&first)["code"])
        .await
        .json()
        .await
        .unwrap();
    let sid = id_claims(&t, &t.tid(0), &tokens, &app).await["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&sid).is_ok(), "{sid}");

    // The same browser session signs in again silently: same sid; refreshed tokens keep it.
    let silent = t.authorize_url(&t.tid(0), &app.client_id, "openid profile", "&prompt=none");
    let again = location(&client.get(&silent).send().await.unwrap());
    let tokens2: Value = redeem(&t, &t.tid(0), &app, &params(&again)["code"])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        id_claims(&t, &t.tid(0), &tokens2, &app).await["sid"],
        sid.as_str()
    );
    let refreshed: Value = t
        .token(
            &t.tid(0),
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &app.client_id),
                ("client_secret", &app.secret),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
                ("scope", "openid profile"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        id_claims(&t, &t.tid(0), &refreshed, &app).await["sid"],
        sid.as_str()
    );

    // Another browser is another session.
    let other = sign_in_tokens(&t, &browser(), &app, "openid profile", &user).await;
    assert_ne!(
        id_claims(&t, &t.tid(0), &other, &app).await["sid"],
        sid.as_str()
    );
}

#[tokio::test]
async fn logout_loads_each_apps_front_channel_logout_url_with_the_sid() {
    let t = TestEmu::start().await;
    let app = home_app(&t, json!({"logout_url": LOGOUT_URL})).await;
    let quiet = home_app(&t, json!({})).await;
    let client = browser();
    let user = t.member(0);
    let back = consent_flow(
        &client,
        &t.base,
        &t.authorize_url(&t.tid(0), &app.client_id, "openid profile", ""),
        &user,
    )
    .await;
    let tokens: Value = redeem(&t, &t.tid(0), &app, &params(&back)["code"])
        .await
        .json()
        .await
        .unwrap();
    let sid = id_claims(&t, &t.tid(0), &tokens, &app).await["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    // The same session signs in to an app without a logout URL: nothing to call there.
    let html = page(
        &client,
        &t.authorize_url(&t.tid(0), &quiet.client_id, "openid", ""),
    )
    .await
    .1;
    decide(&client, &t.base, &html, "accept").await;

    let logout = format!(
        "{}/{}/oauth2/v2.0/logout?post_logout_redirect_uri={}",
        t.base,
        t.tid(0),
        urlencoding(REDIRECT)
    );
    let (status, html) = page(&client, &logout).await;
    assert_eq!(status, StatusCode::OK);
    let frames: Vec<&str> = html.matches("<iframe").collect();
    assert_eq!(frames.len(), 1, "{html}");
    let expected_src = format!("{LOGOUT_URL}?sid={sid}");
    assert!(html.contains(&format!("src=\"{expected_src}\"")), "{html}");
    assert!(
        html.contains(&format!("id=\"continue\" href=\"{REDIRECT}\"")),
        "{html}"
    );

    // The session is over: signing in again asks for a password.
    let silent = t.authorize_url(&t.tid(0), &app.client_id, "openid", "&prompt=none");
    assert_eq!(
        params(&location(&client.get(&silent).send().await.unwrap()))["error"],
        "login_required"
    );
    // Without a session nothing is called; a registered URI named with its app redirects at
    // once, an unregistered one is not followed.
    let resp = client
        .get(format!("{logout}&client_id={}", app.client_id))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp).as_str(), REDIRECT);
    let (status, html) = page(
        &client,
        &format!(
            "{}/{}/oauth2/v2.0/logout?post_logout_redirect_uri={}&client_id={}",
            t.base,
            t.tid(0),
            urlencoding("https://evil.example/"),
            app.client_id
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !html.contains("evil.example") && !html.contains("<iframe"),
        "{html}"
    );
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
