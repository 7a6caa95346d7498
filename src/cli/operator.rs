//! `gangway operator …`: console accounts.

use std::io::Read;

use clap::Subcommand;

use super::{Failure, Output, pool, truncate};
use crate::audit::Actor;
use crate::format;
use crate::operators::{self, Role};
use crate::types::Secret;

#[derive(Debug, Subcommand)]
pub(crate) enum OperatorCommand {
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
    /// Remove an operator; they are signed out at once and blocked (signing in with Entra ID
    /// does not bring them back) until restored.
    Remove { email: String },
    /// Let a removed operator sign in again.
    Restore { email: String },
}

/// Runs an operator command.
pub(super) async fn run(command: OperatorCommand) -> Result<(), Failure> {
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
                for r in operators::removed(&pool).await? {
                    println!(
                        "removed: {} ({}) on {} by {}; `gangway operator restore` lets them in again",
                        r.email,
                        r.role.as_str(),
                        format::datetime(r.blocked_at),
                        r.blocked_by
                    );
                }
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
            println!(
                "operator {} removed and signed out; blocked until `gangway operator restore`",
                removed.email
            );
        }
        OperatorCommand::Restore { email } => {
            operators::restore(&pool, &email, &Actor::Cli).await?;
            println!("operator {} restored: they may sign in again", email.trim());
        }
    }
    Ok(())
}
