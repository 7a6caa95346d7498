//! `gangway tenant …`: connected tenants.

use std::time::{Duration, Instant};

use clap::Subcommand;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Failure, Output, pool, truncate};
use crate::audit::Actor;
use crate::config::Config;
use crate::directory::control::{self, ControlError};
use crate::directory::runs::tally_of;
use crate::directory::store::Tally;
use crate::jobs::JobId;
use crate::{format, tenants};

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// List connected tenants.
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Sync a tenant's directory now (a sync already queued is made due now instead of a
    /// second one). A worker runs it: `gangway serve` or `gangway worker`.
    Sync {
        /// Gangway's tenant id or Microsoft's (the ENTRA TENANT ID of `tenant list`).
        id: String,
        /// Wait for the sync: progress on stderr, the run's counts at the end; exit 1 if it
        /// failed.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Offboard a tenant: erase its credential and directory copy, cancel its syncs. Its
    /// history stays; an invitation can connect it again later.
    Offboard {
        /// Gangway's tenant id or Microsoft's.
        id: String,
    },
}

/// A run as `--wait` reports it.
#[derive(Debug, serde::Serialize)]
struct Run {
    id: i64,
    outcome: String,
    full_round: bool,
    #[serde(flatten)]
    counts: Tally,
    seconds: f64,
    error: Option<String>,
}

impl From<ControlError> for Failure {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotFound => Failure::Usage("no tenant has this id".into()),
            ControlError::Db(e) => Failure::Other(e.into()),
            other => Failure::Other(anyhow::anyhow!("{other}")),
        }
    }
}

/// The tenant with Gangway's or Microsoft's id `id`.
async fn resolve(db: &PgPool, id: &str) -> Result<Uuid, Failure> {
    let parsed = Uuid::parse_str(id.trim())
        .map_err(|_| Failure::Usage(format!("`{id}` is not a tenant id (a GUID)")))?;
    sqlx::query_scalar!(
        "select id from tenants where id = $1 or entra_tenant_id = $1",
        parsed
    )
    .fetch_optional(db)
    .await?
    .ok_or_else(|| Failure::Usage(format!("no tenant has the id {parsed}")))
}

/// Follows job `job`'s runs until one ends (an interrupted run is continued by another
/// worker and waited for too), printing progress to stderr.
async fn wait_for(db: &PgPool, job: JobId) -> Result<Run, Failure> {
    let started = Instant::now();
    let (mut shown, mut hinted) = (-1, false);
    loop {
        let run = sqlx::query!(
            r#"select id, outcome, full_round, added, updated, soft_deleted, removed, members_added,
                      members_removed, pages, throttled_waits, throttled_seconds, error,
                      extract(epoch from coalesce(finished_at, now()) - started_at)::float8
                          as "seconds!"
               from sync_runs where job_id = $1 order by id desc limit 1"#,
            job.0,
        )
        .fetch_optional(db)
        .await?
        .map(|r| Run {
            id: r.id,
            outcome: r.outcome,
            full_round: r.full_round,
            counts: tally_of!(r),
            seconds: r.seconds,
            error: r.error,
        });
        let job_status = sqlx::query_scalar!("select status from jobs where id = $1", job.0)
            .fetch_one(db)
            .await?;
        match run {
            Some(run) if matches!(run.outcome.as_str(), "succeeded" | "failed") => return Ok(run),
            Some(run) if run.counts.pages != shown => {
                shown = run.counts.pages;
                eprintln!(
                    "syncing: {} page(s), {} object(s) so far",
                    run.counts.pages,
                    run.counts.objects()
                );
            }
            None if job_status == "cancelled" => {
                return Err(Failure::Other(anyhow::anyhow!(
                    "the sync was cancelled (the tenant stopped being active)"
                )));
            }
            None if !hinted && started.elapsed() > Duration::from_secs(15) => {
                hinted = true;
                eprintln!(
                    "still queued: is a worker running (`gangway serve` or `gangway worker`)?"
                );
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Runs a tenant command.
pub(super) async fn run(command: TenantCommand) -> Result<(), Failure> {
    match command {
        TenantCommand::List { output } => {
            let cfg = Config::from_env()?;
            let pool = pool(&cfg.database_url).await?;
            let (rows, total) = tenants::list(&pool, None, 1000, 0).await?;
            if output.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).expect("tenants serialise")
                );
            } else if rows.is_empty() {
                println!("no tenants yet: they appear when a customer consents");
            } else {
                println!(
                    "{:<36}  {:<28}  {:<24}  {:<12}  {:<8}  CONSENTED",
                    "ENTRA TENANT ID", "NAME", "CUSTOMER", "MODE", "STATUS"
                );
                for t in &rows {
                    println!(
                        "{:<36}  {:<28}  {:<24}  {:<12}  {:<8}  {}",
                        t.entra_tenant_id,
                        truncate(&t.display_name, 28),
                        truncate(&t.customer_name, 24),
                        t.consent_mode.as_str(),
                        t.status.as_str(),
                        format::datetime(t.consented_at)
                    );
                }
                println!("{total} tenant(s)");
            }
            Ok(())
        }
        TenantCommand::Offboard { id } => {
            let cfg = Config::from_env()?;
            let pool = pool(&cfg.database_url).await?;
            let tenant = resolve(&pool, &id).await?;
            // While a token can still be had: Graph's subscriptions go first.
            crate::web::AppState::new(cfg, pool.clone())
                .map_err(Failure::Other)?
                .subscriptions()
                .delete_all(tenant)
                .await
                .map_err(|e| Failure::Other(e.into()))?;
            let done = tenants::offboard(&pool, tenant, &Actor::Cli)
                .await
                .map_err(|e| match e {
                    tenants::OffboardError::Db(e) => Failure::Other(e.into()),
                    other => Failure::Other(anyhow::anyhow!("{other}")),
                })?;
            crate::signin::ends::for_tenant(&pool, tenant)
                .await
                .map_err(|e| Failure::Other(e.into()))?;
            println!(
                "offboarded {} ({}): credential and directory copy erased",
                done.display_name, done.entra_tenant_id
            );
            Ok(())
        }
        TenantCommand::Sync { id, wait, output } => {
            let cfg = Config::from_env()?;
            let pool = pool(&cfg.database_url).await?;
            let tenant = resolve(&pool, &id).await?;
            let job = control::request_sync(&pool, tenant, &Actor::Cli).await?;
            eprintln!("sync queued (job {job})");
            if !wait {
                if output.json {
                    println!(
                        "{}",
                        serde_json::json!({ "tenant_id": tenant, "job_id": job.0 })
                    );
                } else {
                    println!("{job}");
                }
                return Ok(());
            }
            let run = wait_for(&pool, job).await?;
            if output.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&run).expect("runs serialise")
                );
            } else {
                println!(
                    "{} in {:.1} s ({} round): {} added, {} updated, {} soft-deleted, {} removed, {} membership(s) added, {} removed, {} pages, {} throttled wait(s) ({:.1} s)",
                    run.outcome,
                    run.seconds,
                    if run.full_round {
                        "full"
                    } else {
                        "incremental"
                    },
                    run.counts.added,
                    run.counts.updated,
                    run.counts.soft_deleted,
                    run.counts.removed,
                    run.counts.members_added,
                    run.counts.members_removed,
                    run.counts.pages,
                    run.counts.throttled_waits,
                    run.counts.throttled_seconds
                );
            }
            match run.error {
                Some(error) if run.outcome == "failed" => {
                    Err(Failure::Other(anyhow::anyhow!("the sync failed: {error}")))
                }
                _ => Ok(()),
            }
        }
    }
}
