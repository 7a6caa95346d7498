//! `gangway bench …`: benchmarks on this machine, against a scratch database and the built-in
//! emulator.

use clap::{Args, Subcommand};

use super::{Failure, Output};
use crate::bench::{Phase, SyncBenchParams, SyncBenchReport, run_sync_bench};

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Directory replication: the first full sync of a seeded emulator directory, a sync after
    /// changes made through the emulator, a sync with nothing to do, and Postgres's COPY of as
    /// many rows for scale. A scratch database is created on DATABASE_URL's server and dropped
    /// at the end. Logs are off unless RUST_LOG asks for them.
    Sync(SyncArgs),
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
    /// Syncs at once with several tenants [default: one per tenant].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: Option<u16>,
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
    let BenchCommand::Sync(args) = command;
    let tenants = usize::from(args.tenants);
    let params = SyncBenchParams {
        users: args.users,
        groups: args.groups,
        memberships: args.memberships.unwrap_or(args.users),
        changes: args.changes,
        tenants,
        concurrency: args.concurrency.map_or(tenants, usize::from),
        latency_ms: args.latency_ms,
        page_size: args.page_size.map(usize::from),
    };
    if let Some(problem) = params.problem() {
        return Err(Failure::Usage(problem));
    }
    let report = run_sync_bench(params, &args.database_url).await?;
    if args.output.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("the report serialises")
        );
    } else {
        print!("{}", text(&report));
    }
    Ok(())
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
        "{:<12} {:>9} {:>9} {:>11} {:>10} {:>13} {:>12} {:>10} {:>10}\n",
        "phase",
        "seconds",
        "objects",
        "memberships",
        "objects/s",
        "pages u/g",
        "peak RSS MB",
        "serial s",
        "latency s"
    ));
    let row = |name: &str, ph: &Phase| {
        format!(
            "{:<12} {:>9.3} {:>9} {:>11} {:>10.0} {:>13} {:>12} {:>10} {:>10}\n",
            name,
            ph.seconds,
            ph.objects,
            ph.memberships,
            ph.objects_per_second,
            format!("{}/{}", ph.pages.users, ph.pages.groups),
            mb(ph.peak_rss_mb),
            ph.serial_sum_seconds
                .map_or("-".to_owned(), |s| format!("{s:.3}")),
            ph.latency_floor_seconds
                .map_or("-".to_owned(), |s| format!("{s:.3}")),
        )
    };
    out.push_str(&row("full", &r.full));
    out.push_str(&row("incremental", &r.incremental));
    out.push_str(&row("idle", &r.idle));
    out.push_str(&format!(
        "\nCOPY floor   {:.3} s for {} rows (the full sync took {:.1}× as long)\nRSS before   {} MB\n",
        r.copy_floor_seconds,
        r.copy_floor_rows,
        r.full.seconds / r.copy_floor_seconds,
        mb(r.rss_baseline_mb),
    ));
    out.push_str(
        "\n\"serial s\": the runs' durations added up; \"latency s\": the Graph round trips alone.\n",
    );
    out
}
