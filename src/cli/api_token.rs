//! `gangway api-token …`: tokens for the JSON API, for scripts that set Gangway up.

use clap::Subcommand;

use super::{Failure, Output, pool, truncate};
use crate::api_tokens::{self, Scope, TokenError};
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
        id: uuid::Uuid,
    },
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
            output,
        } => {
            let scope = Scope::parse(&scope).expect("clap checked the scope");
            let (token, record) =
                api_tokens::create(&db, &name, scope, days, None, &Actor::Cli).await?;
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
                    .map(|t| serde_json::json!({ "id": t.id, "name": t.name, "scope": t.scope.as_str(), "owner": t.owner_label(), "revoked": t.revoked_at.is_some() }))
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
    }
}
