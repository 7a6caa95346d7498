//! users/delta and groups/delta rounds, membership deltas, `latest`, and 410 after reset/expiry.

use entra_emulator::Options;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Follows nextLinks to the deltaLink; returns (all items, deltaLink).
async fn round(t: &TestEmu, token: &str, start: &str) -> (Vec<Value>, String) {
    let mut url = start.to_string();
    let mut items = Vec::new();
    loop {
        let resp = t.graph(token, &url).await;
        assert_eq!(resp.status(), StatusCode::OK, "{url}");
        let page: Value = resp.json().await.unwrap();
        items.extend(page["value"].as_array().unwrap().iter().cloned());
        if let Some(next) = page["@odata.nextLink"].as_str() {
            url = next.to_string();
        } else {
            return (
                items,
                page["@odata.deltaLink"]
                    .as_str()
                    .expect("deltaLink")
                    .to_string(),
            );
        }
    }
}

#[tokio::test]
async fn a_delta_round_after_changes_returns_exactly_the_changes() {
    let t = TestEmu::with(Options {
        tenants: 1,
        users: 250,
        groups: 2,
        seed: 3,
        ..Options::default()
    })
    .await;
    let tid = t.tid(0);
    let token = t.reader(0).await;
    let (all, link) = round(
        &t,
        &token,
        &format!(
            "{}/v1.0/users/delta?$select=displayName,userPrincipalName,accountEnabled",
            t.base
        ),
    )
    .await;
    assert_eq!(all.len(), 250);
    assert!(all[0].get("mail").is_none() && all[0].get("accountEnabled").is_some());

    let (nothing, link) = round(&t, &token, &link).await;
    assert!(nothing.is_empty(), "no changes, no items: {nothing:?}");

    let created: Value = t.admin_post(&format!("/tenants/{tid}/users"), json!({"displayName": "Seán Ó Briain", "userPrincipalName": "sean.obriain@example.test"})).await.json().await.unwrap();
    let users = all
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    let user_path = |i: usize| format!("/tenants/{tid}/users/{}", users[i]);
    let patch = t
        .admin_patch(
            &user_path(5),
            json!({"jobTitle": "CFO", "displayName": "Renamed"}),
        )
        .await;
    assert_eq!(patch.status(), StatusCode::OK);
    for path in [user_path(7), format!("{}?hard=true", user_path(9))] {
        let resp = t.admin_delete(&path).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{path}");
    }

    let (changes, _) = round(&t, &token, &link).await;
    assert_eq!(changes.len(), 4, "{changes:#?}");
    let find = |id: &str| {
        changes
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing"))
    };
    assert_eq!(find(&users[5])["displayName"], "Renamed");
    assert_eq!(
        find(created["id"].as_str().unwrap())["displayName"],
        "Seán Ó Briain"
    );
    assert_eq!(find(&users[7])["@removed"]["reason"], "changed");
    assert_eq!(find(&users[9])["@removed"]["reason"], "deleted");
}

#[tokio::test]
async fn group_delta_reports_membership_changes() {
    let t = TestEmu::with(Options {
        tenants: 1,
        users: 30,
        groups: 3,
        seed: 5,
        ..Options::default()
    })
    .await;
    let tid = t.tid(0);
    let token = t.reader(0).await;
    let (groups, link) = round(
        &t,
        &token,
        &format!("{}/v1.0/groups/delta?$select=displayName,members", t.base),
    )
    .await;
    assert_eq!(groups.len(), 3);
    let everyone = &groups[0];
    assert_eq!(everyone["members@delta"].as_array().unwrap().len(), 30);
    assert_eq!(
        everyone["members@delta"][0]["@odata.type"],
        "#microsoft.graph.user"
    );

    let gid = groups[1]["id"].as_str().unwrap();
    let current: Vec<String> = groups[1]["members@delta"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|x| x["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    let users = t.graph_json(&token, "/v1.0/users?$select=id").await;
    let outsider = users["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .find(|id| !current.contains(id))
        .unwrap();
    let leaver = current.first().cloned().expect("group 1 has members");
    assert_eq!(
        t.admin_post(
            &format!("/tenants/{tid}/groups/{gid}/members"),
            json!({"id": outsider})
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
    let resp = t
        .admin_delete(&format!("/tenants/{tid}/groups/{gid}/members/{leaver}"))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    let (changes, _) = round(&t, &token, &link).await;
    assert_eq!(changes.len(), 1, "{changes:#?}");
    let members = changes[0]["members@delta"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    let added = members
        .iter()
        .find(|m| m["id"] == outsider.as_str())
        .unwrap();
    assert!(added.get("@removed").is_none());
    let removed = members.iter().find(|m| m["id"] == leaver.as_str()).unwrap();
    assert_eq!(removed["@removed"]["reason"], "deleted");
}

#[tokio::test]
async fn latest_token_reset_and_expiry() {
    let t = TestEmu::start().await;
    let tid = t.tid(0);
    let token = t.reader(0).await;
    let latest = t
        .graph_json(&token, "/v1.0/users/delta?$deltatoken=latest")
        .await;
    assert!(latest["value"].as_array().unwrap().is_empty());
    let link = latest["@odata.deltaLink"].as_str().unwrap().to_string();
    t.admin_post(
        &format!("/tenants/{tid}/users"),
        json!({"displayName": "New Hire"}),
    )
    .await;
    let (changes, _) = round(&t, &token, &link).await;
    assert_eq!(changes.len(), 1);

    assert_eq!(
        t.admin_post(&format!("/tenants/{tid}/delta-reset"), json!({}))
            .await
            .status(),
        StatusCode::OK
    );
    let resp = t.graph(&token, &link).await;
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("{}/v1.0/users/delta", t.base));
    assert_eq!(graph_error(resp, StatusCode::GONE).await, "resyncRequired");
    let (all, _) = round(&t, &token, &location).await;
    assert_eq!(all.len(), 26);
    assert_eq!(
        graph_error(
            t.graph(&token, "/v1.0/users/delta?$top=5").await,
            StatusCode::BAD_REQUEST
        )
        .await,
        "Request_UnsupportedQuery"
    );

    let short = TestEmu::with(Options {
        tenants: 1,
        users: 3,
        groups: 1,
        delta_token_lifetime_secs: 0,
        ..Options::default()
    })
    .await;
    let token = short.reader(0).await;
    let (_, link) = round(&short, &token, "/v1.0/users/delta").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let resp = short.graph(&token, &link).await;
    assert!(resp.headers().contains_key("location"));
    assert_eq!(
        graph_error(resp, StatusCode::GONE).await,
        "syncStateNotFound"
    );
}
