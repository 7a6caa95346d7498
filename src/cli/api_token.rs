//! `gangway api-token …`: tokens for the JSON API, for scripts that set Gangway up.

use clap::Subcommand;

use super::{Failure, Output, pool, truncate};
use crate::api_tokens::{self, NewToken, Scope, TokenError};
use crate::audit::Actor;
use crate::config::database_url_from_env;
use crate::format;

#[derive(Debug, Subcommand)]
pub(crate) enum ApiTokenCommand {
    /// Create a token; it is printed once (only its hash is kept). It belongs to no operator:
    /// it lives until it expires or is revoked.
    Create {
        /// Which system uses it.
        #[arg(long)]
        name: String,
        /// `read` lists; `write` also acts.
        #[arg(long, value_parser = ["read", "write"])]
        scope: String,
        /// Days it works (1–730); without: until revoked.
        #[arg(long)]
        days: Option<u32>,
        /// Its own JSON API rate, calls per second (1–100000); without: the System Settings
        /// default (`api_calls_per_second`).
        #[arg(long, value_name = "N")]
        calls_per_second: Option<u32>,
        #[command(flatten)]
        output: Output,
    },
    /// List tokens (never the tokens themselves).
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Revoke a token at once.
    Revoke {
        /// The token's id (from `list`).
        id: crate::types::ApiTokenId,
    },
    /// Set a token's own JSON API rate; it applies within seconds.
    Rate {
        /// The token's id (from `list`).
        id: crate::types::ApiTokenId,
        /// Calls per second (1–100000), or `default` for the System Settings default.
        #[arg(value_parser = parse_rate)]
        calls_per_second: Rate,
    },
}

/// A token's rate as typed: a number, or the default.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate(Option<u32>);

fn parse_rate(value: &str) -> Result<Rate, String> {
    match value {
        "default" => Ok(Rate(None)),
        n => n
            .parse()
            .map(|n| Rate(Some(n)))
            .map_err(|_| "expected calls per second (1–100000) or `default`".into()),
    }
}

impl From<TokenError> for Failure {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Db(e) => Failure::Other(e.into()),
            TokenError::Invalid(m) => Failure::Usage(m),
            other => Failure::Usage(other.to_string()),
        }
    }
}

/// Runs an API-token command.
pub(super) async fn run(command: ApiTokenCommand) -> Result<(), Failure> {
    let db = pool(&database_url_from_env()?).await?;
    match command {
        ApiTokenCommand::Create {
            name,
            scope,
            days,
            calls_per_second,
            output,
        } => {
            let scope = Scope::parse(&scope).expect("clap checked the scope");
            let new = NewToken {
                name: &name,
                scope,
                valid_days: days,
                calls_per_second,
                owner: None,
            };
            let (token, record) = api_tokens::create(&db, &new, &Actor::Cli).await?;
            if output.json {
                println!(
                    "{}",
                    serde_json::json!({ "id": record.id, "name": record.name, "scope": scope.as_str(), "token": token.expose() })
                );
            } else {
                println!("{}", token.expose());
                eprintln!("token {} ({}): shown only now", record.id, scope.as_str());
            }
            Ok(())
        }
        ApiTokenCommand::List { output } => {
            let tokens = api_tokens::list(&db).await?;
            if output.json {
                let rows: Vec<_> = tokens
                    .iter()
                    .map(|t| serde_json::json!({ "id": t.id, "name": t.name, "scope": t.scope.as_str(), "owner": t.owner_label(), "revoked": t.revoked_at.is_some(), "calls_per_second": t.calls_per_second }))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for t in &tokens {
                    println!(
                        "{}  {:<24}  {:<5}  {:<32}  {}",
                        t.id,
                        truncate(&t.name, 24),
                        t.scope.as_str(),
                        truncate(&t.owner_label(), 32),
                        t.last_used_at
                            .map(format::datetime)
                            .unwrap_or_else(|| "never used".into())
                    );
                }
            }
            Ok(())
        }
        ApiTokenCommand::Revoke { id } => {
            api_tokens::revoke(&db, id, &Actor::Cli).await?;
            println!("revoked");
            Ok(())
        }
        ApiTokenCommand::Rate {
            id,
            calls_per_second: Rate(rate),
        } => {
            api_tokens::set_rate(&db, id, rate, &Actor::Cli).await?;
            match rate {
                Some(n) => println!("{n} calls per second"),
                None => println!("the System Settings default"),
            }
            Ok(())
        }
    }
}
