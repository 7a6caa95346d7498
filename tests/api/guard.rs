//! The deletion guard against the emulator: a round deleting more than a tenant's threshold
//! applies everything else and holds the deletions; operators approve (applied) or reject
//! (kept, never held again) in the console and the JSON API; a later round finding the objects
//! again releases them; a tenant's own thresholds override the System Settings'.

use gangway::directory::runs::RunOutcome;
use gangway::operators::Role;
use gangway::web::paths;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, location, scim_connection_up_to_date, scim_push_due};
use crate::json_api::{call, token};
use crate::sync::{all_app_permissions, connect, emulator, sync_now, work};
use crate::webhooks::add_endpoint;

/// Connects customer `index`'s tenant and makes its first copy.
async fn connected(app: &TestApp, index: usize) -> (Uuid, String) {
    let tid = app.customer(index).id.clone();
    let tenant = connect(app, &tid, &all_app_permissions()).await;
    let first = work(app).await;
    assert_eq!(first.outcome, RunOutcome::Succeeded, "{:?}", first.error);
    (tenant, tid)
}

/// Syncs the tenant now, to success.
async fn sync(app: &TestApp, tenant: Uuid) {
    sync_now(app, tenant).await;
    let report = work(app).await;
    assert_eq!(report.outcome, RunOutcome::Succeeded, "{:?}", report.error);
}

/// `n` users of the copy, not the tenant's admin.
async fn some_users(app: &TestApp, tenant: Uuid, n: usize) -> Vec<Uuid> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "select object_id from directory_users where tenant_id = $1
           and user_principal_name not like 'admin@%' order by object_id limit $2",
    )
    .bind(tenant)
    .bind(n as i64)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(ids.len(), n, "the tenant has enough users");
    ids
}

/// Deletes users in the emulator (to the recycle bin, or for good).
async fn delete_users(app: &TestApp, tid: &str, ids: &[Uuid], hard: bool) {
    for id in ids {
        let hard = if hard { "?hard=true" } else { "" };
        emulator(
            app,
            Method::DELETE,
            &format!("/_emulator/tenants/{tid}/users/{id}{hard}"),
            None,
        )
        .await;
    }
}

/// Users of the copy among `ids` that are neither soft-deleted nor gone.
async fn live(app: &TestApp, tenant: Uuid, ids: &[Uuid]) -> usize {
    let n: i64 = sqlx::query_scalar(
        "select count(*) from directory_users
         where tenant_id = $1 and object_id = any($2) and soft_deleted_at is null",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_one(&app.db)
    .await
    .unwrap();
    n as usize
}

/// The payloads of the webhook events of `event_type` about `tenant`.
async fn events(app: &TestApp, tenant: Uuid, event_type: &str) -> Vec<Value> {
    sqlx::query_scalar(
        "select payload from webhook_deliveries
         where event_type = $1 and payload->'data'->>'tenant_id' = $2::text order by created_at",
    )
    .bind(event_type)
    .bind(tenant)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

async fn audited(app: &TestApp, tenant: Uuid, action: &str) -> i64 {
    sqlx::query_scalar("select count(*) from audit_events where tenant_id = $1 and action = $2")
        .bind(tenant)
        .bind(action)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn page(app: &TestApp, path: &str) -> String {
    app.get(path).await.text().await.unwrap()
}

#[tokio::test]
async fn a_mass_deletion_is_held_then_approved_and_in_another_tenant_rejected_and_kept() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    add_endpoint(&app, "http://127.0.0.1:9/hook", &["*"]).await;
    let writer = token(&app, "guard", "write").await;
    let (a, a_tid) = connected(&app, 0).await;
    let (b, b_tid) = connected(&app, 1).await;

    // Eleven users of a dozen to the recycle bin, and one other change (to the admin).
    let doomed = &some_users(&app, a, 11).await;
    let kept: Uuid = sqlx::query_scalar(
        "select object_id from directory_users where tenant_id = $1 and user_principal_name like 'admin@%'",
    )
    .bind(a)
    .fetch_one(&app.db)
    .await
    .unwrap();
    delete_users(&app, &a_tid, doomed, false).await;
    emulator(
        &app,
        Method::PATCH,
        &format!("/_emulator/tenants/{a_tid}/users/{kept}"),
        Some(json!({ "jobTitle": "Night shift lead" })),
    )
    .await;
    sync(&app, a).await;
    assert_eq!(
        live(&app, a, doomed).await,
        11,
        "nothing is lost while held"
    );
    let title: Option<String> = sqlx::query_scalar(
        "select job_title from directory_users where tenant_id = $1 and object_id = $2",
    )
    .bind(a)
    .bind(kept)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        title.as_deref(),
        Some("Night shift lead"),
        "everything else is applied"
    );
    let (status, _, held) = call(
        &app,
        Method::GET,
        &format!("/api/v1/tenants/{a}/deletions"),
        Some(&writer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            held["held"].clone(),
            held["users"].clone(),
            held["soft_deleted"].clone()
        ),
        (json!(true), json!(11), json!(11)),
        "{held}"
    );
    assert_eq!(held["sample"].as_array().unwrap().len(), 10);
    assert_eq!(
        held["thresholds"],
        json!({ "percent": 20, "objects": 500, "own_percent": null, "own_objects": null })
    );
    let told = events(&app, a, "directory.deletions_held").await;
    assert_eq!(told.len(), 1);
    assert_eq!(told[0]["data"]["users"], 11);
    assert!(events(&app, a, "directory.user.deleted").await.is_empty());
    let tenant_page = page(&app, &paths::tenant(a.into())).await;
    assert!(
        tenant_page.contains("Deletions held")
            && tenant_page.contains("Approve: apply the deletions"),
        "{tenant_page}"
    );
    let list = page(&app, paths::TENANTS).await;
    assert!(list.contains("Deletions held: 11"), "{list}");

    scim_connection_up_to_date(&app, &writer).await;

    // Approved through the API: applied, audited, and the provider told.
    let (status, _, after) = call(
        &app,
        Method::POST,
        &format!("/api/v1/tenants/{a}/deletions/approve"),
        Some(&writer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["held"], false);
    assert_eq!(live(&app, a, doomed).await, 0);
    assert_eq!(audited(&app, a, "sync.deletions_approved").await, 1);
    assert!(
        scim_push_due(&app).await,
        "the SCIM push follows the approved deletions"
    );
    // One event per user, each to the recycle bin, none from a run: an operator applied them.
    let deleted = events(&app, a, "directory.user.deleted").await;
    assert_eq!(deleted.len(), 11);
    for event in &deleted {
        assert_eq!(event["data"]["permanent"], false, "{event}");
        assert!(event["data"].get("run_id").is_none(), "{event}");
        assert!(
            doomed
                .iter()
                .any(|d| event["data"]["object_id"] == d.to_string()),
            "{event}"
        );
    }
    let (status, headers, again) = call(
        &app,
        Method::POST,
        &format!("/api/v1/tenants/{a}/deletions/approve"),
        Some(&writer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing is held any more");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(again["status"], 409);
    sync(&app, a).await;
    assert_eq!(
        events(&app, a, "directory.deletions_held").await.len(),
        1,
        "not held again"
    );

    // In the other tenant, eleven users deleted for good, held, and rejected in the console.
    let doomed = some_users(&app, b, 11).await;
    delete_users(&app, &b_tid, &doomed, true).await;
    sync(&app, b).await;
    assert_eq!(live(&app, b, &doomed).await, 11);
    let rejected = app.post_form(&paths::reject_deletions(b.into()), &[]).await;
    assert_eq!(
        location(rejected).await,
        format!("{}?done=deletions_rejected", paths::tenant(b.into()))
    );
    assert_eq!(audited(&app, b, "sync.deletions_rejected").await, 1);
    assert_eq!(live(&app, b, &doomed).await, 11, "rejected: kept");
    // Neither the next round nor a full one holds or drops them again.
    sync(&app, b).await;
    emulator(
        &app,
        Method::POST,
        &format!("/_emulator/tenants/{b_tid}/delta-reset"),
        None,
    )
    .await;
    sync(&app, b).await;
    assert_eq!(live(&app, b, &doomed).await, 11);
    assert_eq!(events(&app, b, "directory.deletions_held").await.len(), 1);
    let (_, _, now) = call(
        &app,
        Method::GET,
        &format!("/api/v1/tenants/{b}/deletions"),
        Some(&writer),
        None,
    )
    .await;
    assert_eq!(now["held"], false);
    let tenant_page = page(
        &app,
        &format!("{}?done=deletions_rejected", paths::tenant(b.into())),
    )
    .await;
    assert!(
        tenant_page.contains("Held deletions rejected") && !tenant_page.contains("Approve: apply")
    );
}

#[tokio::test]
async fn a_later_round_that_finds_the_objects_again_releases_the_hold() {
    let app = TestApp::spawn().await;
    let (a, tid) = connected(&app, 0).await;
    let doomed = some_users(&app, a, 11).await;
    delete_users(&app, &tid, &doomed, false).await;
    sync(&app, a).await;
    let held = gangway::directory::guard::summary(&app.db, a)
        .await
        .unwrap();
    assert_eq!(held.users, 11);
    for id in &doomed {
        emulator(
            &app,
            Method::POST,
            &format!("/_emulator/tenants/{tid}/users/{id}/restore"),
            None,
        )
        .await;
    }
    sync(&app, a).await;
    assert!(
        !gangway::directory::guard::summary(&app.db, a)
            .await
            .unwrap()
            .any()
    );
    assert_eq!(live(&app, a, &doomed).await, 11);
}

#[tokio::test]
async fn a_tenants_own_thresholds_override_the_global_ones_and_bad_input_gets_problems() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let writer = token(&app, "guard", "write").await;
    let reader = token(&app, "look", "read").await;
    let (a, a_tid) = connected(&app, 0).await;
    let (b, b_tid) = connected(&app, 1).await;
    gangway::settings::save(
        &app.db,
        &app.state.cfg.keys,
        &[gangway::settings::Edit {
            key: gangway::settings::Key::DeletionGuardObjects,
            raw: "2".into(),
        }],
        &gangway::audit::Actor::Cli,
    )
    .await
    .unwrap();
    let (status, _, set) = call(
        &app,
        Method::PUT,
        &format!("/api/v1/tenants/{a}/deletion-guard"),
        Some(&writer),
        Some(json!({ "percent": 100, "objects": 50 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(
        set["thresholds"],
        json!({ "percent": 100, "objects": 50, "own_percent": 100, "own_objects": 50 })
    );
    assert_eq!(audited(&app, a, "sync.deletion_guard_changed").await, 1);

    let a_doomed = some_users(&app, a, 3).await;
    let b_doomed = some_users(&app, b, 3).await;
    delete_users(&app, &a_tid, &a_doomed, false).await;
    delete_users(&app, &b_tid, &b_doomed, false).await;
    sync(&app, a).await;
    sync(&app, b).await;
    assert_eq!(
        live(&app, a, &a_doomed).await,
        0,
        "within the tenant's own threshold: applied"
    );
    assert_eq!(
        live(&app, b, &b_doomed).await,
        3,
        "above the global one: held"
    );
    assert_eq!(
        gangway::directory::guard::summary(&app.db, b)
            .await
            .unwrap()
            .users,
        3
    );

    // Bad input: problems, nothing changed.
    for body in [
        json!({ "percent": 0 }),
        json!({ "objects": 2_000_000 }),
        json!({ "percent": "many" }),
    ] {
        let (status, headers, problem) = call(
            &app,
            Method::PUT,
            &format!("/api/v1/tenants/{a}/deletion-guard"),
            Some(&writer),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(headers["content-type"], "application/problem+json");
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let own: (Option<i32>, Option<i32>) = sqlx::query_as(
        "select deletion_guard_percent, deletion_guard_objects from tenants where id = $1",
    )
    .bind(a)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(own, (Some(100), Some(50)));
    let (status, _, _) = call(
        &app,
        Method::POST,
        &format!("/api/v1/tenants/{b}/deletions/approve"),
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a read token decides nothing"
    );
    let (status, _, _) = call(
        &app,
        Method::POST,
        &format!("/api/v1/tenants/{}/deletions/reject", Uuid::new_v4()),
        Some(&writer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(
        &app,
        Method::POST,
        &format!("/api/v1/tenants/{a}/deletions/reject"),
        Some(&writer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        gangway::directory::guard::summary(&app.db, b)
            .await
            .unwrap()
            .users,
        3
    );

    // The console's form: bad input comes back with its message; empty fields follow the global.
    let refused = app
        .post_form(
            &paths::deletion_guard(a.into()),
            &[("percent", "lots"), ("objects", "")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = refused.text().await.unwrap();
    assert!(
        html.contains("is not one") && html.contains("value=\"lots\""),
        "{html}"
    );
    let saved = app
        .post_form(
            &paths::deletion_guard(a.into()),
            &[("percent", ""), ("objects", "")],
        )
        .await;
    assert_eq!(
        location(saved).await,
        format!("{}?done=guard_saved", paths::tenant(a.into()))
    );
    let now = gangway::directory::guard::thresholds(&app.db, a)
        .await
        .unwrap();
    assert_eq!((now.percent, now.objects, now.own_objects), (20, 2, None));
}
