//! Graph's throttle budget, shared through Postgres by `gangway worker` processes: with the
//! emulator's limits scaled down, many tenants synced at once by two processes (whose consent
//! checks read the same tenants' Graph as well) stay under each tenant's limit and the app's,
//! which the same load overruns when the workers do not keep the budget.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::cli::gangway;
use crate::helpers::TestApp;
use crate::sync::{all_app_permissions, connect, emulator};

/// Emulator and Gangway limits at 0.2 % of Microsoft's: 300 units per 20 s for the app across
/// tenants (15 a second), 7 per 10 s for each small tenant.
const SCALE: &str = "0.002";
/// Tenants synced at once. With one object a page, a tenant's first round is about eight
/// delta pages (six users, two groups), and a consent check reads its Graph too: more than the
/// 7 units a small tenant may burst, and all tenants together more than the app's 300.
const TENANTS: usize = 48;

/// `gangway worker` for `app` with the budget at `scale` (0: off).
fn worker(app: &TestApp, scale: &str) -> tokio::process::Child {
    let mut command = gangway(app);
    command
        .env("GANGWAY_GRAPH_BUDGET_SCALE", scale)
        .args(["worker", "--concurrency", "8"])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    command.spawn().unwrap()
}

/// `TENANTS` new small tenants in the emulator, connected; their Gangway ids and user counts.
async fn many_tenants(app: &TestApp) -> Vec<(Uuid, i64)> {
    let mut out = Vec::new();
    for _ in 0..TENANTS {
        let created = emulator(
            app,
            reqwest::Method::POST,
            "/_emulator/tenants",
            Some(json!({"users": 6, "groups": 2})),
        )
        .await;
        let tid = created["id"].as_str().unwrap();
        let tenant = connect(app, tid, &all_app_permissions()).await;
        out.push((tenant, created["users"].as_i64().unwrap()));
    }
    out
}

/// Runs two worker processes until every tenant's first round succeeded; the emulator's
/// throttle counts over that time.
async fn sync_all_in_two_processes(app: &TestApp, tenants: &[(Uuid, i64)], scale: &str) -> Value {
    emulator(
        app,
        reqwest::Method::POST,
        "/_emulator/throttle",
        Some(json!({"scale": SCALE.parse::<f64>().unwrap()})),
    )
    .await;
    emulator(
        app,
        reqwest::Method::POST,
        "/_emulator/graph",
        Some(json!({"page_size": 1})),
    )
    .await;
    let mut workers = [worker(app, scale), worker(app, scale)];
    let ids: Vec<Uuid> = tenants.iter().map(|(t, _)| *t).collect();
    let mut done = 0;
    for _ in 0..1200 {
        done = sqlx::query_scalar::<_, i64>(
            "select count(distinct tenant_id) from sync_runs
             where tenant_id = any($1) and outcome = 'succeeded'",
        )
        .bind(&ids)
        .fetch_one(&app.db)
        .await
        .unwrap();
        if done == TENANTS as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for w in &mut workers {
        w.start_kill().unwrap();
        w.wait().await.unwrap();
    }
    assert_eq!(done, TENANTS as i64, "every tenant's round succeeded");
    // Every copy is whole: each tenant's users, none left out by a wait or a 429.
    for (tenant, users) in tenants {
        let copied: i64 = sqlx::query_scalar(
            "select count(*) from directory_users where tenant_id = $1 and soft_deleted_at is null",
        )
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!(copied, *users, "tenant {tenant}");
    }
    emulator(app, reqwest::Method::GET, "/_emulator/throttle", None).await["counts"].clone()
}

#[tokio::test]
async fn two_workers_sharing_the_budget_meet_no_429() {
    let app = TestApp::spawn().await;
    let tenants = many_tenants(&app).await;
    let counts = sync_all_in_two_processes(&app, &tenants, SCALE).await;
    assert_eq!(counts["throttled"], 0, "{counts}");
    // Past each tenant's burst: only waiting for the refill kept it under.
    assert!(
        counts["resource_units"].as_u64().unwrap() > 7 * TENANTS as u64,
        "{counts}"
    );
    // Sync reads are background work.
    assert!(
        counts["low_priority"].as_u64().unwrap() >= 7 * TENANTS as u64,
        "{counts}"
    );
}

#[tokio::test]
async fn without_the_shared_budget_the_same_load_meets_429s_and_still_copies_everything() {
    let app = TestApp::spawn().await;
    let tenants = many_tenants(&app).await;
    let counts = sync_all_in_two_processes(&app, &tenants, "0").await;
    assert!(counts["throttled"].as_u64().unwrap() > 0, "{counts}");
}

#[tokio::test]
async fn the_wizards_graph_calls_count_against_the_budget_at_normal_priority_without_waiting() {
    use crate::helpers::Decision;
    use crate::wizard::Customer;
    use std::time::Instant;

    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    // The tenant's budget is spent far below empty, and refills only in an hour: a background
    // read would wait. The admin in the wizard does not.
    let bucket = format!("app:provider:tenant:{}", tenant.id);
    sqlx::query(
        "insert into graph_budgets (bucket, level, refilled_at)
         values ($1, -1000000, now() + interval '1 hour')",
    )
    .bind(&bucket)
    .execute(&app.db)
    .await
    .unwrap();
    let before = emulator(&app, reqwest::Method::GET, "/_emulator/throttle", None).await;
    let issued = app
        .invite("delegated", &tenant.admin.username, Some(&tenant.domain))
        .await;
    let customer = Customer::open(&app, &issued.link).await;
    let started = Instant::now();
    let (_, response) = customer
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert!(response.text().await.unwrap().contains("is connected"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the wizard did not wait for the budget: {:?}",
        started.elapsed()
    );
    // Counted: the bucket was charged (and refilled up to now) by the wizard's reads.
    let (level, charged): (f64, bool) =
        sqlx::query_as("select level, refilled_at <= now() from graph_budgets where bucket = $1")
            .bind(&bucket)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(charged && level < -999_000.0, "{level} {charged}");
    let after = emulator(&app, reqwest::Method::GET, "/_emulator/throttle", None).await;
    assert_eq!(
        after["counts"]["low_priority"], before["counts"]["low_priority"],
        "sent at normal priority: {after}"
    );
}

#[tokio::test]
async fn reads_asking_while_a_take_is_in_postgres_share_its_units_instead_of_a_trip_each() {
    use gangway::directory::budget::{Budget, PROVIDER_APP};

    let app = TestApp::spawn().await;
    let budget = Budget::new(app.db.clone(), 1.0);
    let (tenant, entra_tenant) = (Uuid::new_v4(), Uuid::new_v4());
    // A sync's two chains read their first pages at once.
    let (users, groups) = tokio::join!(
        budget.take(PROVIDER_APP, tenant, entra_tenant, 1.0),
        budget.take(PROVIDER_APP, tenant, entra_tenant, 1.0),
    );
    users.unwrap();
    groups.unwrap();
    assert_eq!(
        budget.round_trips(),
        1,
        "one trip took units for both reads"
    );
}

/// Reads of `directory_users` and its indexes in the transaction so far: rows of sequential
/// scans, entries of index scans.
async fn rows_read(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "select sum(pg_stat_get_xact_tuples_returned(c.oid))::bigint from pg_class c
         where c.oid = 'directory_users'::regclass
            or c.oid in (select indexrelid from pg_index where indrelid = 'directory_users'::regclass)",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

/// The tenant's size class counts its users only up to 501 (recycle bin left out), and reads
/// about as many as it counts even where the planner would rather scan them all (statistics
/// taken while the copy was small, as right after a first round; here: a session that turned
/// index scans off): a bitmap or sequential scan read every row of a 100,000-user copy, a third
/// of an idle round.
#[tokio::test]
async fn a_tenants_size_is_counted_up_to_its_largest_class_reading_no_more_rows_than_that() {
    let db = crate::helpers::fresh_database().await;
    let mut tenants = Vec::new();
    for _ in 0..2 {
        let tenant = crate::jobs::tenant(&db.pool).await;
        // 3,000 users, every tenth in the recycle bin.
        sqlx::query(
            "insert into directory_users (tenant_id, object_id, user_principal_name, display_name,
                                          account_enabled, seen_round, in_scope, soft_deleted_at)
             select $1, gen_random_uuid(), 'user' || g || '@contoso.example', 'User ' || g, true, 1,
                    true, case when g % 10 = 0 then now() end
             from generate_series(1, 3000) g",
        )
        .bind(tenant)
        .execute(&db.pool)
        .await
        .unwrap();
        tenants.push(tenant);
    }
    sqlx::query("analyze directory_users")
        .execute(&db.pool)
        .await
        .unwrap();
    let count = |tenant: Uuid, cap: i64| {
        sqlx::query_scalar::<_, i64>("select users_in_copy_up_to($1, $2)")
            .bind(tenant)
            .bind(cap)
    };
    assert_eq!(
        count(tenants[0], 501).fetch_one(&db.pool).await.unwrap(),
        501
    );
    assert_eq!(
        count(tenants[1], 5000).fetch_one(&db.pool).await.unwrap(),
        2700
    );
    assert_eq!(
        count(Uuid::new_v4(), 501)
            .fetch_one(&db.pool)
            .await
            .unwrap(),
        0
    );

    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("set local enable_indexscan = off")
        .execute(&mut *tx)
        .await
        .unwrap();
    let before = rows_read(&mut tx).await;
    let n = count(tenants[1], 501).fetch_one(&mut *tx).await.unwrap();
    let read = rows_read(&mut tx).await - before;
    assert_eq!(n, 501);
    assert!(
        read <= 600,
        "{read} rows and index entries read to count 501"
    );
}
