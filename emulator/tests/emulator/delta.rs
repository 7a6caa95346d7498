//! users/delta and groups/delta rounds in every form Graph accepts, membership deltas, `latest`,
//! 410 after a reset and 400 after expiry, `Prefer: return=minimal`, page size and latency.

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
async fn latest_token_and_reset() {
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
}

#[tokio::test]
async fn an_expired_delta_link_answers_400_sync_state_not_found() {
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
    assert!(!resp.headers().contains_key("location"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "syncStateNotFound", "{body}");
    assert_eq!(
        body["error"]["message"],
        "The sync state generation is not found. The delta token is expired and data must be synchronized again."
    );
    let resp = short.graph(&token, &link).await;
    assert_eq!(
        graph_error(resp, StatusCode::BAD_REQUEST).await,
        "syncStateNotFound"
    );
}

/// The ids of a whole round.
fn ids(items: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn delta_answers_in_the_short_the_function_and_the_qualified_form() {
    let t = TestEmu::start().await;
    let token = t.reader(0).await;
    for set in ["users", "groups"] {
        let (expected, _) = round(&t, &token, &format!("/v1.0/{set}/delta")).await;
        assert!(!expected.is_empty());
        for form in [
            "delta()",
            "microsoft.graph.delta()",
            "microsoft.graph.delta",
        ] {
            let (items, link) = round(&t, &token, &format!("/v1.0/{set}/{form}")).await;
            assert_eq!(ids(&items), ids(&expected), "/{set}/{form}");
            let (nothing, _) = round(&t, &token, &link).await;
            assert!(nothing.is_empty(), "/{set}/{form}: {nothing:?}");
        }
    }
}

#[tokio::test]
async fn return_minimal_answers_only_the_changed_properties_of_updated_objects() {
    let t = TestEmu::start().await;
    let tid = t.tid(0);
    let token = t.reader(0).await;
    let select = "$select=displayName,jobTitle,mail,department";
    let (users, link) = round(&t, &token, &format!("/v1.0/users/delta?{select}")).await;
    let (groups, group_link) = round(&t, &token, "/v1.0/groups/delta").await;
    let changed = users[3]["id"].as_str().unwrap();
    let resp = t
        .admin_patch(
            &format!("/tenants/{tid}/users/{changed}"),
            json!({"jobTitle": "Chief Cartographer", "department": users[3]["department"]}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let created = t
        .admin_create(
            &format!("/tenants/{tid}/users"),
            json!({"displayName": "New Hire", "jobTitle": "Intern"}),
        )
        .await;
    let gid = groups[1]["id"].as_str().unwrap();
    let resp = t
        .admin_patch(
            &format!("/tenants/{tid}/groups/{gid}"),
            json!({"description": "Renamed team"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    let minimal = t
        .http
        .get(&link)
        .bearer_auth(&token)
        .header("prefer", "return=minimal")
        .send()
        .await
        .unwrap();
    assert_eq!(minimal.status(), StatusCode::OK);
    assert_eq!(minimal.headers()["preference-applied"], "return=minimal");
    let page: Value = minimal.json().await.unwrap();
    let value = page["value"].as_array().unwrap();
    assert_eq!(value.len(), 2, "{value:#?}");
    let find = |id: &str| value.iter().find(|v| v["id"] == id).unwrap().clone();
    assert_eq!(
        find(changed),
        json!({"id": changed, "jobTitle": "Chief Cartographer"}),
        "only what changed (the department was set to its own value)"
    );
    let new = find(created["id"].as_str().unwrap());
    assert_eq!(new["displayName"], "New Hire", "new objects come whole");
    assert!(new.get("mail").is_some());

    // Without the preference the same link answers whole objects.
    let full = t.graph(&token, &link).await;
    assert!(!full.headers().contains_key("preference-applied"));
    let page: Value = full.json().await.unwrap();
    let whole = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == changed)
        .unwrap()
        .clone();
    assert_eq!(whole["displayName"], users[3]["displayName"]);
    assert_eq!(whole["jobTitle"], "Chief Cartographer");

    let group = t
        .http
        .get(&group_link)
        .bearer_auth(&token)
        .header("prefer", "odata.maxpagesize=50, return=minimal")
        .send()
        .await
        .unwrap();
    assert_eq!(group.headers()["preference-applied"], "return=minimal");
    let page: Value = group.json().await.unwrap();
    assert_eq!(
        page["value"],
        json!([{"id": gid, "description": "Renamed team"}])
    );
}

/// Sizes of the pages of a round.
async fn page_sizes(t: &TestEmu, token: &str, start: &str) -> Vec<usize> {
    let mut url = start.to_string();
    let mut sizes = Vec::new();
    loop {
        let page = t.graph_json(token, &url).await;
        sizes.push(page["value"].as_array().unwrap().len());
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => return sizes,
        }
    }
}

#[tokio::test]
async fn delta_pages_follow_the_page_size_set_at_start_or_through_the_admin_api() {
    let t = TestEmu::with(Options {
        tenants: 1,
        users: 450,
        groups: 1,
        page_size: 200,
        ..Options::default()
    })
    .await;
    let token = t.reader(0).await;
    assert_eq!(
        page_sizes(&t, &token, "/v1.0/users/delta").await,
        [200, 200, 50]
    );
    let settings = t.admin_post("/graph", json!({"page_size": 120})).await;
    assert_eq!(settings.status(), StatusCode::OK);
    assert_eq!(
        settings.json::<Value>().await.unwrap(),
        json!({"latency_ms": 0, "page_size": 120, "members_per_slice": 100})
    );
    assert_eq!(
        page_sizes(&t, &token, "/v1.0/users/delta()").await,
        [120, 120, 120, 90]
    );
    assert_eq!(
        page_sizes(&t, &token, "/v1.0/users?$select=id").await,
        [120, 120, 120, 90],
        "lists share the default"
    );
    let resp = t.admin_post("/graph", json!({"page_size": 0})).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn graph_latency_holds_every_page_and_is_not_a_fault() {
    let t = TestEmu::with(Options {
        tenants: 1,
        users: 30,
        groups: 1,
        page_size: 10,
        graph_latency_ms: 150,
        ..Options::default()
    })
    .await;
    let token = t.reader(0).await;
    let started = std::time::Instant::now();
    assert_eq!(
        page_sizes(&t, &token, "/v1.0/users/delta").await,
        [10, 10, 10]
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_millis(3 * 150),
        "three pages take at least three latencies: {elapsed:?}"
    );
    assert_eq!(t.get_json("/_emulator/graph").await["latency_ms"], 150);

    t.admin_post("/graph", json!({"latency_ms": 400})).await;
    let started = std::time::Instant::now();
    t.graph_json(&token, "/v1.0/organization").await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    let faults = t.get_json("/_emulator/faults").await;
    assert_eq!(
        faults["injected"]["delayed"], 0,
        "Graph's latency is not a fault"
    );
}

#[tokio::test]
async fn a_large_group_repeats_across_pages_with_a_slice_of_members_each_time() {
    let t = TestEmu::start().await;
    let token = t.reader(0).await;
    let resp = t
        .admin_post("/graph", json!({"members_per_slice": 2}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (items, _) = round(&t, &token, "/v1.0/groups/delta").await;
    let groups = t.graph_json(&token, "/v1.0/groups").await;
    for group in groups["value"].as_array().unwrap() {
        let id = group["id"].as_str().unwrap();
        let listed = t
            .graph_json(&token, &format!("/v1.0/groups/{id}/members"))
            .await["value"]
            .as_array()
            .unwrap()
            .len();
        let sightings: Vec<&Value> = items.iter().filter(|i| i["id"] == id).collect();
        // Every sighting carries the same properties and at most a slice of members; together
        // they hold every member once.
        assert_eq!(sightings.len(), listed.div_ceil(2).max(1), "{id}");
        let mut members = std::collections::BTreeSet::new();
        for s in &sightings {
            assert_eq!(s["displayName"], group["displayName"]);
            let slice = s["members@delta"].as_array().map_or(0, |m| m.len());
            assert!(slice <= 2);
            members.extend(
                s["members@delta"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| m["id"].as_str().unwrap().to_owned()),
            );
        }
        assert_eq!(members.len(), listed, "{id}");
    }
}

#[tokio::test]
async fn members_of_every_kind_carry_their_type_and_a_deleted_security_group_is_gone_for_good() {
    let t = TestEmu::start().await;
    let tid = t.tid(0);
    let token = t.reader(0).await;
    let (groups, _) = round(&t, &token, "/v1.0/groups/delta").await;
    let nested = groups[0]["id"].as_str().unwrap().to_owned();
    let user = t.admin(0);
    let user = t
        .graph_json(&token, &format!("/v1.0/users/{}", user.0))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut members = vec![json!(user), json!(nested)];
    for kind in [
        "#microsoft.graph.servicePrincipal",
        "#microsoft.graph.device",
        "#microsoft.graph.orgContact",
    ] {
        let made = t
            .admin_create(
                &format!("/tenants/{tid}/objects"),
                json!({"@odata.type": kind, "displayName": kind}),
            )
            .await;
        members.push(made["id"].clone());
    }
    let wrong = t
        .admin_post(
            &format!("/tenants/{tid}/objects"),
            json!({"@odata.type": "#microsoft.graph.user", "displayName": "x"}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let (_, link) = round(&t, &token, "/v1.0/groups/delta").await;
    let parent = t
        .admin_create(
            &format!("/tenants/{tid}/groups"),
            json!({"displayName": "Everything", "members": members}),
        )
        .await;
    let pid = parent["id"].as_str().unwrap().to_owned();
    let listed = t
        .graph_json(&token, &format!("/v1.0/groups/{pid}/members"))
        .await;
    let mut kinds: Vec<&str> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["@odata.type"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "#microsoft.graph.device",
            "#microsoft.graph.group",
            "#microsoft.graph.orgContact",
            "#microsoft.graph.servicePrincipal",
            "#microsoft.graph.user",
        ]
    );
    let (items, link) = round(&t, &token, &link).await;
    let parent_delta = items.iter().find(|i| i["id"] == pid.as_str()).unwrap();
    let mut kinds: Vec<&str> = parent_delta["members@delta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["@odata.type"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds.len(), 5);
    assert!(kinds.contains(&"#microsoft.graph.orgContact"));

    // A security group deleted without `hard` is gone for good, and leaves its parent.
    let resp = t
        .admin_delete(&format!("/tenants/{tid}/groups/{nested}"))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (items, _) = round(&t, &token, &link).await;
    let gone = items.iter().find(|i| i["id"] == nested.as_str()).unwrap();
    let security = groups[0]["securityEnabled"] == true;
    assert_eq!(
        gone["@removed"]["reason"],
        if security { "deleted" } else { "changed" },
        "{gone}"
    );
    let parent_delta = items.iter().find(|i| i["id"] == pid.as_str()).unwrap();
    assert_eq!(
        parent_delta["members@delta"],
        json!([{"@odata.type": "#microsoft.graph.group", "id": nested, "@removed": {"reason": "deleted"}}])
    );
}

#[tokio::test]
async fn a_property_cleared_through_the_admin_api_comes_as_null_under_return_minimal() {
    let t = TestEmu::start().await;
    let tid = t.tid(0);
    let token = t.reader(0).await;
    let (users, link) = round(&t, &token, "/v1.0/users/delta").await;
    let user = users.iter().find(|u| u["jobTitle"].is_string()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = t
        .admin_patch(
            &format!("/tenants/{tid}/users/{user}"),
            json!({"jobTitle": null}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page: Value = t
        .http
        .get(&link)
        .bearer_auth(&token)
        .header("prefer", "return=minimal")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["value"], json!([{"id": user, "jobTitle": null}]));
}
