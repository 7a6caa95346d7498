//! Graph v1.0 reads: authentication, permissions, query options and paging.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn bearer_is_checked() {
    let t = TestEmu::start().await;
    let resp = t
        .http
        .get(format!("{}/v1.0/users", t.base))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("www-authenticate"));
    assert_eq!(
        graph_error(resp, StatusCode::UNAUTHORIZED).await,
        "InvalidAuthenticationToken"
    );
    assert_eq!(
        graph_error(
            t.graph("made-up", "/v1.0/users").await,
            StatusCode::UNAUTHORIZED
        )
        .await,
        "InvalidAuthenticationToken"
    );
}

#[tokio::test]
async fn users_select_top_filter_and_single_user() {
    let t = TestEmu::start().await;
    let token = t.reader(0).await;
    let resp = t
        .http
        .get(format!("{}/v1.0/users", t.base))
        .bearer_auth(&token)
        .header("client-request-id", "c-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["client-request-id"], "c-42");
    assert!(resp.headers().contains_key("request-id"));
    let page: Value = resp.json().await.unwrap();
    assert_eq!(
        page["@odata.context"],
        format!("{}/v1.0/$metadata#users", t.base)
    );
    let users = page["value"].as_array().unwrap();
    assert_eq!(users.len(), 25);
    let u = &users[3];
    for p in [
        "id",
        "userPrincipalName",
        "displayName",
        "givenName",
        "surname",
        "mail",
        "businessPhones",
        "mobilePhone",
        "jobTitle",
    ] {
        assert!(u.get(p).is_some(), "{p} in default properties");
    }
    assert!(
        u.get("accountEnabled").is_none(),
        "accountEnabled only with $select"
    );

    let sel = t
        .graph_json(
            &token,
            "/v1.0/users?$select=displayName,accountEnabled,department&$top=10",
        )
        .await;
    assert_eq!(sel["value"].as_array().unwrap().len(), 10);
    let keys: HashSet<&str> = sel["value"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["id", "displayName", "accountEnabled", "department"])
    );
    let next = sel["@odata.nextLink"].as_str().unwrap();
    let rest = t.graph_json(&token, next).await;
    assert_eq!(rest["value"].as_array().unwrap().len(), 10);
    assert!(
        rest["value"][0].get("mail").is_none(),
        "nextLink keeps $select"
    );

    let id = u["id"].as_str().unwrap();
    let one = t
        .graph_json(&token, &format!("/v1.0/users?$filter=id eq '{id}'"))
        .await;
    assert_eq!(one["value"].as_array().unwrap().len(), 1);
    assert_eq!(one["value"][0]["id"], id);
    let single = t.graph_json(&token, &format!("/v1.0/users/{id}")).await;
    assert_eq!(single["userPrincipalName"], u["userPrincipalName"]);
    let by_upn = t
        .graph(
            &token,
            &format!("/v1.0/users/{}", u["userPrincipalName"].as_str().unwrap()),
        )
        .await;
    assert_eq!(by_upn.status(), StatusCode::OK);

    for (path, status, code) in [
        (
            "/v1.0/users?$top=1000",
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
        ),
        (
            "/v1.0/users?$select=shoeSize",
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
        ),
        (
            "/v1.0/users/00000000-0000-4000-8000-000000000000",
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
        ),
        ("/v1.0/me", StatusCode::BAD_REQUEST, "BadRequest"),
    ] {
        let resp = t.graph(&token, path).await;
        assert_eq!(graph_error(resp, status).await, code, "{path}");
    }
}

#[tokio::test]
async fn names_are_realistic_and_seeding_is_deterministic() {
    let opts = || entra_emulator::Options {
        tenants: 2,
        users: 300,
        groups: 2,
        seed: 42,
        ..Default::default()
    };
    let a = TestEmu::with(opts()).await;
    let b = TestEmu::with(opts()).await;
    assert_eq!(
        a.tenants, b.tenants,
        "same seed, same tenants, users and passwords"
    );
    let token = a.reader(0).await;
    let page = a.graph_json(&token, "/v1.0/users?$top=999").await;
    let names: Vec<&str> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 300);
    assert!(names.iter().any(|n| n.contains('\'')), "apostrophes");
    assert!(
        names
            .iter()
            .any(|n| n.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))),
        "CJK"
    );
    assert!(
        names
            .iter()
            .any(|n| n.chars().any(|c| ('\u{0370}'..='\u{03ff}').contains(&c))),
        "Greek"
    );
    assert!(
        names
            .iter()
            .any(|n| n.chars().any(|c| "éüñøóç".contains(c))),
        "accents"
    );
    let upns: HashSet<&str> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userPrincipalName"].as_str().unwrap())
        .collect();
    assert_eq!(upns.len(), 300, "user names are unique");
}

#[tokio::test]
async fn organization_and_groups() {
    let t = TestEmu::start().await;
    let token = t.reader(1).await;
    let org = t.graph_json(&token, "/v1.0/organization").await;
    let o = &org["value"][0];
    assert_eq!(o["id"], t.tid(1));
    assert_eq!(o["tenantType"], "AAD");
    assert_eq!(o["displayName"], t.tenants[1]["display_name"]);
    let d = &o["verifiedDomains"][0];
    assert_eq!(d["type"], "Managed");
    assert_eq!(d["capabilities"], "Email, OfficeCommunicationsOnline");
    assert!(d["isDefault"].is_boolean() && d["isInitial"].is_boolean() && d["name"].is_string());

    let groups = t.graph_json(&token, "/v1.0/groups").await;
    let groups = groups["value"].as_array().unwrap();
    assert_eq!(groups.len(), 4);
    let gid = groups[0]["id"].as_str().unwrap();
    let members = t
        .graph_json(&token, &format!("/v1.0/groups/{gid}/members"))
        .await;
    assert_eq!(
        members["value"].as_array().unwrap().len(),
        25,
        "the first group is everyone"
    );
    assert_eq!(
        t.graph(&token, &format!("/v1.0/groups/{gid}"))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn paging_through_ten_thousand_users() {
    let t = TestEmu::start().await;
    let big = t
        .admin_create(
            "/tenants",
            json!({"display_name": "Big Co", "users": 10_000, "groups": 1}),
        )
        .await;
    assert_eq!(big["users"], 10_000);
    let tid = big["id"].as_str().unwrap();
    let app = t.provider_app().await;
    t.grant(tid, &app, &["User.Read.All"]).await;
    let token = t.app_token(tid, &app).await;
    let mut next = Some(format!("{}/v1.0/users?$top=999&$select=id", t.base));
    let (mut ids, mut pages) = (HashSet::new(), 0);
    while let Some(url) = next {
        let page = t.graph_json(&token, &url).await;
        pages += 1;
        for u in page["value"].as_array().unwrap() {
            assert!(
                ids.insert(u["id"].as_str().unwrap().to_string()),
                "no duplicates"
            );
        }
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(ids.len(), 10_000);
    assert_eq!(pages, 11);
    // Default page size is 100.
    let page = t.graph_json(&token, "/v1.0/users").await;
    assert_eq!(page["value"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn a_hundred_thousand_user_tenant_is_seeded_in_full() {
    // How fast it starts is measured by `cargo bench -p entra-emulator --bench seed`, not here.
    let t = TestEmu::with(entra_emulator::Options {
        tenants: 1,
        users: 100_000,
        groups: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(t.tenants[0]["users"], 100_000);
}
