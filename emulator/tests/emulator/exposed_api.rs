//! An API an app exposes: access tokens for it from the authorization-code and
//! client-credentials grants, app roles granted to apps, and the errors Entra answers.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

/// The provider app, exposing `Gangway.Manage` and the app-only roles `Gangway.Read`/`Write`,
/// asking for v2.0 access tokens.
async fn exposing_app(t: &TestEmu) -> TestApp {
    exposing_app_of_version(t, json!(2)).await
}

/// [`exposing_app`] with `api.requestedAccessTokenVersion` `version` (`null`: Microsoft's default).
async fn exposing_app_of_version(t: &TestEmu, version: Value) -> TestApp {
    t.register(json!({
        "home_tenant": t.tid(0),
        "display_name": "Gangway",
        "redirect_uris": [REDIRECT],
        "oauth2_permission_scopes": [{"value": "Gangway.Manage", "id": Uuid::new_v4()}],
        "requested_access_token_version": version,
        "app_roles": [
            {"value": "Gangway.Read", "id": Uuid::new_v4(), "allowedMemberTypes": ["Application"]},
            {"value": "Gangway.Write", "id": Uuid::new_v4(), "allowedMemberTypes": ["Application"]},
            {"value": "Gangway.Admin", "id": Uuid::new_v4(), "allowedMemberTypes": ["User"]},
        ],
    }))
    .await
}

#[tokio::test]
async fn the_authorization_code_grant_issues_a_v2_access_token_for_the_exposed_scope() {
    let t = TestEmu::start().await;
    let app = exposing_app(&t).await;
    let tid = t.tid(0);
    let scope = format!("api://{}/Gangway.Manage", app.client_id);
    let tokens = tokens_for(&t, &tid, &app, &format!("openid {scope}"), "", &t.admin(0)).await;
    assert_eq!(tokens["scope"], format!("{scope} openid"));
    let access = tokens["access_token"].as_str().unwrap();
    // Signed with the ID-token keys, issued like an ID token of the tenant, for the API's client id.
    let claims = verify_id_token(&t, &tid, access, &app.client_id).await;
    assert_eq!(claims["scp"], "Gangway.Manage");
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["azp"], app.client_id.as_str());
    assert_eq!(claims["tid"], tid.as_str());
    assert_eq!(claims["upn"], t.admin(0).0.as_str());
    assert_eq!(claims["preferred_username"], t.admin(0).0.as_str());
    assert!(claims["oid"].is_string() && claims.get("roles").is_none());

    // Not exposed, not registered, two resources: refused as Entra does.
    let other = exposing_app(&t).await;
    for (asked, status, error, code) in [
        (
            format!("openid api://{}/Gangway.Nope", app.client_id),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
        ),
        (
            format!("openid api://{}/Gangway.Manage", Uuid::new_v4()),
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
        ),
        (
            format!("openid {scope} api://{}/Gangway.Manage", other.client_id),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            28000,
        ),
    ] {
        let back = consent_redirect(&t, &tid, &app, &asked, "&prompt=consent", &t.admin(0)).await;
        let resp = redeem(&t, &tid, &app, &params(&back)["code"]).await;
        aad_error(resp, status, error, code).await;
    }
}

#[tokio::test]
async fn client_credentials_for_the_api_carry_the_app_roles_granted_to_the_caller() {
    let t = TestEmu::start().await;
    let app = exposing_app(&t).await;
    let tid = t.tid(0);
    let daemon = t
        .register(json!({"home_tenant": tid, "display_name": "Nightly job"}))
        .await;
    let grants = format!("/tenants/{tid}/apps/{}/app-role-grants", app.client_id);
    let resp = t
        .admin_post(
            &grants,
            json!({"client_id": daemon.client_id, "role": "Gangway.Read"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["principalType"], "ServicePrincipal");
    let again = t
        .admin_post(
            &grants,
            json!({"client_id": daemon.client_id, "role": "Gangway.Read"}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let users_only = t
        .admin_post(
            &grants,
            json!({"client_id": daemon.client_id, "role": "Gangway.Admin"}),
        )
        .await;
    assert_eq!(users_only.status(), StatusCode::BAD_REQUEST);

    let cc = |caller: &TestApp| {
        let scope = format!("api://{}/.default", app.client_id);
        let caller = caller.clone();
        let t = &t;
        let tid = tid.clone();
        async move {
            t.token(
                &tid,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &caller.client_id),
                    ("client_secret", &caller.secret),
                    ("scope", &scope),
                ],
            )
            .await
        }
    };
    let resp = cc(&daemon).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    let claims = verify_id_token(
        &t,
        &tid,
        v["access_token"].as_str().unwrap(),
        &app.client_id,
    )
    .await;
    assert_eq!(claims["roles"], json!(["Gangway.Read"]));
    assert_eq!(claims["azp"], daemon.client_id.as_str());
    assert_eq!(claims["idtyp"], "app");
    assert!(claims.get("scp").is_none());

    let bare = t
        .register(json!({"home_tenant": tid, "display_name": "No roles"}))
        .await;
    let v: Value = cc(&bare).await.json().await.unwrap();
    let claims = verify_id_token(
        &t,
        &tid,
        v["access_token"].as_str().unwrap(),
        &app.client_id,
    )
    .await;
    assert!(claims.get("roles").is_none());
}

#[tokio::test]
async fn an_api_left_at_microsofts_default_gets_v1_access_tokens_and_graph_shows_its_api() {
    let t = TestEmu::start().await;
    let app = exposing_app_of_version(&t, Value::Null).await;
    let tid = t.tid(0);
    let uri = format!("api://{}", app.client_id);
    let scope = format!("{uri}/Gangway.Manage");
    let tokens = tokens_for(&t, &tid, &app, &format!("openid {scope}"), "", &t.admin(0)).await;
    let access = tokens["access_token"].as_str().unwrap();
    // v1.0: Microsoft's fixed issuer, the resource as the client named it, appid.
    let sts = format!("https://sts.windows.net/{tid}/");
    let claims = verify_jwt(&t, &tid, access, &uri, &sts).await;
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["scp"], "Gangway.Manage");
    assert_eq!(claims["appid"], app.client_id.as_str());
    assert_eq!(claims["appidacr"], "1");
    assert_eq!(claims["upn"], t.admin(0).0.as_str());
    assert_eq!(claims["unique_name"], t.admin(0).0.as_str());
    for v2_only in ["azp", "azpacr", "preferred_username"] {
        assert!(claims.get(v2_only).is_none(), "{v2_only} in {claims}");
    }
    // The ID token is still v2.0: the endpoint decides it, the resource decides the access token.
    let id = verify_id_token(
        &t,
        &tid,
        tokens["id_token"].as_str().unwrap(),
        &app.client_id,
    )
    .await;
    assert_eq!(id["ver"], "2.0");

    let daemon = t
        .register(json!({"home_tenant": tid, "display_name": "Nightly job"}))
        .await;
    let resp = t
        .admin_post(
            &format!("/tenants/{tid}/apps/{}/app-role-grants", app.client_id),
            json!({"client_id": daemon.client_id, "role": "Gangway.Write"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let v: Value = t
        .token(
            &tid,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &daemon.client_id),
                ("client_secret", &daemon.secret),
                ("scope", &format!("{uri}/.default")),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let claims = verify_jwt(&t, &tid, v["access_token"].as_str().unwrap(), &uri, &sts).await;
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["appid"], daemon.client_id.as_str());
    assert_eq!(claims["roles"], json!(["Gangway.Write"]));

    // Graph shows the registration's `api`, the version null as registered; set to 2 it mints v2.0.
    let reader = t.provider_app().await;
    t.grant(&tid, &reader, &["Application.Read.All"]).await;
    let reader = t.app_token(&tid, &reader).await;
    let filter = format!(
        "/v1.0/applications?$filter=appId%20eq%20'{}'",
        app.client_id
    );
    let reg = &t.graph_json(&reader, &filter).await["value"][0];
    assert_eq!(
        reg["api"]["requestedAccessTokenVersion"],
        Value::Null,
        "{reg}"
    );
    assert_eq!(
        reg["api"]["oauth2PermissionScopes"][0]["value"],
        "Gangway.Manage"
    );
    assert_eq!(reg["identifierUris"], json!([uri]));
    let resp = t
        .admin_patch(
            &format!("/apps/{}", app.client_id),
            json!({"requested_access_token_version": 2}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let reg = &t.graph_json(&reader, &filter).await["value"][0];
    assert_eq!(reg["api"]["requestedAccessTokenVersion"], 2);
    let tokens = tokens_for(
        &t,
        &tid,
        &app,
        &format!("openid {scope}"),
        "&prompt=consent",
        &t.admin(0),
    )
    .await;
    let claims = verify_id_token(
        &t,
        &tid,
        tokens["access_token"].as_str().unwrap(),
        &app.client_id,
    )
    .await;
    assert_eq!(claims["ver"], "2.0");
    let bad = t
        .admin_patch(
            &format!("/apps/{}", app.client_id),
            json!({"requested_access_token_version": 3}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
