//! A client app's service principal as Graph shows it, and a customer admin disabling,
//! trimming or deleting it.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// The claims of a JWT, unverified (the test just received it from the token endpoint).
fn decode_jwt_payload(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn graph_shows_the_service_principal_and_what_it_was_granted() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(1);
    t.grant(&tid, &app, &["User.Read.All"]).await;
    let token = t.app_token(&tid, &app).await;
    // Reading service principals needs Application.Read.All (or Directory.Read.All).
    let path = format!("/v1.0/servicePrincipals(appId='{}')", app.client_id);
    let resp = t.graph(&token, &path).await;
    assert_eq!(
        graph_error(resp, StatusCode::FORBIDDEN).await,
        "Authorization_RequestDenied"
    );

    t.grant(&tid, &app, &["Application.Read.All", "Directory.Read.All"])
        .await;
    let token = t.app_token(&tid, &app).await;
    let sp = t.graph_json(&token, &path).await;
    assert_eq!(sp["appId"], app.client_id.as_str());
    assert_eq!(sp["accountEnabled"], true);
    let id = sp["id"].as_str().unwrap().to_owned();
    let by_id = t
        .graph_json(&token, &format!("/v1.0/servicePrincipals/{id}"))
        .await;
    assert_eq!(by_id["id"], id.as_str());
    let roles = t
        .graph_json(
            &token,
            &format!("/v1.0/servicePrincipals/{id}/appRoleAssignments"),
        )
        .await;
    let ids: Vec<&str> = roles["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["appRoleId"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"df021288-bdef-4463-88db-98f22de89214"),
        "User.Read.All's role id: {roles}"
    );
    assert_eq!(roles["value"][0]["principalType"], "ServicePrincipal");
    assert_eq!(roles["value"][0]["principalId"], id.as_str());
    let grants = t
        .graph_json(
            &token,
            &format!("/v1.0/servicePrincipals/{id}/oauth2PermissionGrants"),
        )
        .await;
    assert_eq!(grants["value"], json!([]), "no delegated grant was made");
    let unknown = t
        .graph(
            &token,
            "/v1.0/servicePrincipals(appId='00000000-0000-0000-0000-000000000001')",
        )
        .await;
    assert_eq!(
        graph_error(unknown, StatusCode::NOT_FOUND).await,
        "Request_ResourceNotFound"
    );
}

#[tokio::test]
async fn an_admin_disables_trims_or_deletes_the_service_principal() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(1);
    t.grant(&tid, &app, &["User.Read.All", "Group.Read.All"])
        .await;
    let consent = format!("/tenants/{tid}/consents/{}", app.client_id);

    let removed = t
        .admin_delete(&format!("{consent}/permissions/Group.Read.All"))
        .await;
    assert_eq!(removed.status(), StatusCode::OK);
    let token = t.app_token(&tid, &app).await;
    let claims = decode_jwt_payload(&token);
    assert_eq!(claims["roles"], json!(["User.Read.All"]));
    let again = t
        .admin_delete(&format!("{consent}/permissions/Group.Read.All"))
        .await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    let off = t
        .admin_patch(&consent, json!({"account_enabled": false}))
        .await;
    assert_eq!(off.status(), StatusCode::OK);
    aad_error(
        t.client_credentials(&tid, &app).await,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        7000112,
    )
    .await;
    let on = t
        .admin_patch(&consent, json!({"account_enabled": true}))
        .await;
    assert_eq!(on.status(), StatusCode::OK);
    t.app_token(&tid, &app).await;

    assert_eq!(t.admin_delete(&consent).await.status(), StatusCode::OK);
    aad_error(
        t.client_credentials(&tid, &app).await,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        700016,
    )
    .await;
}

#[tokio::test]
async fn users_and_groups_assigned_to_the_enterprise_app_are_listed_page_by_page() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(1);
    t.grant(&tid, &app, &["Application.Read.All"]).await;
    let token = t.app_token(&tid, &app).await;
    let path = format!(
        "/v1.0/servicePrincipals(appId='{}')/appRoleAssignedTo",
        app.client_id
    );
    let empty = t.graph_json(&token, &path).await;
    assert_eq!(empty["value"], json!([]), "nobody is assigned yet");

    let domain = t.tenants[1]["domain"].as_str().unwrap();
    let user = t
        .admin_create(
            &format!("/tenants/{tid}/users"),
            json!({"userPrincipalName": format!("ada@{domain}"), "displayName": "Ada"}),
        )
        .await;
    let group = t
        .admin_create(
            &format!("/tenants/{tid}/groups"),
            json!({"displayName": "Sales"}),
        )
        .await;
    let assignments = format!("/tenants/{tid}/apps/{}/assignments", app.client_id);
    let by_upn = t
        .admin_create(&assignments, json!({"principal": format!("ada@{domain}")}))
        .await;
    assert_eq!(by_upn["principalType"], "User");
    let to_group = t
        .admin_create(&assignments, json!({"principal": group["id"]}))
        .await;
    assert_eq!(to_group["principalType"], "Group");
    let again = t
        .admin_post(&assignments, json!({"principal": user["id"]}))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let nobody = t
        .admin_post(
            &assignments,
            json!({"principal": "00000000-0000-0000-0000-00000000beef"}),
        )
        .await;
    assert_eq!(nobody.status(), StatusCode::NOT_FOUND);

    // One a page: the second comes through the next link, and the list ends there.
    let first = t.graph_json(&token, &format!("{path}?$top=1")).await;
    let sp = t
        .graph_json(
            &token,
            &format!("/v1.0/servicePrincipals(appId='{}')", app.client_id),
        )
        .await;
    assert_eq!(first["value"][0]["principalId"], user["id"]);
    assert_eq!(first["value"][0]["principalDisplayName"], "Ada");
    assert_eq!(first["value"][0]["principalType"], "User");
    assert_eq!(
        first["value"][0]["appRoleId"],
        "00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(first["value"][0]["resourceId"], sp["id"]);
    let next = first["@odata.nextLink"].as_str().expect("a next link");
    let next = &next[next.find("/v1.0/").unwrap()..];
    let second = t.graph_json(&token, next).await;
    assert_eq!(second["value"][0]["principalId"], group["id"]);
    assert_eq!(second["value"][0]["principalDisplayName"], "Sales");
    assert_eq!(second["value"][0]["principalType"], "Group");
    assert!(second.get("@odata.nextLink").is_none(), "{second}");

    // Removing an assignment, or the principal, takes it off the list.
    let id = by_upn["id"].as_str().unwrap();
    let gone = t.admin_delete(&format!("{assignments}/{id}")).await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let gid = group["id"].as_str().unwrap();
    t.admin_delete(&format!("/tenants/{tid}/groups/{gid}"))
        .await;
    let after = t.graph_json(&token, &path).await;
    assert_eq!(after["value"], json!([]), "{after}");

    // An app with no service principal in the tenant: Graph's 404.
    let unknown = t
        .graph(
            &token,
            "/v1.0/servicePrincipals(appId='00000000-0000-0000-0000-000000000001')/appRoleAssignedTo",
        )
        .await;
    assert_eq!(
        graph_error(unknown, StatusCode::NOT_FOUND).await,
        "Request_ResourceNotFound"
    );
}
