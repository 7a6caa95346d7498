//! The admin API: tenants, apps, users, groups.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn tenants_list_has_the_contract_fields_and_working_logins() {
    let t = TestEmu::start().await;
    assert_eq!(t.tenants.len(), 3);
    for tenant in &t.tenants {
        assert!(uuid::Uuid::parse_str(tenant["id"].as_str().unwrap()).is_ok());
        assert!(tenant["display_name"].is_string());
        let domain = tenant["domain"].as_str().unwrap();
        assert!(domain.ends_with(".onmicrosoft.com"));
        assert!(
            tenant["domains"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d == domain)
        );
        for who in ["admin", "member"] {
            for f in ["username", "password", "id"] {
                assert!(tenant[who][f].is_string(), "{who}.{f}");
            }
        }
        assert_eq!(tenant["users"], 25);
        assert_eq!(tenant["groups"], 4);
        // The documented password rule.
        let id = tenant["admin"]["id"].as_str().unwrap();
        assert_eq!(
            tenant["admin"]["password"],
            format!("Emu-{}!", &id.replace('-', "")[..8])
        );
    }
    let app = t.provider_app().await;
    let back = consent_redirect(&t, "organizations", &app, "openid", "", &t.member(2)).await;
    assert!(params(&back).contains_key("code"));

    let created = t
        .admin_create(
            "/tenants",
            json!({"display_name": "Zürich Bank AG", "users": 3, "groups": 1}),
        )
        .await;
    assert_eq!(created["display_name"], "Zürich Bank AG");
    assert_eq!(created["users"], 3);
    let all = t.get_json("/_emulator/tenants").await;
    assert_eq!(all.as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn app_registration_answers_client_id_secret_and_expiry() {
    let t = TestEmu::start().await;
    let v = t
        .admin_create("/apps", json!({"home_tenant": t.tid(0), "multi_tenant": true, "redirect_uris": [REDIRECT], "permissions": {"application": ["User.Read.All"]}, "client_id": "3f0c6a52-8d55-4c59-9a8a-0a4e1f6f9a10", "client_secret": "s3cret", "secret_lifetime_days": 30}))
        .await;
    assert_eq!(v["client_id"], "3f0c6a52-8d55-4c59-9a8a-0a4e1f6f9a10");
    assert_eq!(v["client_secret"], "s3cret");
    let expires = time::OffsetDateTime::parse(
        v["secret_expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let days = (expires - time::OffsetDateTime::now_utc()).whole_days();
    assert!((29..=30).contains(&days));
    let bad = t
        .admin_post(
            "/apps",
            json!({"home_tenant": t.tid(0), "permissions": {"application": ["Coffee.Make"]}}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let unknown = t
        .admin_post(
            "/apps",
            json!({"home_tenant": "00000000-0000-4000-8000-000000000000"}),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn users_and_groups_can_be_changed_and_show_in_graph() {
    let t = TestEmu::start().await;
    let tid = t.tid(1);
    let token = t.reader(1).await;
    let user = t.admin_create(&format!("/tenants/{tid}/users"), json!({"displayName": "Zoë D'Souza", "userPrincipalName": "zoe.dsouza@x.test", "password": "pw-1", "jobTitle": "Buyer"})).await;
    assert_eq!(user["password"], "pw-1");
    let uid = user["id"].as_str().unwrap();
    let dup = t
        .admin_post(
            &format!("/tenants/{tid}/users"),
            json!({"userPrincipalName": "zoe.dsouza@x.test"}),
        )
        .await;
    assert_eq!(dup.status(), StatusCode::CONFLICT);
    let got = t.graph_json(&token, &format!("/v1.0/users/{uid}")).await;
    assert_eq!(got["displayName"], "Zoë D'Souza");

    let group = t
        .admin_create(
            &format!("/tenants/{tid}/groups"),
            json!({"displayName": "Buyers", "members": [uid]}),
        )
        .await;
    let gid = group["id"].as_str().unwrap();
    let members_path = format!("/v1.0/groups/{gid}/members");
    let members = t.graph_json(&token, &members_path).await;
    assert_eq!(members["value"][0]["id"], uid);
    assert_eq!(
        t.admin_post(
            &format!("/tenants/{tid}/groups/{gid}/members"),
            json!({"id": uid})
        )
        .await
        .status(),
        StatusCode::CONFLICT
    );
    let resp = t
        .admin_patch(
            &format!("/tenants/{tid}/groups/{gid}"),
            json!({"description": "Purchasing"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    let user_path = format!("/tenants/{tid}/users/{uid}");
    assert_eq!(
        t.admin_delete(&user_path).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.graph(&token, &format!("/v1.0/users/{uid}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let members = t.graph_json(&token, &members_path).await;
    assert!(members["value"].as_array().unwrap().is_empty());
    assert_eq!(
        t.admin_delete(&format!("/tenants/{tid}/groups/{gid}?hard=true"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.graph(&token, &format!("/v1.0/groups/{gid}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.admin_delete(&user_path).await.status(),
        StatusCode::NOT_FOUND
    );
}
