//! The emulator in a process of its own for `gangway bench sync`, so that the benchmark's
//! resident set is the engine's alone and the emulator's (its whole seeded directory) is
//! reported apart. The child is this same binary, `gangway bench emulator …` (hidden), which
//! serves until its standard input closes — when the benchmark ends, however it ends.
//! With TLS its CA is written to a file of the benchmark's, for clients in other processes.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use entra_emulator::{Emulator, EmulatorAdmin, Options};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running emulator process.
pub struct EmulatorProcess {
    child: Child,
    base_url: String,
    /// With TLS: the CA's PEM, and the file holding it (removed when this is dropped).
    ca: Option<(String, PathBuf)>,
}

impl EmulatorProcess {
    /// Starts `gangway bench emulator` with `opts` and waits until it serves; with
    /// `opts.tls`, over HTTPS (`opts.ca_out` is ignored: the CA goes to a file of its own).
    pub async fn start(opts: &Options) -> anyhow::Result<Self> {
        let ca_file = opts.tls.then(|| {
            std::env::temp_dir().join(format!("gangway-bench-{}-ca.pem", std::process::id()))
        });
        let mut child = Command::new(std::env::current_exe()?)
            .args(["bench", "emulator"])
            .args(["--tenants", &opts.tenants.to_string()])
            .args(["--users", &opts.users.to_string()])
            .args(["--groups", &opts.groups.to_string()])
            .args(["--seed", &opts.seed.to_string()])
            .args(
                opts.notifications_over_http
                    .then_some("--notifications-over-http"),
            )
            .args(
                opts.memberships
                    .iter()
                    .flat_map(|m| ["--memberships".to_owned(), m.to_string()]),
            )
            .args(ca_file.iter().flat_map(|path| {
                [
                    OsStr::new("--tls"),
                    OsStr::new("--ca-out"),
                    path.as_os_str(),
                ]
            }))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the emulator process failed")?;
        let stdout = child.stdout.take().context("the emulator's output")?;
        let mut first = String::new();
        // Seeding a large directory takes a while before the first line.
        tokio::time::timeout(
            Duration::from_secs(600),
            BufReader::new(stdout).read_line(&mut first),
        )
        .await
        .context("the emulator process did not start within 10 minutes")??;
        let base_url = first.trim().to_owned();
        anyhow::ensure!(
            base_url.starts_with("http"),
            "the emulator process did not say where it serves"
        );
        let ca = match ca_file {
            Some(path) => Some((
                std::fs::read_to_string(&path).context("the emulator's CA certificate")?,
                path,
            )),
            None => None,
        };
        Ok(Self {
            child,
            base_url,
            ca,
        })
    }

    /// Where it serves Entra ID, Graph and its admin API.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// With TLS, the PEM of the CA that signed its certificate.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca.as_ref().map(|(pem, _)| pem.as_str())
    }

    /// With TLS, the file holding [`Self::ca_pem`].
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca.as_ref().map(|(_, path)| path.as_path())
    }

    /// A client for its admin API.
    pub fn admin(&self) -> anyhow::Result<EmulatorAdmin> {
        EmulatorAdmin::at(&self.base_url, self.ca_pem())
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its resident set now, MiB.
    pub fn resident_mb(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        super::memory::field_mb(&status, "VmRSS:")
    }

    /// Ends it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        if let Some((_, path)) = &self.ca {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `gangway bench emulator`: serves an emulator seeded by `opts`, prints its address, and
/// stops when standard input closes.
pub async fn serve(opts: Options) -> anyhow::Result<()> {
    let emulator = Emulator::start(opts).await?;
    println!("{}", emulator.base_url());
    let mut rest = Vec::new();
    tokio::io::stdin().read_to_end(&mut rest).await?;
    emulator.shutdown().await;
    Ok(())
}
