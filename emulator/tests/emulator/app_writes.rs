//! Writing app registrations through Graph: an admin creates and repairs a registration with a
//! delegated `Application.ReadWrite.All` token; the app then manages its own secrets app-only
//! with `Application.ReadWrite.OwnedBy` once its service principal owns the registration.

use reqwest::StatusCode;
use serde_json::{Value, json};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::certificates::{Cert, claims, with_assertion};
use crate::helpers::*;

/// A delegated token of tenant 0's Global Administrator for a tool app asking for
/// `Application.ReadWrite.All` and `Directory.Read.All`.
async fn admin_token(t: &TestEmu) -> String {
    let tool = t
        .register(json!({
            "home_tenant": t.tid(0),
            "display_name": "Setup tool",
            "redirect_uris": [REDIRECT],
            "permissions": {"delegated": ["Application.ReadWrite.All", "Directory.Read.All"]},
        }))
        .await;
    let scope = "openid https://graph.microsoft.com/Application.ReadWrite.All https://graph.microsoft.com/Directory.Read.All";
    let tokens = tokens_for(t, &t.tid(0), &tool, scope, "", &t.admin(0)).await;
    tokens["access_token"]
        .as_str()
        .expect("access token")
        .into()
}

/// Sends a Graph write with a bearer token.
async fn write(
    t: &TestEmu,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: Value,
) -> reqwest::Response {
    reqwest::Client::new()
        .request(method, format!("{}{path}", t.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn post(t: &TestEmu, token: &str, path: &str, body: Value) -> reqwest::Response {
    write(t, reqwest::Method::POST, token, path, body).await
}

#[tokio::test]
async fn an_admin_creates_a_multi_tenant_registration_its_service_principal_and_a_secret() {
    let t = TestEmu::start().await;
    let token = admin_token(&t).await;
    let resp = post(
        &t,
        &token,
        "/v1.0/applications",
        json!({"displayName": "Gangway", "signInAudience": "AzureADMultipleOrgs"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let app: Value = resp.json().await.unwrap();
    let (id, app_id) = (app["id"].as_str().unwrap(), app["appId"].as_str().unwrap());
    assert_ne!(id, app_id, "object id and client id differ");
    assert_eq!(app["signInAudience"], "AzureADMultipleOrgs");
    assert_eq!(
        app["passwordCredentials"],
        json!([]),
        "no secret unless added"
    );
    assert_eq!(app["identifierUris"], json!([]));

    // Every property the setup writes, in one PATCH.
    let scope_id = "6f0b0c4e-8d1a-4b3a-9f1e-2a1b3c4d5e6f";
    let resp = write(
        &t,
        reqwest::Method::PATCH,
        &token,
        &format!("/v1.0/applications/{id}"),
        json!({
            "web": {"redirectUris": ["https://gw.example/callback"], "logoutUrl": "https://gw.example/logout"},
            "requiredResourceAccess": [{
                "resourceAppId": "00000003-0000-0000-c000-000000000000",
                "resourceAccess": [
                    {"id": "e1fe6dd8-ba31-4d61-89e7-88639da4683d", "type": "Scope"},
                    {"id": "df021288-bdef-4463-88db-98f22de89214", "type": "Role"},
                ],
            }],
            "groupMembershipClaims": "DirectoryRole",
            "identifierUris": [format!("api://{app_id}")],
            "api": {
                "requestedAccessTokenVersion": 2,
                "oauth2PermissionScopes": [{"id": scope_id, "value": "Gangway.Manage", "type": "Admin", "isEnabled": true}],
            },
            "appRoles": [{"id": "0a1b2c3d-0000-4000-8000-000000000001", "value": "Gangway.Admin", "allowedMemberTypes": ["User"], "displayName": "Admin", "description": "Admin", "isEnabled": true}],
            "servicePrincipalLockConfiguration": {"isEnabled": true, "allProperties": true},
        }),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let read = t
        .graph_json(
            &token,
            &format!("/v1.0/applications?$filter=appId eq '{app_id}'"),
        )
        .await;
    let read = &read["value"][0];
    assert_eq!(
        read["web"]["redirectUris"],
        json!(["https://gw.example/callback"])
    );
    assert_eq!(read["web"]["logoutUrl"], "https://gw.example/logout");
    assert_eq!(read["groupMembershipClaims"], "DirectoryRole");
    assert_eq!(read["identifierUris"], json!([format!("api://{app_id}")]));
    assert_eq!(read["api"]["requestedAccessTokenVersion"], 2);
    assert_eq!(
        read["api"]["oauth2PermissionScopes"][0]["value"],
        "Gangway.Manage"
    );
    assert_eq!(read["appRoles"][0]["value"], "Gangway.Admin");
    assert_eq!(read["servicePrincipalLockConfiguration"]["isEnabled"], true);
    let access = &read["requiredResourceAccess"][0]["resourceAccess"];
    assert!(
        access
            .as_array()
            .unwrap()
            .contains(&json!({"id": "df021288-bdef-4463-88db-98f22de89214", "type": "Role"}))
    );

    // Creating the application made no service principal; POST /servicePrincipals does, once.
    let sp_path = format!("/v1.0/servicePrincipals(appId='{app_id}')");
    let missing = t.graph(&token, &sp_path).await;
    assert_eq!(
        graph_error(missing, StatusCode::NOT_FOUND).await,
        "Request_ResourceNotFound"
    );
    let resp = post(
        &t,
        &token,
        "/v1.0/servicePrincipals",
        json!({"appId": app_id}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let sp: Value = resp.json().await.unwrap();
    assert_eq!(sp["appId"], app_id);
    assert_eq!(sp["accountEnabled"], true);
    let again = post(
        &t,
        &token,
        "/v1.0/servicePrincipals",
        json!({"appId": app_id}),
    )
    .await;
    assert_eq!(
        graph_error(again, StatusCode::CONFLICT).await,
        "Request_MultipleObjectsWithSameKeyValue"
    );

    // addPassword shows the secret once; it signs in; removePassword ends it at once.
    let resp = post(
        &t,
        &token,
        &format!("/v1.0/applications/{id}/addPassword"),
        json!({"passwordCredential": {"displayName": "gangway", "endDateTime": "2030-01-01T00:00:00Z"}}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cred: Value = resp.json().await.unwrap();
    let secret = cred["secretText"].as_str().unwrap();
    assert!(
        (16..=64).contains(&secret.len()),
        "Graph's secrets are 16 to 64 characters"
    );
    assert_eq!(cred["endDateTime"], "2030-01-01T00:00:00Z");
    assert_eq!(cred["hint"], &secret[..3]);
    let app = TestApp {
        client_id: app_id.into(),
        secret: secret.into(),
    };
    t.app_token(&t.tid(0), &app).await;
    let listed = t
        .graph_json(
            &token,
            &format!("/v1.0/applications?$filter=appId eq '{app_id}'"),
        )
        .await;
    assert_eq!(
        listed["value"][0]["passwordCredentials"][0]["secretText"],
        Value::Null
    );
    let resp = post(
        &t,
        &token,
        &format!("/v1.0/applications/{id}/removePassword"),
        json!({"keyId": cred["keyId"]}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    aad_error(
        t.client_credentials(&t.tid(0), &app).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000215,
    )
    .await;
}

#[tokio::test]
async fn writes_are_refused_without_the_permission_or_with_a_body_graph_would_refuse() {
    let t = TestEmu::start().await;
    let reader = t.reader(0).await;
    let resp = post(
        &t,
        &reader,
        "/v1.0/applications",
        json!({"displayName": "x"}),
    )
    .await;
    assert_eq!(
        graph_error(resp, StatusCode::FORBIDDEN).await,
        "Authorization_RequestDenied"
    );

    let token = admin_token(&t).await;
    let resp = post(&t, &token, "/v1.0/applications", json!({})).await;
    assert_eq!(
        graph_error(resp, StatusCode::BAD_REQUEST).await,
        "Request_BadRequest"
    );
    let resp = post(&t, &token, "/v1.0/applications", json!({"displayName": "x", "requiredResourceAccess": [{"resourceAppId": "00000003-0000-0000-c000-000000000000", "resourceAccess": [{"id": "00000000-0000-0000-0000-00000000dead", "type": "Role"}]}]})).await;
    assert_eq!(
        graph_error(resp, StatusCode::BAD_REQUEST).await,
        "Request_BadRequest"
    );
    let resp = write(
        &t,
        reqwest::Method::PATCH,
        &token,
        "/v1.0/applications/00000000-0000-0000-0000-000000000001",
        json!({"displayName": "y"}),
    )
    .await;
    assert_eq!(
        graph_error(resp, StatusCode::NOT_FOUND).await,
        "Request_ResourceNotFound"
    );
}

#[tokio::test]
async fn owned_by_reaches_only_the_apps_the_service_principal_owns() {
    let t = TestEmu::start().await;
    let token = admin_token(&t).await;
    let gangway = t.provider_app().await;
    let tid = t.tid(0);
    t.grant(&tid, &gangway, &["Application.ReadWrite.OwnedBy"])
        .await;
    let apps = t
        .graph_json(
            &token,
            &format!(
                "/v1.0/applications?$filter=appId eq '{}'",
                gangway.client_id
            ),
        )
        .await;
    let id = apps["value"][0]["id"].as_str().unwrap().to_owned();
    let own = t.app_token(&tid, &gangway).await;
    let add = format!("/v1.0/applications/{id}/addPassword");
    let resp = post(&t, &own, &add, json!({})).await;
    assert_eq!(
        graph_error(resp, StatusCode::FORBIDDEN).await,
        "Authorization_RequestDenied",
        "not an owner yet"
    );

    // The admin makes the app's service principal an owner of its own registration.
    let sp = t
        .graph_json(
            &token,
            &format!("/v1.0/servicePrincipals(appId='{}')", gangway.client_id),
        )
        .await;
    let owner = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", sp["id"].as_str().unwrap())});
    let resp = post(
        &t,
        &token,
        &format!("/v1.0/applications/{id}/owners/$ref"),
        owner.clone(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let twice = post(
        &t,
        &token,
        &format!("/v1.0/applications/{id}/owners/$ref"),
        owner,
    )
    .await;
    assert_eq!(
        graph_error(twice, StatusCode::BAD_REQUEST).await,
        "Request_BadRequest"
    );

    // Rotation: a new secret, both work, the old one is removed and stops working.
    let resp = post(&t, &own, &add, json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cred: Value = resp.json().await.unwrap();
    let fresh = TestApp {
        client_id: gangway.client_id.clone(),
        secret: cred["secretText"].as_str().unwrap().into(),
    };
    t.app_token(&tid, &fresh).await;
    t.app_token(&tid, &gangway).await;
    let listed = t
        .graph_json(
            &token,
            &format!(
                "/v1.0/applications?$filter=appId eq '{}'",
                gangway.client_id
            ),
        )
        .await;
    let old_key = listed["value"][0]["passwordCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["keyId"] != cred["keyId"])
        .map(|c| c["keyId"].clone())
        .unwrap();
    let resp = post(
        &t,
        &own,
        &format!("/v1.0/applications/{id}/removePassword"),
        json!({"keyId": old_key}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    aad_error(
        t.client_credentials(&tid, &gangway).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000215,
    )
    .await;
    t.app_token(&tid, &fresh).await;
    let gone = post(
        &t,
        &own,
        &format!("/v1.0/applications/{id}/removePassword"),
        json!({"keyId": old_key}),
    )
    .await;
    assert_eq!(
        graph_error(gone, StatusCode::NOT_FOUND).await,
        "Request_ResourceNotFound"
    );
}

#[tokio::test]
async fn a_patch_replaces_the_certificates_and_the_new_one_signs_client_assertions() {
    let t = TestEmu::start().await;
    let token = admin_token(&t).await;
    let created: Value = post(
        &t,
        &token,
        "/v1.0/applications",
        json!({"displayName": "Daemon", "signInAudience": "AzureADMultipleOrgs"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let (id, app_id) = (
        created["id"].as_str().unwrap(),
        created["appId"].as_str().unwrap(),
    );
    let resp = post(
        &t,
        &token,
        "/v1.0/servicePrincipals",
        json!({"appId": app_id}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let path = format!("/v1.0/applications/{id}");
    let patch = |body: Value| write(&t, reqwest::Method::PATCH, &token, &path, body);
    let entry = |cert: &Cert| json!({"type": "AsymmetricX509Cert", "usage": "Verify", "key": STANDARD.encode(&cert.der), "displayName": "CN=daemon"});
    let app = TestApp {
        client_id: app_id.into(),
        secret: String::new(),
    };
    let aud = format!("{}/{}/oauth2/v2.0/token", t.base, t.tid(0));
    let token_with = |cert: &Cert| {
        let assertion = cert.sign(&claims(app_id, &aud));
        let app = &app;
        let t = &t;
        async move { with_assertion(t, &t.tid(0), app, &assertion).await }
    };

    // The first certificate goes in by PATCH (addKey would need a proof from one already there).
    let first = Cert::new();
    let resp = patch(json!({"keyCredentials": [entry(&first)]})).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(token_with(&first).await.status(), StatusCode::OK);

    // Its key is returned only on $select for the single object.
    let selected = t
        .graph_json(
            &token,
            &format!("/v1.0/applications/{id}?$select=keyCredentials"),
        )
        .await;
    let listed = selected["keyCredentials"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1, "{selected}");
    assert_eq!(listed[0]["key"], STANDARD.encode(&first.der));
    assert_eq!(listed[0]["type"], "AsymmetricX509Cert");
    assert_eq!(listed[0]["usage"], "Verify");
    let read = t
        .graph_json(
            &token,
            &format!("/v1.0/applications?$filter=appId eq '{app_id}'"),
        )
        .await;
    assert_eq!(read["value"][0]["keyCredentials"][0]["key"], Value::Null);

    // The collection sent back whole with another added keeps the first under its keyId.
    let second = Cert::new();
    let mut both = listed.clone();
    both.push(entry(&second));
    let resp = patch(json!({"keyCredentials": both})).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let selected = t
        .graph_json(
            &token,
            &format!("/v1.0/applications/{id}?$select=keyCredentials"),
        )
        .await;
    assert_eq!(selected["keyCredentials"][0]["keyId"], listed[0]["keyId"]);
    assert_eq!(selected["keyCredentials"].as_array().unwrap().len(), 2);
    assert_eq!(token_with(&second).await.status(), StatusCode::OK);

    // A collection without the first replaces it: the first stops signing.
    let resp = patch(json!({"keyCredentials": [entry(&second)]})).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let refused = token_with(&first).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(token_with(&second).await.status(), StatusCode::OK);

    // What the emulator does not model, or an entry without its key, is refused.
    for bad in [
        json!({"type": "Symmetric", "usage": "Verify", "key": STANDARD.encode(&second.der)}),
        json!({"type": "AsymmetricX509Cert", "usage": "Verify"}),
    ] {
        let resp = patch(json!({"keyCredentials": [bad]})).await;
        assert_eq!(
            graph_error(resp, StatusCode::BAD_REQUEST).await,
            "Request_BadRequest"
        );
    }
}
