//! `gangway bench …`: benchmarks on this machine, against a scratch database and the built-in
//! emulator.

use clap::{Args, Subcommand};

use super::{Failure, Output};
use crate::bench::api::{ApiBenchParams, ApiBenchReport, run_api_bench};
use crate::bench::load::Load;
use crate::bench::nesting::{Answer, NestingBenchParams, NestingBenchReport, run_nesting_bench};
use crate::bench::scim::{ScimBenchParams, ScimBenchReport, run_scim_bench};
use crate::bench::signin::{SigninBenchParams, SigninBenchReport, Step, run_signin_bench};
use crate::bench::{
    DEFAULT_CONCURRENCY, Machine, Phase, SyncBenchParams, SyncBenchReport, run_sync_bench,
};

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Directory replication: the first full sync of a seeded emulator directory, a sync after
    /// changes made through the emulator, a sync with nothing to do, and Postgres's COPY of as
    /// many rows for scale. A scratch database is created on DATABASE_URL's server and dropped
    /// at the end. Logs are off unless RUST_LOG asks for them.
    Sync(SyncArgs),
    /// The JSON API's read path: K keep-alive connections reading a tenant's users 100 at a
    /// time by cursor for D seconds, then /healthz as long, each round; the portal serves in
    /// this process on loopback over a scratch database (created on DATABASE_URL's server,
    /// dropped at the end) seeded with N users. Only 200s count.
    Api(ApiArgs),
    /// The OpenID Provider: K keep-alive connections on the token endpoint (authorization-code
    /// grant, codes issued beforehand, each used once), then userinfo with a bearer token, then
    /// /healthz, D seconds each, each round; and N sign-ins through the email page and the
    /// emulator timed step by step, Gangway's own time apart from the emulator's. The portal
    /// serves in this process on loopback over a scratch database (created on DATABASE_URL's
    /// server, dropped at the end), the emulator in a process of its own. Only 200s count.
    Signin(SigninArgs),
    /// SCIM push into `scim2-server` (PyPI) on loopback: the first push of a copy of N users
    /// in G groups (objects per second), then C changes of the copy one after another, each
    /// timed from its commit to the SCIM server answering it (the delay a sync's change adds
    /// before the provider's product sees it). A scratch database is created on
    /// DATABASE_URL's server and dropped at the end.
    Scim(ScimArgs),
    /// Nested groups: the time the copy takes to answer "transitive members of a group" (a
    /// page, and the count) and "all groups of a user" over a tenant of N users and G groups in
    /// D levels, Q questions of each kind. A scratch database is created on DATABASE_URL's
    /// server and dropped at the end.
    Nesting(NestingArgs),
    /// The emulator `bench sync` and `bench signin` run in a process of its own: serves until
    /// stdin closes.
    #[command(hide = true)]
    Emulator(Box<entra_emulator::Options>),
}

#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    /// Users in the tenant's directory copy.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    users: usize,
    /// Keep-alive connections, one request in flight on each.
    #[arg(long, value_name = "K", default_value_t = 64)]
    connections: usize,
    /// Seconds of load per target and round.
    #[arg(long, value_name = "D", default_value_t = 10)]
    seconds: u64,
    /// Rounds; medians are taken over them.
    #[arg(long, value_name = "R", default_value_t = 3)]
    repeat: usize,
    /// The Postgres server to create the scratch database on.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    database_url: String,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct ScimArgs {
    /// Users in the copy.
    #[arg(long, value_name = "N", default_value_t = 5_000)]
    users: usize,
    /// Groups, each user a member of one.
    #[arg(long, value_name = "G", default_value_t = 50)]
    groups: usize,
    /// Changes timed, one after another.
    #[arg(long, value_name = "C", default_value_t = 50)]
    changes: usize,
    /// The SCIM server program.
    #[arg(long, value_name = "PATH", default_value = "scim2-server")]
    scim_server: String,
    /// The Postgres server to create the scratch database on.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    database_url: String,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct NestingArgs {
    /// Users in the tenant's directory copy.
    #[arg(long, value_name = "N", default_value_t = NestingBenchParams::default().users)]
    users: usize,
    /// Groups, as trees of D levels, five groups in each group.
    #[arg(long, value_name = "G", default_value_t = NestingBenchParams::default().groups)]
    groups: usize,
    /// Levels in each tree.
    #[arg(long, value_name = "D", default_value_t = NestingBenchParams::default().depth)]
    depth: usize,
    /// Questions of each kind.
    #[arg(long, value_name = "Q", default_value_t = NestingBenchParams::default().queries)]
    queries: usize,
    /// The Postgres server to create the scratch database on.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    database_url: String,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct SigninArgs {
    /// Keep-alive connections, one request in flight on each.
    #[arg(long, value_name = "K", default_value_t = 32)]
    connections: usize,
    /// Seconds of load per target and round.
    #[arg(long, value_name = "D", default_value_t = 10)]
    seconds: u64,
    /// Rounds; medians are taken over them.
    #[arg(long, value_name = "R", default_value_t = 3)]
    repeat: usize,
    /// Sign-ins timed, one after another.
    #[arg(long, value_name = "N", default_value_t = 200)]
    sign_ins: usize,
    /// The Postgres server to create the scratch database on.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    database_url: String,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Users per customer tenant (user 0 is its administrator).
    #[arg(long, value_name = "N")]
    users: usize,
    /// Groups per customer tenant.
    #[arg(long, value_name = "G")]
    groups: usize,
    /// Memberships per customer tenant, dealt evenly over its groups [default: as many as
    /// users].
    #[arg(long, value_name = "M")]
    memberships: Option<usize>,
    /// Changes per tenant before the incremental sync, at most one per user: a quarter new
    /// users, 40 % edits, 15 % deletions (half soft, half hard), the rest membership
    /// removals and additions.
    #[arg(long, value_name = "C", default_value_t = 1000)]
    changes: usize,
    /// Time every Graph answer takes, in milliseconds (a network and service round trip).
    #[arg(long, value_name = "L", default_value_t = 0)]
    latency_ms: u64,
    /// Objects per Graph delta page (1..=999) [default: the emulator's, 100].
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u16).range(1..=999))]
    page_size: Option<u16>,
    /// Customer tenants; more than one are synced concurrently by the sync workers.
    #[arg(long, value_name = "T", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    tenants: u16,
    /// Syncs at once with several tenants [default: one per tenant, at most 32]. Each worker
    /// adds a database connection to the pool; a pool larger than the Postgres server has
    /// free under its `max_connections` is refused before the run.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: Option<u16>,
    /// Database connections the engine may hold [default: as `gangway serve` sizes its pool
    /// for that many workers].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=1000))]
    pool_size: Option<u32>,
    /// After the other phases: single-user changes made through the emulator one at a time,
    /// each timed until it is in the copy, with the portal subscribed to Graph's change
    /// notifications and sync workers running (nobody asks for a sync).
    #[arg(long, value_name = "N", default_value_t = 0)]
    notified_changes: usize,
    /// The pause between two notified changes, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    notify_interval_ms: u64,
    /// Also time the nested-group questions, as `gangway bench nesting` does with its
    /// defaults (100k users, 5k groups, depth 5), on a scratch database of their own.
    #[arg(long)]
    nesting: bool,
    /// After the full sync: the same one by a peer, Microsoft's Graph SDK for Python with
    /// psycopg (scripts/peer-sync.py, run by GANGWAY_PEER_PYTHON or python3), into its own
    /// tables in the scratch database; one tenant only. The emulator then serves HTTPS, the
    /// only scheme the SDK speaks, to Gangway too. Skipped, saying why, when Python or its
    /// libraries (msgraph-sdk, azure-identity, psycopg) are not installed.
    #[arg(long)]
    peer: bool,
    /// The Postgres server to create the scratch database on.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    database_url: String,
    #[command(flatten)]
    output: Output,
}

/// Runs a benchmark and prints its figures.
pub(super) async fn run(command: BenchCommand) -> Result<(), Failure> {
    match command {
        BenchCommand::Sync(args) => sync(args).await,
        BenchCommand::Api(args) => api(args).await,
        BenchCommand::Signin(args) => signin(args).await,
        BenchCommand::Scim(args) => scim(args).await,
        BenchCommand::Nesting(args) => nesting(args).await,
        BenchCommand::Emulator(opts) => Ok(crate::bench::emulator::serve(*opts).await?),
    }
}

async fn sync(args: SyncArgs) -> Result<(), Failure> {
    let tenants = usize::from(args.tenants);
    let params = SyncBenchParams {
        users: args.users,
        groups: args.groups,
        memberships: args.memberships.unwrap_or(args.users),
        changes: args.changes,
        tenants,
        concurrency: args
            .concurrency
            .map_or(tenants.min(DEFAULT_CONCURRENCY), usize::from),
        pool_size: args.pool_size,
        latency_ms: args.latency_ms,
        page_size: args.page_size.map(usize::from),
        notified_changes: args.notified_changes,
        notify_interval_ms: args.notify_interval_ms,
        nesting: args.nesting.then(NestingBenchParams::default),
        peer: args.peer,
    };
    if let Some(problem) = params.problem() {
        return Err(Failure::Usage(problem));
    }
    let report = run_sync_bench(params, &args.database_url).await?;
    print(&args.output, &report, text);
    Ok(())
}

async fn api(args: ApiArgs) -> Result<(), Failure> {
    let params = ApiBenchParams {
        users: args.users,
        connections: args.connections,
        seconds: args.seconds,
        repeat: args.repeat,
    };
    if let Some(problem) = params.problem() {
        return Err(Failure::Usage(problem));
    }
    let report = run_api_bench(params, &args.database_url).await?;
    print(&args.output, &report, api_text);
    Ok(())
}

async fn signin(args: SigninArgs) -> Result<(), Failure> {
    let params = SigninBenchParams {
        connections: args.connections,
        seconds: args.seconds,
        repeat: args.repeat,
        sign_ins: args.sign_ins,
    };
    if let Some(problem) = params.problem() {
        return Err(Failure::Usage(problem));
    }
    let report = run_signin_bench(params, &args.database_url).await?;
    print(&args.output, &report, signin_text);
    Ok(())
}

async fn scim(args: ScimArgs) -> Result<(), Failure> {
    let params = ScimBenchParams {
        users: args.users,
        groups: args.groups,
        changes: args.changes,
        server: args.scim_server,
    };
    if let Some(problem) = params.problem() {
        return Err(Failure::Usage(problem));
    }
    let report = run_scim_bench(params, &args.database_url).await?;
    print(&args.output, &report, scim_text);
    Ok(())
}

async fn nesting(args: NestingArgs) -> Result<(), Failure> {
    let params = NestingBenchParams {
        users: args.users,
        groups: args.groups,
        depth: args.depth,
        queries: args.queries,
    };
    if let Some(problem) = params.problem() {
        return Err(Failure::Usage(problem));
    }
    let report = run_nesting_bench(params, &args.database_url).await?;
    print(&args.output, &report, nesting_text);
    Ok(())
}

/// The nesting report: a line per question.
fn nesting_text(r: &NestingBenchReport) -> String {
    let p = &r.params;
    let mut out = format!(
        "Nested groups: {} users, {} groups in {} levels, {} memberships; {} questions each\n{} CPU(s), {}\n\n{:<34} {:>8} {:>8} {:>11}\n",
        p.users,
        p.groups,
        p.depth,
        r.memberships,
        p.queries,
        r.machine.cpus,
        r.machine.os,
        "question",
        "p50 ms",
        "p95 ms",
        "mean found",
    );
    let rows: [(&str, &Answer); 3] = [
        ("transitive members, first 100", &r.transitive_members_page),
        ("transitive members, count", &r.transitive_members_count),
        ("groups of a user, transitive", &r.user_groups),
    ];
    for (name, a) in rows {
        out.push_str(&format!(
            "{name:<34} {:>8.2} {:>8.2} {:>11.1}\n",
            a.p50_ms, a.p95_ms, a.mean_found
        ));
    }
    out
}

fn scim_text(r: &ScimBenchReport) -> String {
    format!(
        "{} CPU(s), {}; load average {} before, {} after\n\n\
         first push: {} users and {} groups in {:.1} s ({} writes): {:.0} objects/s\n\
         change of the copy to the SCIM server answering it: p50 {:.0} ms, p95 {:.0} ms\n",
        r.machine.cpus,
        r.machine.os,
        r.load_average[0].as_deref().unwrap_or("?"),
        r.load_average[1].as_deref().unwrap_or("?"),
        r.users,
        r.groups,
        r.full_push_secs,
        r.writes,
        r.objects_per_sec,
        r.delay_p50_ms,
        r.delay_p95_ms,
    )
}

fn print<R: serde::Serialize>(output: &Output, report: &R, text: fn(&R) -> String) {
    if output.json {
        println!(
            "{}",
            serde_json::to_string(report).expect("the report serialises")
        );
    } else {
        print!("{}", text(report));
    }
}

/// The machine and its load around the run, then the load table's header.
fn machine_head(machine: &Machine, load_average: &[Option<String>; 2]) -> String {
    format!(
        "{} CPU(s), {}; load average {} before, {} after\n\n{}",
        machine.cpus,
        machine.os,
        load_average[0].as_deref().unwrap_or("?"),
        load_average[1].as_deref().unwrap_or("?"),
        load_header(),
    )
}

/// Each round named by its number, then the medians named `median`.
fn with_median<'a, R>(rounds: &'a [R], median: &'a R) -> impl Iterator<Item = (String, &'a R)> {
    let numbered = rounds
        .iter()
        .enumerate()
        .map(|(n, round)| ((n + 1).to_string(), round));
    numbered.chain([("median".to_owned(), median)])
}

/// The API report as a small table, a line per round and the medians.
fn api_text(r: &ApiBenchReport) -> String {
    let p = &r.params;
    let mut out = format!(
        "JSON API reads: {} users, {} connections, {} s per target and round, {} round(s)\n{}",
        p.users,
        p.connections,
        p.seconds,
        p.repeat,
        machine_head(&r.machine, &r.load_average),
    );
    for (name, round) in with_median(&r.rounds, &r.median) {
        out.push_str(&load_line(
            &name,
            "directory",
            &round.directory,
            Some(round.directory_to_healthz),
        ));
        out.push_str(&load_line(&name, "/healthz", &round.healthz, None));
    }
    out
}

/// The sign-in report: the throughput table, a line per round and the medians, then the
/// sign-in's steps.
fn signin_text(r: &SigninBenchReport) -> String {
    let p = &r.params;
    let mut out = format!(
        "OpenID Provider: {} connections, {} s per target and round, {} round(s); {} sign-ins\n{}",
        p.connections,
        p.seconds,
        p.repeat,
        p.sign_ins,
        machine_head(&r.machine, &r.load_average),
    );
    for (name, round) in with_median(&r.rounds, &r.median) {
        out.push_str(&load_line(
            &name,
            "token",
            &round.token,
            Some(round.token_to_healthz),
        ));
        out.push_str(&load_line(
            &name,
            "userinfo",
            &round.userinfo,
            Some(round.userinfo_to_healthz),
        ));
        out.push_str(&load_line(&name, "/healthz", &round.healthz, None));
    }
    let s = &r.sign_ins;
    out.push_str(&format!(
        "\nSign-in, {} times one after another   {:>8} {:>8}\n",
        s.count, "p50 ms", "p90 ms"
    ));
    let steps: [(&str, &Step); 7] = [
        ("Gangway's own time per sign-in", &s.gangway),
        ("  GET /oidc/authorize", &s.authorize),
        ("  GET the email page", &s.email_page),
        ("  POST the email", &s.email_answer),
        ("  GET /oidc/callback (exchange incl.)", &s.callback),
        ("Emulator: authorize (user known)", &s.emulator_authorize),
        ("Emulator: token (the code exchange)", &s.emulator_token),
    ];
    for (name, step) in steps {
        out.push_str(&format!(
            "{name:<38} {:>8.2} {:>8.2}\n",
            step.p50_ms, step.p90_ms
        ));
    }
    out.push_str(
        "Gangway's own time: its four answers less the emulator's median code exchange.\n",
    );
    out
}

/// The header of a load table.
fn load_header() -> String {
    format!(
        "{:<8} {:<10} {:>9} {:>8} {:>8} {:>8} {:>12}  {}\n",
        "round", "target", "req/s", "p50 ms", "p90 ms", "p99 ms", "of /healthz", "not 200"
    )
}

/// One target's line in a load table.
fn load_line(round: &str, target: &str, l: &Load, share: Option<f64>) -> String {
    let not_ok: Vec<String> = l.not_ok.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    format!(
        "{:<8} {:<10} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>12}  {}\n",
        round,
        target,
        l.requests_per_second,
        l.p50_ms,
        l.p90_ms,
        l.p99_ms,
        share.map_or(String::new(), |s| format!("{:.1} %", s * 100.0)),
        if not_ok.is_empty() {
            "none".to_owned()
        } else {
            not_ok.join(", ")
        },
    )
}

/// The peer's line, when one was asked for.
fn peer_text(r: &SyncBenchReport) -> String {
    match (&r.peer, r.peer_to_full, &r.peer_skipped) {
        (Some(peer), Some(ratio), _) => format!(
            "Peer        {:.3} s ({:.3} s with Python's start-up): the same full sync by Microsoft's Graph SDK for Python + psycopg, {} users, {} groups, {} memberships, {} pages, {} 429s; Gangway's was {ratio:.1}× faster\n",
            peer.seconds,
            peer.process_seconds,
            peer.users,
            peer.groups,
            peer.memberships,
            peer.pages,
            peer.graph_429s,
        ),
        (_, _, Some(why)) => format!("Peer        skipped: {why}\n"),
        _ => String::new(),
    }
}

/// The report as a small table.
fn text(r: &SyncBenchReport) -> String {
    let p = &r.params;
    let mb = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    let mut out = format!(
        "Directory sync: {} tenant(s) × {} users, {} groups, {} memberships; {} change(s) per tenant; \
         Graph latency {} ms, page size {}; concurrency {}\n{} CPU(s), {}\n\n",
        p.tenants,
        p.users,
        p.groups,
        p.memberships,
        p.changes,
        p.latency_ms,
        p.page_size.map_or("?".to_owned(), |s| s.to_string()),
        p.concurrency,
        r.machine.cpus,
        r.machine.os,
    );
    out.push_str(&format!(
        "{:<12} {:>9} {:>9} {:>11} {:>10} {:>13} {:>12} {:>10} {:>9}\n",
        "phase",
        "seconds",
        "objects",
        "memberships",
        "objects/s",
        "pages u/g",
        "peak RSS MB",
        "latency s",
        "CPU busy"
    ));
    let row = |name: &str, ph: &Phase| {
        format!(
            "{:<12} {:>9.3} {:>9} {:>11} {:>10.0} {:>13} {:>12} {:>10} {:>9}\n",
            name,
            ph.seconds,
            ph.objects,
            ph.memberships,
            ph.objects_per_second,
            format!("{}/{}", ph.pages.users, ph.pages.groups),
            mb(ph.peak_rss_mb),
            ph.latency_floor_seconds
                .map_or("-".to_owned(), |s| format!("{s:.3}")),
            ph.cpu
                .map_or("-".to_owned(), |c| format!("{:.0} %", c.busy_share * 100.0)),
        )
    };
    if let Some(serial) = &r.serial {
        out.push_str(&row("full, serial", serial));
    }
    out.push_str(&row("full", &r.full));
    out.push_str(&row("incremental", &r.incremental));
    out.push_str(&row("idle", &r.idle));
    out.push_str(&format!(
        "\nCOPY floor   {:.3} s for {} rows (the full sync took {:.1}× as long)\nRSS before   {} MB (the engine's; the emulator's process: {} MB)\n",
        r.copy_floor_seconds,
        r.copy_floor_rows,
        r.full.seconds / r.copy_floor_seconds,
        mb(r.rss_baseline_mb),
        mb(r.emulator_rss_mb),
    ));
    if let (Some(serial), Some(speedup)) = (&r.serial, r.speedup_over_serial) {
        out.push_str(&format!(
            "Serial      {:.3} s: the same tenants synced one after another (one worker) in this run; all at once was {speedup:.1}× faster\n",
            serial.seconds
        ));
    }
    if let Some(cpu) = r.full.cpu {
        out.push_str(&format!(
            "CPU (full)   {:.2} CPU-seconds busy: the engine {:.2}, the emulator {:.2}, Postgres and the rest {:.2}\n",
            cpu.machine, cpu.engine, cpu.emulator, cpu.rest
        ));
    }
    out.push_str(&peer_text(r));
    out.push_str(&format!(
        "Pool        {} database connections\n\"latency s\": the Graph round trips alone; \"CPU busy\": every CPU's busy time over the phase's wall time.\n",
        p.pool_size.map_or("?".to_owned(), |n| n.to_string())
    ));
    out
}
