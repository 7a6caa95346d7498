//! `gangway bench scim`: SCIM push into a real SCIM server (`scim2-server`, started on loopback
//! as a process of its own). A scratch database's copy holds N users in G groups; the first
//! push (a full reconcile) writes them all and is timed as objects per second. Then one user is
//! changed at a time in the copy, in a transaction that ends as a sync run's does (logging the
//! change's event, marking the connections that must push and waking the `scim_push` task),
//! and the time until the SCIM server answers the new value is the delay; the task runs in
//! this process's background registry, as in `gangway serve`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sqlx::PgPool;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Machine;
use super::load::load_average;
use crate::audit::Actor;
use crate::background::{Registry, Task};
use crate::crypto::{EncryptionKey, Keyring};
use crate::events::{self, Event, EventType};
use crate::scim::{self, ConnectionInput};
use crate::types::Secret;

/// The bearer token the benchmark's server accepts.
const TOKEN: &str = "gangway-bench";

/// What to measure.
#[derive(Debug, Clone)]
pub struct ScimBenchParams {
    /// Users in the copy.
    pub users: usize,
    /// Groups, each user a member of one.
    pub groups: usize,
    /// Changes whose delay is timed, one after another.
    pub changes: usize,
    /// The `scim2-server` program.
    pub server: String,
}

impl ScimBenchParams {
    /// What is wrong with the parameters, if anything.
    pub fn problem(&self) -> Option<String> {
        (self.users == 0 || self.changes == 0 || self.groups == 0)
            .then(|| "--users, --groups and --changes must be at least 1".into())
    }
}

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct ScimBenchReport {
    /// The machine.
    pub machine: Machine,
    /// Load average before and after.
    pub load_average: [Option<String>; 2],
    /// Users pushed.
    pub users: usize,
    /// Groups pushed (with their members).
    pub groups: usize,
    /// Requests the first push made that wrote an object (creates, then group members).
    pub writes: usize,
    /// How long the first push took, in seconds.
    pub full_push_secs: f64,
    /// Objects (users and groups) the server holds after it, per second of the push.
    pub objects_per_sec: f64,
    /// Delay from a committed change of the copy to the server answering it, median, ms.
    pub delay_p50_ms: f64,
    /// The same, 95th percentile, ms.
    pub delay_p95_ms: f64,
}

/// Runs the benchmark on a scratch database of the Postgres server `server_url` points at.
pub async fn run_scim_bench(
    params: ScimBenchParams,
    server_url: &str,
) -> anyhow::Result<ScimBenchReport> {
    super::on_scratch_database(server_url, "gangway_bench_scim", |db, _| {
        measure(params, db)
    })
    .await
}

async fn measure(params: ScimBenchParams, db: PgPool) -> anyhow::Result<ScimBenchReport> {
    let before = load_average();
    crate::db::migrate(&db).await?;
    let tenant = super::api::seed(&db, params.users).await?;
    seed_groups(&db, tenant, params.groups).await?;
    sqlx::query!(
        "insert into settings (key, value) values ($1, '[\"127.0.0.0/8\"]')
         on conflict (key) do update set value = excluded.value",
        crate::webhooks::egress::SETTING
    )
    .execute(&db)
    .await?;
    let (mut server, base) = start_server(&params.server).await?;
    let keys: Keyring = EncryptionKey::from_base64(&EncryptionKey::generate_base64())?.into();
    let input = ConnectionInput {
        name: "Benchmark".into(),
        base_url: base.clone(),
        token: Some(Secret::new(TOKEN)),
        customer_id: None,
        mapping: None,
        scope_groups: Vec::new(),
        enabled: true,
    };
    scim::create(&db, &keys, &input, &Actor::Cli).await?;

    let started = Instant::now();
    let first = scim::push::push_due(&db, &keys, &CancellationToken::new()).await?;
    let full_push = started.elapsed().as_secs_f64();
    let report = first.first().context("the new connection was not pushed")?;
    if let Some(f) = report.failures.first() {
        anyhow::bail!("the first push failed: {f}");
    }

    // The task as `gangway serve` runs it: woken by the change's commit.
    let stop = CancellationToken::new();
    let mut registry = Registry::new(db.clone());
    registry.register(
        Task::ScimPush,
        scim::push::PERIOD,
        scim::push::PushTask::new(db.clone(), keys.clone()),
    );
    let tasks = tokio::spawn(registry.run(stop.clone()));
    // The registry listens before it runs: give it that moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let http = reqwest::Client::new();
    let mut delays = Vec::with_capacity(params.changes);
    for i in 0..params.changes {
        let title = format!("Title {i}");
        let mut tx = db.begin().await?;
        let object = sqlx::query_scalar!(
            "update directory_users set job_title = $2
             where tenant_id = $1 and object_id = (select object_id from directory_users
                                                   where tenant_id = $1 order by object_id
                                                   offset $3 limit 1)
             returning object_id",
            tenant,
            title,
            i64::try_from(i % params.users)?
        )
        .fetch_one(&mut *tx)
        .await?;
        // The event a sync round writes for the change: the push follows the log.
        let event = Event::new(
            EventType::UserUpdated,
            serde_json::json!({ "tenant_id": tenant, "object_id": object, "job_title": title }),
        );
        // Appending it wakes the push (see `migrations/0056_scim_wake_on_events.sql`).
        events::append(&mut tx, &event).await?;
        tx.commit().await?;
        let changed = Instant::now();
        wait_for_title(&http, &base, object, &title).await?;
        delays.push(changed.elapsed().as_secs_f64() * 1000.0);
    }
    stop.cancel();
    let _ = tasks.await;
    let _ = server.kill().await;
    delays.sort_by(f64::total_cmp);
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    Ok(ScimBenchReport {
        machine: super::machine(),
        load_average: [before, load_average()],
        users: params.users,
        groups: params.groups,
        writes: report.written(),
        full_push_secs: full_push,
        objects_per_sec: (params.users + params.groups) as f64 / full_push,
        delay_p50_ms: at(0.5),
        delay_p95_ms: at(0.95),
    })
}

/// `groups` groups in `tenant`, user k a member of group k mod `groups`.
async fn seed_groups(db: &PgPool, tenant: Uuid, groups: usize) -> anyhow::Result<()> {
    sqlx::query!(
        "insert into directory_groups (tenant_id, object_id, display_name, security_enabled, seen_round)
         select $1, gen_random_uuid(), 'Bench group ' || i, true, 1
         from generate_series(1, $2::bigint) i",
        tenant,
        i64::try_from(groups)?
    )
    .execute(db)
    .await?;
    sqlx::query!(
        "insert into directory_group_members (tenant_id, group_id, member_id, member_type, seen_round)
         select $1, g.object_id, u.object_id, 'user', 1
         from (select object_id, row_number() over (order by object_id) % $2 as k
               from directory_users where tenant_id = $1) u
         join (select object_id, row_number() over (order by object_id) % $2 as k
               from directory_groups where tenant_id = $1) g on g.k = u.k",
        tenant,
        i64::try_from(groups)?
    )
    .execute(db)
    .await?;
    Ok(())
}

/// `scim2-server` on a free loopback port; the process and its base URL.
async fn start_server(program: &str) -> anyhow::Result<(tokio::process::Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = tokio::process::Command::new(program)
        .args(["--port", &port.to_string(), "--bearer-token", TOKEN])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {program}: pip install scim2-server"))?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().context("no stdout")?).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("Serving SCIM") {
                return Ok(());
            }
        }
        anyhow::bail!("{program} ended before serving")
    })
    .await
    .context("scim2-server did not start within 30 s")??;
    Ok((child, format!("http://127.0.0.1:{port}/v2")))
}

/// Polls the server until the user `object` has `title`.
async fn wait_for_title(
    http: &reqwest::Client,
    base: &str,
    object: Uuid,
    title: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let url = format!("{base}/Users");
    while Instant::now() < deadline {
        let found: serde_json::Value = http
            .get(&url)
            .query(&[("filter", format!("externalId eq \"{object}\""))])
            .bearer_auth(TOKEN)
            .send()
            .await?
            .json()
            .await?;
        if found["Resources"][0]["title"] == title {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    anyhow::bail!("the SCIM server did not see the change within 120 s")
}
