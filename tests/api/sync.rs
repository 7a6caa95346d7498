//! Directory replication against the emulator through Gangway's real entry points: the worker
//! functions, `gangway worker` processes and the CLI. Every test compares the copy in Postgres
//! with what Graph itself lists.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use gangway::audit::Actor;
use gangway::directory::delta::{Change, GroupFields, Link, MemberChange, Page, UserFields};
use gangway::directory::runs::RunOutcome;
use gangway::directory::store::{self, ChainState, Resource, Tally};
use gangway::directory::sync::Syncer;
use gangway::directory::worker::{self, RunReport, WorkerConfig};
use gangway::jobs::Outcome;
use gangway::operators::Role;
use gangway::tenants::{self, Consent};
use gangway::types::permissions;
use gangway::types::{Secret, TenantId};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cli::{gangway, run, stderr, stdout};
use crate::helpers::{Decision, Setup, TestApp};
use crate::wizard::Customer;

/// A user as Graph lists it and as the copy holds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct User {
    upn: Option<String>,
    display_name: Option<String>,
    given_name: Option<String>,
    surname: Option<String>,
    mail: Option<String>,
    business_phones: Vec<String>,
    mobile_phone: Option<String>,
    job_title: Option<String>,
    department: Option<String>,
    account_enabled: Option<bool>,
}

/// A group as Graph lists it and as the copy holds it, with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    display_name: Option<String>,
    description: Option<String>,
    mail: Option<String>,
    mail_enabled: Option<bool>,
    security_enabled: Option<bool>,
    members: BTreeSet<Uuid>,
}

#[derive(Debug, PartialEq, Eq)]
struct Directory {
    users: BTreeMap<Uuid, User>,
    groups: BTreeMap<Uuid, Group>,
}

/// Reads a tenant through Graph with an app of its own, as an independent observer.
struct Observer {
    tenant: TenantId,
    client_id: String,
    secret: Secret,
}

impl Observer {
    async fn new(app: &TestApp, tid: &str) -> Self {
        let reg = app
            .admin
            .register_app(&json!({
                "home_tenant": tid,
                "multi_tenant": false,
                "display_name": "Directory observer",
                "permissions": {"application": ["User.Read.All", "Group.Read.All"]},
            }))
            .await
            .unwrap();
        app.admin
            .grant(
                tid,
                &reg.client_id,
                &[],
                &["User.Read.All", "Group.Read.All"],
            )
            .await
            .unwrap();
        Self {
            tenant: TenantId::parse(tid).unwrap(),
            client_id: reg.client_id,
            secret: Secret::new(reg.client_secret),
        }
    }

    async fn all(&self, app: &TestApp, token: &Secret, first: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut link = first.to_owned();
        loop {
            let page: gangway::graph::Page<Value> =
                app.state.graph.page(&link, token).await.unwrap();
            out.extend(page.value);
            match page.next_link {
                Some(next) => link = next,
                None => return out,
            }
        }
    }

    /// A Graph token of the observer's own app.
    async fn token(&self, app: &TestApp) -> Secret {
        app.state
            .live()
            .await
            .unwrap()
            .entra()
            .unwrap()
            .app_token(&self.tenant, Some((&self.client_id, &self.secret)))
            .await
            .unwrap()
    }

    /// The tenant's live directory as Graph lists it.
    async fn directory(&self, app: &TestApp) -> Directory {
        let token = self.token(app).await;
        let s = |v: &Value, k: &str| v[k].as_str().map(str::to_owned);
        let users = self
            .all(app, &token, "v1.0/users?$select=id,userPrincipalName,displayName,givenName,surname,mail,businessPhones,mobilePhone,jobTitle,department,accountEnabled&$top=999")
            .await
            .into_iter()
            .map(|u| {
                let id = u["id"].as_str().unwrap().parse().unwrap();
                let user = User {
                    upn: s(&u, "userPrincipalName"),
                    display_name: s(&u, "displayName"),
                    given_name: s(&u, "givenName"),
                    surname: s(&u, "surname"),
                    mail: s(&u, "mail"),
                    business_phones: serde_json::from_value(u["businessPhones"].clone())
                        .unwrap_or_default(),
                    mobile_phone: s(&u, "mobilePhone"),
                    job_title: s(&u, "jobTitle"),
                    department: s(&u, "department"),
                    account_enabled: u["accountEnabled"].as_bool(),
                };
                (id, user)
            })
            .collect();
        let mut groups = BTreeMap::new();
        for g in self
            .all(app, &token, "v1.0/groups?$select=id,displayName,description,mail,mailEnabled,securityEnabled&$top=999")
            .await
        {
            let id: Uuid = g["id"].as_str().unwrap().parse().unwrap();
            let members = self
                .all(app, &token, &format!("v1.0/groups/{id}/members?$select=id&$top=999"))
                .await
                .iter()
                .map(|m| m["id"].as_str().unwrap().parse().unwrap())
                .collect();
            let group = Group {
                display_name: s(&g, "displayName"),
                description: s(&g, "description"),
                mail: s(&g, "mail"),
                mail_enabled: g["mailEnabled"].as_bool(),
                security_enabled: g["securityEnabled"].as_bool(),
                members,
            };
            groups.insert(id, group);
        }
        Directory { users, groups }
    }
}

#[derive(sqlx::FromRow)]
struct UserRow {
    object_id: Uuid,
    #[sqlx(flatten)]
    user: User,
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    object_id: Uuid,
    display_name: Option<String>,
    description: Option<String>,
    mail: Option<String>,
    mail_enabled: Option<bool>,
    security_enabled: Option<bool>,
}

/// The copy of `tenant`'s live (not soft-deleted) directory in Postgres.
async fn copy(db: &sqlx::PgPool, tenant: Uuid) -> Directory {
    let users: Vec<UserRow> = sqlx::query_as(
        "select object_id, user_principal_name as upn, display_name, given_name, surname, mail,
                business_phones, mobile_phone, job_title, department, account_enabled
         from directory_users where tenant_id = $1 and soft_deleted_at is null",
    )
    .bind(tenant)
    .fetch_all(db)
    .await
    .unwrap();
    let groups: Vec<GroupRow> = sqlx::query_as(
        "select object_id, display_name, description, mail, mail_enabled, security_enabled
         from directory_groups where tenant_id = $1 and soft_deleted_at is null",
    )
    .bind(tenant)
    .fetch_all(db)
    .await
    .unwrap();
    let members: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "select group_id, member_id from directory_group_members where tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(db)
    .await
    .unwrap();
    let groups = groups
        .into_iter()
        .map(|g| {
            let members = members
                .iter()
                .filter(|(group, _)| *group == g.object_id)
                .map(|(_, m)| *m)
                .collect();
            let group = Group {
                display_name: g.display_name,
                description: g.description,
                mail: g.mail,
                mail_enabled: g.mail_enabled,
                security_enabled: g.security_enabled,
                members,
            };
            (g.object_id, group)
        })
        .collect();
    Directory {
        users: users.into_iter().map(|u| (u.object_id, u.user)).collect(),
        groups,
    }
}

/// Connects emulator tenant `tid` in application mode through a real invitation and
/// `record_consent` (which queues the first sync); returns Gangway's tenant id.
pub(crate) async fn connect(app: &TestApp, tid: &str, application: &[&str]) -> Uuid {
    app.admin
        .grant(tid, &app.app.client_id, &[], application)
        .await
        .unwrap();
    let tenant: Value = reqwest::get(format!(
        "{}/_emulator/tenants/{tid}",
        app.emulator.base_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let issued = app
        .invite_for(
            &format!("Customer {tid}"),
            "application",
            tenant["admin"]["username"].as_str().unwrap(),
            None,
        )
        .await;
    let consent = Consent {
        entra_tenant_id: tid.parse().unwrap(),
        display_name: tenant["display_name"].as_str().unwrap().into(),
        verified_domains: vec![tenant["domain"].as_str().unwrap().into()],
        mode: gangway::types::ConsentMode::Application,
        granted_scopes: application.iter().map(|s| s.to_string()).collect(),
        consented_by_oid: None,
        consented_by_upn: None,
        customer_client_id: None,
        credential: None,
    };
    tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        issued.invitation.id,
        &consent,
        &Actor::System,
    )
    .await
    .unwrap()
}

fn engine(app: &TestApp) -> (Syncer, WorkerConfig) {
    (gangway::runtime::syncer(&app.state), WorkerConfig::new(1))
}

/// One worker turn that must find and run a sync job; its report.
pub(crate) async fn work(app: &TestApp) -> RunReport {
    let (syncer, cfg) = engine(app);
    match worker::work_one(&syncer, &cfg, "test-worker", &CancellationToken::new())
        .await
        .unwrap()
    {
        Outcome::Ran(_, Ok(report)) => report,
        Outcome::Ran(_, Err(failure)) => panic!("the sync failed: {}", failure.error),
        Outcome::Idle => panic!("no sync job was due"),
    }
}

/// Queues a manual sync, as "Sync now" does.
pub(crate) async fn sync_now(app: &TestApp, tenant: Uuid) {
    gangway::directory::control::request_sync(&app.db, tenant, &Actor::Cli)
        .await
        .unwrap();
}

/// The emulator's admin API.
pub(crate) async fn emulator(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req =
        reqwest::Client::new().request(method, format!("{}{path}", app.emulator.base_url()));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

pub(crate) fn all_app_permissions() -> Vec<&'static str> {
    permissions::application_scopes()
}

#[tokio::test]
async fn a_full_sync_equals_graph_and_each_later_round_follows_every_kind_of_change() {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let observer = Observer::new(&app, &tid).await;
    let tenant = connect(&app, &tid, &all_app_permissions()).await;

    let first = work(&app).await;
    assert_eq!(first.outcome, RunOutcome::Succeeded, "{:?}", first.error);
    let expected = observer.directory(&app).await;
    assert!(expected.users.len() > 10 && !expected.groups.is_empty());
    assert!(
        expected
            .users
            .values()
            .any(|u| !u.business_phones.is_empty() && u.job_title.is_some())
    );
    assert_eq!(
        copy(&app.db, tenant).await,
        expected,
        "the first (full) round copies everything"
    );
    let run: (String, bool, i32, i32) = sqlx::query_as(
        "select trigger, full_round, added, members_added from sync_runs where id = $1",
    )
    .bind(first.run_id.unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    let memberships: usize = expected.groups.values().map(|g| g.members.len()).sum();
    assert_eq!(
        run,
        (
            "first".into(),
            true,
            (expected.users.len() + expected.groups.len()) as i32,
            memberships as i32
        )
    );

    // Every kind of change, then one incremental round.
    let t = format!("/_emulator/tenants/{tid}");
    let ids: Vec<Uuid> = expected.users.keys().copied().collect();
    let (edited, soft, hard) = (ids[1], ids[2], ids[3]);
    let added = emulator(
        &app,
        reqwest::Method::POST,
        &format!("{t}/users"),
        Some(json!({
            "userPrincipalName": format!("new.person@{}", app.customer(0).domain),
            "displayName": "New Person", "givenName": "New", "surname": "Person",
            "mail": format!("new.person@{}", app.customer(0).domain),
            "businessPhones": ["+1 425 555 0100"], "mobilePhone": "+1 425 555 0199",
            "jobTitle": "Dispatcher", "department": "Operations", "accountEnabled": true
        })),
    )
    .await;
    let added: Uuid = added["id"].as_str().unwrap().parse().unwrap();
    emulator(&app, reqwest::Method::PATCH, &format!("{t}/users/{edited}"), Some(json!({
        "jobTitle": "Head of Support", "department": "Support", "businessPhones": ["+44 20 7946 0000", "+44 20 7946 0001"]
    }))).await;
    emulator(
        &app,
        reqwest::Method::DELETE,
        &format!("{t}/users/{soft}"),
        None,
    )
    .await;
    emulator(
        &app,
        reqwest::Method::DELETE,
        &format!("{t}/users/{hard}?hard=true"),
        None,
    )
    .await;
    let group = *expected.groups.keys().next().unwrap();
    let leaving = *expected.groups[&group]
        .members
        .iter()
        .find(|m| ![soft, hard].contains(m))
        .unwrap_or(&ids[5]);
    if expected.groups[&group].members.contains(&leaving) {
        emulator(
            &app,
            reqwest::Method::DELETE,
            &format!("{t}/groups/{group}/members/{leaving}"),
            None,
        )
        .await;
    }
    emulator(
        &app,
        reqwest::Method::POST,
        &format!("{t}/groups/{group}/members"),
        Some(json!({"id": added})),
    )
    .await;
    emulator(
        &app,
        reqwest::Method::PATCH,
        &format!("{t}/groups/{group}"),
        Some(json!({"description": "Changed"})),
    )
    .await;
    let new_group = emulator(
        &app,
        reqwest::Method::POST,
        &format!("{t}/groups"),
        Some(json!({
            "displayName": "Night shift", "members": [added, edited]
        })),
    )
    .await;

    sync_now(&app, tenant).await;
    let second = work(&app).await;
    assert_eq!(second.outcome, RunOutcome::Succeeded, "{:?}", second.error);
    let expected = observer.directory(&app).await;
    assert_eq!(
        copy(&app.db, tenant).await,
        expected,
        "the incremental round follows every change"
    );
    assert!(
        expected
            .groups
            .contains_key(&new_group["id"].as_str().unwrap().parse().unwrap())
    );
    let run: (String, bool, i32, i32, i32) = sqlx::query_as(
        "select trigger, full_round, added, soft_deleted, removed from sync_runs where id = $1",
    )
    .bind(second.run_id.unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        run,
        ("manual".into(), false, 2, 1, 1),
        "one user and one group added, one soft and one hard delete"
    );
    let flagged: Option<time::OffsetDateTime> = sqlx::query_scalar(
        "select soft_deleted_at from directory_users where tenant_id = $1 and object_id = $2",
    )
    .bind(tenant)
    .bind(soft)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(flagged.is_some(), "a soft-deleted user is kept, flagged");
    let gone: i64 = sqlx::query_scalar(
        "select count(*) from directory_users where tenant_id = $1 and object_id = $2",
    )
    .bind(tenant)
    .bind(hard)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(gone, 0, "a hard-deleted user is removed");

    // A restored user comes back whole; a round with no changes changes nothing.
    emulator(
        &app,
        reqwest::Method::POST,
        &format!("{t}/users/{soft}/restore"),
        None,
    )
    .await;
    sync_now(&app, tenant).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);
    let expected = observer.directory(&app).await;
    assert!(expected.users.contains_key(&soft));
    assert_eq!(
        copy(&app.db, tenant).await,
        expected,
        "the restored user is live again"
    );
    sync_now(&app, tenant).await;
    let idle = work(&app).await;
    assert_eq!(idle.tally.objects(), 0, "{:?}", idle.tally);
    assert_eq!(copy(&app.db, tenant).await, expected);
    let next: Option<time::OffsetDateTime> =
        sqlx::query_scalar("select next_sync_at from tenants where id = $1")
            .bind(tenant)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let next = next.unwrap() - time::OffsetDateTime::now_utc();
    assert!(
        next > time::Duration::minutes(55) && next <= time::Duration::hours(1),
        "the default schedule runs hourly: {next}"
    );
}

#[tokio::test]
async fn a_reset_or_expired_delta_link_starts_a_full_round_that_drops_what_vanished() {
    let app = TestApp::spawn_with(Setup {
        delta_token_lifetime_secs: Some(2),
        ..Setup::default()
    })
    .await;
    let tid = app.customer(0).id.clone();
    let observer = Observer::new(&app, &tid).await;
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);

    // A reset (410 Gone with Location): meanwhile a user went to the recycle bin unseen, and
    // the copy holds a row Graph never had.
    let victim = *observer.directory(&app).await.users.keys().nth(4).unwrap();
    emulator(
        &app,
        reqwest::Method::DELETE,
        &format!("/_emulator/tenants/{tid}/users/{victim}"),
        None,
    )
    .await;
    emulator(
        &app,
        reqwest::Method::POST,
        &format!("/_emulator/tenants/{tid}/delta-reset"),
        None,
    )
    .await;
    sqlx::query("insert into directory_users (tenant_id, object_id, display_name, seen_round) values ($1, gen_random_uuid(), 'Ghost', 1)")
        .bind(tenant)
        .execute(&app.db)
        .await
        .unwrap();
    sync_now(&app, tenant).await;
    let reset = work(&app).await;
    assert_eq!(reset.outcome, RunOutcome::Succeeded, "{:?}", reset.error);
    let all: i64 = sqlx::query_scalar("select count(*) from directory_users where tenant_id = $1")
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let expected = observer.directory(&app).await;
    assert_eq!(copy(&app.db, tenant).await, expected);
    assert_eq!(
        all as usize,
        expected.users.len(),
        "the ghost and the unseen soft delete are gone"
    );
    let full: bool = sqlx::query_scalar("select full_round from sync_runs where id = $1")
        .bind(reset.run_id.unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(full);

    // An expired link (400 syncStateNotFound) does the same.
    // The emulator compares whole seconds: wait past the lifetime with a margin.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    sqlx::query("insert into directory_groups (tenant_id, object_id, display_name, seen_round) values ($1, gen_random_uuid(), 'Ghost group', 1)")
        .bind(tenant)
        .execute(&app.db)
        .await
        .unwrap();
    sync_now(&app, tenant).await;
    let expired = work(&app).await;
    assert_eq!(
        expired.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        expired.error
    );
    assert_eq!(copy(&app.db, tenant).await, observer.directory(&app).await);
    let rounds: Vec<i64> =
        sqlx::query_scalar("select round from sync_state where tenant_id = $1 order by resource")
            .bind(tenant)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(rounds, vec![3, 3], "two restarts for each chain");
}

#[tokio::test]
async fn throttling_errors_and_dropped_connections_are_waited_out_and_the_copy_ends_equal() {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let observer = Observer::new(&app, &tid).await;
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/graph",
        Some(json!({"page_size": 2})),
    )
    .await;
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/faults",
        Some(json!({
            "rate_429": 0.2, "rate_503": 0.05, "rate_drop": 0.05, "retry_after": 0.25
        })),
    )
    .await;
    let report = work(&app).await;
    let faults = emulator(&app, reqwest::Method::GET, "/_emulator/faults", None).await;
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/faults",
        Some(json!({"rate_429": 0, "rate_503": 0, "rate_drop": 0})),
    )
    .await;
    assert_eq!(report.outcome, RunOutcome::Succeeded, "{:?}", report.error);
    assert_eq!(copy(&app.db, tenant).await, observer.directory(&app).await);
    let injected = &faults["injected"];
    let throttled =
        injected["throttled"].as_i64().unwrap() + injected["unavailable"].as_i64().unwrap();
    assert!(
        throttled > 0 && injected["dropped"].as_i64().unwrap() >= 0,
        "{faults}"
    );
    let (waits, seconds, pages): (i32, f64, i32) = sqlx::query_as(
        "select throttled_waits, throttled_seconds, pages from sync_runs where id = $1",
    )
    .bind(report.run_id.unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(pages >= 8, "{pages} pages");
    assert_eq!(
        i64::from(waits),
        throttled,
        "every 429 and 503 was waited out once"
    );
    assert!(
        (seconds - f64::from(waits) * 0.25).abs() < 1e-6,
        "each wait is the Retry-After, fractions too: {seconds}"
    );
}

#[tokio::test]
async fn delta_restarts_on_any_4xx_with_a_resync_code() {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let observer = Observer::new(&app, &tid).await;
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);
    sqlx::query("insert into directory_users (tenant_id, object_id, display_name, seen_round) values ($1, gen_random_uuid(), 'Ghost', 1)")
        .bind(tenant)
        .execute(&app.db)
        .await
        .unwrap();
    // Both chains' stored delta links are refused: a 404 with a detailed resync code, as
    // Graph's errors page lists them (not the 400 or 410 Gangway used to expect).
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/faults",
        Some(json!({"stale_token": {"status": 404, "code": "resyncApplyDifferences", "count": 2}})),
    )
    .await;
    sync_now(&app, tenant).await;
    let report = work(&app).await;
    let faults = emulator(&app, reqwest::Method::GET, "/_emulator/faults", None).await;
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/faults",
        Some(json!({})),
    )
    .await;
    assert_eq!(report.outcome, RunOutcome::Succeeded, "{:?}", report.error);
    assert_eq!(faults["injected"]["stale_tokens"], 2, "{faults}");
    assert_eq!(
        copy(&app.db, tenant).await,
        observer.directory(&app).await,
        "the full round dropped the ghost"
    );
    let rounds: Vec<i64> =
        sqlx::query_scalar("select round from sync_state where tenant_id = $1 order by resource")
            .bind(tenant)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(rounds, vec![2, 2], "each chain started over once");
}

#[tokio::test]
async fn graph_500_502_and_504_are_retried_within_the_run_and_the_copy_ends_equal() {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let observer = Observer::new(&app, &tid).await;
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/graph",
        Some(json!({"page_size": 3})),
    )
    .await;
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/faults",
        Some(json!({"rate_5xx": 0.3})),
    )
    .await;
    let report = work(&app).await;
    let faults = emulator(&app, reqwest::Method::GET, "/_emulator/faults", None).await;
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/faults",
        Some(json!({})),
    )
    .await;
    assert_eq!(report.outcome, RunOutcome::Succeeded, "{:?}", report.error);
    assert!(
        faults["injected"]["server_errors"].as_i64().unwrap() > 0,
        "{faults}"
    );
    assert_eq!(copy(&app.db, tenant).await, observer.directory(&app).await);
}

/// `path` under the emulator tenant `tid`'s admin API.
fn at(tid: &str, path: &str) -> String {
    format!("/_emulator/tenants/{tid}{path}")
}

fn id_of(v: &Value) -> Uuid {
    v["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_large_group_split_across_pages_is_copied_whole() {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let observer = Observer::new(&app, &tid).await;
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    // Three members a slice: a group of every user comes back on page after page.
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/graph",
        Some(json!({"members_per_slice": 3})),
    )
    .await;
    let first = work(&app).await;
    assert_eq!(first.outcome, RunOutcome::Succeeded, "{:?}", first.error);
    let expected = observer.directory(&app).await;
    let (largest, _) = expected
        .groups
        .iter()
        .max_by_key(|(_, g)| g.members.len())
        .unwrap();
    let token = observer.token(&app).await;
    let sightings = observer
        .all(
            &app,
            &token,
            "v1.0/groups/delta?$select=displayName,members",
        )
        .await
        .iter()
        .filter(|g| g["id"] == largest.to_string())
        .count();
    assert!(sightings >= 3, "the largest group came {sightings} times");
    assert_eq!(copy(&app.db, tenant).await, expected);

    // Later rounds: many joins and a leave in one large group arrive in slices too.
    let (group, members) = expected
        .groups
        .iter()
        .max_by_key(|(_, g)| g.members.len())
        .unwrap();
    let outsiders: Vec<Uuid> = expected
        .users
        .keys()
        .filter(|u| !members.members.contains(u))
        .copied()
        .collect();
    for i in 0..8 {
        let user = emulator(
            &app,
            reqwest::Method::POST,
            &at(&tid, "/users"),
            Some(json!({"userPrincipalName": format!("joiner{i}@{}", app.customer(0).domain)})),
        )
        .await;
        emulator(
            &app,
            reqwest::Method::POST,
            &at(&tid, &format!("/groups/{group}/members")),
            Some(json!({"id": id_of(&user)})),
        )
        .await;
    }
    for user in outsiders.iter().take(2) {
        emulator(
            &app,
            reqwest::Method::POST,
            &at(&tid, &format!("/groups/{group}/members")),
            Some(json!({"id": user})),
        )
        .await;
    }
    let leaving = members.members.iter().next().unwrap();
    emulator(
        &app,
        reqwest::Method::DELETE,
        &at(&tid, &format!("/groups/{group}/members/{leaving}")),
        None,
    )
    .await;
    sync_now(&app, tenant).await;
    let second = work(&app).await;
    assert_eq!(second.outcome, RunOutcome::Succeeded, "{:?}", second.error);
    assert_eq!(copy(&app.db, tenant).await, observer.directory(&app).await);
}

#[tokio::test]
async fn nested_groups_service_principals_devices_and_contacts_are_copied_as_members() {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let observer = Observer::new(&app, &tid).await;
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    let before = observer.directory(&app).await;
    let user = *before.users.keys().nth(1).unwrap();
    let nested = *before.groups.keys().next().unwrap();
    let mut others = Vec::new();
    for (kind, name) in [
        ("#microsoft.graph.servicePrincipal", "Payroll connector"),
        ("#microsoft.graph.device", "Front desk kiosk"),
        ("#microsoft.graph.orgContact", "Auditor at Fabrikam"),
    ] {
        let made = emulator(
            &app,
            reqwest::Method::POST,
            &at(&tid, "/objects"),
            Some(json!({"@odata.type": kind, "displayName": name})),
        )
        .await;
        others.push(id_of(&made));
    }
    let mut members = vec![user, nested];
    members.extend(&others);
    let parent = emulator(
        &app,
        reqwest::Method::POST,
        &at(&tid, "/groups"),
        Some(json!({"displayName": "Everything", "members": members})),
    )
    .await;
    let parent = id_of(&parent);

    let first = work(&app).await;
    assert_eq!(first.outcome, RunOutcome::Succeeded, "{:?}", first.error);
    let expected = observer.directory(&app).await;
    assert_eq!(expected.groups[&parent].members.len(), 5);
    assert_eq!(copy(&app.db, tenant).await, expected);
    // Each member keeps the kind Graph named; users and groups resolve to the copy.
    let kinds: BTreeMap<Uuid, String> = sqlx::query_as(
        "select member_id, member_type from directory_group_members where tenant_id = $1 and group_id = $2",
    )
    .bind(tenant)
    .bind(parent)
    .fetch_all(&app.db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(kinds[&user], "user");
    assert_eq!(kinds[&nested], "group");
    assert_eq!(kinds[&others[0]], "servicePrincipal");
    assert_eq!(kinds[&others[1]], "device");
    assert_eq!(kinds[&others[2]], "orgContact");

    // The device is deleted and the nested group too: both leave the parent.
    emulator(
        &app,
        reqwest::Method::DELETE,
        &at(&tid, &format!("/objects/{}", others[1])),
        None,
    )
    .await;
    emulator(
        &app,
        reqwest::Method::DELETE,
        &at(&tid, &format!("/groups/{nested}?hard=true")),
        None,
    )
    .await;
    sync_now(&app, tenant).await;
    let second = work(&app).await;
    assert_eq!(second.outcome, RunOutcome::Succeeded, "{:?}", second.error);
    let expected = observer.directory(&app).await;
    assert_eq!(expected.groups[&parent].members.len(), 3);
    assert_eq!(copy(&app.db, tenant).await, expected);
}

#[tokio::test]
async fn a_property_cleared_to_null_under_minimal_is_cleared_in_the_copy() {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let observer = Observer::new(&app, &tid).await;
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);
    let before = observer.directory(&app).await;
    let (user, _) = before
        .users
        .iter()
        .find(|(_, u)| u.job_title.is_some() && u.department.is_some())
        .unwrap();
    let group = *before.groups.keys().next().unwrap();
    emulator(
        &app,
        reqwest::Method::PATCH,
        &at(&tid, &format!("/users/{user}")),
        Some(json!({"jobTitle": null, "department": null})),
    )
    .await;
    emulator(
        &app,
        reqwest::Method::PATCH,
        &at(&tid, &format!("/groups/{group}")),
        Some(json!({"description": null})),
    )
    .await;
    sync_now(&app, tenant).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);
    let expected = observer.directory(&app).await;
    assert_eq!(expected.users[user].job_title, None);
    assert_eq!(expected.groups[&group].description, None);
    assert_eq!(copy(&app.db, tenant).await, expected);
}

#[tokio::test]
async fn a_deleted_security_group_is_gone_for_good_and_a_microsoft_365_group_waits_in_the_recycle_bin()
 {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let observer = Observer::new(&app, &tid).await;
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    let security = id_of(
        &emulator(
            &app,
            reqwest::Method::POST,
            &at(&tid, "/groups"),
            Some(json!({"displayName": "Badge access"})),
        )
        .await,
    );
    let unified = id_of(
        &emulator(
            &app,
            reqwest::Method::POST,
            &at(&tid, "/groups"),
            Some(
                json!({"displayName": "Team site", "mailEnabled": true, "securityEnabled": false}),
            ),
        )
        .await,
    );
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);
    for group in [security, unified] {
        emulator(
            &app,
            reqwest::Method::DELETE,
            &at(&tid, &format!("/groups/{group}")),
            None,
        )
        .await;
    }
    sync_now(&app, tenant).await;
    let run = work(&app).await;
    assert_eq!(run.outcome, RunOutcome::Succeeded, "{:?}", run.error);
    assert_eq!(
        (run.tally.removed, run.tally.soft_deleted),
        (1, 1),
        "{:?}",
        run.tally
    );
    assert_eq!(copy(&app.db, tenant).await, observer.directory(&app).await);
    let kept: Vec<Uuid> = sqlx::query_scalar(
        "select object_id from directory_groups where tenant_id = $1 and soft_deleted_at is not null",
    )
    .bind(tenant)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        kept,
        vec![unified],
        "only the Microsoft 365 group can come back"
    );
}

#[tokio::test]
async fn a_missing_permission_is_named_and_not_retried_in_a_storm() {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &["User.Read.All", "Organization.Read.All"]).await;
    let (syncer, cfg) = engine(&app);
    let Outcome::Ran(job, Ok(report)) =
        worker::work_one(&syncer, &cfg, "w", &CancellationToken::new())
            .await
            .unwrap()
    else {
        panic!("the job should complete with a failed run, not be retried");
    };
    assert_eq!(report.outcome, RunOutcome::Failed);
    let error = report.error.unwrap();
    assert!(error.starts_with("Group.Read.All is required"), "{error}");
    let (status, sync_error): (String, Option<String>) =
        sqlx::query_as("select status, sync_error from tenants where id = $1")
            .bind(tenant)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(status, "active");
    assert!(sync_error.unwrap().contains("Group.Read.All"));
    // The page names the next step: the admin grants it, asked by a re-consent invitation.
    app.sign_in(Role::Admin).await;
    let page = app
        .get(&gangway::web::paths::tenant(tenant.into()))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Group.Read.All is required") && page.contains("Grant admin consent"));
    assert!(page.contains(&gangway::web::paths::reconsent_tenant(tenant.into())));
    let job_status: String = sqlx::query_scalar("select status from jobs where id = $1")
        .bind(job)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(job_status, "done");
    assert!(matches!(
        worker::work_one(&syncer, &cfg, "w", &CancellationToken::new())
            .await
            .unwrap(),
        Outcome::Idle
    ));
    // The users chain, which was allowed, completed its round anyway.
    let users: i64 =
        sqlx::query_scalar("select count(*) from directory_users where tenant_id = $1")
            .bind(tenant)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(users > 10);
}

#[tokio::test]
async fn a_tenant_microsoft_no_longer_knows_stops_looking_active_and_says_what_to_do() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    // As if the tenant was deleted at Microsoft: Entra ID answers AADSTS90002 for its id.
    sqlx::query("update tenants set entra_tenant_id = gen_random_uuid() where id = $1")
        .bind(tenant)
        .execute(&app.db)
        .await
        .unwrap();
    let report = work(&app).await;
    assert_eq!(report.outcome, RunOutcome::Failed);
    assert!(!report.retry, "no retry brings a deleted tenant back");
    assert!(report.error.unwrap().contains("AADSTS90002"));

    let page = app
        .get(&gangway::web::paths::tenant(tenant.into()))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains(">Active<") && page.contains("Not found at Microsoft"),
        "the tenant no longer looks active: {page}"
    );
    assert!(
        page.contains("class=\"badge failing\" id=\"sync-badge\" data-live>Failing<"),
        "no retry mends it, so it fails from the first time: {page}"
    );
    assert!(page.contains("What to do:") && page.contains("If the customer left, offboard it"));
    assert!(
        page.contains("href=\"#offboard\"") && page.contains("Invite the customer's admin again"),
        "{page}"
    );
    let progress: Value = app
        .get(&gangway::web::paths::sync_progress(tenant.into()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(progress["phase"], "idle");
    assert_eq!(progress["failure_kind"], "tenant_not_found");
    assert_eq!(progress["health"], "retrying", "the first failure");
}

#[tokio::test]
async fn delegated_refresh_tokens_rotate_and_a_revoked_consent_asks_for_a_new_one_that_works() {
    let app = TestApp::spawn().await;
    let tenant_at_microsoft = app.customer(0).clone();
    let issued = app
        .invite("delegated", &tenant_at_microsoft.admin.username, None)
        .await;
    let customer = Customer::open(&app, &issued.link).await;
    customer
        .consent(&app, &tenant_at_microsoft.admin, Decision::Accept)
        .await;
    let tenant: Uuid = sqlx::query_scalar("select id from tenants where entra_tenant_id = $1")
        .bind(Uuid::parse_str(&tenant_at_microsoft.id).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    let app_keys_open = |c: &[u8], k: &str| app.state.cfg.keys.open(k, c).unwrap();
    let read = || async {
        let (c, k): (Vec<u8>, String) = sqlx::query_as(
            "select credential_ciphertext, credential_key_id from tenants where id = $1",
        )
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .unwrap();
        String::from_utf8(app_keys_open(&c, &k)).unwrap()
    };
    let before = read().await;
    let report = work(&app).await;
    assert_eq!(report.outcome, RunOutcome::Succeeded, "{:?}", report.error);
    let after = read().await;
    assert_ne!(before, after, "the rotated refresh token is stored");
    let users: i64 =
        sqlx::query_scalar("select count(*) from directory_users where tenant_id = $1")
            .bind(tenant)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(users > 10);

    // The customer revokes consent: the next sync finds out, stops and says so.
    emulator(
        &app,
        reqwest::Method::DELETE,
        &format!(
            "/_emulator/tenants/{}/consents/{}",
            tenant_at_microsoft.id, app.app.client_id
        ),
        None,
    )
    .await;
    // The cached access token would still work for an hour: a new worker has no cache.
    sync_now(&app, tenant).await;
    let revoked = work(&app).await;
    assert_eq!(revoked.outcome, RunOutcome::Failed);
    assert!(!revoked.retry);
    let (status, why): (String, Option<String>) =
        sqlx::query_as("select status, sync_error from tenants where id = $1")
            .bind(tenant)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(status, "reconsent_required");
    assert!(why.unwrap().contains("AADSTS65001"));
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where tenant_id = $1 and action = 'tenant.reconsent_required'",
    )
    .bind(tenant)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    // No retry storm: nothing is queued, the scheduler skips it, a manual sync is refused.
    sqlx::query("update tenants set next_sync_at = now() - interval '1 minute' where id = $1")
        .bind(tenant)
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        worker::enqueue_due(&app.db, &gangway::types::schedule::default_schedule())
            .await
            .unwrap(),
        0
    );
    assert!(
        gangway::directory::control::request_sync(&app.db, tenant, &Actor::Cli)
            .await
            .is_err()
    );
    let (syncer, cfg) = engine(&app);
    assert!(matches!(
        worker::work_one(&syncer, &cfg, "w", &CancellationToken::new())
            .await
            .unwrap(),
        Outcome::Idle
    ));

    // One click sends a new invitation to the same admin for the same tenant and mode; their
    // consent reconnects the tenant and its sync runs again.
    app.sign_in(gangway::operators::Role::Admin).await;
    let page = app
        .get(&format!("/console/tenants/{tenant}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Send re-consent invitation"), "{page}");
    let csrf = crate::helpers::input_value(&page, "csrf_token").unwrap();
    let response = app
        .post_and_follow(
            &format!("/console/tenants/{tenant}/reconsent"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("/authenticate?token="),
        "the new link is shown once"
    );
    let invitation: (Uuid, String, String, Option<String>) = sqlx::query_as(
        "select id, admin_email::text, consent_mode, tenant_domain::text from invitations
         where id <> $1 order by created_at desc limit 1",
    )
    .bind(issued.invitation.id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        invitation.1.to_lowercase(),
        tenant_at_microsoft.admin.username.to_lowercase()
    );
    assert_eq!(invitation.2, "delegated");
    assert!(invitation.3.is_some(), "bound to the tenant's domain");
    app.deliver_mail().await;
    let link = app.mail.messages().last().unwrap().link();
    let customer = Customer::open(&app, &link).await;
    // The admin consents again at Microsoft.
    app.admin
        .grant(
            &tenant_at_microsoft.id,
            &app.app.client_id,
            &permissions::delegated_scopes(),
            &[],
        )
        .await
        .unwrap();
    customer
        .consent(&app, &tenant_at_microsoft.admin, Decision::Accept)
        .await;
    let status: String = sqlx::query_scalar("select status from tenants where id = $1")
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(status, "active");
    let again = work(&app).await;
    assert_eq!(again.outcome, RunOutcome::Succeeded, "{:?}", again.error);
}

/// `gangway worker` for `app`, syncing with a short lease so a dead worker's job is taken over
/// quickly.
fn worker_process(app: &TestApp) -> tokio::process::Child {
    let mut command = gangway(app);
    command
        .env("GANGWAY_SYNC_LEASE_SECS", "2")
        .env("RUST_LOG", "warn")
        .args(["worker", "--concurrency", "2"])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    command.spawn().unwrap()
}

async fn pages_of_running_run(db: &sqlx::PgPool, tenant: Uuid) -> i32 {
    sqlx::query_scalar(
        "select coalesce(max(pages), 0) from sync_runs where tenant_id = $1 and outcome = 'running'",
    )
    .bind(tenant)
    .fetch_one(db)
    .await
    .unwrap()
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_worker_killed_mid_sync_or_stopped_by_sigterm_loses_and_doubles_nothing() {
    let app = TestApp::spawn().await;
    let created = emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/tenants",
        Some(json!({"users": 240, "groups": 6})),
    )
    .await;
    let tid = created["id"].as_str().unwrap().to_owned();
    let observer = Observer::new(&app, &tid).await;
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/graph",
        Some(json!({"page_size": 5, "latency_ms": 40})),
    )
    .await;
    let tenant = connect(&app, &tid, &all_app_permissions()).await;

    let kill_at = 2 + (rand::random::<u8>() % 12) as i32;
    let mut first = worker_process(&app);
    wait_for("the first pages", async || {
        pages_of_running_run(&app.db, tenant).await >= kill_at
    })
    .await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();

    // The second process takes the job over once the lease runs out, goes on from the last
    // committed page, and is asked to stop with SIGTERM a few pages later.
    let mut second = worker_process(&app);
    wait_for("the take-over", async || {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from sync_runs where tenant_id = $1 and outcome = 'running' and pages >= 2
               and exists (select 1 from sync_runs where tenant_id = $1 and outcome = 'abandoned')",
        )
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .unwrap()
            == 1
    })
    .await;
    let pid = second.id().unwrap() as i32;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), second.wait())
        .await
        .expect("SIGTERM stops the worker")
        .unwrap();
    assert!(status.success(), "exit {status:?}");
    let runs: Vec<(String, Option<String>)> =
        sqlx::query_as("select outcome, error from sync_runs where tenant_id = $1 order by id")
            .bind(tenant)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0].0, "abandoned");
    assert_eq!(runs[1].0, "interrupted");
    let (status, attempts): (String, i32) = sqlx::query_as(
        "select status, attempts from jobs where tenant_id = $1 order by id desc limit 1",
    )
    .bind(tenant)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(status, "queued", "the stopped worker gave its job back");
    assert_eq!(
        attempts, 0,
        "neither the killed run (taken over) nor the stopped one (given back) counts"
    );

    let mut third = worker_process(&app);
    wait_for("the sync to finish", async || {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from sync_runs where tenant_id = $1 and outcome = 'succeeded'",
        )
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .unwrap()
            == 1
    })
    .await;
    third.start_kill().unwrap();
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/graph",
        Some(json!({"latency_ms": 0})),
    )
    .await;
    let expected = observer.directory(&app).await;
    assert_eq!(expected.users.len(), 240);
    assert_eq!(copy(&app.db, tenant).await, expected, "nothing lost");
    let (rows, added): (i64, i64) = sqlx::query_as(
        "select (select count(*) from directory_users where tenant_id = $1),
                (select sum(added)::bigint from sync_runs where tenant_id = $1)",
    )
    .bind(tenant)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(rows, 240, "nothing doubled");
    assert_eq!(
        added as usize,
        240 + expected.groups.len(),
        "each object added once over the three runs"
    );
}

#[tokio::test]
async fn a_full_round_commits_whole_batches_of_pages_and_a_worker_killed_between_them_resumes_equal()
 {
    let app = TestApp::spawn().await;
    let created = emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/tenants",
        Some(json!({"users": 300, "groups": 3, "memberships": 30})),
    )
    .await;
    let tid = created["id"].as_str().unwrap().to_owned();
    let observer = Observer::new(&app, &tid).await;
    // Pages of 5: a full round writes ten of them (50 users) per transaction.
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/graph",
        Some(json!({"page_size": 5, "latency_ms": 30})),
    )
    .await;
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    let users_in_copy = async || -> i64 {
        sqlx::query_scalar("select count(*) from directory_users where tenant_id = $1")
            .bind(tenant)
            .fetch_one(&app.db)
            .await
            .unwrap()
    };

    let mut first = worker_process(&app);
    wait_for("the first batch", async || users_in_copy().await >= 50).await;
    // Somewhere in the next batch: fetching it, or writing it.
    tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 400)).await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let kept = users_in_copy().await;
    assert!(
        kept > 0 && kept < 300 && kept % 50 == 0,
        "whole batches only, each with its link: {kept} users"
    );
    let pages: i32 =
        sqlx::query_scalar("select pages from sync_runs where tenant_id = $1 order by id limit 1")
            .bind(tenant)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        i64::from(pages),
        kept / 5 + 1,
        "the users' pages committed, and the groups' one page"
    );

    let mut second = worker_process(&app);
    wait_for("the sync to finish", async || {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from sync_runs where tenant_id = $1 and outcome = 'succeeded'",
        )
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .unwrap()
            == 1
    })
    .await;
    second.start_kill().unwrap();
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/graph",
        Some(json!({"latency_ms": 0})),
    )
    .await;
    let expected = observer.directory(&app).await;
    assert_eq!(copy(&app.db, tenant).await, expected, "nothing lost");
    let (added, pages): (i64, i64) = sqlx::query_as(
        "select sum(added)::bigint, sum(pages)::bigint from sync_runs where tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        added as usize,
        300 + expected.groups.len(),
        "each object added once over both runs"
    );
    // The users' 60 pages once each; the groups' one page in each run (the second run's
    // groups round starts from the first's delta link).
    assert_eq!(pages, 60 + 2, "each page counted once over both runs");
}

#[tokio::test]
async fn two_worker_processes_never_sync_one_tenant_at_once() {
    let app = TestApp::spawn().await;
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/graph",
        Some(json!({"page_size": 4, "latency_ms": 15})),
    )
    .await;
    let mut tenants_ = Vec::new();
    for index in 0..2 {
        let tid = app.customer(index).id.clone();
        tenants_.push(connect(&app, &tid, &all_app_permissions()).await);
    }
    let workers = [worker_process(&app), worker_process(&app)];
    for round in 0..3 {
        wait_for("every sync", async || {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from sync_runs where outcome = 'succeeded'",
            )
            .fetch_one(&app.db)
            .await
            .unwrap()
                >= 2 * (round + 1)
        })
        .await;
        if round < 2 {
            for tenant in &tenants_ {
                sync_now(&app, *tenant).await;
            }
        }
    }
    drop(workers);
    let overlaps: i64 = sqlx::query_scalar(
        "select count(*) from sync_runs a join sync_runs b
           on a.tenant_id = b.tenant_id and a.id < b.id
          and tstzrange(a.started_at, a.finished_at) && tstzrange(b.started_at, b.finished_at)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(overlaps, 0);
    let runs: i64 = sqlx::query_scalar("select count(*) from sync_runs")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(runs, 6, "each request ran once");
}

#[tokio::test]
async fn tenant_sync_wait_reports_progress_and_counts_and_exits_1_when_the_sync_fails() {
    let app = TestApp::spawn().await;
    let good = connect(&app, &app.customer(0).id.clone(), &all_app_permissions()).await;
    let bad = connect(
        &app,
        &app.customer(1).id.clone(),
        &["User.Read.All", "Organization.Read.All"],
    )
    .await;
    // The first syncs were queued by the consents; run them out of the way.
    work(&app).await;
    work(&app).await;
    let stop = CancellationToken::new();
    let (syncer, cfg) = engine(&app);
    let workers = tokio::spawn(worker::run(
        syncer,
        WorkerConfig {
            poll: Duration::from_millis(100),
            ..cfg
        },
        stop.clone(),
    ));

    let entra: Uuid = sqlx::query_scalar("select entra_tenant_id from tenants where id = $1")
        .bind(good)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let output = run(
        gangway(&app),
        &["tenant", "sync", &entra.to_string(), "--wait"],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("queued"), "{}", stderr(&output));
    assert!(stdout(&output).contains("succeeded"), "{}", stdout(&output));
    assert!(stdout(&output).contains("pages"), "{}", stdout(&output));

    let output = run(
        gangway(&app),
        &["tenant", "sync", &bad.to_string(), "--wait"],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("Group.Read.All is required"),
        "{}",
        stderr(&output)
    );

    let output = run(
        gangway(&app),
        &["tenant", "sync", &Uuid::new_v4().to_string()],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no tenant"), "{}", stderr(&output));
    stop.cancel();
    workers.await.unwrap();
}

#[tokio::test]
async fn a_customer_app_syncs_with_its_own_secret_until_that_secret_expires() {
    let app = TestApp::spawn().await;
    let tid = app.customer(1).id.clone();
    let observer = Observer::new(&app, &tid).await;
    let own = app
        .admin
        .register_app(&json!({
            "home_tenant": tid,
            "multi_tenant": false,
            "display_name": "Contoso's own app for the provider",
            "permissions": {"application": all_app_permissions()},
        }))
        .await
        .unwrap();
    app.admin
        .grant(&tid, &own.client_id, &[], &all_app_permissions())
        .await
        .unwrap();
    let issued = app
        .invite("customer-app", &app.customer(1).admin.username, None)
        .await;
    let consent = Consent {
        entra_tenant_id: tid.parse().unwrap(),
        display_name: app.customer(1).display_name.clone(),
        verified_domains: vec![app.customer(1).domain.clone()],
        mode: gangway::types::ConsentMode::CustomerApp,
        granted_scopes: all_app_permissions()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        consented_by_oid: None,
        consented_by_upn: None,
        customer_client_id: Some(own.client_id.clone()),
        credential: Some(Secret::new(own.client_secret.clone())),
    };
    let tenant = tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        issued.invitation.id,
        &consent,
        &Actor::System,
    )
    .await
    .unwrap();
    let first = work(&app).await;
    assert_eq!(first.outcome, RunOutcome::Succeeded, "{:?}", first.error);
    assert_eq!(copy(&app.db, tenant).await, observer.directory(&app).await);

    emulator(
        &app,
        reqwest::Method::PATCH,
        &format!("/_emulator/apps/{}", own.client_id),
        Some(json!({"secret_expires_in_days": -1})),
    )
    .await;
    sync_now(&app, tenant).await;
    let expired = work(&app).await;
    assert_eq!(expired.outcome, RunOutcome::Failed);
    let (status, why): (String, Option<String>) =
        sqlx::query_as("select status, sync_error from tenants where id = $1")
            .bind(tenant)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(status, "reconsent_required");
    let why = why.unwrap();
    assert!(
        why.contains("client secret expired") && why.contains("AADSTS7000222"),
        "{why}"
    );
}

#[tokio::test]
async fn offboarding_erases_the_copy_stops_a_running_sync_and_a_new_consent_syncs_from_scratch() {
    let app = TestApp::spawn().await;
    let created = emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/tenants",
        Some(json!({"users": 200, "groups": 4})),
    )
    .await;
    let tid = created["id"].as_str().unwrap().to_owned();
    let observer = Observer::new(&app, &tid).await;
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/graph",
        Some(json!({"page_size": 5, "latency_ms": 40})),
    )
    .await;
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    let worker = worker_process(&app);
    wait_for("the sync to be under way", async || {
        pages_of_running_run(&app.db, tenant).await >= 2
    })
    .await;
    sync_now(&app, tenant).await; // queued behind the running one

    let output = run(gangway(&app), &["tenant", "offboard", &tid]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("credential and directory copy erased"));
    wait_for("the running sync to stop", async || {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from sync_runs where tenant_id = $1 and outcome = 'running'",
        )
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .unwrap()
            == 0
    })
    .await;
    drop(worker);
    let (outcome, error): (String, Option<String>) = sqlx::query_as(
        "select outcome, error from sync_runs where tenant_id = $1 order by id desc limit 1",
    )
    .bind(tenant)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(outcome, "interrupted");
    assert!(error.unwrap().contains("no longer active"));
    let left: (i64, i64, i64, i64, i64, bool) = sqlx::query_as(
        "select (select count(*) from directory_users where tenant_id = $1),
                (select count(*) from directory_groups where tenant_id = $1),
                (select count(*) from directory_group_members where tenant_id = $1),
                (select count(*) from sync_state where tenant_id = $1),
                (select count(*) from jobs where tenant_id = $1 and status in ('queued', 'running')),
                (select credential_ciphertext is null and status = 'offboarded' from tenants where id = $1)",
    )
    .bind(tenant)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(left, (0, 0, 0, 0, 0, true), "nothing of the tenant is left");
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where tenant_id = $1 and action = 'tenant.offboarded'",
    )
    .bind(tenant)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(audited, 1);

    // Invited and consenting again, the tenant syncs from scratch.
    emulator(
        &app,
        reqwest::Method::POST,
        "/_emulator/graph",
        Some(json!({"latency_ms": 0})),
    )
    .await;
    assert_eq!(connect(&app, &tid, &all_app_permissions()).await, tenant);
    let again = work(&app).await;
    assert_eq!(again.outcome, RunOutcome::Succeeded, "{:?}", again.error);
    let full: bool = sqlx::query_scalar("select full_round from sync_runs where id = $1")
        .bind(again.run_id.unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(full);
    assert_eq!(copy(&app.db, tenant).await, observer.directory(&app).await);
}

/// A connected tenant, a run started by hand and `resource`'s chain as it starts: for writing
/// batches with `store::apply_page` directly.
async fn chain_at_start(resource: Resource) -> (TestApp, Uuid, i64, ChainState) {
    let app = TestApp::spawn().await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    let run: i64 = sqlx::query_scalar(
        "insert into sync_runs (tenant_id, trigger) values ($1, 'manual') returning id",
    )
    .bind(tenant)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let start = store::chain_state(&app.db, tenant, resource).await.unwrap();
    (app, tenant, run, start)
}

/// `n` new object ids.
fn fresh_ids(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::new_v4()).collect()
}

/// A batch of new users with the given ids, and the link Graph gave after it.
fn user_batch(ids: &[Uuid], next: &str) -> Page<UserFields> {
    Page {
        changes: ids
            .iter()
            .map(|id| Change::Upsert {
                id: *id,
                fields: UserFields {
                    user_principal_name: Some(Some(format!("{id}@side.example"))),
                    display_name: Some(Some(format!("User {id}"))),
                    account_enabled: Some(Some(true)),
                    ..UserFields::default()
                },
                members: Vec::new(),
            })
            .collect(),
        link: Link::Next(next.into()),
    }
}

#[tokio::test]
async fn a_batch_written_beside_the_one_before_commits_after_it_and_not_at_all_when_that_one_failed()
 {
    let (app, tenant, run, start) = chain_at_start(Resource::Users).await;
    let chain_link = async || -> Option<String> {
        sqlx::query_scalar(
            "select next_link from sync_state where tenant_id = $1 and resource = 'users'",
        )
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .unwrap()
    };
    let (first, second, third) = (fresh_ids(3), fresh_ids(4), fresh_ids(5));
    let links = ["https://graph.example/a", "https://graph.example/b"];

    // The second batch is written first, told to wait for the first's commit before its link.
    let (committed, word) = oneshot::channel();
    let beside = tokio::spawn({
        let (db, from) = (app.db.clone(), start.after(&Link::Next(links[0].into())));
        let batch = user_batch(&second, links[1]);
        async move {
            store::apply_page(&db, tenant, run, &from, batch, Tally::default(), Some(word)).await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !beside.is_finished(),
        "the second batch's link waits for the first batch"
    );
    let (after_first, _) = store::apply_page(
        &app.db,
        tenant,
        run,
        &start,
        user_batch(&first, links[0]),
        Tally::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(chain_link().await.as_deref(), Some(links[0]));
    committed.send(()).unwrap();
    let (after_second, tally) = beside.await.unwrap().unwrap();
    assert_eq!(tally.added, 4);
    assert_eq!(
        after_second,
        after_first.after(&Link::Next(links[1].into()))
    );
    assert_eq!(chain_link().await.as_deref(), Some(links[1]));

    // A batch beside one whose write failed (no word comes) writes nothing, though the chain
    // stands where it would continue.
    let (failed, no_word) = oneshot::channel::<()>();
    drop(failed);
    let refused = store::apply_page(
        &app.db,
        tenant,
        run,
        &after_second,
        user_batch(&third, "https://graph.example/c"),
        Tally::default(),
        Some(no_word),
    )
    .await;
    assert!(refused.is_err(), "nothing written beside a failed batch");
    assert_eq!(chain_link().await.as_deref(), Some(links[1]));
    let copied: i64 = sqlx::query_scalar(
        "select count(*) from directory_users where tenant_id = $1 and object_id = any($2)",
    )
    .bind(tenant)
    .bind([first, second, third].concat())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        copied, 7,
        "the first two batches' users, none of the third's"
    );
}

/// A batch of new groups with one member each (the same user), and the link after them.
fn group_batch(ids: &[Uuid], member: Uuid, next: &str) -> Page<GroupFields> {
    Page {
        changes: ids
            .iter()
            .map(|id| Change::Upsert {
                id: *id,
                fields: GroupFields {
                    display_name: Some(Some(format!("Group {id}"))),
                    mail_enabled: Some(Some(false)),
                    security_enabled: Some(Some(true)),
                    ..GroupFields::default()
                },
                members: vec![MemberChange {
                    id: member,
                    kind: "#microsoft.graph.user".into(),
                    removed: false,
                }],
            })
            .collect(),
        link: Link::Next(next.into()),
    }
}

#[tokio::test]
async fn a_batch_written_beside_the_one_before_leaves_it_the_memberships_lock() {
    let (app, tenant, run, start) = chain_at_start(Resource::Groups).await;
    let (first, second, member) = (fresh_ids(2), fresh_ids(3), Uuid::new_v4());
    let links = ["https://graph.example/g1", "https://graph.example/g2"];

    // The second batch starts first: it would reach the memberships' lock before the first.
    let (committed, word) = oneshot::channel();
    let beside = tokio::spawn({
        let (db, from) = (app.db.clone(), start.after(&Link::Next(links[0].into())));
        let batch = group_batch(&second, member, links[1]);
        async move {
            store::apply_page(&db, tenant, run, &from, batch, Tally::default(), Some(word)).await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let batch = group_batch(&first, member, links[0]);
    let written = store::apply_page(&app.db, tenant, run, &start, batch, Tally::default(), None);
    let (_, tally) = tokio::time::timeout(Duration::from_secs(10), written)
        .await
        .expect("the first batch is not kept waiting by the one written beside it")
        .unwrap();
    assert_eq!(tally.members_added, 2);
    committed.send(()).unwrap();
    let (_, tally) = tokio::time::timeout(Duration::from_secs(10), beside)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(tally.members_added, 3);
    let members: i64 = sqlx::query_scalar(
        "select count(*) from directory_group_members where tenant_id = $1 and member_id = $2",
    )
    .bind(tenant)
    .bind(member)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(members, 5);
}

/// A statement a connection keeps prepared is planned once for all its later uses. One planned
/// while the copy held a few rows kept the plan cheapest then, a scan of the whole table, and
/// every page of 200 tenants' first syncs scanned a copy grown to 100,000 users (8 ms a page).
/// A page's statements, a full round's end, a whole sync's and the budget's, used on one
/// connection while the copy grows, keep no such plan.
#[tokio::test]
async fn no_statement_kept_prepared_scans_the_whole_copy_once_it_has_grown() {
    use gangway::directory::budget::{Budget, PROVIDER_APP};
    use gangway::directory::credentials::TokenSource;
    use gangway::directory::sync::{self, RetryPolicy};

    let (app, tenant, run, start) = chain_at_start(Resource::Users).await;
    let entra: Uuid = app.customer(0).id.parse().unwrap();
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*app.db.connect_options()).clone())
        .await
        .unwrap();
    // The copy is small when Postgres last counted it, as autovacuum leaves a young table.
    sqlx::raw_sql("vacuum analyze directory_users, directory_groups")
        .execute(&app.db)
        .await
        .unwrap();
    // Past the five executions after which Postgres may keep a generic plan.
    let mut chain = start;
    for n in 0..8 {
        let batch = user_batch(&fresh_ids(2), &format!("https://graph.example/{n}"));
        (chain, _) = store::apply_page(&one, tenant, run, &chain, batch, Tally::default(), None)
            .await
            .unwrap();
        // Each its own budget, as each process has: every one counts the copy.
        let budget = Budget::new(one.clone(), 1.0);
        budget.take(PROVIDER_APP, tenant, entra, 1.0).await.unwrap();
        budget.spend("onboarding", entra, 1.0).await.unwrap();
    }
    // Full rounds of both chains end: what each did not see is staged as gone, and the guard
    // decides.
    let mut groups = store::chain_state(&one, tenant, Resource::Groups)
        .await
        .unwrap();
    for n in 0..8 {
        let delta = Link::Delta(format!("https://graph.example/delta/{n}"));
        let users = Page {
            link: delta.clone(),
            ..user_batch(&fresh_ids(2), "")
        };
        store::apply_page(&one, tenant, run, &chain, users, Tally::default(), None)
            .await
            .unwrap();
        chain = store::restart_chain(&one, tenant, Resource::Users)
            .await
            .unwrap();
        let batch = Page {
            link: delta,
            ..group_batch(&fresh_ids(1), Uuid::new_v4(), "")
        };
        store::apply_page(&one, tenant, run, &groups, batch, Tally::default(), None)
            .await
            .unwrap();
        groups = store::restart_chain(&one, tenant, Resource::Groups)
            .await
            .unwrap();
    }
    // Whole syncs from Graph on the same connection: both chains' full rounds, then the scope
    // recomputed over the whole copy.
    let tokens = TokenSource::new(
        one.clone(),
        app.state.cfg.keys.clone(),
        app.state.settings.clone(),
    );
    let syncer = Syncer::new(
        one.clone(),
        app.state.graph.clone(),
        tokens,
        RetryPolicy::default(),
    );
    let access = sync::tenant_access(&one, tenant).await.unwrap().unwrap();
    for _ in 0..8 {
        // One user flagged out of the scope: the scope is recomputed after the rounds.
        sqlx::query(
            "update directory_users set in_scope = false
             where tenant_id = $1 and object_id = (select object_id from directory_users
                                                   where tenant_id = $1 and soft_deleted_at is null
                                                   order by object_id limit 1)",
        )
        .bind(tenant)
        .execute(&app.db)
        .await
        .unwrap();
        syncer
            .sync(&access, run, &CancellationToken::new())
            .await
            .unwrap();
        for resource in [Resource::Users, Resource::Groups] {
            store::restart_chain(&one, tenant, resource).await.unwrap();
        }
    }
    // The copy grows; no ANALYZE makes Postgres plan again.
    sqlx::query(
        "insert into directory_users (tenant_id, object_id, user_principal_name, seen_round)
         select $1, gen_random_uuid(), 'user' || i || '@grown.example', 1
         from generate_series(1, 20000) i",
    )
    .bind(tenant)
    .execute(&app.db)
    .await
    .unwrap();

    let mut conn = one.acquire().await.unwrap();
    let kept: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "select name, statement, parameter_types::text[] from pg_prepared_statements
         where generic_plans > 0",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert!(!kept.is_empty(), "the connection kept generic plans");
    let mut scanning = Vec::new();
    for (name, statement, types) in kept {
        let nulls: Vec<String> = types.iter().map(|t| format!("null::{t}")).collect();
        let arguments = if nulls.is_empty() {
            String::new()
        } else {
            format!("({})", nulls.join(", "))
        };
        let plan: Vec<String> = sqlx::query_scalar(&format!("explain execute {name}{arguments}"))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        if plan.iter().any(|l| l.contains("Seq Scan on directory_")) {
            scanning.push(format!("{statement}\n{}", plan.join("\n")));
        }
    }
    assert!(
        scanning.is_empty(),
        "kept plans scanning the whole copy:\n\n{}",
        scanning.join("\n\n")
    );
}
