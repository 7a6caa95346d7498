//! `gangway settings …`: the System Settings as JSON, for operators who keep their
//! configuration as code. Every change is validated and audited as in the console.

use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::Value;
use sqlx::PgPool;

use super::{Failure, pool};
use crate::audit::Actor;
use crate::config::Config;
use crate::crypto::Keyring;
use crate::settings::code::{self, Document};
use crate::settings::{self, Key, SettingsError};
use crate::{db, web};

#[derive(Debug, Subcommand)]
pub(crate) enum SettingsCommand {
    /// Print every setting as a JSON object, or one setting's value (`client_secret` is
    /// write-only and never printed).
    Get {
        /// The setting's name (as `get` prints them); without: all of them.
        key: Option<String>,
    },
    /// Set one setting. The value is JSON where the setting takes a switch (`true`/`false`),
    /// a number or a list (`["a","b"]`, or one string separated by commas), text otherwise;
    /// `null` or an empty value clears an optional one. `-` reads the value from stdin: use
    /// it for `client_secret`, so the secret stays out of the shell's history and `ps`.
    Set {
        /// The setting's name.
        key: String,
        /// Its new value, or `-` to read it from stdin.
        value: String,
    },
    /// Write every setting to a JSON file (stdout without `--file`) that `import` applies to
    /// another installation. The client secret is left out: a file kept in version control must
    /// not carry it, not even sealed (it would open with the encryption key, and go stale at
    /// the next `rekey`); the installation imported into keeps its own (GANGWAY_CLIENT_SECRET).
    Export {
        /// Write here instead of stdout.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Apply a file `export` wrote (`-`: stdin), all or nothing: settings it names take its
    /// values, others stay. Each change is audited; nothing is saved if any value is refused.
    Import {
        /// The file.
        file: PathBuf,
    },
}

/// Runs a settings command.
pub(super) async fn run(command: SettingsCommand) -> Result<(), Failure> {
    let cfg = Config::from_env()?;
    let db = pool(&cfg.database_url).await?;
    db::migrate(&db).await?;
    settings::prepare(&db, &cfg.keys, &cfg.settings_seed()).await?;
    let keys = &cfg.keys;
    match command {
        SettingsCommand::Get { key: None } => print_json(&document(&db, keys).await?.settings),
        SettingsCommand::Get { key: Some(name) } => {
            let key = readable(&name)?;
            let all = document(&db, keys).await?;
            print_json(&all.settings[key.name()]);
        }
        SettingsCommand::Set { key, value } => {
            let key = Key::parse(&key).ok_or_else(|| unknown(&key))?;
            let raw = if value == "-" {
                let mut read = String::new();
                std::io::stdin().read_to_string(&mut read).map_err(|e| {
                    Failure::Usage(format!("cannot read the value from stdin: {e}"))
                })?;
                read.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                value
            };
            let changed = apply(&db, keys, [(key.name().to_owned(), typed(key, &raw))]).await?;
            if key.is_secret() {
                println!("{}", if changed { "replaced" } else { "unchanged" });
            } else {
                print_json(&document(&db, keys).await?.settings[key.name()]);
            }
        }
        SettingsCommand::Export { file } => {
            let text = serde_json::to_string_pretty(&document(&db, keys).await?)
                .expect("settings serialise");
            match file {
                Some(path) => std::fs::write(&path, text + "\n").map_err(|e| {
                    Failure::Other(anyhow::anyhow!("cannot write {}: {e}", path.display()))
                })?,
                None => println!("{text}"),
            }
            eprintln!("client_secret is not exported: it is write-only");
        }
        SettingsCommand::Import { file } => {
            let text = if file.as_os_str() == "-" {
                let mut read = String::new();
                std::io::stdin().read_to_string(&mut read).map(|_| read)
            } else {
                std::fs::read_to_string(&file)
            }
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))?;
            let doc: Document = serde_json::from_str(&text).map_err(|e| {
                Failure::Usage(format!(
                    "{} is not a settings export ({{\"format\": \"{}\", \"settings\": {{…}}}}): {e}",
                    file.display(),
                    code::FORMAT
                ))
            })?;
            let edits = doc.edits().map_err(refused)?;
            let changed = save(&db, keys, &edits).await?;
            println!("{changed} setting(s) changed");
        }
    }
    Ok(())
}

/// The stored settings as an export.
async fn document(db: &PgPool, keys: &Keyring) -> Result<Document, Failure> {
    let settings = settings::load(db, keys).await.map_err(refused)?;
    Ok(Document::of(&settings))
}

/// A setting `get` may print.
fn readable(name: &str) -> Result<Key, Failure> {
    match Key::parse(name) {
        Some(key) if key.is_secret() => Err(Failure::Usage(format!(
            "{name} is write-only: it is never printed (set it with `gangway settings set {name} -`)"
        ))),
        Some(key) => Ok(key),
        None => Err(unknown(name)),
    }
}

fn unknown(name: &str) -> Failure {
    Failure::Usage(format!(
        "no setting is named {name} (settings: {})",
        Key::ALL.map(Key::name).join(", ")
    ))
}

/// `raw` as typed on the command line, as the JSON value of `key`: parsed as JSON where the
/// setting is not text (a switch, a number, a list, `null`), else taken as it is.
fn typed(key: Key, raw: &str) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(parsed) if !code::takes_text(key) || parsed.is_null() => parsed,
        _ => Value::String(raw.to_owned()),
    }
}

/// Applies `values`; whether anything changed.
async fn apply(
    db: &PgPool,
    keys: &Keyring,
    values: impl IntoIterator<Item = (String, Value)>,
) -> Result<bool, Failure> {
    let edits = code::edits(&values.into_iter().collect()).map_err(refused)?;
    Ok(save(db, keys, &edits).await? > 0)
}

/// Saves `edits` as the console does; how many settings changed.
async fn save(db: &PgPool, keys: &Keyring, edits: &[settings::Edit]) -> Result<usize, Failure> {
    let changed = web::session_store::save_settings(db, keys, edits, &Actor::Cli)
        .await
        .map_err(refused)?;
    Ok(changed.len())
}

/// Refused input is bad usage (exit 2); a database failure is not.
fn refused(e: SettingsError) -> Failure {
    match e {
        SettingsError::Db(e) => e.into(),
        SettingsError::Invalid(_) | SettingsError::Unreadable(_) => {
            Failure::Usage(code::explain(&e))
        }
        other => Failure::Other(other.into()),
    }
}

fn print_json<T: serde::Serialize + ?Sized>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("settings serialise")
    );
}
