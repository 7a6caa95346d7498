//! Sync scope against the emulator: a group scope holds the transitive members of its groups
//! and follows the directory (a user leaving the group leaves the API's answer with a
//! `deleted` event, and comes back with `created`); an app-assignment scope holds the users and
//! groups assigned to the provider's enterprise app and the assigned groups' members; a tenant
//! that does not let Gangway read the assignments fails its sync with a reason and keeps its
//! copy; the API refuses bad input with problem details; the console's form sets the scope.

use std::time::{Duration, Instant};

use gangway::directory::runs::RunOutcome;
use gangway::operators::Role;
use gangway::web::paths;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, scim_connection_up_to_date, scim_push_due};
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

/// A user of the emulator's tenant `tid` named `name`.
async fn user(app: &TestApp, tid: &str, name: &str) -> Uuid {
    let body = json!({"userPrincipalName": format!("{name}@scope.example"), "displayName": name});
    make(app, tid, "/users", body).await
}

/// A group named `name` holding `members`.
async fn group(app: &TestApp, tid: &str, name: &str, members: &[Uuid]) -> Uuid {
    let body = json!({"displayName": name, "members": members});
    make(app, tid, "/groups", body).await
}

/// Syncs the tenant now, to success.
async fn sync(app: &TestApp, tenant: Uuid) {
    sync_now(app, tenant).await;
    let report = work(app).await;
    assert_eq!(report.outcome, RunOutcome::Succeeded, "{:?}", report.error);
}

/// The object ids (`key`) of every item of an API listing, sorted.
async fn listed(app: &TestApp, read: &str, path: &str, key: &str) -> Vec<Uuid> {
    let (status, _, body) = call(
        app,
        Method::GET,
        &format!("{path}?limit=500"),
        Some(read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    assert!(body["next_cursor"].is_null(), "one page holds them all");
    let mut ids: Vec<Uuid> = body["items"]
        .as_array()
        .unwrap()
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

/// The `event_type` events about `object` in the event stream, waiting (a while) until there
/// are at least `n`: an event is readable once older transactions on the server have ended.
async fn events_about(
    app: &TestApp,
    read: &str,
    tenant: Uuid,
    event_type: &str,
    object: Uuid,
    n: usize,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let (status, _, page) = call(
            app,
            Method::GET,
            &format!("/api/v1/events?tenant={tenant}&types={event_type}&limit=500"),
            Some(read),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let found: Vec<Value> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["data"]["object_id"] == json!(object))
            .cloned()
            .collect();
        if found.len() >= n || started.elapsed() > Duration::from_secs(30) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// PUTs a scope through the API; the status and the answer.
async fn put_scope(app: &TestApp, write: &str, tenant: Uuid, body: Value) -> (StatusCode, Value) {
    let (status, _, answer) = call(
        app,
        Method::PUT,
        &format!("/api/v1/tenants/{tenant}/scope"),
        Some(write),
        Some(body),
    )
    .await;
    (status, answer)
}

#[tokio::test]
async fn a_group_scope_holds_its_groups_transitive_members_and_follows_the_directory() {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    let (ada, bo, cy, dee) = (
        user(&app, &tid, "ada").await,
        user(&app, &tid, "bo").await,
        user(&app, &tid, "cy").await,
        user(&app, &tid, "dee").await,
    );
    // Sales holds Ada and, nested, Support with Cy; Bo and Dee are in neither.
    let support = group(&app, &tid, "Support", &[cy]).await;
    let sales = group(&app, &tid, "Sales", &[ada, support]).await;
    let others = group(&app, &tid, "Others", &[bo, dee]).await;
    let first = work(&app).await;
    assert_eq!(first.outcome, RunOutcome::Succeeded, "{:?}", first.error);

    app.sign_in(Role::Admin).await;
    let read = token(&app, "scope-read", "read").await;
    let write = token(&app, "scope-write", "write").await;
    let at = format!("/api/v1/tenants/{tenant}");
    let everyone = listed(&app, &read, &format!("{at}/users"), "object_id").await;
    assert!(
        everyone.len() > 4 && everyone.contains(&bo),
        "everyone at first"
    );
    let (status, _, scope) =
        call(&app, Method::GET, &format!("{at}/scope"), Some(&read), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(scope["kind"], "all");
    scim_connection_up_to_date(&app, &write).await;

    let (status, scope) = put_scope(
        &app,
        &write,
        tenant,
        json!({"kind": "groups", "groups": [sales]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{scope}");
    assert!(
        scim_push_due(&app).await,
        "the SCIM push follows the objects leaving the scope"
    );
    assert_eq!(scope["kind"], "groups");
    assert_eq!(scope["groups"][0]["display_name"], "Sales");
    assert_eq!(scope["users_in_scope"], 2);
    assert_eq!(
        listed(&app, &read, &format!("{at}/users"), "object_id").await,
        sorted(vec![ada, cy])
    );
    assert_eq!(
        listed(&app, &read, &format!("{at}/groups"), "object_id").await,
        sorted(vec![sales, support])
    );
    // Out of scope: not found, however asked.
    let (status, _, _) = call(
        &app,
        Method::GET,
        &format!("{at}/groups/{others}/members"),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(
        &app,
        Method::GET,
        &format!("{at}/users/{bo}/groups"),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Those who left were reported deleted; an operator's change is no runaway deletion.
    let left = events_about(&app, &read, tenant, "directory.user.deleted", bo, 1).await;
    assert_eq!(left.len(), 1, "Bo left the scope");
    assert_eq!(left[0]["data"]["scope"], "left");
    let (status, _, held) = call(
        &app,
        Method::GET,
        &format!("{at}/deletions"),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(held["held"], false, "{held}");

    // Ada leaves Sales in the directory: she leaves the copy's answer, with an event.
    emulator(
        &app,
        Method::DELETE,
        &format!("/_emulator/tenants/{tid}/groups/{sales}/members/{ada}"),
        None,
    )
    .await;
    sync(&app, tenant).await;
    assert_eq!(
        listed(&app, &read, &format!("{at}/users"), "object_id").await,
        vec![cy]
    );
    let gone = events_about(&app, &read, tenant, "directory.user.deleted", ada, 1).await;
    assert_eq!(gone.len(), 1, "Ada's departure is an event");
    assert_eq!(gone[0]["data"]["permanent"], true);

    // Back in Sales: back in the answer, created again.
    emulator(
        &app,
        Method::POST,
        &format!("/_emulator/tenants/{tid}/groups/{sales}/members"),
        Some(json!({"id": ada})),
    )
    .await;
    sync(&app, tenant).await;
    assert_eq!(
        listed(&app, &read, &format!("{at}/users"), "object_id").await,
        sorted(vec![ada, cy])
    );
    // Created once by the first sync, once on her return.
    let back = events_about(&app, &read, tenant, "directory.user.created", ada, 2).await;
    assert_eq!(back.len(), 2, "{back:?}");
    assert_eq!(back[1]["data"]["scope"], "entered");

    // Bad input: problem details, nothing changed.
    for (body, why) in [
        (
            json!({"kind": "groups", "groups": [Uuid::new_v4()]}),
            "not in the tenant's directory copy",
        ),
        (
            json!({"kind": "groups", "groups": []}),
            "at least one group",
        ),
    ] {
        let (status, problem) = put_scope(&app, &write, tenant, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(why),
            "{problem}"
        );
    }
    let (status, _) = put_scope(&app, &write, tenant, json!({"kind": "some"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = put_scope(&app, &read, tenant, json!({"kind": "all"})).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a read token changes nothing"
    );

    // Everyone again: all come back.
    let (status, _) = put_scope(&app, &write, tenant, json!({"kind": "all"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed(&app, &read, &format!("{at}/users"), "object_id").await,
        everyone
    );
}

#[tokio::test]
async fn an_app_assignment_scope_holds_the_assigned_users_and_the_assigned_groups_members() {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let mut permissions = all_app_permissions();
    permissions.push("Application.Read.All");
    let tenant = connect(&app, &tid, &permissions).await;
    let (ada, bo, cy, dee) = (
        user(&app, &tid, "ada").await,
        user(&app, &tid, "bo").await,
        user(&app, &tid, "cy").await,
        user(&app, &tid, "dee").await,
    );
    let nested = group(&app, &tid, "Nested", &[cy]).await;
    let team = group(&app, &tid, "Team", &[bo, nested]).await;
    group(&app, &tid, "Elsewhere", &[dee]).await;
    // As the customer's admin does under Enterprise applications → Users and groups.
    let assignments = format!(
        "/_emulator/tenants/{tid}/apps/{}/assignments",
        app.app.client_id
    );
    for principal in [ada, team] {
        emulator(
            &app,
            Method::POST,
            &assignments,
            Some(json!({"principal": principal})),
        )
        .await;
    }
    let first = work(&app).await;
    assert_eq!(first.outcome, RunOutcome::Succeeded, "{:?}", first.error);

    app.sign_in(Role::Admin).await;
    let read = token(&app, "scope-read", "read").await;
    let write = token(&app, "scope-write", "write").await;
    let at = format!("/api/v1/tenants/{tenant}");
    let (status, scope) = put_scope(&app, &write, tenant, json!({"kind": "app_assignments"})).await;
    assert_eq!(status, StatusCode::OK, "{scope}");
    assert!(
        scope["assignments_read_at"].is_null(),
        "not read before the next sync: {scope}"
    );
    assert!(
        listed(&app, &read, &format!("{at}/users"), "object_id")
            .await
            .contains(&dee),
        "nothing leaves before the assignments are read"
    );

    sync(&app, tenant).await;
    assert_eq!(
        listed(&app, &read, &format!("{at}/users"), "object_id").await,
        sorted(vec![ada, bo, cy])
    );
    assert_eq!(
        listed(&app, &read, &format!("{at}/groups"), "object_id").await,
        sorted(vec![team, nested])
    );
    let (_, _, scope) = call(&app, Method::GET, &format!("{at}/scope"), Some(&read), None).await;
    assert_eq!(scope["kind"], "app_assignments");
    assert!(scope["assignments_read_at"].is_string(), "{scope}");
}

#[tokio::test]
async fn an_app_assignment_scope_gangway_may_not_read_fails_the_sync_and_keeps_the_copy() {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    let first = work(&app).await;
    assert_eq!(first.outcome, RunOutcome::Succeeded, "{:?}", first.error);
    app.sign_in(Role::Admin).await;
    let read = token(&app, "scope-read", "read").await;
    let write = token(&app, "scope-write", "write").await;
    let at = format!("/api/v1/tenants/{tenant}");
    let before = listed(&app, &read, &format!("{at}/users"), "object_id").await;
    let (status, _) = put_scope(&app, &write, tenant, json!({"kind": "app_assignments"})).await;
    assert_eq!(status, StatusCode::OK);

    sync_now(&app, tenant).await;
    let report = work(&app).await;
    assert_eq!(report.outcome, RunOutcome::Failed);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("Application.Read.All"), "{error}");
    assert_eq!(
        listed(&app, &read, &format!("{at}/users"), "object_id").await,
        before,
        "not an empty copy"
    );
}

#[tokio::test]
async fn the_console_sets_the_scope_from_the_tenant_page() {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    let ada = user(&app, &tid, "ada").await;
    let sales = group(&app, &tid, "Sales", &[ada]).await;
    let first = work(&app).await;
    assert_eq!(first.outcome, RunOutcome::Succeeded, "{:?}", first.error);
    app.sign_in(Role::Admin).await;

    let scope_page = paths::tenant_scope(tenant.into());
    let page = app.get(&scope_page).await.text().await.unwrap();
    assert!(page.contains("Everyone"), "{page}");
    // The picker searches the copy's groups.
    let found = app
        .get(&format!("{scope_page}?q=sal"))
        .await
        .text()
        .await
        .unwrap();
    assert!(found.contains("Sales"), "{found}");
    assert!(found.contains(&sales.to_string()), "{found}");

    let sales_id = sales.to_string();
    let response = app
        .post_and_follow(&scope_page, &[("kind", "groups"), ("groups", &sales_id)])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("Sync scope changed"), "{page}");
    assert!(page.contains("Sales"), "{page}");
    let users = app
        .get(&paths::tenant_users(tenant.into()))
        .await
        .text()
        .await
        .unwrap();
    assert!(users.contains("ada@<wbr>scope"), "{users}");
    assert_eq!(
        users.matches("<td class=\"lead\">").count(),
        1,
        "only Sales's members: {users}"
    );
    // Ada's page lists the group she is in.
    let ada_page = app
        .get(&paths::tenant_user(tenant.into(), ada))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        ada_page.contains(&paths::tenant_group(tenant.into(), sales)),
        "{ada_page}"
    );

    // An unknown group: the form says so, nothing changes.
    let response = app
        .post_form(
            &scope_page,
            &[("kind", "groups"), ("groups", &Uuid::new_v4().to_string())],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(page.contains("not in the tenant"), "{page}");
    // The refused form changed nothing.
    let (status, _, scope) = call(
        &app,
        Method::GET,
        &format!("/api/v1/tenants/{tenant}/scope"),
        Some(&token(&app, "scope-read", "read").await),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(scope["kind"], "groups", "the refused form changed nothing");
}

/// A tenant copied once (Ada in Sales), then scoped to Sales through the API by a signed-in
/// admin; with its read and write tokens.
struct ScopedToSales {
    app: TestApp,
    tid: String,
    tenant: Uuid,
    ada: Uuid,
    sales: Uuid,
    read: String,
    write: String,
}

async fn scoped_to_sales() -> ScopedToSales {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    let ada = user(&app, &tid, "ada").await;
    let sales = group(&app, &tid, "Sales", &[ada]).await;
    let first = work(&app).await;
    assert_eq!(first.outcome, RunOutcome::Succeeded, "{:?}", first.error);
    app.sign_in(Role::Admin).await;
    let read = token(&app, "scope-read", "read").await;
    let write = token(&app, "scope-write", "write").await;
    let (status, _) = put_scope(
        &app,
        &write,
        tenant,
        json!({"kind": "groups", "groups": [sales]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    ScopedToSales {
        app,
        tid,
        tenant,
        ada,
        sales,
        read,
        write,
    }
}

#[tokio::test]
async fn offboarding_erases_the_scope_with_the_copy() {
    let ScopedToSales {
        app,
        tenant,
        read,
        write,
        ..
    } = scoped_to_sales().await;

    let at = format!("/api/v1/tenants/{tenant}");
    let (status, _, _) = call(
        &app,
        Method::POST,
        &format!("{at}/offboard"),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Nothing of the old scope is left: a tenant invited again starts from everyone.
    let (status, _, scope) =
        call(&app, Method::GET, &format!("{at}/scope"), Some(&read), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(scope["kind"], "all", "{scope}");
    assert_eq!(scope["groups"], json!([]), "{scope}");
    let rows: i64 =
        sqlx::query_scalar("select count(*) from sync_scope_principals where tenant_id = $1")
            .bind(tenant)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn a_member_entering_the_scope_with_a_membership_already_seen_is_added_once() {
    let ScopedToSales {
        app,
        tid,
        tenant,
        ada,
        sales,
        read,
        ..
    } = scoped_to_sales().await;

    // Eve joins Sales as a new user; the users chain lags, so the groups chain reads her
    // membership before the copy holds her.
    let eve = user(&app, &tid, "eve").await;
    emulator(
        &app,
        Method::POST,
        &format!("/_emulator/tenants/{tid}/groups/{sales}/members"),
        Some(json!({"id": eve})),
    )
    .await;
    emulator(
        &app,
        Method::POST,
        "/_emulator/faults",
        Some(json!({"latency_ms": 1500, "path_prefix": "/v1.0/users"})),
    )
    .await;
    sync(&app, tenant).await;

    assert_eq!(
        listed(
            &app,
            &read,
            &format!("/api/v1/tenants/{tenant}/users"),
            "object_id"
        )
        .await,
        sorted(vec![ada, eve])
    );
    let created = events_about(&app, &read, tenant, "directory.user.created", eve, 1).await;
    assert_eq!(created.len(), 1, "{created:?}");
    let (status, _, page) = call(
        &app,
        Method::GET,
        &format!("/api/v1/events?tenant={tenant}&types=directory.membership.added&limit=500"),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let added: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["member_id"] == json!(eve))
        .collect();
    assert_eq!(added.len(), 1, "Eve joined Sales once: {added:?}");
    assert_eq!(added[0]["data"]["group_id"], json!(sales));
}
