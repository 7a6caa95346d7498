//! `gangway doctor`: checks the provider's app registration in Entra ID and says what to fix.

use super::{Failure, Output, pool};
use crate::config::{Config, ConfigError};
use crate::doctor::{self, Report};
use crate::settings::SettingsError;
use crate::{db, settings};

/// Runs the doctor: exit 0 when no check failed (warnings included), 1 when one did, 78 when
/// the configuration or the stored settings cannot be read.
pub(super) async fn run(output: Output) -> Result<(), Failure> {
    let cfg = Config::from_env()?;
    let db = pool(&cfg.database_url).await?;
    db::migrate(&db).await?;
    settings::prepare(&db, &cfg.keys, &cfg.settings_seed()).await?;
    let (public_url, authority, keys) = (
        cfg.public_url.clone(),
        cfg.authority.clone(),
        cfg.keys.clone(),
    );
    let state = crate::web::AppState::new(cfg, db.clone())?;
    let live = state.live().await.map_err(|e| match e {
        SettingsError::Db(e) => Failure::from(e),
        unreadable => Failure::Config(ConfigError(vec![format!(
            "  System Settings: {unreadable}"
        )])),
    })?;
    let report = doctor::run(&db, &keys, &live, &state.graph, &public_url, &authority).await;
    if output.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("the report serialises")
        );
    } else {
        print!("{}", text(&report));
    }
    if report.passed() {
        Ok(())
    } else {
        Err(Failure::Other(anyhow::anyhow!(
            "{} check(s) failed: fix them as each says, then run `gangway doctor` again",
            report.count(doctor::CheckStatus::Fail)
        )))
    }
}

/// One line per check, `PASS  title — detail`, each fix indented below it, then the counts.
pub(super) fn text(report: &Report) -> String {
    let mut out = String::new();
    for check in &report.checks {
        out.push_str(&format!(
            "{}  {} — {}\n",
            check.status.label(),
            check.title,
            check.detail
        ));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("      fix: {fix}\n"));
        }
    }
    if let Some(date) = report.stored_secret_expiry {
        out.push_str(&format!(
            "\nStored the client secret's expiry, {date}, in System Settings.\n"
        ));
    }
    out.push_str(&format!("\n{}\n", report.summary()));
    out
}
