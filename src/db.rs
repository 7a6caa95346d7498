//! Connecting to Postgres, creating the database when missing, and migrating it.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// Connections a pool opens at most when nothing says otherwise (the CLI's commands, tests).
pub const DEFAULT_POOL_SIZE: u32 = 10;

/// A pooled connection idle this long is pinged before it is handed out.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Opens a pool of at most `size` connections on `url`, each opened when first needed.
pub async fn connect(url: &str, size: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(size.max(1))
        // Fail within seconds when Postgres is unreachable, instead of the default 30 s.
        .acquire_timeout(Duration::from_secs(5))
        // sqlx pings every connection it hands out: a round trip per query, as many as the
        // API's directory page itself. A connection in steady use proves itself with each
        // query; only one idle long enough to have been cut (a restart, a proxy's timeout) is
        // pinged, and replaced when the ping fails.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options(url)?)
        .await
}

/// Creates the database named in `url` if it does not exist yet (used by `demo`).
pub async fn create_if_missing(url: &str) -> Result<(), sqlx::Error> {
    let target = options(url)?;
    let name = target.get_database().unwrap_or("postgres").to_owned();
    let mut admin = target.clone().database("postgres").connect().await?;
    let exists = sqlx::query_scalar!(
        r#"select exists(select 1 from pg_database where datname = $1) as "exists!""#,
        name
    )
    .fetch_one(&mut admin)
    .await?;
    if !exists {
        // Identifiers cannot be bound as parameters (so not checked either); quote it instead.
        sqlx::query(&format!(
            "create database \"{}\"",
            name.replace('"', "\"\"")
        ))
        .execute(&mut admin)
        .await?;
    }
    admin.close().await
}

/// Creates and migrates a fresh database `{prefix}_{unix time}_{random}` on the server
/// `server_url` points at, for tests and benchmarks; returns its pool and connection string.
/// The first call in a process also drops that prefix's databases older than an hour, so
/// scratch databases do not pile up.
pub async fn create_scratch(server_url: &str, prefix: &str) -> anyhow::Result<(PgPool, String)> {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| sweep_scratch(server_url, prefix))
        .await;
    let mut url = url::Url::parse(server_url)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    url.set_path(&format!("{prefix}_{now}_{}", uuid::Uuid::new_v4().simple()));
    create_if_missing(url.as_str()).await?;
    let pool = connect(url.as_str(), DEFAULT_POOL_SIZE).await?;
    migrate(&pool).await?;
    Ok((pool, url.to_string()))
}

/// Drops the database `url` names (one [`create_scratch`] made), ending its sessions first;
/// close its pools before.
pub async fn drop_scratch(url: &str) -> Result<(), sqlx::Error> {
    let target = options(url)?;
    let name = target.get_database().unwrap_or_default().to_owned();
    let mut admin = target.database("postgres").connect().await?;
    // A database name cannot be a parameter: the statement is built.
    sqlx::query(&format!(
        "drop database if exists \"{}\" with (force)",
        name.replace('"', "\"\"")
    ))
    .execute(&mut admin)
    .await?;
    admin.close().await
}

async fn sweep_scratch(server_url: &str, prefix: &str) {
    let swept = async {
        let mut admin = options(server_url)?.connect().await?;
        let cutoff = time::OffsetDateTime::now_utc().unix_timestamp() - 3_600;
        let stale = sqlx::query_scalar!(
            r#"select datname::text as "datname!" from pg_database
             where case when datname ~ ('^' || $1 || '_[0-9]+_')
                        then split_part(substr(datname, length($1) + 2), '_', 1)::bigint < $2
                        else false end"#,
            prefix,
            cutoff
        )
        .fetch_all(&mut admin)
        .await?;
        for name in stale {
            // A database name cannot be a parameter: each statement is built.
            sqlx::query(&format!("drop database if exists \"{name}\" with (force)"))
                .execute(&mut admin)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    };
    if let Err(e) = swept.await {
        tracing::warn!(error = %e, "could not drop stale scratch databases");
    }
}

/// Gangway's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Applies Gangway's embedded migrations.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

fn options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url)?.log_statements(tracing::log::LevelFilter::Trace))
}

/// The embedded migrations the database has not applied successfully, as `version description`;
/// empty when the schema is current.
pub async fn missing_migrations(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    // sqlx's own table, made by the migrator at run time: not in the schema queries are checked
    // against.
    let applied: Vec<i64> =
        sqlx::query_scalar("select version from _sqlx_migrations where success order by version")
            .fetch_all(pool)
            .await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| format!("{:04} {}", m.version, m.description))
        .collect())
}

/// `text` as an `ILIKE` pattern matching it anywhere, its wildcards (`%`, `_`) and the escape
/// character `\` taken literally; use it with `ilike $n escape '\'`. Every list's search uses it.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Maps a constraint violation, by the constraint's name, to a domain error: the one place a
/// database refusal becomes a domain refusal (realworld-axum-sqlx's `on_constraint`).
pub trait ResultExt<T> {
    /// `f(error)` when the error is a violation of `constraint`; any other error converted with
    /// `From`.
    fn on_constraint<E: From<sqlx::Error>>(
        self,
        constraint: &str,
        f: impl FnOnce(Box<dyn sqlx::error::DatabaseError>) -> E,
    ) -> Result<T, E>;
}

impl<T> ResultExt<T> for Result<T, sqlx::Error> {
    fn on_constraint<E: From<sqlx::Error>>(
        self,
        constraint: &str,
        f: impl FnOnce(Box<dyn sqlx::error::DatabaseError>) -> E,
    ) -> Result<T, E> {
        self.map_err(|e| match e {
            sqlx::Error::Database(db) if db.constraint() == Some(constraint) => f(db),
            e => e.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn a_search_takes_wildcards_and_the_escape_character_literally() {
        assert_eq!(contains_pattern("adele"), "%adele%");
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
