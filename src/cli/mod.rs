//! Command-line interface: `serve`, `migrate`, `demo`, `doctor`, `setup`, operator, invitation, tenant and
//! settings administration for scripts, and benchmarks.

mod api_token;
mod bench;
mod doctor;
mod invite;
mod operator;
mod settings;
mod setup;
mod tenant;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sqlx::PgPool;

use crate::config::{Config, ConfigError};
use crate::invitations::InvitationError;
use crate::operators::OperatorError;
use crate::{db, demo, runtime};

/// Gangway: invite a customer's Microsoft Entra ID admin, record their consent, keep the tenant.
#[derive(Debug, Parser)]
#[command(name = "gangway", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "\
Configuration comes from the environment (see .env.example).

Exit codes:
  0   success
  1   the operation failed (database unreachable, mail server down…)
  2   bad usage or invalid input
  78  configuration missing or malformed";

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the web portal (console, invitation wizard, OAuth2 callback), the mail worker and
    /// GANGWAY_SYNC_WORKERS directory sync workers.
    Serve,
    /// Run only directory sync workers and the sync scheduler (scale them out on any number of
    /// machines: they share the job queue in Postgres). Stops cleanly on SIGTERM.
    Worker {
        /// Syncs run at once in this process.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        concurrency: u16,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Re-seal every stored secret with GANGWAY_ENCRYPTION_KEY, after rotating it (the old key
    /// goes in GANGWAY_PREVIOUS_ENCRYPTION_KEYS until this has run).
    Rekey,
    /// Check the provider's app registration in Entra ID: every value it must hold and what
    /// Gangway can verify itself, each PASS, WARN or FAIL with the exact fix. Exit 0 when
    /// nothing failed, 1 when a check failed, 78 when the configuration cannot be read.
    Doctor {
        #[command(flatten)]
        output: Output,
    },
    /// Create or repair the provider's app registration through Microsoft Graph with an
    /// administrator's delegated token (one sign-in instead of the portal steps), store the
    /// client id, tenant id and a client secret, then run the doctor.
    Setup(setup::SetupArgs),
    /// Try Gangway locally: database, built-in Entra ID emulator, demo operator, all in one.
    Demo(demo::DemoArgs),
    /// Manage console operators.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Create, list, resend and revoke invitations.
    #[command(subcommand)]
    Invite(invite::InviteCommand),
    /// List connected tenants.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Read and set System Settings as JSON; export them to a file and import it elsewhere.
    #[command(subcommand)]
    Settings(settings::SettingsCommand),
    /// Create, list and revoke JSON API tokens.
    #[command(subcommand)]
    ApiToken(api_token::ApiTokenCommand),
    /// Measure Gangway on this machine with a scratch database and the built-in emulator.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

impl Cli {
    /// The log filter when `RUST_LOG` is unset: benchmarks print figures, not logs.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Bench(_) => "off",
            _ => crate::telemetry::DEFAULT_FILTER,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct Output {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Why a command failed, and so its exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<InvitationError> for Failure {
    fn from(e: InvitationError) -> Self {
        match e {
            InvitationError::Db(e) => Failure::Other(e.into()),
            other => Failure::Usage(other.to_string()),
        }
    }
}

impl From<OperatorError> for Failure {
    fn from(e: OperatorError) -> Self {
        match e {
            OperatorError::Db(e) => Failure::Other(e.into()),
            other => Failure::Usage(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Other(e.into())
    }
}

/// Runs a parsed command and maps its outcome to an exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let code = match &failure {
                Failure::Usage(_) => 2,
                Failure::Config(_) => 78,
                Failure::Other(_) => 1,
            };
            match failure {
                Failure::Other(e) => eprintln!("error: {e:#}"),
                other => eprintln!("error: {other}"),
            }
            ExitCode::from(code)
        }
    }
}

async fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Serve => Ok(runtime::serve(Config::from_env()?).await?),
        Command::Worker { concurrency } => {
            let cfg = Config::from_env()?;
            let db = sized_pool(&cfg.database_url, cfg.pool_size(concurrency.into())).await?;
            db::migrate(&db).await?;
            crate::settings::prepare(&db, &cfg.keys, &cfg.settings_seed()).await?;
            let state = crate::web::AppState::new(cfg, db)?;
            Ok(runtime::run_workers(state, usize::from(concurrency)).await?)
        }
        Command::Rekey => {
            let cfg = Config::from_env()?;
            let pool = pool(&cfg.database_url).await?;
            let done = crate::rekey::reseal_all(&pool, &cfg.keys)
                .await
                .map_err(anyhow::Error::from)?;
            println!("re-sealed with key {}: {done}", cfg.keys.id());
            Ok(())
        }
        Command::Migrate => {
            let pool = pool(&crate::config::database_url_from_env()?).await?;
            db::migrate(&pool).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Demo(args) => Ok(demo::run(args).await?),
        Command::Doctor { output } => doctor::run(output).await,
        Command::Setup(args) => setup::run(args).await,
        Command::Operator(command) => operator::run(command).await,
        Command::Invite(command) => invite::run(command).await,
        Command::Tenant(command) => tenant::run(command).await,
        Command::ApiToken(command) => api_token::run(command).await,
        Command::Settings(command) => settings::run(command).await,
        Command::Bench(command) => bench::run(command).await,
    }
}

pub(crate) fn truncate(value: &str, width: usize) -> String {
    if value.chars().count() <= width {
        value.to_owned()
    } else {
        format!("{}…", value.chars().take(width - 1).collect::<String>())
    }
}

pub(crate) async fn pool(url: &str) -> Result<PgPool, Failure> {
    sized_pool(url, db::DEFAULT_POOL_SIZE).await
}

/// A pool of at most `size` connections on `url`.
pub(crate) async fn sized_pool(url: &str, size: u32) -> Result<PgPool, Failure> {
    db::connect(url, size).await.map_err(|e| {
        Failure::Other(anyhow::Error::new(e).context("cannot connect to DATABASE_URL"))
    })
}
