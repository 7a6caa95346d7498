//! SCIM 2.0 push against a SCIM server no one here wrote: `scim2-server` (PyPI), started on
//! loopback by each test, sometimes behind a small proxy that injects 429s and 500s or records
//! the methods it sees. Loopback is reachable only because each test allow-lists it.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use gangway::audit::Actor;
use gangway::directory::runs::RunOutcome;
use gangway::scim::{self, ConnectionInput};
use gangway::types::Secret;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{Setup, TestApp};
use crate::sync::{all_app_permissions, connect, emulator, sync_now, work};

const TOKEN: &str = "scim-test-token";

/// A `scim2-server` on a loopback port, stopped when dropped.
struct ScimServer {
    base: String,
    _child: tokio::process::Child,
    config: std::path::PathBuf,
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

impl ScimServer {
    /// Filter always; PATCH or not; `/Bulk` with this many operations a request, or not.
    async fn start(patch: bool, bulk: Option<u64>) -> Self {
        let config = std::env::temp_dir().join(format!("gangway-scim-{}.json", Uuid::new_v4()));
        std::fs::write(
            &config,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                "patch": {"supported": patch},
                "bulk": {"supported": bulk.is_some(), "maxOperations": bulk.unwrap_or(0),
                         "maxPayloadSize": 1048576},
                "filter": {"supported": true, "maxResults": 1000},
                "changePassword": {"supported": false},
                "sort": {"supported": true},
                "etag": {"supported": true}
            })
            .to_string(),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let program = ["target/python/bin/scim2-server", "scim2-server"]
            .into_iter()
            .find(|p| !p.contains('/') || std::path::Path::new(p).exists())
            .unwrap();
        let mut child = tokio::process::Command::new(program)
            .args(["--port", &port.to_string(), "--bearer-token", TOKEN])
            .arg("--service-provider-config")
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("scim2-server runs (pip install scim2-server; scripts/test does)");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("Serving SCIM") {
                    return;
                }
            }
            panic!("scim2-server ended before serving");
        })
        .await
        .expect("scim2-server serves within 20 s");
        Self {
            base: format!("http://127.0.0.1:{port}/v2"),
            _child: child,
            config,
        }
    }

    /// Every resource of `endpoint` (`Users`, `Groups`) on the server.
    async fn all(&self, endpoint: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let page: Value = reqwest::Client::new()
                .get(format!(
                    "{}/{endpoint}?startIndex={}&count=1000",
                    self.base,
                    out.len() + 1
                ))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let resources = page["Resources"].as_array().cloned().unwrap_or_default();
            let total = page["totalResults"].as_u64().unwrap() as usize;
            out.extend(resources.clone());
            if resources.is_empty() || out.len() >= total {
                return out;
            }
        }
    }
}

/// A proxy in front of a SCIM server: answers every `fault_every`th request itself (429 with
/// `Retry-After: 0`, then 500, in turn) and records the requests it forwards (method and
/// path) and how many bodies refer to a `bulkId`.
#[derive(Clone)]
struct Proxy {
    upstream: String,
    fault_every: usize,
    seen: Arc<AtomicUsize>,
    faults: Arc<AtomicUsize>,
    methods: Arc<Mutex<Vec<String>>>,
    bulk_refs: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(upstream: &str, fault_every: usize) -> (Self, String) {
        let proxy = Self {
            upstream: upstream.trim_end_matches("/v2").to_owned(),
            fault_every,
            seen: Arc::default(),
            faults: Arc::default(),
            methods: Arc::default(),
            bulk_refs: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v2", listener.local_addr().unwrap());
        let state = proxy.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let proxy = state.clone();
                async move { proxy.forward(method, uri, headers, body).await }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (proxy, base)
    }

    async fn forward(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::response::Response {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fault_every > 0 && n % self.fault_every == 0 {
            let fault = self.faults.fetch_add(1, Ordering::SeqCst);
            return if fault % 2 == 0 {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "0")],
                    "slow down",
                )
                    .into_response()
            } else {
                (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()
            };
        }
        self.methods
            .lock()
            .unwrap()
            .push(format!("{method} {}", uri.path()));
        if String::from_utf8_lossy(&body).contains("\"bulkId:") {
            self.bulk_refs.fetch_add(1, Ordering::SeqCst);
        }
        let mut req = reqwest::Client::new().request(
            reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
            format!("{}{}", self.upstream, uri),
        );
        for name in ["authorization", "content-type", "accept"] {
            if let Some(v) = headers.get(name) {
                req = req.header(name, v.to_str().unwrap());
            }
        }
        let resp = req.body(body).send().await.unwrap();
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        let body = resp.bytes().await.unwrap();
        (status, [("content-type", "application/scim+json")], body).into_response()
    }
}

/// Lets outbound requests reach loopback, as an admin would in System Settings.
async fn allow_loopback(app: &TestApp) {
    sqlx::query(
        "insert into settings (key, value) values ('webhook_allowed_networks', '[\"127.0.0.0/8\"]')
         on conflict (key) do update set value = excluded.value",
    )
    .execute(&app.db)
    .await
    .unwrap();
}

fn input(name: &str, base_url: &str) -> ConnectionInput {
    ConnectionInput {
        name: name.into(),
        base_url: base_url.into(),
        token: Some(Secret::new(TOKEN)),
        customer_id: None,
        mapping: None,
        scope_groups: Vec::new(),
        enabled: true,
    }
}

/// Runs the pushes that are due; they must all succeed.
async fn push(app: &TestApp) -> Vec<scim::push::Report> {
    let reports = scim::push::push_due(&app.db, &app.state.cfg.keys, &CancellationToken::new())
        .await
        .unwrap();
    for r in &reports {
        assert!(r.failures.is_empty(), "{:?}", r.failures);
    }
    reports
}

/// A user as the test expects the server to hold it, from the copy or from SCIM.
#[derive(Debug, PartialEq, Eq, Clone)]
struct User {
    user_name: String,
    display_name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    title: Option<String>,
    emails: BTreeSet<(String, String)>,
    phones: BTreeSet<(String, String)>,
    active: bool,
}

/// A group: its name and members by object id.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Group {
    display_name: String,
    members: BTreeSet<Uuid>,
}

#[derive(Debug, PartialEq, Eq)]
struct State {
    users: BTreeMap<Uuid, User>,
    groups: BTreeMap<Uuid, Group>,
}

/// What the copy says the server should hold (the default mapping, written out here).
async fn expected(app: &TestApp) -> State {
    type Row = (
        Uuid,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Vec<String>,
        Option<String>,
        Option<String>,
        Option<bool>,
        bool,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "select object_id, user_principal_name, display_name, given_name, surname, mail,
                business_phones, mobile_phone, job_title, account_enabled, soft_deleted_at is not null
         from directory_users",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let some = |v: Option<String>| v.filter(|s| !s.is_empty());
    let users: BTreeMap<Uuid, User> = rows
        .into_iter()
        .map(
            |(id, upn, display, given, sur, mail, phones, mobile, title, enabled, soft)| {
                let mut numbers: BTreeSet<(String, String)> =
                    phones.into_iter().map(|p| ("work".into(), p)).collect();
                numbers.extend(some(mobile).map(|m| ("mobile".into(), m)));
                (
                    id,
                    User {
                        user_name: upn.unwrap(),
                        display_name: some(display),
                        given_name: some(given),
                        family_name: some(sur),
                        title: some(title),
                        emails: some(mail).map(|m| ("work".into(), m)).into_iter().collect(),
                        phones: numbers,
                        active: enabled.unwrap_or(true) && !soft,
                    },
                )
            },
        )
        .collect();
    let groups: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "select object_id, display_name from directory_groups where soft_deleted_at is null",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let live: BTreeSet<Uuid> = groups.iter().map(|g| g.0).collect();
    let members: Vec<(Uuid, Uuid)> =
        sqlx::query_as("select group_id, member_id from directory_group_members")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let groups = groups
        .into_iter()
        .map(|(id, name)| {
            let members = members
                .iter()
                .filter(|(g, m)| *g == id && (users.contains_key(m) || live.contains(m)))
                .map(|(_, m)| *m)
                .collect();
            (
                id,
                Group {
                    display_name: name.unwrap_or_default(),
                    members,
                },
            )
        })
        .collect();
    State { users, groups }
}

/// What the SCIM server holds, keyed by externalId.
async fn on_server(server: &ScimServer) -> State {
    let users = server.all("Users").await;
    let groups = server.all("Groups").await;
    let external = |r: &Value| -> Uuid { r["externalId"].as_str().unwrap().parse().unwrap() };
    let by_scim_id: BTreeMap<String, Uuid> = users
        .iter()
        .chain(groups.iter())
        .map(|r| (r["id"].as_str().unwrap().to_owned(), external(r)))
        .collect();
    let s = |v: &Value| v.as_str().map(str::to_owned);
    let pairs = |v: &Value| -> BTreeSet<(String, String)> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| (s(&e["type"]).unwrap(), s(&e["value"]).unwrap()))
            .collect()
    };
    State {
        users: users
            .iter()
            .map(|u| {
                (
                    external(u),
                    User {
                        user_name: s(&u["userName"]).unwrap(),
                        display_name: s(&u["displayName"]),
                        given_name: s(&u["name"]["givenName"]),
                        family_name: s(&u["name"]["familyName"]),
                        title: s(&u["title"]),
                        emails: pairs(&u["emails"]),
                        phones: pairs(&u["phoneNumbers"]),
                        active: u["active"].as_bool().unwrap(),
                    },
                )
            })
            .collect(),
        groups: groups
            .iter()
            .map(|g| {
                (
                    external(g),
                    Group {
                        display_name: s(&g["displayName"]).unwrap(),
                        members: g["members"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|m| by_scim_id[m["value"].as_str().unwrap()])
                            .collect(),
                    },
                )
            })
            .collect(),
    }
}

/// Asserts the server equals the copy, naming the first difference.
async fn assert_equal(app: &TestApp, server: &ScimServer, when: &str) {
    let (want, got) = (expected(app).await, on_server(server).await);
    assert_eq!(
        want.users.keys().collect::<Vec<_>>(),
        got.users.keys().collect::<Vec<_>>(),
        "{when}: the same users"
    );
    for (id, user) in &want.users {
        assert_eq!(&got.users[id], user, "{when}: user {id}");
    }
    assert_eq!(
        want.groups.keys().collect::<Vec<_>>(),
        got.groups.keys().collect::<Vec<_>>(),
        "{when}: the same groups"
    );
    for (id, group) in &want.groups {
        let on = &got.groups[id];
        assert_eq!(on.display_name, group.display_name, "{when}: group {id}");
        assert_eq!(
            (
                group.members.difference(&on.members).collect::<Vec<_>>(),
                on.members.difference(&group.members).collect::<Vec<_>>()
            ),
            (vec![], vec![]),
            "{when}: group {id} ({}): members missing, members too many",
            group.display_name
        );
    }
}

/// Every kind of change in the emulator, then a sync: an added user, an edited one (phones,
/// title, a cleared surname), a soft and a hard delete, a member leaving and joining, a new
/// group with a nested group, a deleted group.
async fn change_everything(app: &TestApp, tid: &str, tenant: Uuid) {
    let t = format!("/_emulator/tenants/{tid}");
    let state = expected(app).await;
    let ids: Vec<Uuid> = state.users.keys().copied().collect();
    let (edited, soft, hard) = (ids[1], ids[2], ids[3]);
    let domain = app.customer(0).domain.clone();
    let added = emulator(
        app,
        reqwest::Method::POST,
        &format!("{t}/users"),
        Some(json!({
            "userPrincipalName": format!("new.person@{domain}"), "displayName": "New Person",
            "givenName": "New", "surname": "Person", "mail": format!("new.person@{domain}"),
            "businessPhones": ["+1 425 555 0100"], "mobilePhone": "+1 425 555 0199",
            "jobTitle": "Dispatcher", "accountEnabled": true
        })),
    )
    .await;
    let added: Uuid = added["id"].as_str().unwrap().parse().unwrap();
    emulator(
        app,
        reqwest::Method::PATCH,
        &format!("{t}/users/{edited}"),
        Some(json!({
            "jobTitle": "Head of Support", "surname": null, "accountEnabled": false,
            "businessPhones": ["+44 20 7946 0000", "+44 20 7946 0001"]
        })),
    )
    .await;
    emulator(
        app,
        reqwest::Method::DELETE,
        &format!("{t}/users/{soft}"),
        None,
    )
    .await;
    emulator(
        app,
        reqwest::Method::DELETE,
        &format!("{t}/users/{hard}?hard=true"),
        None,
    )
    .await;
    // A group with a member the edits above leave alone (a seeded group may hold only them).
    let (first, leaving) = state
        .groups
        .iter()
        .find_map(|(id, g)| {
            g.members
                .iter()
                .find(|m| ![soft, hard, edited].contains(m))
                .map(|m| (id, m))
        })
        .unwrap();
    emulator(
        app,
        reqwest::Method::DELETE,
        &format!("{t}/groups/{first}/members/{leaving}"),
        None,
    )
    .await;
    emulator(
        app,
        reqwest::Method::POST,
        &format!("{t}/groups/{first}/members"),
        Some(json!({"id": added})),
    )
    .await;
    let (doomed, _) = state.groups.iter().find(|(id, _)| *id != first).unwrap();
    emulator(
        app,
        reqwest::Method::DELETE,
        &format!("{t}/groups/{doomed}?hard=true"),
        None,
    )
    .await;
    emulator(
        app,
        reqwest::Method::POST,
        &format!("{t}/groups"),
        Some(json!({
            "displayName": "Night shift", "members": [added, edited, first]
        })),
    )
    .await;
    sync_now(app, tenant).await;
    assert_eq!(work(app).await.outcome, RunOutcome::Succeeded);
}

#[tokio::test]
async fn a_5000_user_tenant_pushes_whole_and_every_later_change_follows_field_by_field() {
    let app = TestApp::spawn_with(Setup {
        users: 5000,
        ..Setup::default()
    })
    .await;
    allow_loopback(&app).await;
    let server = ScimServer::start(true, Some(1000)).await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);
    let connection = scim::create(
        &app.db,
        &app.state.cfg.keys,
        &input("All", &server.base),
        &Actor::Cli,
    )
    .await
    .unwrap();

    let first = push(&app).await;
    assert_eq!(first.len(), 1);
    assert!(first[0].reconcile, "a new connection is reconciled in full");
    assert!(first[0].created > 5000, "{:?}", first[0]);
    assert!(first[0].considered > 5000, "{:?}", first[0]);
    assert_equal(&app, &server, "after the full push").await;
    assert!(
        push(&app).await.is_empty(),
        "nothing is due until the copy changes"
    );

    change_everything(&app, &tid, tenant).await;
    let second = push(&app).await;
    assert_eq!(
        second.len(),
        1,
        "the sync that changed the copy made a push due"
    );
    assert!(!second[0].reconcile);
    assert!(
        second[0].written() < 20,
        "only what changed is written: {:?}",
        second[0]
    );
    // Followed from the event log: only the objects the events name were even computed.
    assert!(second[0].events > 0, "{:?}", second[0]);
    assert!(
        second[0].considered < 20,
        "no whole-copy diff: {:?}",
        second[0]
    );
    let logged: String = sqlx::query_scalar(
        "select summary from scim_log where connection_id = $1 and entry = 'push'
         order by id desc limit 1",
    )
    .bind(Uuid::from(connection.id))
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(logged.starts_with("push: "), "{logged}");
    assert!(
        logged.contains(&format!("{} objects compared", second[0].considered)),
        "{logged}"
    );
    assert_equal(&app, &server, "after the changes").await;

    // Drift made behind Gangway's back is found and fixed by a full reconcile.
    let victim = &server.all("Users").await[7];
    reqwest::Client::new()
        .delete(format!(
            "{}/Users/{}",
            server.base,
            victim["id"].as_str().unwrap()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    scim::request_push(&app.db, connection.id, true, &Actor::Cli)
        .await
        .unwrap();
    let reconciled = push(&app).await;
    assert_eq!(reconciled[0].created, 1, "{:?}", reconciled[0]);
    assert_equal(&app, &server, "after the reconcile").await;
    let shown = scim::get(&app.db, connection.id).await.unwrap();
    assert_eq!(shown.state, "ok");
    assert!(shown.capabilities.unwrap().patch);
}

/// The connection's saved cursor.
async fn saved_cursor(app: &TestApp) -> Option<String> {
    sqlx::query_scalar("select event_cursor from scim_connections")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// A copy with a connection of everything pushed in full into a fresh server.
async fn pushed(app: &TestApp) -> (ScimServer, String, Uuid) {
    allow_loopback(app).await;
    let server = ScimServer::start(true, None).await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(app, &tid, &all_app_permissions()).await;
    assert_eq!(work(app).await.outcome, RunOutcome::Succeeded);
    scim::create(
        &app.db,
        &app.state.cfg.keys,
        &input("All", &server.base),
        &Actor::Cli,
    )
    .await
    .unwrap();
    assert!(push(app).await[0].reconcile);
    assert!(
        saved_cursor(app).await.is_some(),
        "a cursor after the reconcile"
    );
    (server, tid, tenant)
}

/// Every externalId on the server once: nothing was created twice.
async fn assert_no_doubles(server: &ScimServer) {
    for endpoint in ["Users", "Groups"] {
        let all = server.all(endpoint).await;
        let distinct: BTreeSet<&str> = all
            .iter()
            .map(|r| r["externalId"].as_str().unwrap())
            .collect();
        assert_eq!(
            distinct.len(),
            all.len(),
            "{endpoint}: each externalId once"
        );
    }
}

#[tokio::test]
async fn a_push_restarted_from_its_saved_cursor_misses_nothing_and_doubles_nothing() {
    let app = TestApp::spawn().await;
    let (server, tid, tenant) = pushed(&app).await;
    let before = saved_cursor(&app).await;

    change_everything(&app, &tid, tenant).await;
    let followed = push(&app).await;
    assert!(
        !followed[0].reconcile && followed[0].events > 0,
        "{:?}",
        followed[0]
    );
    assert!(followed[0].written() > 0);
    assert_equal(&app, &server, "after the changes").await;
    assert_ne!(saved_cursor(&app).await, before, "the cursor moved on");

    // As if the process had died after writing but before saving the cursor: the same events
    // are read again by a push that starts from the old cursor.
    sqlx::query("update scim_connections set event_cursor = $1, dirty = true")
        .bind(&before)
        .execute(&app.db)
        .await
        .unwrap();
    let replayed = push(&app).await;
    assert_eq!(replayed.len(), 1);
    assert!(!replayed[0].reconcile, "{:?}", replayed[0]);
    assert_eq!(replayed[0].events, followed[0].events, "the same events");
    assert_eq!(replayed[0].written(), 0, "nothing twice: {:?}", replayed[0]);
    assert_equal(&app, &server, "after the replay").await;
    assert_no_doubles(&server).await;

    // A second round after the restart is followed as well.
    emulator(
        &app,
        reqwest::Method::POST,
        &format!("/_emulator/tenants/{tid}/users"),
        Some(json!({
            "userPrincipalName": format!("late.joiner@{}", app.customer(0).domain),
            "displayName": "Late Joiner", "accountEnabled": true
        })),
    )
    .await;
    sync_now(&app, tenant).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);
    let later = push(&app).await;
    assert_eq!(
        (later[0].created, later[0].updated),
        (1, 0),
        "{:?}",
        later[0]
    );
    assert_equal(&app, &server, "after the late joiner").await;
    assert_no_doubles(&server).await;
}

#[tokio::test]
async fn a_cursor_older_than_the_event_retention_falls_back_to_a_reconcile() {
    let app = TestApp::spawn().await;
    let (server, tid, tenant) = pushed(&app).await;
    change_everything(&app, &tid, tenant).await;
    // The changes' events outlive the retention and are pruned before the push reads them.
    sqlx::query("update events set occurred_at = now() - interval '400 days'")
        .execute(&app.db)
        .await
        .unwrap();
    assert!(gangway::events::prune(&app.db).await.unwrap() > 0);
    let pushed = push(&app).await;
    assert_eq!(pushed.len(), 1);
    assert!(pushed[0].reconcile, "{:?}", pushed[0]);
    assert_eq!(pushed[0].events, 0);
    assert_equal(&app, &server, "after the reconcile").await;
    assert!(
        push(&app).await.is_empty(),
        "the cursor starts again at the head"
    );
}

/// The copy's users and groups under `roots` at any depth, with the roots.
async fn transitive(app: &TestApp, roots: &[Uuid]) -> (BTreeSet<Uuid>, BTreeSet<Uuid>) {
    let rows: Vec<(Uuid, bool)> = sqlx::query_as(
        "with recursive down(id) as (
             select unnest($1::uuid[])
             union
             select m.member_id from directory_group_members m join down on m.group_id = down.id
             where m.member_type = 'group')
         select m.member_id, m.member_type = 'group' from directory_group_members m
         join down on m.group_id = down.id where m.member_type in ('user', 'group')
         union select id, true from down",
    )
    .bind(roots)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let groups = rows.iter().filter(|r| r.1).map(|r| r.0).collect();
    let users = rows.iter().filter(|r| !r.1).map(|r| r.0).collect();
    (users, groups)
}

/// Asserts the server holds exactly the scope of `roots`, field by field.
async fn assert_scoped(app: &TestApp, server: &ScimServer, roots: &[Uuid], when: &str) {
    let (users, groups) = transitive(app, roots).await;
    let mut want = expected(app).await;
    want.users.retain(|id, _| users.contains(id));
    want.groups.retain(|id, _| groups.contains(id));
    let got = on_server(server).await;
    assert_eq!(want, got, "{when}");
}

#[tokio::test]
async fn a_group_scoped_connection_pushes_exactly_the_groups_members_at_any_depth() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let server = ScimServer::start(true, None).await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);
    let users: Vec<Uuid> = expected(&app).await.users.keys().copied().collect();
    assert!(users.len() >= 6, "{} users", users.len());
    let group = |name: &str, members: Vec<Uuid>| {
        let app = &app;
        let body = json!({"displayName": name, "members": members});
        let path = format!("/_emulator/tenants/{tid}/groups");
        async move {
            let created = emulator(app, reqwest::Method::POST, &path, Some(body)).await;
            created["id"].as_str().unwrap().parse::<Uuid>().unwrap()
        }
    };
    let nested = group("Night crew", vec![users[2], users[3]]).await;
    let direct = [users[0], users[1]];
    let root = group("Field team", vec![direct[0], direct[1], nested]).await;
    sync_now(&app, tenant).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);

    // An unknown group is refused; the real one is kept and shown.
    let mut scoped = input("Field team only", &server.base);
    scoped.scope_groups = vec![Uuid::new_v4()];
    let refused = scim::create(&app.db, &app.state.cfg.keys, &scoped, &Actor::Cli).await;
    assert!(
        matches!(&refused, Err(scim::ScimError::Invalid(m)) if m.contains("no group")),
        "{refused:?}"
    );
    scoped.scope_groups = vec![root, root];
    let connection = scim::create(&app.db, &app.state.cfg.keys, &scoped, &Actor::Cli)
        .await
        .unwrap();
    assert_eq!(connection.scope_groups, vec![root]);

    push(&app).await;
    let (in_scope, _) = transitive(&app, &[root]).await;
    assert!(
        in_scope.len() > 2 && in_scope.len() < users.len(),
        "{in_scope:?}"
    );
    assert_scoped(&app, &server, &[root], "after the full push").await;

    // A member leaves the root, another user joins the nested group: the one leaves the
    // server, the other arrives, by following the events.
    let outsider = users
        .iter()
        .copied()
        .find(|u| !in_scope.contains(u))
        .unwrap();
    emulator(
        &app,
        reqwest::Method::DELETE,
        &format!(
            "/_emulator/tenants/{tid}/groups/{root}/members/{}",
            direct[0]
        ),
        None,
    )
    .await;
    emulator(
        &app,
        reqwest::Method::POST,
        &format!("/_emulator/tenants/{tid}/groups/{nested}/members"),
        Some(json!({"id": outsider})),
    )
    .await;
    sync_now(&app, tenant).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);
    let followed = push(&app).await;
    assert!(!followed[0].reconcile, "{:?}", followed[0]);
    assert_eq!(followed[0].created, 1, "{:?}", followed[0]);
    assert_eq!(followed[0].deleted, 1, "{:?}", followed[0]);
    assert_scoped(&app, &server, &[root], "after the membership changes").await;
    let (now_in, _) = transitive(&app, &[root]).await;
    assert!(now_in.contains(&outsider) && !now_in.contains(&direct[0]));
}

#[tokio::test]
async fn a_server_answering_429_and_500_is_retried_and_ends_equal() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let server = ScimServer::start(true, None).await;
    let (proxy, base) = Proxy::start(&server.base, 3).await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);
    scim::create(
        &app.db,
        &app.state.cfg.keys,
        &input("Flaky", &base),
        &Actor::Cli,
    )
    .await
    .unwrap();
    push(&app).await;
    assert_equal(&app, &server, "after the full push").await;
    change_everything(&app, &tid, tenant).await;
    push(&app).await;
    assert_equal(&app, &server, "after the changes").await;
    assert!(
        proxy.faults.load(Ordering::SeqCst) >= 10,
        "faults were injected"
    );
}

#[tokio::test]
async fn a_bulk_server_gets_bulk_requests_within_its_limits_and_ends_equal() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let server = ScimServer::start(true, Some(7)).await;
    let (proxy, base) = Proxy::start(&server.base, 5).await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    // Two groups new at the first push, one nested in the other: the outer one's request
    // refers to the inner one by bulkId.
    let inner = emulator(
        &app,
        reqwest::Method::POST,
        &format!("/_emulator/tenants/{tid}/groups"),
        Some(json!({"displayName": "Inner"})),
    )
    .await;
    emulator(
        &app,
        reqwest::Method::POST,
        &format!("/_emulator/tenants/{tid}/groups"),
        Some(json!({"displayName": "Outer", "members": [inner["id"]]})),
    )
    .await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);
    let connection = scim::create(
        &app.db,
        &app.state.cfg.keys,
        &input("Bulk", &base),
        &Actor::Cli,
    )
    .await
    .unwrap();
    let first = push(&app).await;
    assert_equal(&app, &server, "after the full push").await;
    let objects = expected(&app).await;
    let objects = objects.users.len() + objects.groups.len();
    assert_eq!(first[0].created, objects, "{:?}", first[0]);
    assert_eq!(
        first[0].updated, 0,
        "groups were created whole: {:?}",
        first[0]
    );
    assert!(
        proxy.bulk_refs.load(Ordering::SeqCst) > 0,
        "a bulkId reference"
    );
    let methods = proxy.methods.lock().unwrap().clone();
    let bulks = methods.iter().filter(|m| *m == "POST /v2/Bulk").count();
    assert!(
        bulks >= objects.div_ceil(7),
        "{bulks} bulk requests for {objects} objects"
    );
    assert!(
        !methods
            .iter()
            .any(|m| m.starts_with("POST /v2/Users") || m.starts_with("PATCH ")),
        "{methods:?}"
    );

    change_everything(&app, &tid, tenant).await;
    let followed = push(&app).await;
    assert!(
        !followed[0].reconcile && followed[0].written() > 0,
        "{:?}",
        followed[0]
    );
    assert_equal(&app, &server, "after the changes").await;
    assert!(
        proxy.faults.load(Ordering::SeqCst) > 0,
        "faults were injected"
    );
    let caps = scim::get(&app.db, connection.id)
        .await
        .unwrap()
        .capabilities
        .unwrap();
    assert_eq!((caps.bulk, caps.bulk_max_operations), (true, Some(7)));
}

#[tokio::test]
async fn a_server_without_patch_gets_puts() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let server = ScimServer::start(false, None).await;
    let (proxy, base) = Proxy::start(&server.base, 0).await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    assert_eq!(work(&app).await.outcome, RunOutcome::Succeeded);
    let connection = scim::create(
        &app.db,
        &app.state.cfg.keys,
        &input("No patch", &base),
        &Actor::Cli,
    )
    .await
    .unwrap();
    push(&app).await;
    change_everything(&app, &tid, tenant).await;
    push(&app).await;
    assert_equal(&app, &server, "after the changes").await;
    let methods = proxy.methods.lock().unwrap().clone();
    assert!(methods.iter().any(|m| m.starts_with("PUT ")), "{methods:?}");
    assert!(
        !methods.iter().any(|m| m.starts_with("PATCH ")),
        "{methods:?}"
    );
    let caps = scim::get(&app.db, connection.id)
        .await
        .unwrap()
        .capabilities
        .unwrap();
    assert!(!caps.patch);
}

#[tokio::test]
async fn bad_connection_input_gets_clear_errors_and_a_refused_token_is_shown_in_the_servers_words()
{
    let app = TestApp::spawn().await;
    app.sign_in(gangway::operators::Role::Admin).await;
    let token = crate::json_api::token(&app, "scim", "write").await;
    let api = reqwest::Client::new();
    let post = |body: Value| {
        api.post(app.url("/api/v1/scim/connections"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let server = ScimServer::start(true, None).await;
    let good = json!({"name": "Workspace", "base_url": server.base, "token": TOKEN});

    // Loopback is refused until allowed.
    let refused = post(good.clone()).await.unwrap();
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("loopback"),
        "{problem}"
    );
    allow_loopback(&app).await;

    for (body, says) in [
        (
            json!({"name": "x", "base_url": "ftp://scim.example/v2", "token": "t"}),
            "base URL",
        ),
        (
            json!({"name": "x", "base_url": "https://169.254.169.254/scim", "token": "t"}),
            "metadata",
        ),
        (
            json!({"name": "x", "base_url": server.base}),
            "bearer token",
        ),
        (
            json!({"name": " ", "base_url": server.base, "token": "t"}),
            "name",
        ),
        (
            json!({"name": "x", "base_url": server.base, "token": "t", "customer_id": Uuid::new_v4()}),
            "customer",
        ),
        (
            json!({"name": "x", "base_url": server.base, "token": "t", "mapping": {"userName": "shoeSize"}}),
            "shoeSize",
        ),
        (
            json!({"name": "x", "base_url": server.base, "token": "t", "mapping": {"title": "jobTitle"}}),
            "userName",
        ),
    ] {
        let resp = post(body.clone()).await.unwrap();
        assert_eq!(resp.status(), 422, "{body}");
        let problem: Value = resp.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{body}: {problem}"
        );
    }

    let created = post(good.clone()).await.unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert!(
        created.get("token").is_none(),
        "the token is never answered"
    );
    assert_eq!(post(good).await.unwrap().status(), 409, "the name is taken");

    // A token the server refuses: the connection fails with the server's own message.
    let id = created["id"].as_str().unwrap();
    let changed = api
        .put(app.url(&format!("/api/v1/scim/connections/{id}")))
        .bearer_auth(&token)
        .json(&json!({"name": "Workspace", "base_url": server.base, "token": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let reports = scim::push::push_due(&app.db, &app.state.cfg.keys, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(reports[0].failures.len(), 1);
    let shown: Value = api
        .get(app.url(&format!("/api/v1/scim/connections/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["state"], "failing");
    let error = shown["last_error"].as_str().unwrap();
    assert!(
        error.contains("401") && error.contains("Authorization failure"),
        "{error}"
    );
    let log: Value = api
        .get(app.url(&format!("/api/v1/scim/connections/{id}/log")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["entry"] == "failure" && e["status"] == 401),
        "{log}"
    );
    let pushed = api
        .post(app.url(&format!("/api/v1/scim/connections/{id}/push")))
        .bearer_auth(&token)
        .json(&json!({"reconcile": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 202);
}

#[tokio::test]
async fn the_console_adds_a_connection_re_shows_a_refused_form_and_shows_its_state_and_log() {
    let app = TestApp::spawn().await;
    app.sign_in(gangway::operators::Role::Admin).await;
    let server = ScimServer::start(true, None).await;
    let mapping = "userName = userPrincipalName\nemails.work = mail\n";
    let fields = |url: &str| {
        vec![
            ("name", "Workspace".to_owned()),
            ("base_url", url.to_owned()),
            ("token", TOKEN.to_owned()),
            ("customer", String::new()),
            ("mapping", mapping.to_owned()),
            ("enabled", "on".to_owned()),
        ]
    };
    // Refused (loopback not allowed yet): the form comes back with the reason and what was typed.
    let refused = send(&app, &fields(&server.base)).await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("loopback") && page.contains("value=\"Workspace\""),
        "{page}"
    );
    assert!(!page.contains(TOKEN), "the token is not echoed back");

    // A POST without the CSRF token is refused.
    let forged = reqwest::Client::new()
        .post(app.url(gangway::web::paths::SCIM))
        .form(&[("name", "x")])
        .send()
        .await
        .unwrap();
    assert!(forged.status().is_client_error(), "{}", forged.status());

    allow_loopback(&app).await;
    let added = send(&app, &fields(&server.base)).await;
    assert!(added.status().is_redirection(), "{}", added.status());
    let page_url = crate::helpers::location(added).await;
    push(&app).await;
    let page = app.get(&page_url).await.text().await.unwrap();
    assert!(
        page.contains("Workspace") && page.contains("full reconcile:"),
        "{page}"
    );
    assert!(page.contains("PATCH yes"), "{page}");
    assert!(page.contains("emails.work = mail"), "{page}");
    assert_eq!(
        on_server(&server).await.users.len(),
        expected(&app).await.users.len()
    );
}

async fn send(app: &TestApp, fields: &[(&str, String)]) -> reqwest::Response {
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.post_form(gangway::web::paths::SCIM, &pairs).await
}
