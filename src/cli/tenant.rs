//! `gangway tenant …`: connected tenants.

use clap::Subcommand;

use super::{Failure, Output, pool, truncate};
use crate::config::Config;
use crate::{format, tenants};

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// List connected tenants.
    List {
        #[command(flatten)]
        output: Output,
    },
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
    }
}
