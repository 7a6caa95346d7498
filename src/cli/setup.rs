//! `gangway setup`: creates or repairs the provider's app registration through Microsoft Graph
//! with an administrator's delegated access token for the provider's tenant, stores the client
//! id, tenant id and a new client secret (sealed), prints the checklist, then runs the doctor.

use std::path::PathBuf;

use clap::Args;

use super::doctor::text;
use super::{Failure, pool};
use crate::audit::Actor;
use crate::config::Config;
use crate::doctor::{self, CheckStatus, Expected};
use crate::settings::{self, profiles};
use crate::setup::{self, SETUP_SCOPES};
use crate::types::{Secret, TenantId};
use crate::{db, web};

/// Where the administrator's token comes from.
#[derive(Debug, Args)]
pub(super) struct SetupArgs {
    /// The provider's tenant id (GUID), where the app is registered.
    #[arg(long)]
    tenant: String,
    /// A file holding a Microsoft Graph access token of an administrator of that tenant with
    /// the delegated permissions Application.ReadWrite.All, AppRoleAssignment.ReadWrite.All and
    /// Directory.Read.All (`-`: read it from standard input). Never passed on the command line,
    /// so it stays out of the shell's history and the process list.
    #[arg(long)]
    token_file: PathBuf,
}

/// Runs the setup, then the doctor; exit 1 when the setup or a doctor check failed.
pub(super) async fn run(args: SetupArgs) -> Result<(), Failure> {
    let tenant = TenantId::parse(&args.tenant).map_err(|e| Failure::Usage(e.to_string()))?;
    let raw = if args.token_file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(&args.token_file)
    }
    .map_err(|e| Failure::Usage(format!("cannot read the token: {e}")))?;
    let token = Secret::new(raw.trim());
    let cfg = Config::from_env()?;
    let db = pool(&cfg.database_url).await?;
    db::migrate(&db).await?;
    settings::prepare(&db, &cfg.keys, &cfg.settings_seed()).await?;
    let (public_url, authority, keys) = (
        cfg.public_url.clone(),
        cfg.authority.clone(),
        cfg.keys.clone(),
    );
    let state = web::AppState::new(cfg, db.clone())?;
    let live = state.live().await.map_err(anyhow::Error::from)?;
    let in_use = profiles::in_use(&db).await?;
    // Every redirect URI and permission users' sign-in needs is registered up front.
    let expected = Expected::new(&live.settings, &public_url, &in_use, true);
    let current = setup::current(&db, Some(live.settings.client_id)).await?;
    let renew = i64::from(live.settings.secret_rotation_days);
    let outcome = setup::run(&state.graph, &token, tenant, &expected, &current, renew)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "setup stopped at {e} (the token needs {} for tenant {tenant})",
                SETUP_SCOPES.join(", ")
            )
        })?;
    for step in &outcome.steps {
        let mark = if step.changed { "DONE" } else { "OK  " };
        println!("{mark}  {} — {}", step.title, step.detail);
    }
    setup::store(&db, &keys, &outcome, &Actor::Cli)
        .await
        .map_err(anyhow::Error::from)?;
    println!(
        "{}",
        if outcome.changed() {
            "\nStored the client id, your tenant id and the credential in System Settings."
        } else {
            "\nNothing to change: the registration already holds what Gangway needs."
        }
    );
    state.settings.invalidate();
    let live = state.live().await.map_err(anyhow::Error::from)?;
    let report = doctor::run(&db, &keys, &live, &state.graph, &public_url, &authority).await;
    print!("\n{}", text(&report));
    if report.passed() {
        Ok(())
    } else {
        Err(Failure::Other(anyhow::anyhow!(
            "the doctor found {} failing check(s) after the setup",
            report.count(CheckStatus::Fail)
        )))
    }
}
