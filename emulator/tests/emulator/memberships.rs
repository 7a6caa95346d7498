//! A user's memberships (`memberOf`, `transitiveMemberOf`, cast to directory roles): who may
//! list them, and that only a permission that reads directory roles sees more than their ids.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const ROLES_OF_ME: &str = "/v1.0/me/transitiveMemberOf/microsoft.graph.directoryRole";

/// An app of tenant 0 asking for `delegated` and `application` Graph permissions.
async fn app_with(t: &TestEmu, delegated: &[&str], application: &[&str]) -> TestApp {
    t.register(json!({
        "home_tenant": t.tid(0),
        "multi_tenant": true,
        "redirect_uris": [REDIRECT],
        "permissions": {"delegated": delegated, "application": application},
    }))
    .await
}

/// A delegated Graph token of `user` in tenant 1 for `scope`.
async fn delegated(t: &TestEmu, app: &TestApp, scope: &str, user: &(String, String)) -> String {
    let tokens = tokens_for(t, &t.tid(1), app, scope, "", user).await;
    tokens["access_token"].as_str().unwrap().to_owned()
}

fn roles(v: &Value) -> &Vec<Value> {
    v["value"].as_array().unwrap()
}

#[tokio::test]
async fn the_signed_in_admins_role_is_named_only_to_a_permission_that_reads_directory_roles() {
    let t = TestEmu::start().await;
    let admin = t.admin(1);

    // User.Read lists the signed-in user's memberships, with limited information on roles.
    let basic = app_with(&t, &["User.Read"], &[]).await;
    let token = delegated(&t, &basic, "openid User.Read", &admin).await;
    let listed = t.graph_json(&token, ROLES_OF_ME).await;
    assert_eq!(roles(&listed).len(), 1, "{listed}");
    assert_eq!(
        listed["value"][0]["@odata.type"],
        "#microsoft.graph.directoryRole"
    );
    assert!(listed["value"][0]["id"].is_string());
    assert!(listed["value"][0]["roleTemplateId"].is_null(), "{listed}");
    let direct = t.graph_json(&token, "/v1.0/me/memberOf").await;
    assert!(
        roles(&direct)
            .iter()
            .any(|o| o["@odata.type"] == "#microsoft.graph.directoryRole")
    );

    // RoleManagement.Read.Directory reads the role itself.
    let full = app_with(&t, &["User.Read", "RoleManagement.Read.Directory"], &[]).await;
    let scope = "openid User.Read https://graph.microsoft.com/RoleManagement.Read.Directory";
    let token = delegated(&t, &full, scope, &admin).await;
    let listed = t.graph_json(&token, ROLES_OF_ME).await;
    assert_eq!(
        listed["value"][0]["roleTemplateId"], GLOBAL_ADMIN,
        "{listed}"
    );
    assert_eq!(listed["value"][0]["displayName"], "Global Administrator");

    // A member holds no directory role.
    let token = delegated(&t, &basic, "openid User.Read", &t.member(1)).await;
    assert!(roles(&t.graph_json(&token, ROLES_OF_ME).await).is_empty());
}

#[tokio::test]
async fn another_users_memberships_need_the_documented_application_permissions() {
    let t = TestEmu::start().await;
    let tid = t.tid(1);
    let admin_id = t.tenants[1]["admin"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1.0/users/{admin_id}/transitiveMemberOf/microsoft.graph.directoryRole");

    let org_only = app_with(&t, &[], &["Organization.Read.All"]).await;
    t.grant(&tid, &org_only, &["Organization.Read.All"]).await;
    let token = t.app_token(&tid, &org_only).await;
    let code = graph_error(t.graph(&token, &path).await, StatusCode::FORBIDDEN).await;
    assert_eq!(code, "Authorization_RequestDenied");
    // `/me` needs a signed-in user.
    let code = graph_error(t.graph(&token, ROLES_OF_ME).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(code, "BadRequest");

    let users = app_with(&t, &[], &["User.Read.All"]).await;
    t.grant(&tid, &users, &["User.Read.All"]).await;
    let token = t.app_token(&tid, &users).await;
    let listed = t.graph_json(&token, &path).await;
    assert_eq!(roles(&listed).len(), 1, "{listed}");
    assert!(listed["value"][0]["roleTemplateId"].is_null(), "{listed}");
    // Direct memberships of another user need Directory.Read.All.
    let direct = format!("/v1.0/users/{admin_id}/memberOf");
    let code = graph_error(t.graph(&token, &direct).await, StatusCode::FORBIDDEN).await;
    assert_eq!(code, "Authorization_RequestDenied");

    let roles_app = app_with(&t, &[], &["User.Read.All", "RoleManagement.Read.Directory"]).await;
    t.grant(
        &tid,
        &roles_app,
        &["User.Read.All", "RoleManagement.Read.Directory"],
    )
    .await;
    let token = t.app_token(&tid, &roles_app).await;
    let listed = t.graph_json(&token, &path).await;
    assert_eq!(
        listed["value"][0]["roleTemplateId"], GLOBAL_ADMIN,
        "{listed}"
    );
}
