//! The peer of `gangway bench sync --peer`: `scripts/peer-sync.py`, the same full sync done as
//! a straightforward integrator would with Microsoft's Graph SDK for Python and psycopg, run
//! against the benchmark's emulator and scratch database and timed by the benchmark too. The
//! script is built into this binary and handed to Python on standard input, so the benchmark
//! needs no checkout.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, bail};
use entra_emulator::EmulatorAdmin;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The peer, as committed in `scripts/`.
const SCRIPT: &str = include_str!("../../scripts/peer-sync.py");

/// The script's exit code when a Python library it needs is not installed.
const LIBRARY_MISSING: i32 = 3;

/// What the peer did.
#[derive(Debug, Clone, Serialize)]
pub struct PeerReport {
    /// The script's own figure, from its first Graph request (the token's included) to its
    /// last commit: the figure compared with Gangway's full sync.
    pub seconds: f64,
    /// The Python process's wall time as the benchmark saw it: the interpreter's start, the
    /// libraries' imports and the peer's tables made afresh included.
    pub process_seconds: f64,
    /// Rows in the peer's tables at the end.
    pub users: i64,
    /// See `users`.
    pub groups: i64,
    /// See `users`.
    pub memberships: i64,
    /// Delta pages of both rounds.
    pub pages: i64,
    /// Graph's 429s the peer met (its SDK waits as Retry-After says and tries again).
    pub graph_429s: u64,
}

/// The JSON line the script prints.
#[derive(Debug, Deserialize)]
struct Printed {
    seconds: f64,
    users: i64,
    groups: i64,
    memberships: i64,
    pages: i64,
}

/// Where the peer syncs from and to: one tenant of the emulator, as the provider's app.
pub struct Target<'a> {
    /// The emulator's base URL: Entra ID's authority and Graph's.
    pub emulator: &'a str,
    /// The emulator's CA (the SDK speaks HTTPS only).
    pub ca_file: &'a Path,
    /// The tenant's id.
    pub tenant: &'a str,
    /// The provider app's client id.
    pub client_id: &'a str,
    /// Its secret, given to Python in the environment, never on a command line.
    pub client_secret: &'a str,
    /// The database the peer writes its schema `peer` into.
    pub database_url: &'a str,
}

/// How a peer run ended.
pub enum Outcome {
    /// It synced.
    Ran(PeerReport),
    /// Python or a library it needs is not installed: why, and how to install them.
    Skipped(String),
}

/// Runs the peer with `GANGWAY_PEER_PYTHON` (else `python3`) against `target`, with Graph's
/// throttle started afresh through `admin`.
pub async fn run(target: &Target<'_>, admin: &EmulatorAdmin) -> anyhow::Result<Outcome> {
    let python = std::env::var("GANGWAY_PEER_PYTHON").unwrap_or_else(|_| "python3".into());
    super::fresh_throttle(admin).await?;
    let started = Instant::now();
    let child = Command::new(&python)
        .arg("-")
        .args(["--authority", target.emulator, "--graph", target.emulator])
        .args(["--tenant", target.tenant, "--client-id", target.client_id])
        .arg("--ca-file")
        .arg(target.ca_file)
        .env("AZURE_CLIENT_SECRET", target.client_secret)
        .env("DATABASE_URL", target.database_url)
        // libpq speaks to a server on loopback as Gangway does (see `db::options`).
        .envs(
            crate::db::in_the_clear_on_loopback(target.database_url)
                .then_some(("PGSSLMODE", "disable")),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Outcome::Skipped(format!(
                "{python} is not installed (set GANGWAY_PEER_PYTHON to another Python 3.11+)"
            )));
        }
        Err(e) => return Err(e).with_context(|| format!("starting {python} failed")),
    };
    let mut stdin = child.stdin.take().context("the peer's standard input")?;
    stdin.write_all(SCRIPT.as_bytes()).await?;
    // Python runs the program once its standard input ends.
    drop(stdin);
    let output = child.wait_with_output().await?;
    let process_seconds = started.elapsed().as_secs_f64();
    let said = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        Some(LIBRARY_MISSING) => return Ok(Outcome::Skipped(said.trim().to_owned())),
        _ => bail!("the peer ended {}: {}", output.status, said.trim()),
    }
    let printed: Printed = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "the peer printed no report: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    Ok(Outcome::Ran(PeerReport {
        seconds: printed.seconds,
        process_seconds: super::round(process_seconds, 4),
        users: printed.users,
        groups: printed.groups,
        memberships: printed.memberships,
        pages: printed.pages,
        graph_429s: super::throttle_counts(admin).await?.throttled,
    }))
}
