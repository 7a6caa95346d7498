//! Nested groups through the JSON API and the console, over a copy a real sync made from the
//! emulator: transitive members (a cycle included), a user's groups at any depth, and members
//! of every type Graph returns.

use gangway::directory::runs::RunOutcome;
use gangway::operators::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::json_api::{call, token};
use crate::sync::{all_app_permissions, connect, emulator, sync_now, work};

/// Makes a directory object through the emulator's admin API; returns its id.
async fn make(app: &TestApp, tid: &str, path: &str, body: Value) -> Uuid {
    let made = emulator(
        app,
        Method::POST,
        &format!("/_emulator/tenants/{tid}{path}"),
        Some(body),
    )
    .await;
    made["id"].as_str().unwrap().parse().unwrap()
}

/// Every item of a paged API listing, following `next_cursor` `limit` at a time.
async fn all(app: &TestApp, read: &str, path: &str, limit: u32) -> Vec<Value> {
    let (mut items, mut cursor) = (Vec::new(), None::<String>);
    let join = if path.contains('?') { '&' } else { '?' };
    loop {
        let page = match &cursor {
            None => format!("{path}{join}limit={limit}"),
            Some(c) => format!("{path}{join}limit={limit}&cursor={c}"),
        };
        let (status, _, body) = call(app, Method::GET, &page, Some(read), None).await;
        assert_eq!(status, StatusCode::OK, "{page}: {body}");
        items.extend(body["items"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

fn ids(items: &[Value], key: &str) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = items
        .iter()
        .map(|i| i[key].as_str().unwrap().parse().unwrap())
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

#[tokio::test]
async fn nested_groups_answer_transitive_members_and_a_users_groups_through_a_cycle() {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    let user = |name: &str| json!({"userPrincipalName": format!("{name}@nesting.example"), "displayName": name});
    let (ada, bo, cy) = (
        make(&app, &tid, "/users", user("ada")).await,
        make(&app, &tid, "/users", user("bo")).await,
        make(&app, &tid, "/users", user("cy")).await,
    );
    let robot = make(
        &app,
        &tid,
        "/objects",
        json!({"@odata.type": "#microsoft.graph.servicePrincipal", "displayName": "Payroll connector"}),
    )
    .await;
    let kiosk = make(
        &app,
        &tid,
        "/objects",
        json!({"@odata.type": "#microsoft.graph.device", "displayName": "Front desk kiosk"}),
    )
    .await;
    // Depth 3: top ⊃ middle ⊃ bottom, and bottom holds top again (a cycle).
    let bottom = make(
        &app,
        &tid,
        "/groups",
        json!({"displayName": "Bottom", "members": [cy, robot]}),
    )
    .await;
    let middle = make(
        &app,
        &tid,
        "/groups",
        json!({"displayName": "Middle", "members": [bottom, bo]}),
    )
    .await;
    let top = make(
        &app,
        &tid,
        "/groups",
        json!({"displayName": "Top", "members": [middle, ada, kiosk]}),
    )
    .await;
    emulator(
        &app,
        Method::POST,
        &format!("/_emulator/tenants/{tid}/groups/{bottom}/members"),
        Some(json!({"id": top})),
    )
    .await;
    let first = work(&app).await;
    assert_eq!(first.outcome, RunOutcome::Succeeded, "{:?}", first.error);

    app.sign_in(Role::Admin).await;
    let read = token(&app, "nesting", "read").await;
    let at = format!("/api/v1/tenants/{tenant}");

    // Every member at any depth, each once, the group itself left out though the cycle
    // leads back to it; two at a time to walk the cursor.
    let members = all(
        &app,
        &read,
        &format!("{at}/groups/{top}/transitive-members"),
        2,
    )
    .await;
    assert_eq!(
        ids(&members, "member_id"),
        sorted(vec![middle, bottom, ada, bo, cy, robot, kiosk])
    );
    let kind = |id: Uuid| {
        members
            .iter()
            .find(|m| m["member_id"] == json!(id))
            .map(|m| m["member_type"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(kind(robot), "servicePrincipal");
    assert_eq!(kind(kiosk), "device");
    assert_eq!(kind(bottom), "group");
    assert_eq!(kind(cy), "user");
    // Direct members stay direct.
    let direct = all(&app, &read, &format!("{at}/groups/{top}/members"), 100).await;
    assert_eq!(ids(&direct, "member_id"), sorted(vec![middle, ada, kiosk]));
    // From the bottom the cycle brings every group in, bottom itself left out.
    let from_bottom = all(
        &app,
        &read,
        &format!("{at}/groups/{bottom}/transitive-members"),
        100,
    )
    .await;
    assert_eq!(from_bottom.len(), 7, "{from_bottom:?}");

    // Cy is in bottom itself, and through it in middle and top.
    let direct = all(&app, &read, &format!("{at}/users/{cy}/groups"), 100).await;
    assert_eq!(ids(&direct, "object_id"), vec![bottom]);
    let inherited = all(
        &app,
        &read,
        &format!("{at}/users/{cy}/groups?transitive=true"),
        1,
    )
    .await;
    assert_eq!(
        ids(&inherited, "object_id"),
        sorted(vec![top, middle, bottom])
    );
    assert_eq!(
        inherited
            .iter()
            .find(|g| g["object_id"] == json!(top))
            .unwrap()["display_name"],
        "Top"
    );
    for missing in [
        format!("{at}/users/{}/groups", Uuid::new_v4()),
        format!("{at}/users/nope/groups"),
        format!("{at}/groups/{}/transitive-members", Uuid::new_v4()),
        format!(
            "/api/v1/tenants/{}/groups/{top}/transitive-members",
            Uuid::new_v4()
        ),
    ] {
        let (status, ..) = call(&app, Method::GET, &missing, Some(&read), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }
    let (status, ..) = call(
        &app,
        Method::GET,
        &format!("{at}/users/{cy}/groups?transitive=maybe"),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, _, doc) = call(&app, Method::GET, "/api/v1/openapi.json", None, None).await;
    for path in [
        "/api/v1/tenants/{id}/groups/{group_id}/transitive-members",
        "/api/v1/tenants/{id}/users/{user_id}/groups",
    ] {
        assert!(
            doc["paths"][path]["get"].is_object(),
            "{path} is documented"
        );
    }

    // The console's group page shows direct and all members, each with its type.
    let page = app
        .get(&gangway::web::paths::tenant_group(tenant.into(), top))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("All members, through nested groups"),
        "{page}"
    );
    assert!(
        page.contains("Service principal") && page.contains("Device"),
        "{page}"
    );
    assert!(page.contains(&robot.to_string()) && page.contains(&cy.to_string()));

    // Cy leaves bottom: the copy follows, and so do the answers.
    emulator(
        &app,
        Method::DELETE,
        &format!("/_emulator/tenants/{tid}/groups/{bottom}/members/{cy}"),
        None,
    )
    .await;
    sync_now(&app, tenant).await;
    let second = work(&app).await;
    assert_eq!(second.outcome, RunOutcome::Succeeded, "{:?}", second.error);
    let inherited = all(
        &app,
        &read,
        &format!("{at}/users/{cy}/groups?transitive=true"),
        100,
    )
    .await;
    assert!(inherited.is_empty(), "{inherited:?}");
    let members = all(
        &app,
        &read,
        &format!("{at}/groups/{top}/transitive-members"),
        100,
    )
    .await;
    assert_eq!(members.len(), 6);
}
