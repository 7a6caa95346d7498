//! A sync scope chosen on the invitation, through the real wizard: the customer's admin reads
//! what will be copied before consenting; the connected tenant takes the scope; named groups
//! resolve after the first sync — by name or object id, nested members included — and a name
//! that matches several groups leaves the scope holding no one until it is fixed; an
//! app-assignment scope copies the users and groups assigned to the provider's app. Bad scopes
//! are refused by the API and the console's form.

use gangway::directory::runs::RunOutcome;
use gangway::operators::Role;
use gangway::web::paths;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

use crate::helpers::{Decision, TestApp};
use crate::json_api::{call, token};
use crate::sync::{emulator, sync_now, work};
use crate::wizard::{Customer, audit_count};

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

async fn user(app: &TestApp, tid: &str, name: &str) -> Uuid {
    let body = json!({"userPrincipalName": format!("{name}@invited.example"), "displayName": name});
    make(app, tid, "/users", body).await
}

async fn group(app: &TestApp, tid: &str, name: &str, members: &[Uuid]) -> Uuid {
    make(
        app,
        tid,
        "/groups",
        json!({"displayName": name, "members": members}),
    )
    .await
}

/// Creates an invitation through the API with `scope`; its link and id.
async fn invite(
    app: &TestApp,
    write: &str,
    mode: &str,
    admin: &str,
    scope: Value,
) -> (Url, String) {
    let (status, _, issued) = call(
        app,
        Method::POST,
        "/api/v1/invitations",
        Some(write),
        Some(
            json!({"customer": "Contoso Ltd", "admin_email": admin, "mode": mode, "scope": scope}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert_eq!(issued["invitation"]["scope"], scope);
    (
        Url::parse(issued["link"].as_str().unwrap()).unwrap(),
        issued["invitation"]["id"].as_str().unwrap().to_owned(),
    )
}

/// The tenant's id in Gangway once its admin consented.
async fn tenant_of(app: &TestApp, tid: &str) -> Uuid {
    sqlx::query_scalar("select id from tenants where entra_tenant_id = $1")
        .bind(Uuid::parse_str(tid).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Runs the queued sync to success.
async fn synced(app: &TestApp) {
    let report = work(app).await;
    assert_eq!(report.outcome, RunOutcome::Succeeded, "{:?}", report.error);
}

/// The object ids of the users the API lists for `tenant`, sorted.
async fn users(app: &TestApp, read: &str, tenant: Uuid) -> Vec<Uuid> {
    let (status, _, body) = call(
        app,
        Method::GET,
        &format!("/api/v1/tenants/{tenant}/users?limit=500"),
        Some(read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut ids: Vec<Uuid> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["object_id"].as_str().unwrap().parse().unwrap())
        .collect();
    ids.sort();
    ids
}

async fn scope_of(app: &TestApp, read: &str, tenant: Uuid) -> Value {
    let (status, _, scope) = call(
        app,
        Method::GET,
        &format!("/api/v1/tenants/{tenant}/scope"),
        Some(read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{scope}");
    scope
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

#[tokio::test]
async fn groups_named_on_the_invitation_are_shown_to_the_admin_and_resolve_after_the_first_sync() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    let tid = tenant.id.clone();
    let (ada, bo, cy, dee) = (
        user(&app, &tid, "ada").await,
        user(&app, &tid, "bo").await,
        user(&app, &tid, "cy").await,
        user(&app, &tid, "dee").await,
    );
    // Northern Sales holds Ada and, nested, Support with Cy; Field (named by id) holds Bo; two groups
    // are called Twins.
    let support = group(&app, &tid, "Support", &[cy]).await;
    group(&app, &tid, "Northern Sales", &[ada, support]).await;
    let field = group(&app, &tid, "Field", &[bo]).await;
    let twin = group(&app, &tid, "Twins", &[dee]).await;
    let other_twin = group(&app, &tid, "Twins", &[]).await;

    app.sign_in(Role::Admin).await;
    let read = token(&app, "invite-read", "read").await;
    let write = token(&app, "invite-write", "write").await;
    // Names match whatever their case, as Microsoft's own `displayName eq` does; ids too.
    let field_id = field.to_string().to_uppercase();
    let (link, invitation) = invite(
        &app,
        &write,
        "delegated",
        &tenant.admin.username,
        json!({"kind": "groups", "groups": ["northern sales", field_id, "Twins"]}),
    )
    .await;
    // The operator sees the scope on the invitation too.
    let detail = app
        .get(&paths::INVITATION.replace("{id}", &invitation))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        detail.contains(&format!(
            "Members of northern sales, {field_id}, Twins (and of groups nested in them)"
        )),
        "{detail}"
    );

    let customer = Customer::open(&app, &link).await;
    let page = customer.wizard(&app).await;
    assert!(
        page.contains(&format!(
            "Test Provider will copy only the members of: northern sales, {field_id}, Twins — and of groups nested in them."
        )),
        "{page}"
    );
    let (_, response) = customer
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("is connected"));
    let id = tenant_of(&app, &tid).await;
    assert_eq!(audit_count(&app, "tenant.scope_changed").await, 1);

    // The first sync: "Twins" names two groups, so the scope holds no one.
    synced(&app).await;
    let scope = scope_of(&app, &read, id).await;
    assert_eq!(scope["kind"], "groups", "{scope}");
    assert_eq!(scope["users_in_scope"], 0, "{scope}");
    assert_eq!(
        scope["pending_groups"].as_array().unwrap().len(),
        3,
        "{scope}"
    );
    let twins = scope["pending_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "Twins")
        .unwrap();
    assert!(
        twins["problem"]
            .as_str()
            .unwrap()
            .contains("2 groups have this name"),
        "{scope}"
    );
    assert_eq!(users(&app, &read, id).await, Vec::<Uuid>::new());
    let tab = app
        .get(&paths::tenant_scope(id.into()))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        tab.contains("not resolved yet") && tab.contains("2 groups have this name"),
        "{tab}"
    );

    // One Twins goes: the next sync resolves every name, nested members included.
    emulator(
        &app,
        Method::DELETE,
        &format!("/_emulator/tenants/{tid}/groups/{other_twin}"),
        None,
    )
    .await;
    sync_now(&app, id).await;
    synced(&app).await;
    let scope = scope_of(&app, &read, id).await;
    assert_eq!(scope["pending_groups"], json!([]), "{scope}");
    assert_eq!(scope["groups"].as_array().unwrap().len(), 3, "{scope}");
    assert_eq!(users(&app, &read, id).await, sorted(vec![ada, bo, cy, dee]));
    assert!(scope["groups"].to_string().contains(&twin.to_string()));
}

#[tokio::test]
async fn an_app_assignment_scope_on_the_invitation_copies_those_assigned_to_the_app() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(1).clone();
    let tid = tenant.id.clone();
    let (ada, bo, cy) = (
        user(&app, &tid, "ada").await,
        user(&app, &tid, "bo").await,
        user(&app, &tid, "cy").await,
    );
    let team = group(&app, &tid, "Team", &[bo]).await;
    group(&app, &tid, "Elsewhere", &[cy]).await;

    app.sign_in(Role::Admin).await;
    let read = token(&app, "invite-read", "read").await;
    let write = token(&app, "invite-write", "write").await;
    let (link, _) = invite(
        &app,
        &write,
        "application",
        &tenant.admin.username,
        json!({"kind": "app_assignments", "groups": []}),
    )
    .await;
    let customer = Customer::open(&app, &link).await;
    let page = customer.wizard(&app).await;
    assert!(
        page.contains("Test Provider will copy only the people and groups assigned to Test Provider&#39;s application in your organisation")
            || page.contains("Test Provider will copy only the people and groups assigned to Test Provider&#x27;s application in your organisation"),
        "{page}"
    );
    let (_, response) = customer
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let id = tenant_of(&app, &tid).await;

    // The customer's admin lets the app read who is assigned, and assigns Ada and Team.
    app.admin
        .grant(&tid, &app.app.client_id, &[], &["Application.Read.All"])
        .await
        .unwrap();
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
    synced(&app).await;
    let scope = scope_of(&app, &read, id).await;
    assert_eq!(scope["kind"], "app_assignments", "{scope}");
    assert_eq!(users(&app, &read, id).await, sorted(vec![ada, bo]));
}

#[tokio::test]
async fn a_bad_scope_on_an_invitation_is_refused_by_the_api_and_the_form() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let write = token(&app, "invite-write", "write").await;
    let too_long = "x".repeat(257);
    for (scope, why) in [
        (
            json!({"kind": "groups", "groups": []}),
            "at least one group",
        ),
        (
            json!({"kind": "groups", "groups": [too_long]}),
            "at most 256",
        ),
        (json!({"kind": "some"}), "not a sync scope"),
    ] {
        let (status, _, problem) = call(
            &app,
            Method::POST,
            "/api/v1/invitations",
            Some(&write),
            Some(
                json!({"customer": "Contoso Ltd", "admin_email": "admin@contoso.example",
                        "mode": "delegated", "scope": scope}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(why),
            "{problem}"
        );
    }
    let response = app
        .post_form(
            paths::NEW_INVITATION,
            &[
                ("customer_name", "Contoso Ltd"),
                ("admin_email", "admin@contoso.example"),
                ("mode", "delegated"),
                ("valid_for", "7d"),
                ("scope", "groups"),
                ("scope_groups", "\n  \n"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("Name at least one group") && page.contains("href=\"#scope_groups\""),
        "{page}"
    );
    let invitations: i64 = sqlx::query_scalar("select count(*) from invitations")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(invitations, 0, "nothing was made");
}
