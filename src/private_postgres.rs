//! A private PostgreSQL server for a machine where none runs: started from the machine's own
//! PostgreSQL binaries (`initdb`, `pg_ctl`) in a data directory of its own, kept there across
//! runs, listening on a free loopback port only, and stopped when dropped.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a private server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// No `initdb` and `pg_ctl` anywhere this module looks.
    #[error(
        "no PostgreSQL server programs (initdb, pg_ctl) on PATH or in {}; install them: {}",
        SEARCHED.join(", "),
        install_command()
    )]
    NotInstalled,
    /// Run as root without a `postgres` account to run the server as.
    #[error(
        "PostgreSQL refuses to run as root and this machine has no `postgres` user to run it as; run this as an ordinary user"
    )]
    RootWithoutPostgresUser,
    /// Run as root, and the `postgres` user cannot reach the data directory.
    #[error(
        "the `postgres` user cannot reach {0} (a parent directory is closed to it); choose a directory it can reach, e.g. under /var/lib"
    )]
    Unreachable(PathBuf),
    /// A PostgreSQL program failed; what it said.
    #[error("{command} failed: {said}")]
    Failed {
        /// The program and its main argument.
        command: String,
        /// Its output, and the end of the server's log when there is one.
        said: String,
    },
    /// Creating the data directory or reading the system failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Where distributions and installers put the server programs, besides PATH (`*` is a version).
const SEARCHED: &[&str] = &[
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql*/bin",
    "/usr/local/opt/postgresql*/bin",
    "/Applications/Postgres.app/Contents/Versions/latest/bin",
];

/// The one command that installs the server programs on this system.
pub fn install_command() -> &'static str {
    let exists = |p: &str| Path::new(p).exists();
    if cfg!(target_os = "macos") {
        "brew install postgresql@16"
    } else if exists("/etc/debian_version") {
        "sudo apt-get install postgresql"
    } else if exists("/etc/fedora-release") || exists("/etc/redhat-release") {
        "sudo dnf install postgresql-server"
    } else if exists("/etc/arch-release") {
        "sudo pacman -S postgresql"
    } else if exists("/etc/alpine-release") {
        "sudo apk add postgresql"
    } else {
        "your system's package for the PostgreSQL server (it brings initdb and pg_ctl)"
    }
}

/// The directory holding `initdb` and `pg_ctl`: the first on PATH, else the newest version in
/// the usual places.
pub fn find_binaries() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| has_both(dir))
    {
        return Some(dir);
    }
    SEARCHED.iter().find_map(|pattern| {
        let Some((parent, rest)) = pattern.split_once('*') else {
            return Some(PathBuf::from(pattern)).filter(|dir| has_both(dir));
        };
        // `parent` ends in the directory part before the version: "/usr/lib/postgresql/".
        let (dir, prefix) = parent.rsplit_once('/')?;
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .map(|e| e.path().join(rest.trim_start_matches('/')))
            .filter(|dir| has_both(dir))
            .collect();
        found.sort_by_key(|dir| std::cmp::Reverse(major_version(dir)));
        found.into_iter().next()
    })
}

/// The major version in a path such as `/usr/lib/postgresql/16/bin` or
/// `/opt/homebrew/opt/postgresql@15/bin` (0 when it names none).
fn major_version(dir: &Path) -> u32 {
    dir.components()
        .filter_map(|c| {
            let name = c.as_os_str().to_string_lossy();
            let digits: String = name
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

/// Whether this process runs as root (the server programs refuse to).
pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"0")
}

/// A running private server; stopped when dropped.
#[derive(Debug)]
pub struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres_user: bool,
    running: bool,
}

impl PrivatePostgres {
    /// Starts the server whose data lives in `data` (created with `initdb` on first use, trust
    /// authentication, superuser `postgres`) on a free loopback port, from the programs in
    /// `bin`. Run as root, the server runs as the `postgres` user. A server left running there
    /// (its demo was killed) is stopped first. Blocks until the server accepts connections.
    pub fn start(bin: &Path, data: &Path) -> Result<Self, PostgresError> {
        let as_postgres_user = running_as_root();
        if as_postgres_user && !succeeds(Command::new("id").arg("postgres")) {
            return Err(PostgresError::RootWithoutPostgresUser);
        }
        let mut server = Self {
            bin: bin.to_owned(),
            data: data.to_owned(),
            port: 0,
            as_postgres_user,
            running: false,
        };
        std::fs::create_dir_all(data)?;
        if as_postgres_user {
            let mut chown = Command::new("chown");
            chown.arg("postgres:").arg(data);
            run(chown, "chown")?;
            if !succeeds(&mut server.command("test", &["-w".as_ref(), data.as_ref()])) {
                return Err(PostgresError::Unreachable(data.to_owned()));
            }
        }
        if !data.join("PG_VERSION").exists() {
            let initdb = server.program(
                "initdb",
                &[
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
            );
            run(initdb, "initdb")?;
        }
        if server.is_running() {
            server.stop_server()?;
        }
        server.port = free_port()?;
        let log = data.join("server.log");
        let mut start = server.program("pg_ctl", &["start", "-w", "-t", "60"]);
        // No Unix socket (its path would depend on the directory's length and permissions):
        // loopback TCP only.
        start.arg("-l").arg(&log).arg("-o").arg(format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''",
            server.port
        ));
        // A group of its own, so a Ctrl-C in the terminal reaches the demo, which then stops
        // the server, and not the server behind its back.
        std::os::unix::process::CommandExt::process_group(&mut start, 0);
        if let Err(PostgresError::Failed { command, said }) = run(start, "pg_ctl start") {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(PostgresError::Failed {
                command,
                said: format!("{said}\n{}", tail.join("\n")),
            });
        }
        server.running = true;
        Ok(server)
    }

    /// The connection string of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Stops the server (fast: open connections are ended), waiting until it has.
    pub fn stop(&mut self) -> Result<(), PostgresError> {
        if std::mem::take(&mut self.running) {
            self.stop_server()?;
        }
        Ok(())
    }

    fn stop_server(&self) -> Result<(), PostgresError> {
        let stopped = run(
            self.program("pg_ctl", &["stop", "-w", "-m", "fast"]),
            "pg_ctl stop",
        );
        // Already stopped (a signal reached it too) is stopped.
        match stopped {
            Err(_) if !self.is_running() => Ok(()),
            other => other,
        }
    }

    fn is_running(&self) -> bool {
        succeeds(&mut self.program("pg_ctl", &["status"]))
    }

    /// A server program with `args` and `-D <data>`.
    fn program(&self, name: &str, args: &[&str]) -> Command {
        let mut args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        args.extend([OsStr::new("-D"), self.data.as_os_str()]);
        self.command(self.bin.join(name).as_os_str(), &args)
    }

    /// `program`, as the `postgres` user when run as root.
    fn command(&self, program: impl AsRef<OsStr>, args: &[&OsStr]) -> Command {
        let mut command = if self.as_postgres_user {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(program);
            runuser
        } else {
            Command::new(program)
        };
        command.args(args);
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("{e}");
        }
    }
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `command` to its end; when it fails, what it said (`what` names it).
fn run(mut command: Command, what: &str) -> Result<(), PostgresError> {
    let output = command.output()?;
    if output.status.success() {
        return Ok(());
    }
    let mut said = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if said.is_empty() {
        said = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    }
    Err(PostgresError::Failed {
        command: what.into(),
        said,
    })
}

/// A loopback port nothing listens on now.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_version_is_read_from_the_usual_paths() {
        for (path, version) in [
            ("/usr/lib/postgresql/16/bin", 16),
            ("/opt/homebrew/opt/postgresql@15/bin", 15),
            ("/usr/pgsql-13/bin", 13),
            ("/usr/local/pgsql/bin", 0),
            ("/usr/lib/postgresql/9.6/bin", 9),
        ] {
            assert_eq!(major_version(Path::new(path)), version, "{path}");
        }
    }
}
