//! Customers' users signing in to a multi-tenant app their organization consented to: any
//! seeded user, refusals of disabled users, tenants that turned user consent off, and the
//! `login_hint` / `domain_hint` parameters.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// The sign-in scopes of a relying party that only wants to know who the user is.
const SIGN_IN: &str = "openid profile email";

/// The seeded password rule: `Emu-` + the object id's first 8 hex digits + `!`.
fn seeded_login(user: &Value) -> (String, String) {
    let id = user["id"].as_str().unwrap();
    (
        user["userPrincipalName"].as_str().unwrap().to_owned(),
        format!("Emu-{}!", &id[..8]),
    )
}

/// Tenant `i`'s enabled users who are not its admin, as Graph lists them.
async fn plain_users(t: &TestEmu, i: usize) -> Vec<Value> {
    let token = t.reader(i).await;
    let users = t
        .graph_json(
            &token,
            "/v1.0/users?$select=id,userPrincipalName,accountEnabled",
        )
        .await;
    users["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["accountEnabled"] == true && u["id"] != t.tenants[i]["admin"]["id"])
        .cloned()
        .collect()
}

/// Consents to `app`'s sign-in for the whole of tenant `tid`, as an admin's consent does.
async fn consent_for_organization(t: &TestEmu, tid: &str, app: &TestApp) {
    let resp = t
        .admin_post(
            &format!("/tenants/{tid}/consents"),
            json!({"client_id": app.client_id, "delegated": ["User.Read"]}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn any_user_of_a_consenting_organization_signs_in_without_a_consent_prompt() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(1);
    consent_for_organization(&t, &tid, &app).await;
    let users = plain_users(&t, 1).await;
    assert!(users.len() >= 3, "the seed has plain members");
    for user in users.iter().step_by(users.len() / 3).take(3) {
        let login = seeded_login(user);
        let client = browser();
        let url = t.authorize_url(&tid, &app.client_id, SIGN_IN, "");
        let (_, html) = page(&client, &url).await;
        let resp = sign_in(&client, &t.base, &html, &login.0, &login.1).await;
        let back = params(&location(&resp));
        assert!(
            back.contains_key("code"),
            "straight back with a code: {back:?}"
        );
        let tokens: Value = redeem(&t, &tid, &app, &back["code"])
            .await
            .json()
            .await
            .unwrap();
        let claims = id_claims(&t, &tid, &tokens, &app).await;
        assert_eq!(claims["oid"], user["id"]);
        assert_eq!(claims["tid"], tid.as_str());
        assert!(claims.get("wids").is_none(), "a member holds no admin role");
    }
}

#[tokio::test]
async fn a_disabled_user_is_refused_with_aadsts50057_and_their_session_ends() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(1);
    consent_for_organization(&t, &tid, &app).await;
    let member = t.member(1);
    let client = browser();
    let url = t.authorize_url(&tid, &app.client_id, SIGN_IN, "");
    let (_, html) = page(&client, &url).await;
    let resp = sign_in(&client, &t.base, &html, &member.0, &member.1).await;
    assert!(params(&location(&resp)).contains_key("code"));

    let resp = t
        .admin_patch(
            &format!("/tenants/{tid}/users/{}", member.0),
            json!({"accountEnabled": false}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // The browser's session no longer signs them in silently.
    let silent = client
        .get(t.authorize_url(&tid, &app.client_id, SIGN_IN, "&prompt=none"))
        .send()
        .await
        .unwrap();
    assert_eq!(params(&location(&silent))["error"], "login_required");
    // The password is right, the account is disabled: the sign-in page says so and nothing
    // goes back to the app.
    let (_, html) = page(&client, &url).await;
    let resp = sign_in(&client, &t.base, &html, &member.0, &member.1).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(html.contains("AADSTS50057"), "{html}");
    assert!(
        html.contains("id=\"idSIButton9\""),
        "still the sign-in page"
    );
}

#[tokio::test]
async fn with_user_consent_off_a_member_cannot_consent_until_an_admin_has() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(2);
    let resp = t
        .admin_patch(&format!("/tenants/{tid}"), json!({"user_consent": false}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["user_consent"], false);

    let member = t.member(2);
    let client = browser();
    let url = t.authorize_url(&tid, &app.client_id, SIGN_IN, "");
    let html = open_and_sign_in(&client, &t.base, &url, &member).await;
    assert!(
        html.contains("Need admin approval")
            && html.contains("set a policy that prevents you from granting")
            && !html.contains("idBtn_Accept"),
        "{html}"
    );
    let q = return_to_app(&client, &t.base, &html).await;
    assert_eq!(q["error"], "access_denied");
    assert!(q["error_description"].starts_with("AADSTS90093"), "{q:?}");
    // Silently, the same answer as any tenant without consent.
    let silent = client
        .get(t.authorize_url(&tid, &app.client_id, SIGN_IN, "&prompt=none"))
        .send()
        .await
        .unwrap();
    let q = params(&location(&silent));
    assert_eq!(q["error"], "consent_required");
    assert!(q["error_description"].starts_with("AADSTS65001"));

    // An admin still may consent, for the organization, and then the member signs in.
    consent_for_organization(&t, &tid, &app).await;
    let again = client.get(&url).send().await.unwrap();
    assert!(params(&location(&again)).contains_key("code"));
}

#[tokio::test]
async fn domain_hint_picks_the_organization_and_login_hint_prefills_the_name() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let domain = t.tenants[1]["domains"][1].as_str().unwrap().to_owned();
    let member = t.member(1);
    let hints = format!(
        "&domain_hint={domain}&login_hint={}",
        url::form_urlencoded::byte_serialize(member.0.as_bytes()).collect::<String>()
    );
    let url = t.authorize_url("organizations", &app.client_id, SIGN_IN, &hints);
    let (status, html) = page(&browser(), &url).await;
    assert_eq!(status, StatusCode::OK);
    let prefilled = format!("value=\"{}\"", member.0.replace('\'', "&#39;"));
    assert!(html.contains(&prefilled), "login_hint prefills: {html}");
    // The hinted organization is where the user is looked up: another tenant's user is not
    // found there.
    let client = browser();
    let (_, html) = page(&client, &url).await;
    let elsewhere = signed_in(&client, &t.base, &html, &t.member(2)).await;
    assert!(elsewhere.contains("AADSTS50034"), "{elsewhere}");
    let consent = signed_in(&client, &t.base, &elsewhere, &member).await;
    let back = decided(&client, &t.base, &consent, "accept").await;
    let tokens: Value = redeem(&t, "organizations", &app, &back["code"])
        .await
        .json()
        .await
        .unwrap();
    let claims = id_claims(&t, &t.tid(1), &tokens, &app).await;
    assert_eq!(claims["tid"], t.tid(1));
    // Without the hint, `organizations` finds the user wherever they are.
    let plain = t.authorize_url("organizations", &app.client_id, SIGN_IN, "");
    let consent = open_and_sign_in(&browser(), &t.base, &plain, &t.member(2)).await;
    assert!(consent.contains("idBtn_Accept"), "{consent}");
}
