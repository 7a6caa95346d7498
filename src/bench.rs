//! `gangway bench sync`: the directory replication benchmark. An emulator in a process of its
//! own ([`emulator`]) seeded with the directory asked for, a scratch database (created, migrated and dropped), customer
//! tenants connected the way a consent connects them (an invitation, application consent
//! granted, [`tenants::record_consent`] queueing the first sync), and the real engine (the job
//! queue, [`worker::work_one`] or [`worker::run`], the page store) timed phase by phase: the
//! first full sync, a round of changes made through the emulator's admin API, a sync with
//! nothing to do — beside the time Postgres takes to `COPY` as many rows, and, asked for, the
//! same full sync done by a [`peer`] with Microsoft's Graph SDK for Python. Figures only; it
//! asserts nothing but that every sync succeeded and the copies match the emulator.
//!
//! `gangway bench api` is in [`api`], `gangway bench signin` in [`signin`]; the HTTP load
//! generator they share in [`load`].

pub mod api;
pub mod cpu;
pub mod emulator;
pub mod load;
pub mod nesting;
pub mod notify;
pub mod peer;
pub mod scim;
pub mod signin;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use entra_emulator::{EmulatedTenant, EmulatorAdmin, Options};
use futures_util::StreamExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgPool};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use url::Url;
use uuid::Uuid;

use crate::audit::Actor;
use crate::config::{Config, RateLimit, SyncSettings, TrustedProxies, parse_public_url};
use crate::crypto::EncryptionKey;
use crate::directory::budget::Budget;
use crate::directory::sync::Syncer;
use crate::directory::worker::{self, WorkerConfig};
use crate::invitations::{self, NewInvitation};
use crate::jobs::{self, NewJob, Outcome};
use crate::tenants::{self, Consent, SYNC_JOB};
use crate::types::ConsentMode;
use crate::types::Secret;
use crate::types::permissions;
use crate::web::AppState;
use cpu::{CpuClock, CpuSpent};
use emulator::EmulatorProcess;
use nesting::{NestingBenchParams, NestingBenchReport, run_nesting_bench};
use notify::NotifyReport;
use peer::PeerReport;

/// The emulator's seed: the same directory every run.
const SEED: u64 = 2026;

/// What to measure.
#[derive(Debug, Clone, Serialize)]
pub struct SyncBenchParams {
    /// Users per customer tenant.
    pub users: usize,
    /// Groups per customer tenant.
    pub groups: usize,
    /// Memberships per customer tenant, dealt evenly over its groups.
    pub memberships: usize,
    /// Changes per customer tenant before the incremental sync (at most one per user: the
    /// report gives the number made).
    pub changes: usize,
    /// Customer tenants.
    pub tenants: usize,
    /// Syncs at once when there are several tenants ([`DEFAULT_CONCURRENCY`] at most unless
    /// asked for).
    pub concurrency: usize,
    /// Database connections the engine may hold; `None`: as `gangway serve` sizes its pool
    /// for `concurrency` workers (reported as used).
    pub pool_size: Option<u32>,
    /// Time every Graph answer takes, in milliseconds.
    pub latency_ms: u64,
    /// Graph's page size; `None` keeps the emulator's default (reported as used).
    pub page_size: Option<usize>,
    /// Single-user changes timed from the emulator to the copy through change notifications
    /// after the other phases (0: none).
    pub notified_changes: usize,
    /// The pause between two of those changes, in milliseconds.
    pub notify_interval_ms: u64,
    /// Also answer nested-group questions over a copy of this shape (`gangway bench nesting`).
    pub nesting: Option<NestingBenchParams>,
    /// After the full sync, the same one by the [`peer`] (one tenant only); the emulator then
    /// serves HTTPS, the only scheme the Graph SDK speaks, to Gangway too.
    pub peer: bool,
}

/// Syncs at once by default: one per tenant up to this many. Each holds a database connection
/// while it writes, and a pool for hundreds would pass a Postgres server's `max_connections`.
pub const DEFAULT_CONCURRENCY: usize = 32;

impl SyncBenchParams {
    /// The first contradiction between the parameters, if any.
    pub fn problem(&self) -> Option<String> {
        if self.users == 0 {
            return Some(
                "--users must be at least 1 (user 0 is the tenant's administrator)".into(),
            );
        }
        if self.tenants == 0 || self.concurrency == 0 {
            return Some("--tenants and --concurrency must be at least 1".into());
        }
        if self.memberships > self.users.saturating_mul(self.groups) {
            return Some(format!(
                "--memberships {} is more than every user in every group ({} × {})",
                self.memberships, self.users, self.groups
            ));
        }
        if self.page_size.is_some_and(|p| !(1..=999).contains(&p)) {
            return Some("--page-size must be within 1..=999, as Graph's".into());
        }
        if self.peer && self.tenants > 1 {
            return Some(
                "--peer compares one tenant's full sync: it cannot be used with --tenants above 1"
                    .into(),
            );
        }
        self.nesting.as_ref().and_then(NestingBenchParams::problem)
    }
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs this process may use.
    pub cpus: usize,
    /// Kernel name and release (`uname -sr`).
    pub os: String,
}

/// Delta pages fetched, per chain.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Pages {
    /// `/users/delta` pages.
    pub users: i64,
    /// `/groups/delta` pages.
    pub groups: i64,
}

/// One timed phase, summed over every tenant's run.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// Wall time, from the job's claim to the last run recorded.
    pub seconds: f64,
    /// Users and groups added, updated, soft-deleted or removed.
    pub objects: i64,
    /// Memberships added or removed.
    pub memberships: i64,
    /// `objects` / `seconds`.
    pub objects_per_second: f64,
    /// This process's peak resident set during the phase (the engine's; the emulator runs
    /// apart), MiB; `None`
    /// where Linux's `/proc/self/clear_refs` is not available.
    pub peak_rss_mb: Option<f64>,
    /// Delta pages fetched, per chain.
    pub pages: Pages,
    /// Graph's 429s seen by the engine (the emulator's count of its throttle, which holds
    /// Microsoft's limits for each app and tenant and for the app across tenants).
    pub graph_429s: u64,
    /// Resource units Graph counted for the phase's requests.
    pub resource_units: u64,
    /// Round trips to the shared throttle budget in Postgres (several units per trip).
    pub budget_round_trips: u64,
    /// Sync runs (one per tenant).
    pub runs: usize,
    /// Changes made through the emulator before this phase, all tenants together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<usize>,
    /// With latency: what Graph's round trips alone take — the longer chain's pages per
    /// tenant × latency × the tenants one worker has in turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_floor_seconds: Option<f64>,
    /// Where the machine's CPU time went during the phase; `None` where `/proc` does not say.
    pub cpu: Option<CpuSpent>,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct SyncBenchReport {
    /// Where.
    pub machine: Machine,
    /// What (with the page size the emulator used).
    pub params: SyncBenchParams,
    /// The first sync: a full round of both chains.
    pub full: Phase,
    /// The sync after the changes.
    pub incremental: Phase,
    /// A sync with no changes.
    pub idle: Phase,
    /// Postgres `COPY` of the user, group and membership rows the full sync wrote (the same
    /// rows and columns, under another tenant) into the same tables, in one transaction.
    pub copy_floor_seconds: f64,
    /// The rows that `COPY` wrote.
    pub copy_floor_rows: u64,
    /// This process's resident set before the full sync, MiB: the engine's, the emulator
    /// runs in a process of its own.
    pub rss_baseline_mb: Option<f64>,
    /// The emulator process's resident set at the end (its seeded directory), MiB.
    pub emulator_rss_mb: Option<f64>,
    /// The full phase's latency floor, with latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_floor_seconds: Option<f64>,
    /// With several tenants: the same full sync of the same tenants one after another (one
    /// worker), measured in this run before `full` (the copy is then emptied and vacuumed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<Phase>,
    /// `serial.seconds / full.seconds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speedup_over_serial: Option<f64>,
    /// Change-to-copy latency through change notifications, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotifyReport>,
    /// Nested-group answer times, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nesting: Option<NestingBenchReport>,
    /// The same full sync by the peer, when asked for and it could run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerReport>,
    /// `peer.seconds / full.seconds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_to_full: Option<f64>,
    /// Why the peer asked for did not run (Python or a library it needs is not installed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_skipped: Option<String>,
}

/// Runs the benchmark against a scratch database on the Postgres server `server_url` points
/// at; the database is dropped at the end, whatever happened (Ctrl-C included).
pub async fn run_sync_bench(
    params: SyncBenchParams,
    server_url: &str,
) -> anyhow::Result<SyncBenchReport> {
    if let Some(problem) = params.problem() {
        bail!(problem);
    }
    let nesting = params.nesting.clone();
    let mut report =
        on_scratch_database(server_url, "gangway_bench_sync", |db, db_url| async move {
            measure(params, db, &db_url).await
        })
        .await?;
    if let Some(nesting) = nesting {
        report.nesting = Some(run_nesting_bench(nesting, server_url).await?);
    }
    Ok(report)
}

/// Runs `measure` on a scratch database made on the Postgres server `server_url` points at
/// (named from `prefix`), and drops it at the end whatever happened, Ctrl-C included.
pub(crate) async fn on_scratch_database<T, F, Fut>(
    server_url: &str,
    prefix: &str,
    measure: F,
) -> anyhow::Result<T>
where
    F: FnOnce(PgPool, String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let (db, db_url) = crate::db::create_scratch(server_url, prefix)
        .await
        .context("cannot create a scratch database: is Postgres running at DATABASE_URL?")?;
    let result = tokio::select! {
        report = measure(db.clone(), db_url.clone()) => report,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    // The work stopped with the measurement; whatever is left is ended by the forced drop.
    let _ = tokio::time::timeout(Duration::from_secs(5), db.close()).await;
    let dropped = crate::db::drop_scratch(&db_url)
        .await
        .with_context(|| format!("dropping the scratch database {db_url} failed"));
    let report = result?;
    dropped?;
    Ok(report)
}

/// A connected customer tenant.
struct Customer {
    /// Gangway's id.
    id: Uuid,
    /// The emulator's view.
    entra: EmulatedTenant,
}

/// What the phases share.
struct Bench {
    params: SyncBenchParams,
    db: PgPool,
    db_url: String,
    admin: EmulatorAdmin,
    syncer: Syncer,
    /// The scale of the throttle budget each phase draws on afresh.
    budget_scale: f64,
    lease: Duration,
    customers: Vec<Customer>,
    /// The emulator's process, whose CPU time each phase reports apart.
    emulator_pid: Option<u32>,
}

async fn measure(
    mut params: SyncBenchParams,
    scratch: PgPool,
    db_url: &str,
) -> anyhow::Result<SyncBenchReport> {
    params.concurrency = params.concurrency.min(params.tenants);
    let pool_size = *params
        .pool_size
        .get_or_insert(crate::config::default_pool_size(params.concurrency));
    fits_in_server(&scratch, pool_size, params.concurrency).await?;
    scratch.close().await;
    let db = crate::db::connect(db_url, pool_size).await?;
    let emulator = EmulatorProcess::start(&Options {
        tenants: 1 + params.tenants,
        users: params.users,
        groups: params.groups,
        memberships: Some(params.memberships),
        seed: SEED,
        notifications_over_http: true,
        tls: params.peer,
        ..Options::default()
    })
    .await
    .context("starting the emulator failed")?;
    let admin = emulator.admin()?;
    params.changes = params.changes.min(params.users);
    // The portal serves there only for the notifications phase; Graph delivers to it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let portal = format!("http://{}", listener.local_addr()?);
    let state = connect(&emulator, &admin, &db, &portal).await?;
    let customers = customers(&admin, &state).await?;
    let mut graph = json!({ "latency_ms": params.latency_ms });
    if let Some(size) = params.page_size {
        graph["page_size"] = json!(size);
    }
    let graph = admin.post("/_emulator/graph", &graph).await?;
    params.page_size = graph["page_size"].as_u64().map(|p| p as usize);
    let bench = Bench {
        lease: state.cfg.sync.lease,
        syncer: crate::runtime::syncer(&state),
        budget_scale: state.cfg.sync.graph_budget_scale,
        params,
        db,
        db_url: db_url.to_owned(),
        admin,
        customers,
        emulator_pid: emulator.pid(),
    };

    let rss_baseline_mb = memory::resident_mb();
    // The first syncs were queued by the consents. With several tenants, the baseline first:
    // the same full sync one tenant after another; then the copy is emptied for the real one.
    let serial = if bench.customers.len() > 1 {
        let serial = bench.phase(1).await.context("the serial full sync")?;
        bench.empty_copy().await?;
        bench.enqueue().await?;
        Some(serial)
    } else {
        None
    };
    let concurrency = bench.params.concurrency;
    // The full round and its floor both start from a checkpoint: a checkpoint falling inside
    // one of them (they write the same WAL volume) made the ratio swing by half.
    bench.checkpoint().await;
    let full = bench.phase(concurrency).await.context("the full sync")?;
    let floor_rows = bench.capture_floor_rows().await?;
    // The peer syncs the directory the full sync did, before the changes.
    let peer = if bench.params.peer {
        let peer = bench.peer(&emulator, &state, &full).await;
        Some(peer.context("the peer's full sync")?)
    } else {
        None
    };
    let mut changes = 0;
    for (n, customer) in bench.customers.iter().enumerate() {
        changes += bench.change_directory(customer, n as u64).await?;
    }
    bench.enqueue().await?;
    let incremental = Phase {
        changes: Some(changes),
        ..bench
            .phase(concurrency)
            .await
            .context("the incremental sync")?
    };
    bench.enqueue().await?;
    let idle = bench.phase(concurrency).await.context("the idle sync")?;
    bench.check_copy().await?;
    bench.checkpoint().await;
    let (copy_floor_seconds, copy_floor_rows) = bench.copy_floor(&floor_rows).await?;
    let notifications = match (bench.params.notified_changes, bench.customers.first()) {
        (0, _) | (_, None) => None,
        (changes, Some(first)) => Some(
            notify::change_to_copy(
                &state,
                listener,
                &bench.admin,
                (first.id, &first.entra.id),
                changes,
                Duration::from_millis(bench.params.notify_interval_ms),
            )
            .await
            .context("the change-to-copy latency")?,
        ),
    };
    let emulator_rss_mb = emulator.resident_mb();
    emulator.stop().await;
    let (peer, peer_skipped) = match peer {
        Some(peer::Outcome::Ran(peer)) => (Some(peer), None),
        Some(peer::Outcome::Skipped(why)) => (None, Some(why)),
        None => (None, None),
    };
    Ok(SyncBenchReport {
        machine: machine(),
        peer_to_full: peer.as_ref().map(|p| round(p.seconds / full.seconds, 1)),
        peer,
        peer_skipped,
        latency_floor_seconds: full.latency_floor_seconds,
        speedup_over_serial: serial.as_ref().map(|s| round(s.seconds / full.seconds, 1)),
        serial,
        params: bench.params,
        full,
        incremental,
        idle,
        copy_floor_seconds,
        copy_floor_rows,
        rss_baseline_mb,
        emulator_rss_mb,
        notifications,
        nesting: None,
    })
}

/// The provider's app registered in the emulator's tenant 0 (with both of Gangway's redirect
/// URIs, consent's and sign-in's) and Gangway configured against it (trusting its CA, with
/// TLS), as `gangway demo` does; Gangway's public URL is `public_url`.
async fn connect(
    emulator: &EmulatorProcess,
    admin: &EmulatorAdmin,
    db: &PgPool,
    public_url: &str,
) -> anyhow::Result<AppState> {
    let tenants = admin.tenants().await?;
    let provider = tenants.first().context("the emulator has no tenant")?;
    let public_url = parse_public_url(public_url).map_err(anyhow::Error::msg)?;
    let app = admin
        .register_app(&json!({
            "home_tenant": provider.id,
            "multi_tenant": true,
            "display_name": "Gangway (benchmark)",
            "redirect_uris": [
                public_url.join("authenticate/OAuth2Callback")?.as_str(),
                crate::web::oidc::callback_url(&public_url).as_str(),
            ],
            "permissions": crate::demo::provider_permissions(),
        }))
        .await?;
    for customer in &tenants[1..] {
        admin
            .grant(
                &customer.id,
                &app.client_id,
                &[],
                &permissions::application_scopes(),
            )
            .await?;
    }
    let cfg = Config {
        extra_ca_pem: emulator.ca_pem().map(|pem| pem.as_bytes().to_vec()),
        ..config(
            public_url,
            Url::parse(emulator.base_url())?,
            app.client_id,
            app.client_secret,
        )?
    };
    crate::settings::prepare(db, &cfg.keys, &cfg.settings_seed()).await?;
    AppState::new(cfg, db.clone())
}

/// Refuses a pool the Postgres server has no room for (it would fail part-way through with
/// "too many clients"): `pool_size` connections and the one that watches the runs, against
/// `max_connections` less those reserved and those in use now.
async fn fits_in_server(db: &PgPool, pool_size: u32, concurrency: usize) -> anyhow::Result<()> {
    let room = sqlx::query!(
        r#"select current_setting('max_connections')::int as "max!",
                  current_setting('superuser_reserved_connections')::int as "reserved!",
                  (select count(*) from pg_stat_activity where backend_type = 'client backend')
                      as "used!""#
    )
    .fetch_one(db)
    .await?;
    let free = i64::from(room.max - room.reserved) - room.used;
    if i64::from(pool_size) + 1 > free {
        bail!(
            "a pool of {pool_size} connections for {concurrency} sync workers does not fit in this \
             Postgres server: max_connections is {}, {} reserved, {} in use, so {free} free; \
             choose fewer workers (--concurrency) or a smaller pool (--pool-size)",
            room.max,
            room.reserved,
            room.used
        );
    }
    Ok(())
}

/// One worker turn: claims the queued sync, runs and records it.
async fn sync_one(
    syncer: &Syncer,
    workers: &WorkerConfig,
    started: Instant,
) -> anyhow::Result<Duration> {
    let stop = CancellationToken::new();
    match worker::work_one(syncer, workers, "bench", &stop).await? {
        // How the run ended is read from `sync_runs` with the others.
        Outcome::Ran(_, Ok(_)) => Ok(started.elapsed()),
        Outcome::Ran(_, Err(failure)) => bail!("the sync failed: {}", failure.error),
        Outcome::Idle => bail!("no sync was queued"),
    }
}

/// A portal's settings for a benchmark: `entra` serves as Entra ID and Graph, where the
/// provider's app is `client_id`.
fn config(
    public_url: Url,
    entra: Url,
    client_id: String,
    client_secret: String,
) -> anyhow::Result<Config> {
    Ok(Config {
        database_url: String::new(),
        listen: "127.0.0.1:0".parse()?,
        public_url,
        authority: entra.clone(),
        graph_url: entra,
        client_id: Some(client_id),
        client_secret: Some(Secret::new(client_secret)),
        keys: EncryptionKey::from_base64(&EncryptionKey::generate_base64())?.into(),
        smtp_url: None,
        mail_from: "Gangway benchmark <bench@provider.test>".into(),
        provider_name: "Gangway benchmark".into(),
        provider_tenant_id: None,
        extra_ca_pem: None,
        link_rate: RateLimit::default(),
        sign_in_rate: RateLimit::SIGN_IN,
        consent_rate: RateLimit::CONSENT,
        api_calls_per_second: crate::settings::DEFAULT_API_CALLS_PER_SECOND,
        api_last_use_every: crate::config::API_LAST_USE_EVERY,
        trusted_proxies: TrustedProxies::default(),
        database_pool_size: None,
        // The emulator on loopback delivers change notifications over plain HTTP.
        sync: SyncSettings {
            notifications_over_http: true,
            ..SyncSettings::default()
        },
        metrics: crate::config::MetricsSettings::default(),
        consent_propagation: crate::config::CONSENT_PROPAGATION,
        setup_client_id: crate::setup::sign_in::DEFAULT_SETUP_CLIENT_ID.into(),
    })
}

/// Every customer tenant invited and its application consent recorded (which queues its
/// first sync).
async fn customers(admin: &EmulatorAdmin, state: &AppState) -> anyhow::Result<Vec<Customer>> {
    let mut out = Vec::new();
    for entra in admin.tenants().await?.into_iter().skip(1) {
        let new = NewInvitation::parse(
            &format!("{} ({})", entra.display_name, &entra.id[..8]),
            &entra.admin.username,
            ConsentMode::Application.as_str(),
            Some(&entra.domain),
            None,
        )?;
        let live = state.live().await?;
        let issued = invitations::create(
            &state.db,
            state.invitation_context(&live),
            &new,
            &Actor::Cli,
            None,
        )
        .await?;
        let admin_oid: Uuid = entra.admin.id.parse()?;
        let consent = Consent {
            entra_tenant_id: entra.id.parse()?,
            display_name: entra.display_name.clone(),
            verified_domains: entra.domains.clone(),
            mode: ConsentMode::Application,
            granted_scopes: permissions::application_scopes()
                .into_iter()
                .map(String::from)
                .collect(),
            consented_by_oid: Some(admin_oid),
            consented_by_upn: Some(entra.admin.username.clone()),
            customer_client_id: None,
            credential: None,
        };
        let actor = Actor::Customer {
            upn: entra.admin.username.clone(),
            oid: admin_oid,
        };
        let id = tenants::record_consent(
            &state.db,
            &state.cfg.keys,
            issued.invitation.id,
            &consent,
            &actor,
        )
        .await?;
        out.push(Customer { id, entra });
    }
    Ok(out)
}

/// One finished sync run, as `sync_runs` has it.
struct RunRow {
    outcome: String,
    error: Option<String>,
    added: i32,
    updated: i32,
    soft_deleted: i32,
    removed: i32,
    members_added: i32,
    members_removed: i32,
    pages: i32,
}

impl Bench {
    /// Queues a sync of every tenant, as "Sync now" does.
    async fn enqueue(&self) -> anyhow::Result<()> {
        for customer in &self.customers {
            let job = NewJob {
                payload: json!({ "trigger": "manual" }),
                ..NewJob::new(SYNC_JOB, Some(customer.id))
            };
            jobs::enqueue(&self.db, &job).await?;
        }
        Ok(())
    }

    /// Empties the copy and the chains' state, so the next sync is a first one again, and
    /// vacuums the tables, so the next full sync finds them as the first did.
    async fn empty_copy(&self) -> anyhow::Result<()> {
        let ids: Vec<Uuid> = self.customers.iter().map(|c| c.id).collect();
        let mut tx = self.db.begin().await?;
        sqlx::query!(
            "delete from directory_group_members where tenant_id = any($1)",
            &ids
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "delete from directory_users where tenant_id = any($1)",
            &ids
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "delete from directory_groups where tenant_id = any($1)",
            &ids
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("delete from sync_state where tenant_id = any($1)", &ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        sqlx::query!("vacuum analyze directory_group_members, directory_users, directory_groups")
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Runs the queued syncs (one tenant: one worker turn; several: `concurrency` workers,
    /// until every tenant's run is recorded) and sums up their runs.
    async fn phase(&self, concurrency: usize) -> anyhow::Result<Phase> {
        let before = sqlx::query_scalar!(r#"select coalesce(max(id), 0) as "id!" from sync_runs"#)
            .fetch_one(&self.db)
            .await?;
        // The emulator counts the requests under a fault prefix (no fault is injected): the
        // users chain's pages. The groups chain has the rest of the runs' pages.
        self.admin
            .post(
                "/_emulator/faults",
                &json!({ "path_prefix": "/v1.0/users/delta" }),
            )
            .await?;
        let mut watch = match self.customers.len() {
            1 => None,
            _ => Some(crate::db::connect_one(&self.db_url).await?),
        };
        fresh_throttle(&self.admin).await?;
        // A budget of the phase's own: units a process took from Postgres and has not spent
        // yet would otherwise carry over, and pay for this phase's reads without a round trip.
        let budget = Budget::new(self.db.clone(), self.budget_scale);
        let syncer = self.syncer.clone().with_budget(budget.clone());
        let peak_reset = memory::reset_peak();
        let cpu_before = CpuClock::read(self.emulator_pid);
        let started = Instant::now();
        let workers = WorkerConfig {
            lease: self.lease,
            ..WorkerConfig::new(concurrency)
        };
        let seconds = match &mut watch {
            None => sync_one(&syncer, &workers, started).await?,
            Some(watch) => {
                self.sync_all(syncer, &workers, started, before, watch)
                    .await?
            }
        }
        .as_secs_f64();
        let cpu = cpu_before
            .zip(CpuClock::read(self.emulator_pid))
            .map(|(before, after)| before.spent(&after, seconds, cpus()));
        let peak_rss_mb = if peak_reset { memory::peak_mb() } else { None };
        if let Some(watch) = watch {
            watch.close().await?;
        }
        let users_pages = self.admin.get("/_emulator/faults").await?["injected"]["requests"]
            .as_i64()
            .unwrap_or(0);
        let throttle = throttle_counts(&self.admin).await?;
        let runs = sqlx::query_as!(
            RunRow,
            r#"select outcome, error, added, updated, soft_deleted, removed, members_added,
                      members_removed, pages
               from sync_runs where id > $1 order by id"#,
            before,
        )
        .fetch_all(&self.db)
        .await?;
        if let Some(run) = runs.iter().find(|r| r.outcome != "succeeded") {
            bail!(
                "a sync run ended {}: {}",
                run.outcome,
                run.error.as_deref().unwrap_or("no error recorded")
            );
        }
        let tenants = self.customers.len();
        if runs.len() != tenants {
            bail!("{} sync runs for {tenants} tenant(s)", runs.len());
        }
        let sum = |field: fn(&RunRow) -> i32| runs.iter().map(|r| i64::from(field(r))).sum::<i64>();
        let objects: i64 =
            sum(|r| r.added) + sum(|r| r.updated) + sum(|r| r.soft_deleted) + sum(|r| r.removed);
        let pages = Pages {
            users: users_pages,
            groups: sum(|r| r.pages) - users_pages,
        };
        let latency = self.params.latency_ms as f64 / 1000.0;
        let turns = tenants.div_ceil(concurrency) as f64;
        Ok(Phase {
            seconds: round(seconds, 4),
            objects,
            memberships: sum(|r| r.members_added) + sum(|r| r.members_removed),
            objects_per_second: round(objects as f64 / seconds, 0),
            peak_rss_mb,
            pages,
            graph_429s: throttle.throttled,
            resource_units: throttle.resource_units,
            budget_round_trips: budget.round_trips(),
            runs: runs.len(),
            changes: None,
            latency_floor_seconds: (latency > 0.0).then(|| {
                let longer = pages.users.max(pages.groups) as f64 / tenants as f64;
                round(longer * turns * latency, 4)
            }),
            cpu,
        })
    }

    /// The sync workers, until every tenant's run after `before` is recorded (watched on a
    /// connection of its own, so the workers' pool is theirs alone).
    async fn sync_all(
        &self,
        syncer: Syncer,
        workers: &WorkerConfig,
        started: Instant,
        before: i64,
        watch: &mut sqlx::PgConnection,
    ) -> anyhow::Result<Duration> {
        let stop = CancellationToken::new();
        let _stopped_whatever_happens = stop.clone().drop_guard();
        let workers = tokio::spawn(worker::run(syncer, workers.clone(), stop.clone()));
        let want = self.customers.len() as i64;
        let took = loop {
            let done = sqlx::query_scalar!(
                r#"select count(*) as "count!" from sync_runs where id > $1 and outcome <> 'running'"#,
                before,
            )
            .fetch_one(&mut *watch)
            .await?;
            if done >= want {
                break started.elapsed();
            }
            if workers.is_finished() {
                bail!("the sync workers stopped early");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        stop.cancel();
        workers.await?;
        Ok(took)
    }

    /// Changes a tenant's directory through the emulator's admin API: of `changes` (at most
    /// one per user), a quarter new users, 40 % edits (one in twenty of a group), 15 % users
    /// deleted (every other one for good), the rest memberships removed and added. The
    /// objects are picked from the copy with a seeded shuffle. Returns the changes made.
    async fn change_directory(&self, customer: &Customer, n: u64) -> anyhow::Result<usize> {
        let total = self.params.changes;
        let mut rng = StdRng::seed_from_u64(SEED ^ n);
        let base = format!("/_emulator/tenants/{}", customer.entra.id);
        let administrator: Uuid = customer.entra.admin.id.parse()?;
        let mut users = sqlx::query_scalar!(
            "select object_id from directory_users
             where tenant_id = $1 and soft_deleted_at is null order by object_id",
            customer.id,
        )
        .fetch_all(&self.db)
        .await?;
        users.retain(|u| *u != administrator);
        users.shuffle(&mut rng);
        let groups = sqlx::query_scalar!(
            "select object_id from directory_groups
             where tenant_id = $1 and soft_deleted_at is null order by object_id",
            customer.id,
        )
        .fetch_all(&self.db)
        .await?;
        let mut members: Vec<(Uuid, Uuid)> = sqlx::query!(
            "select group_id, member_id from directory_group_members
             where tenant_id = $1 order by group_id, member_id",
            customer.id,
        )
        .fetch_all(&self.db)
        .await?
        .into_iter()
        .map(|m| (m.group_id, m.member_id))
        .collect();

        let (adds, edits) = (total / 4, total * 2 / 5);
        let deletes = total * 3 / 20;
        let member_changes = total - adds - edits - deletes;
        let group_edits = (edits / 20).min(groups.len());
        let user_edits = (edits - group_edits).min(users.len());
        let deletes = deletes.min(users.len() - user_edits);
        let (edited, rest) = users.split_at(user_edits);
        let (deleted, untouched) = rest.split_at(deletes);

        for k in 0..adds {
            let user = json!({
                "userPrincipalName": format!("bench.user{k}@{}", customer.entra.domain),
                "displayName": format!("Bench User {k}"),
                "givenName": "Bench",
                "surname": format!("User {k}"),
                "jobTitle": "Benchmark",
                "department": "Research & Development",
                "businessPhones": ["+1 425 555 0199"],
            });
            self.admin.post(&format!("{base}/users"), &user).await?;
        }
        for (k, user) in edited.iter().enumerate() {
            let change = json!({
                "jobTitle": format!("Benchmark role {k}"),
                "mobilePhone": format!("+1 425 555 {:04}", k % 10_000),
            });
            self.admin
                .patch(&format!("{base}/users/{user}"), &change)
                .await?;
        }
        for (k, group) in groups.choose_multiple(&mut rng, group_edits).enumerate() {
            let change = json!({ "description": format!("Edited by the benchmark ({k})") });
            self.admin
                .patch(&format!("{base}/groups/{group}"), &change)
                .await?;
        }
        for (k, user) in deleted.iter().enumerate() {
            let hard = if k % 2 == 1 { "?hard=true" } else { "" };
            self.admin
                .delete(&format!("{base}/users/{user}{hard}"))
                .await?;
        }
        // A deleted user left its groups already.
        let gone: HashSet<Uuid> = deleted.iter().copied().collect();
        members.retain(|(_, member)| !gone.contains(member));
        members.shuffle(&mut rng);
        let removals = (member_changes / 2).min(members.len());
        for (group, member) in &members[..removals] {
            self.admin
                .delete(&format!("{base}/groups/{group}/members/{member}"))
                .await?;
        }
        let mut known: HashSet<(Uuid, Uuid)> = members.iter().copied().collect();
        let (mut additions, mut tries) = (0, 0);
        while additions < member_changes - removals
            && tries < 20 * member_changes
            && !groups.is_empty()
            && !untouched.is_empty()
        {
            tries += 1;
            let pair = (
                *groups.choose(&mut rng).expect("groups"),
                *untouched.choose(&mut rng).expect("users"),
            );
            if known.insert(pair) {
                self.admin
                    .post(
                        &format!("{base}/groups/{}/members", pair.0),
                        &json!({ "id": pair.1 }),
                    )
                    .await?;
                additions += 1;
            }
        }
        Ok(adds + user_edits + group_edits + deletes + removals + additions)
    }

    /// The live users and groups of a tenant's directory in the emulator.
    async fn in_emulator(&self, customer: &Customer) -> anyhow::Result<(i64, i64)> {
        let seen = self
            .admin
            .get(&format!("/_emulator/tenants/{}", customer.entra.id))
            .await?;
        let count = |name: &str| {
            seen[name]
                .as_i64()
                .with_context(|| format!("the emulator did not count the {name}: {seen}"))
        };
        Ok((count("users")?, count("groups")?))
    }

    /// Fails unless every tenant's copy has as many live users and groups as the emulator.
    async fn check_copy(&self) -> anyhow::Result<()> {
        for customer in &self.customers {
            let seen = self.in_emulator(customer).await?;
            let counts = sqlx::query!(
                r#"select (select count(*) from directory_users
                           where tenant_id = $1 and soft_deleted_at is null) as "users!",
                          (select count(*) from directory_groups
                           where tenant_id = $1 and soft_deleted_at is null) as "groups!""#,
                customer.id,
            )
            .fetch_one(&self.db)
            .await?;
            let (users, groups) = (counts.users, counts.groups);
            if (users, groups) != seen {
                bail!(
                    "the copy of {} holds {users} users and {groups} groups, the emulator {} and {}",
                    customer.entra.display_name,
                    seen.0,
                    seen.1
                );
            }
        }
        Ok(())
    }

    /// The peer's full sync of the tenant (there is one) into its own tables in the scratch
    /// database, checked against the emulator (users, groups) and Gangway's `full` sync
    /// (memberships); its tables are dropped afterwards, leaving the database to the phases.
    async fn peer(
        &self,
        emulator: &EmulatorProcess,
        state: &AppState,
        full: &Phase,
    ) -> anyhow::Result<peer::Outcome> {
        let customer = &self.customers[0];
        let secret = state.cfg.client_secret.as_ref();
        let target = peer::Target {
            emulator: emulator.base_url(),
            ca_file: emulator.ca_file().context("the emulator serves no TLS")?,
            tenant: &customer.entra.id,
            client_id: state.cfg.client_id.as_deref().context("no client id")?,
            client_secret: secret.context("no client secret")?.expose(),
            database_url: &self.db_url,
        };
        let outcome = peer::run(&target, &self.admin).await?;
        if let peer::Outcome::Ran(report) = &outcome {
            let seen = self.in_emulator(customer).await?;
            let copied = (report.users, report.groups, report.memberships);
            if copied != (seen.0, seen.1, full.memberships) {
                bail!(
                    "the peer's copy holds {} users, {} groups and {} memberships; the emulator \
                     {} users and {} groups, Gangway's copy {} memberships",
                    copied.0,
                    copied.1,
                    copied.2,
                    seen.0,
                    seen.1,
                    full.memberships
                );
            }
        }
        sqlx::query("drop schema if exists peer cascade")
            .execute(&self.db)
            .await?;
        Ok(outcome)
    }

    /// The rows the full sync wrote, as `COPY` text under a scratch tenant (with the same
    /// columns), kept in files until [`Self::copy_floor`] so they weigh on no phase's memory.
    async fn capture_floor_rows(&self) -> anyhow::Result<FloorRows> {
        let scratch = sqlx::query_scalar!(
            "insert into tenants (entra_tenant_id, display_name, consent_mode, customer_id, status)
             select gen_random_uuid(), 'COPY floor (benchmark)', 'application', customer_id, 'disabled'
             from tenants where id = $1
             returning id",
            self.customers[0].id,
        )
        .fetch_one(&self.db)
        .await?;
        let tenants: Vec<String> = self.customers.iter().map(|c| c.id.to_string()).collect();
        let tenants = tenants.join(",");
        let mut rows = FloorRows {
            scratch,
            tables: Vec::new(),
        };
        let mut conn = self.db.acquire().await?;
        for (table, columns) in FLOOR_TABLES {
            let path = std::env::temp_dir()
                .join(format!("gangway-bench-{}-{table}.copy", std::process::id()));
            rows.tables.push((table, columns, path.clone()));
            let mut file = tokio::fs::File::create(&path).await?;
            let mut out = conn
                .copy_out_raw(&format!(
                    "copy (select '{scratch}'::uuid, {columns} from {table}
                           where tenant_id = any('{{{tenants}}}'::uuid[])) to stdout"
                ))
                .await?;
            while let Some(chunk) = out.next().await {
                file.write_all(&chunk?).await?;
            }
            file.flush().await?;
        }
        Ok(rows)
    }

    /// Writes every dirty page out now (a superuser's or `pg_checkpoint`'s right; without it
    /// the bench goes on, noisier).
    async fn checkpoint(&self) {
        if let Err(e) = sqlx::query("checkpoint").execute(&self.db).await {
            tracing::warn!(error = %e, "could not checkpoint before a timed phase");
        }
    }

    /// Times Postgres `COPY`ing the captured rows into the same tables under the scratch
    /// tenant, in one transaction; deletes them and the tenant afterwards. Returns the
    /// seconds and the rows written.
    async fn copy_floor(&self, rows: &FloorRows) -> anyhow::Result<(f64, u64)> {
        let mut data = Vec::with_capacity(rows.tables.len());
        for (table, columns, path) in &rows.tables {
            data.push((table, columns, tokio::fs::read(path).await?));
        }
        let mut conn = self.db.acquire().await?;
        let started = Instant::now();
        let mut tx = conn.begin().await?;
        let mut written = 0;
        for (table, columns, rows) in &data {
            let mut copy = tx
                .copy_in_raw(&format!("copy {table} (tenant_id, {columns}) from stdin"))
                .await?;
            copy.send(rows.as_slice()).await?;
            written += copy.finish().await?;
        }
        tx.commit().await?;
        let seconds = started.elapsed().as_secs_f64();
        drop(data);
        sqlx::query!("delete from tenants where id = $1", rows.scratch)
            .execute(&mut *conn)
            .await?;
        Ok((round(seconds, 4), written))
    }
}

/// Graph's throttle, in the emulator: what it counted since it was last started afresh.
struct ThrottleCounts {
    /// Requests answered 429.
    throttled: u64,
    /// Resource units the requests cost.
    resource_units: u64,
}

/// Starts Graph's throttle afresh, counts and buckets (setting its scale again does).
async fn fresh_throttle(admin: &EmulatorAdmin) -> anyhow::Result<()> {
    let scale = admin.get("/_emulator/throttle").await?["scale"].clone();
    admin
        .post("/_emulator/throttle", &json!({ "scale": scale }))
        .await?;
    Ok(())
}

/// What Graph's throttle counted since [`fresh_throttle`].
async fn throttle_counts(admin: &EmulatorAdmin) -> anyhow::Result<ThrottleCounts> {
    let throttle = admin.get("/_emulator/throttle").await?;
    let count = |name: &str| throttle["counts"][name].as_u64().unwrap_or(0);
    Ok(ThrottleCounts {
        throttled: count("throttled"),
        resource_units: count("resource_units"),
    })
}

/// The tables the full sync writes, with the columns it writes (the others take defaults).
const FLOOR_TABLES: [(&str, &str); 3] = [
    (
        "directory_users",
        "object_id, user_principal_name, display_name, given_name, surname, mail, \
         business_phones, mobile_phone, job_title, department, account_enabled, seen_round",
    ),
    (
        "directory_groups",
        "object_id, display_name, description, mail, mail_enabled, security_enabled, seen_round",
    ),
    (
        "directory_group_members",
        "group_id, member_id, member_type, seen_round",
    ),
];

/// Rows captured for the `COPY` floor: the scratch tenant they belong to and, per table,
/// its columns and the file holding them (removed when dropped).
struct FloorRows {
    scratch: Uuid,
    tables: Vec<(&'static str, &'static str, std::path::PathBuf)>,
}

impl Drop for FloorRows {
    fn drop(&mut self) {
        for (_, _, path) in &self.tables {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// This machine.
fn machine() -> Machine {
    Machine {
        cpus: cpus(),
        os: os(),
    }
}

/// CPUs this process may use.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Kernel name and release, as `uname -sr` prints them; the OS's name elsewhere.
fn os() -> String {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
            .ok()
            .map(|s| s.trim().to_owned())
    };
    match (read("ostype"), read("osrelease")) {
        (Some(kind), Some(release)) => format!("{kind} {release}"),
        _ => std::env::consts::OS.to_owned(),
    }
}

/// The process's resident set, from Linux's `/proc/self`.
mod memory {
    /// Resets the peak (`VmHWM`) to the current resident set; false where that is not possible.
    pub fn reset_peak() -> bool {
        std::fs::write("/proc/self/clear_refs", "5").is_ok()
    }

    /// The peak resident set since the last reset, MiB.
    pub fn peak_mb() -> Option<f64> {
        status_mb("VmHWM:")
    }

    /// The resident set now, MiB.
    pub fn resident_mb() -> Option<f64> {
        status_mb("VmRSS:")
    }

    fn status_mb(field: &str) -> Option<f64> {
        field_mb(&std::fs::read_to_string("/proc/self/status").ok()?, field)
    }

    /// A `/proc/…/status` size field, MiB.
    pub fn field_mb(status: &str, field: &str) -> Option<f64> {
        let kb: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix(field))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        Some(super::round(kb / 1024.0, 1))
    }
}
