//! Command-line interface: `serve`, `migrate`, `demo`, and operator, invitation and tenant
//! administration for scripts.

use std::io::Read;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::Actor;
use crate::config::{Config, ConfigError};
use crate::invitations::{self, Filter, InvitationError, NewInvitation, Status, mail};
use crate::operators::{self, OperatorError, Role};
use crate::types::Secret;
use crate::{db, demo, format, runtime, tenants};

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
    /// Run the web portal (console, invitation wizard, OAuth2 callback) and the mail worker.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Re-seal every stored secret with GANGWAY_ENCRYPTION_KEY, after rotating it (the old key
    /// goes in GANGWAY_PREVIOUS_ENCRYPTION_KEYS until this has run).
    Rekey,
    /// Try Gangway locally: database, built-in Entra ID emulator, demo operator, all in one.
    Demo(demo::DemoArgs),
    /// Manage console operators.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Create, list, resend and revoke invitations.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// List connected tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Add an operator; the password is read from standard input.
    Add {
        #[arg(long)]
        email: String,
        /// admin (may invite, resend, revoke) or viewer (read-only).
        #[arg(long, default_value = "admin")]
        role: String,
        /// Read the password from stdin (required, so it never shows in the process list).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List operators with their role and last sign-in.
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Make an operator admin or viewer; a demotion signs them out everywhere.
    SetRole {
        email: String,
        /// admin | viewer
        role: String,
    },
    /// Remove an operator; they are signed out at once.
    Remove { email: String },
}

#[derive(Debug, Subcommand)]
enum InviteCommand {
    /// Create an invitation and queue its email; prints its id, link and expiry.
    Create {
        /// The customer's name, as their admin will see it.
        #[arg(long)]
        customer: String,
        /// The customer's Global Administrator's email address.
        #[arg(long)]
        email: String,
        /// delegated | application | customer-app
        #[arg(long)]
        mode: String,
        /// Accept consent only from the tenant verified for this domain.
        #[arg(long)]
        tenant_domain: Option<String>,
        /// How long the link works: e.g. 24h, 7d (1h to 30d).
        #[arg(long, default_value = "7d")]
        expires_in: String,
        #[command(flatten)]
        output: Output,
    },
    /// List invitations, open ones first.
    List {
        /// pending | opened | consented | declined | failed | expired | revoked
        #[arg(long)]
        status: Option<String>,
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        output: Output,
    },
    /// Revoke an invitation: its link stops working for good.
    Revoke { id: Uuid },
    /// Mint a new link (the old one stops working) and email it again.
    Resend {
        id: Uuid,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// List connected tenants.
    List {
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Args)]
struct Output {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Why a command failed, and so its exit code.
#[derive(Debug, thiserror::Error)]
enum Failure {
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
        Command::Rekey => {
            let cfg = Config::from_env()?;
            let pool = pool(&cfg.database_url).await?;
            let done = crate::rekey::reseal_all(&pool, &cfg.keys)
                .await
                .map_err(anyhow::Error::from)?;
            println!(
                "re-sealed {} tenant credential(s) and {} queued email(s) with key {}, and {} session(s)",
                done.tenant_credentials,
                done.queued_mail,
                cfg.keys.id(),
                done.sessions
            );
            Ok(())
        }
        Command::Migrate => {
            let pool = pool(&crate::config::database_url_from_env()?).await?;
            db::migrate(&pool).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Demo(args) => Ok(demo::run(args).await?),
        Command::Operator(command) => operator(command).await,
        Command::Invite(command) => invite(command).await,
        Command::Tenant(TenantCommand::List { output }) => {
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
                    "{:<36}  {:<28}  {:<12}  {:<8}  CONSENTED",
                    "ENTRA TENANT ID", "NAME", "MODE", "STATUS"
                );
                for t in &rows {
                    println!(
                        "{:<36}  {:<28}  {:<12}  {:<8}  {}",
                        t.entra_tenant_id,
                        truncate(&t.display_name, 28),
                        t.consent_mode.as_str(),
                        t.status,
                        format::datetime(t.consented_at)
                    );
                }
                println!("{total} tenant(s)");
            }
            Ok(())
        }
    }
}

async fn operator(command: OperatorCommand) -> Result<(), Failure> {
    let pool = pool(&crate::config::database_url_from_env()?).await?;
    match command {
        OperatorCommand::Add {
            email,
            role,
            password_stdin: _,
        } => {
            let role = Role::parse(&role)?;
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .map_err(anyhow::Error::from)?;
            let password = Secret::new(password.trim_end_matches(['\r', '\n']));
            let operator = operators::add(&pool, &email, role, &password, &Actor::Cli).await?;
            println!("operator {} added ({:?})", operator.email, operator.role);
        }
        OperatorCommand::List { output } => {
            let rows = operators::list(&pool).await?;
            if output.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).expect("operators serialise")
                );
            } else {
                println!(
                    "{:<40}  {:<6}  {:<8}  LAST SIGN-IN",
                    "EMAIL", "ROLE", "SESSIONS"
                );
                for o in &rows {
                    println!(
                        "{:<40}  {:<6}  {:<8}  {}",
                        truncate(&o.email, 40),
                        o.role.as_str(),
                        o.sessions,
                        o.last_login_at
                            .map(format::datetime)
                            .unwrap_or_else(|| "never".into())
                    );
                }
                println!("{} operator(s)", rows.len());
            }
        }
        OperatorCommand::SetRole { email, role } => {
            let role = Role::parse(&role)?;
            let found = operators::find_by_email(&pool, &email).await?;
            let operator = operators::set_role(&pool, found.id, role, &Actor::Cli).await?;
            println!(
                "operator {} is now {}",
                operator.email,
                operator.role.as_str()
            );
        }
        OperatorCommand::Remove { email } => {
            let found = operators::find_by_email(&pool, &email).await?;
            let removed = operators::remove(&pool, found.id, &Actor::Cli).await?;
            println!("operator {} removed and signed out", removed.email);
        }
    }
    Ok(())
}

async fn invite(command: InviteCommand) -> Result<(), Failure> {
    let cfg = Config::from_env()?;
    let pool = pool(&cfg.database_url).await?;
    let cx = invitations::Context {
        public_url: &cfg.public_url,
        provider_name: &cfg.provider_name,
        keys: &cfg.keys,
    };
    match command {
        InviteCommand::Create {
            customer,
            email,
            mode,
            tenant_domain,
            expires_in,
            output,
        } => {
            let new = NewInvitation::parse(
                &customer,
                &email,
                &mode,
                tenant_domain.as_deref(),
                Some(&expires_in),
            )?;
            let issued = invitations::create(&pool, cx, &new, &Actor::Cli, None).await?;
            print_issued(&issued, output.json);
            deliver_now(&cfg, &pool).await;
        }
        InviteCommand::Resend { id, output } => {
            let issued = invitations::resend(&pool, cx, id, &Actor::Cli).await?;
            print_issued(&issued, output.json);
            deliver_now(&cfg, &pool).await;
        }
        InviteCommand::Revoke { id } => {
            let revoked = invitations::revoke(&pool, id, &Actor::Cli).await?;
            println!(
                "invitation {} for {} revoked",
                revoked.id, revoked.customer_name
            );
        }
        InviteCommand::List {
            status,
            limit,
            output,
        } => {
            let status = status.as_deref().map(Status::parse).transpose()?;
            let filter = Filter {
                status,
                search: None,
                limit: limit.clamp(1, 10_000),
                offset: 0,
            };
            let (rows, total) = invitations::list(&pool, &filter).await?;
            if output.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).expect("invitations serialise")
                );
            } else if rows.is_empty() {
                println!("no invitations");
            } else {
                println!(
                    "{:<36}  {:<10}  {:<24}  {:<28}  {:<12}  EXPIRES",
                    "ID", "STATUS", "CUSTOMER", "EMAIL", "MODE"
                );
                for i in &rows {
                    println!(
                        "{:<36}  {:<10}  {:<24}  {:<28}  {:<12}  {}",
                        i.id,
                        i.status.as_str(),
                        truncate(&i.customer_name, 24),
                        truncate(&i.admin_email, 28),
                        i.consent_mode.as_str(),
                        format::datetime(i.expires_at)
                    );
                }
                println!("{} of {total} invitation(s)", rows.len());
            }
        }
    }
    Ok(())
}

fn print_issued(issued: &invitations::Issued, json: bool) {
    let i = &issued.invitation;
    if json {
        let value = serde_json::json!({
            "id": i.id,
            "link": issued.link.as_str(),
            "expires_at": i.expires_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "status": i.status,
            "customer": i.customer_name,
            "email": i.admin_email,
            "mode": i.consent_mode,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("json serialises")
        );
    } else {
        println!("id:      {}", i.id);
        println!("link:    {}", issued.link);
        println!("expires: {}", format::datetime(i.expires_at));
        eprintln!("The link is shown only now; Gangway keeps only its hash.");
    }
}

/// The CLI sends right away when it can; otherwise the server's worker retries later.
async fn deliver_now(cfg: &Config, pool: &PgPool) {
    let Some(url) = &cfg.smtp_url else {
        eprintln!(
            "No GANGWAY_SMTP_URL: the email is queued; send the link yourself or configure mail."
        );
        return;
    };
    let outcome = match mail::Mailer::new(url, &cfg.mail_from) {
        Ok(mailer) => mail::deliver_due(pool, &cfg.keys, &mailer)
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    match outcome {
        Ok(done) if done.sent > 0 && done.failed == 0 => eprintln!("Email sent."),
        Ok(_) => eprintln!("Email not sent yet: it stays queued and `gangway serve` retries it."),
        Err(e) => eprintln!("Email queued, not sent ({e}); `gangway serve` retries it."),
    }
}

fn truncate(value: &str, width: usize) -> String {
    if value.chars().count() <= width {
        value.to_owned()
    } else {
        format!("{}…", value.chars().take(width - 1).collect::<String>())
    }
}

async fn pool(url: &str) -> Result<PgPool, Failure> {
    db::connect(url).await.map_err(|e| {
        Failure::Other(anyhow::Error::new(e).context("cannot connect to DATABASE_URL"))
    })
}
