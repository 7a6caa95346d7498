//! `gangway setup`: an administrator of the provider's tenant signs in once (the device code
//! flow: Microsoft's page and a code, printed here) — or automation hands over their delegated
//! access token in a file —, then Gangway creates or repairs the provider's app registration
//! through Microsoft Graph, stores the client id, tenant id and credential (sealed), prints the
//! checklist and runs the doctor.

use std::path::PathBuf;

use clap::Args;

use super::doctor::text;
use super::{Failure, pool};
use crate::audit::Actor;
use crate::config::Config;
use crate::doctor::{self, CheckStatus};
use crate::settings;
use crate::setup::{self, SETUP_SCOPES};
use crate::types::{Secret, TenantId};
use crate::{db, web};

/// Where the administrator's token comes from.
#[derive(Debug, Args)]
pub(super) struct SetupArgs {
    /// The provider's tenant id (GUID), where the app is registered.
    #[arg(long)]
    tenant: String,
    /// For automation: a file holding a Microsoft Graph access token of an administrator of that
    /// tenant with the delegated permissions Application.ReadWrite.All,
    /// AppRoleAssignment.ReadWrite.All and Directory.Read.All (`-`: read it from standard
    /// input). Never passed on the command line, so it stays out of the shell's history and
    /// the process list. Without it, an administrator signs in with a code shown here.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// The administrator's token: from the file, or from their sign-in with a code.
async fn admin_token(
    path: Option<&PathBuf>,
    cfg: &Config,
    tenant: TenantId,
) -> Result<Secret, Failure> {
    let Some(path) = path else {
        let login = cfg.setup_login(tenant);
        let http = web::http_client(cfg)?;
        let started = login.start(&http).await.map_err(anyhow::Error::from)?;
        println!("{}\nWaiting for the sign-in…", started.message);
        let token = login
            .wait(&http, &started)
            .await
            .map_err(anyhow::Error::from)?;
        println!("Signed in.\n");
        return Ok(token);
    };
    let raw = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| Failure::Usage(format!("cannot read the token: {e}")))?;
    Ok(Secret::new(raw.trim()))
}

/// Runs the setup, then the doctor; exit 1 when the setup or a doctor check failed.
pub(super) async fn run(args: SetupArgs) -> Result<(), Failure> {
    let tenant = TenantId::parse(&args.tenant).map_err(|e| Failure::Usage(e.to_string()))?;
    let cfg = Config::from_env()?;
    let token = admin_token(args.token_file.as_ref(), &cfg, tenant).await?;
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
    let outcome = setup::run_and_store(
        &db,
        &keys,
        &state.graph,
        &live,
        &public_url,
        &token,
        tenant,
        &Actor::Cli,
    )
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
