//! `GET /v1.0/applications`: a registration as Graph shapes it, gated by `Application.Read.All`,
//! and the admin API's knobs that break a registration the way a portal edit would.

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::*;

const LOGOUT: &str = "http://localhost:8080/authenticate/logout";

/// The provider's app in tenant 0, granted `Application.Read.All` there (its home tenant),
/// and an app token that reads it.
async fn provider(t: &TestEmu) -> (TestApp, Value, String) {
    let resp = t
        .admin_post(
            "/apps",
            json!({
                "home_tenant": t.tid(0),
                "multi_tenant": true,
                "display_name": "Gangway",
                "redirect_uris": [REDIRECT],
                "logout_url": LOGOUT,
                "group_membership_claims": "DirectoryRole",
                "permissions": {
                    "delegated": ["User.Read", "User.Read.All", "GroupMember.Read.All"],
                    "application": ["User.Read.All", "GroupMember.Read.All", "Application.Read.All"],
                },
            }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: Value = resp.json().await.unwrap();
    let app = TestApp {
        client_id: created["client_id"].as_str().unwrap().into(),
        secret: created["client_secret"].as_str().unwrap().into(),
    };
    t.grant(&t.tid(0), &app, &["Application.Read.All"]).await;
    let token = t.app_token(&t.tid(0), &app).await;
    (app, created, token)
}

/// The registration of `client_id` as `/v1.0/applications?$filter=appId eq '…'` answers it.
async fn registration(t: &TestEmu, token: &str, client_id: &str) -> Value {
    let page = t
        .graph_json(
            token,
            &format!("/v1.0/applications?$filter=appId eq '{client_id}'"),
        )
        .await;
    assert_eq!(
        page["@odata.context"],
        format!("{}/v1.0/$metadata#applications", t.base)
    );
    let value = page["value"].as_array().unwrap();
    assert_eq!(value.len(), 1, "{page}");
    value[0].clone()
}

#[tokio::test]
async fn an_application_answers_as_graph_shapes_it_with_microsofts_permission_ids() {
    let t = TestEmu::start().await;
    let (app, created, token) = provider(&t).await;
    let other = t.provider_app().await;
    let reg = registration(&t, &token, &app.client_id).await;

    assert_eq!(reg["appId"], app.client_id.as_str());
    assert!(reg["id"].is_string() && reg["id"] != reg["appId"], "{reg}");
    assert_eq!(reg["displayName"], "Gangway");
    assert_eq!(reg["signInAudience"], "AzureADMultipleOrgs");
    assert_eq!(reg["web"]["redirectUris"], json!([REDIRECT]));
    assert_eq!(reg["web"]["logoutUrl"], LOGOUT);
    assert_eq!(reg["groupMembershipClaims"], "DirectoryRole");
    assert!(reg["optionalClaims"].is_null(), "{reg}");
    let secrets = reg["passwordCredentials"].as_array().unwrap();
    assert_eq!(secrets.len(), 1);
    assert!(
        secrets[0]["secretText"].is_null(),
        "secrets are never read back"
    );
    let end = OffsetDateTime::parse(secrets[0]["endDateTime"].as_str().unwrap(), &Rfc3339).unwrap();
    let registered =
        OffsetDateTime::parse(created["secret_expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(end, registered);

    let required = reg["requiredResourceAccess"].as_array().unwrap();
    assert_eq!(required.len(), 1);
    assert_eq!(
        required[0]["resourceAppId"],
        "00000003-0000-0000-c000-000000000000"
    );
    let mut access: Vec<(String, String)> = required[0]["resourceAccess"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["type"].as_str().unwrap().to_string(),
                a["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    access.sort();
    let mut expected: Vec<(String, String)> = [
        ("Role", "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30"), // Application.Read.All
        ("Role", "98830695-27a2-44f7-8c18-0c3ebc9698f6"), // GroupMember.Read.All
        ("Role", "df021288-bdef-4463-88db-98f22de89214"), // User.Read.All
        ("Scope", "a154be20-db9c-4678-8ab7-66f6cc099a59"), // User.Read.All
        ("Scope", "bc024368-1153-4739-b217-4326f2e966d0"), // GroupMember.Read.All
        ("Scope", "e1fe6dd8-ba31-4d61-89e7-88639da4683d"), // User.Read
    ]
    .iter()
    .map(|(k, id)| (k.to_string(), id.to_string()))
    .collect();
    expected.sort();
    assert_eq!(access, expected);

    // Without a filter every registration of the tenant is listed; other tenants' are not.
    let all = t.graph_json(&token, "/v1.0/applications").await;
    assert_eq!(all["value"].as_array().unwrap().len(), 2);
    let elsewhere = t
        .register(json!({"home_tenant": t.tid(1), "display_name": "Elsewhere"}))
        .await;
    let none = t
        .graph_json(
            &token,
            &format!(
                "/v1.0/applications?$filter=appId eq '{}'",
                elsewhere.client_id
            ),
        )
        .await;
    assert_eq!(none["value"], json!([]));
    let picked = t
        .graph_json(
            &token,
            &format!(
                "/v1.0/applications?$filter=appId eq '{}'&$select=appId,web",
                other.client_id
            ),
        )
        .await;
    let only = picked["value"][0].as_object().unwrap();
    let mut keys: Vec<&str> = only.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["appId", "id", "web"]);
}

#[tokio::test]
async fn a_registration_keeps_the_openid_connect_scopes_it_requests_with_graphs_ids() {
    let t = TestEmu::start().await;
    let (_, _, token) = provider(&t).await;
    let signin = t
        .register(json!({
            "home_tenant": t.tid(0),
            "display_name": "Sign-in",
            "permissions": {"delegated": ["openid", "Profile", "email", "offline_access", "User.Read"]},
        }))
        .await;
    let reg = registration(&t, &token, &signin.client_id).await;
    let mut access: Vec<&str> = reg["requiredResourceAccess"][0]["resourceAccess"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|a| assert_eq!(a["type"], "Scope", "{a}"))
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    access.sort_unstable();
    assert_eq!(
        access,
        [
            "14dad69e-099b-42c9-810b-d002981feec1", // profile
            "37f7f235-527c-4136-accd-4a02d197296e", // openid
            "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0", // email
            "7427e0e9-2fba-42fe-b0c0-848c9e6a8182", // offline_access
            "e1fe6dd8-ba31-4d61-89e7-88639da4683d", // User.Read
        ]
    );

    // They are delegated only: no app role stands for them.
    let resp = t
        .admin_post(
            "/apps",
            json!({"home_tenant": t.tid(0), "permissions": {"application": ["openid"]}}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn reading_applications_needs_application_read_all() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    t.grant(&t.tid(0), &app, &["User.Read.All"]).await;
    let token = t.app_token(&t.tid(0), &app).await;
    let resp = t.graph(&token, "/v1.0/applications").await;
    assert_eq!(
        graph_error(resp, StatusCode::FORBIDDEN).await,
        "Authorization_RequestDenied"
    );
}

#[tokio::test]
async fn the_admin_api_breaks_a_registration_as_a_portal_edit_would() {
    let t = TestEmu::start().await;
    let (app, _, token) = provider(&t).await;
    let path = format!("/apps/{}", app.client_id);
    let resp = t
        .admin_patch(
            &path,
            json!({
                "redirect_uris": ["https://wrong.example/callback"],
                "multi_tenant": false,
                "logout_url": "",
                "group_membership_claims": "None",
                "permissions": {"application": ["User.Read.All"]},
                "secret_expires_in_days": 10,
            }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let reg = registration(&t, &token, &app.client_id).await;
    assert_eq!(reg["signInAudience"], "AzureADMyOrg");
    assert_eq!(
        reg["web"]["redirectUris"],
        json!(["https://wrong.example/callback"])
    );
    assert!(reg["web"]["logoutUrl"].is_null());
    assert!(reg["optionalClaims"].is_null());
    assert_eq!(
        reg["requiredResourceAccess"][0]["resourceAccess"],
        json!([{"id": "df021288-bdef-4463-88db-98f22de89214", "type": "Role"}]),
        "what was granted stays; only the registration lost the permissions"
    );
    let end = OffsetDateTime::parse(
        reg["passwordCredentials"][0]["endDateTime"]
            .as_str()
            .unwrap(),
        &Rfc3339,
    )
    .unwrap();
    let left = end - OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::days(9) && left <= time::Duration::days(10),
        "{left}"
    );

    // The broken registration behaves broken: the old redirect URI is refused and an expired
    // secret no longer gets tokens.
    let url = t.authorize_url(&t.tid(0), &app.client_id, "openid", "");
    let (status, html) = page(&browser(), &url).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("AADSTS50011"), "{html}");
    t.admin_patch(&path, json!({"secret_expires_in_days": -1}))
        .await;
    aad_error(
        t.client_credentials(&t.tid(0), &app).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000222,
    )
    .await;

    assert_eq!(
        t.admin_patch("/apps/00000000-0000-4000-8000-000000000000", json!({}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.admin_patch(
            &path,
            json!({"permissions": {"application": ["Coffee.Make"]}})
        )
        .await
        .status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn wids_come_from_group_membership_claims_directory_role_or_all_never_from_an_optional_claim()
{
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let path = format!("/apps/{}", app.client_id);
    let admin = t.admin(1);
    let mut again = "";
    for (setting, wids, groups) in [
        ("DirectoryRole", true, false),
        ("All", true, true),
        ("SecurityGroup", false, true),
        ("ApplicationGroup", false, false),
        ("None", false, false),
    ] {
        let resp = t
            .admin_patch(&path, json!({"group_membership_claims": setting}))
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "{setting}");
        let tokens = tokens_for(&t, "organizations", &app, "openid profile", again, &admin).await;
        again = "&prompt=consent";
        let claims = id_claims(&t, &t.tid(1), &tokens, &app).await;
        if wids {
            assert_eq!(claims["wids"], json!([GLOBAL_ADMIN]), "{setting}: {claims}");
        } else {
            assert!(claims.get("wids").is_none(), "{setting}: {claims}");
        }
        assert_eq!(
            claims.get("groups").is_some(),
            groups,
            "{setting}: {claims}"
        );
    }
    // A member holds no directory role: no `wids` even where the registration asks for them.
    t.admin_patch(&path, json!({"group_membership_claims": "DirectoryRole"}))
        .await;
    let tokens = tokens_for(
        &t,
        "organizations",
        &app,
        "openid profile",
        "",
        &t.member(1),
    )
    .await;
    let claims = id_claims(&t, &t.tid(1), &tokens, &app).await;
    assert!(claims.get("wids").is_none(), "{claims}");
    // There is no optional claim named `wids` to ask for, nor any other value.
    for refused in [
        json!({"id_token_claims": ["wids"]}),
        json!({"group_membership_claims": "DirectoryRoles"}),
    ] {
        let resp = t.admin_patch(&path, refused.clone()).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    }
}
