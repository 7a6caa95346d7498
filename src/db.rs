//! Connecting to Postgres, creating the database when missing, and migrating it.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

/// Connections a pool opens at most when nothing says otherwise (the CLI's commands, tests).
pub const DEFAULT_POOL_SIZE: u32 = 10;

/// A pooled connection idle this long is pinged before it is handed out.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Opens a pool of at most `size` connections on `url`, each opened when first needed (one is
/// opened now, to fail early).
pub async fn connect(url: &str, size: u32) -> Result<PgPool, sqlx::Error> {
    with_tls_fallback(url, options(url)?, |options| pool(options, size)).await
}

fn pool(options: PgConnectOptions, size: u32) -> impl Future<Output = Result<PgPool, sqlx::Error>> {
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
        .connect_with(options)
}

/// One connection to `url`, outside any pool, spoken to as the pools are (see [`options`]).
pub async fn connect_one(url: &str) -> Result<PgConnection, sqlx::Error> {
    open(url, options(url)?).await
}

/// One connection with `options`, which [`options`] made of `url`.
async fn open(url: &str, options: PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    with_tls_fallback(
        url,
        options,
        |options| async move { options.connect().await },
    )
    .await
}

/// `connect(options)`; when `options` speak in the clear only by [`options`]' loopback rule and
/// the server refuses that (its `pg_hba.conf` lets loopback in only with `hostssl`), once more
/// with TLS, as the URL's default asks.
async fn with_tls_fallback<T, F, Fut>(
    url: &str,
    options: PgConnectOptions,
    connect: F,
) -> Result<T, sqlx::Error>
where
    F: Fn(PgConnectOptions) -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let by_rule = in_the_clear_on_loopback(url);
    match connect(options.clone()).await {
        // 28000 invalid_authorization_specification: no pg_hba.conf line let the client in.
        Err(sqlx::Error::Database(e)) if by_rule && e.code().as_deref() == Some("28000") => {
            connect(options.ssl_mode(PgSslMode::Prefer)).await
        }
        other => other,
    }
}

/// Creates the database named in `url` if it does not exist yet (used by `demo`).
pub async fn create_if_missing(url: &str) -> Result<(), sqlx::Error> {
    let target = options(url)?;
    let name = target.get_database().unwrap_or("postgres").to_owned();
    let mut admin = open(url, target.clone().database("postgres")).await?;
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
    let mut admin = open(url, target.database("postgres")).await?;
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
        let mut admin = connect_one(server_url).await?;
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

/// How Gangway connects to `url`: as it says, except that a server on loopback is spoken to in
/// the clear when neither the URL (`sslmode`) nor `PGSSLMODE` asks for TLS. Traffic on loopback
/// never leaves the machine, and `prefer`, the default, checks no certificate, so TLS there
/// protected nothing; it cost a sixth of the API's read rate (`gangway bench api`).
fn options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.log_statements(tracing::log::LevelFilter::Trace);
    Ok(if in_the_clear_on_loopback(url) {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
    })
}

/// Whether [`options`]' loopback rule applies to `url`.
pub(crate) fn in_the_clear_on_loopback(url: &str) -> bool {
    loopback_without_tls_asked(url, std::env::var("PGSSLMODE").ok().as_deref())
}

/// Whether `url` names a server on loopback and neither it nor `PGSSLMODE` (`env_mode`) names
/// a TLS mode.
fn loopback_without_tls_asked(url: &str, env_mode: Option<&str>) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    let stated = env_mode.is_some_and(|m| !m.is_empty())
        || url
            .query_pairs()
            .any(|(key, _)| matches!(key.as_ref(), "sslmode" | "ssl-mode" | "host"));
    // A `postgres:` URL's host is not parsed as an address: an IPv4 one comes as a name.
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    loopback && !stated
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
    use super::{contains_pattern, loopback_without_tls_asked, options};
    use sqlx::postgres::PgSslMode;

    #[test]
    fn a_server_on_loopback_is_spoken_to_in_the_clear_unless_tls_is_asked_for() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/gangway",
            "postgres://postgres@127.0.0.2/gangway",
            "postgres://postgres@localhost/gangway",
            "postgres://postgres@[::1]:5432/gangway?application_name=x",
        ] {
            assert!(loopback_without_tls_asked(url, None), "{url}");
            assert!(!loopback_without_tls_asked(url, Some("require")), "{url}");
        }
        for url in [
            "postgres://postgres@db.internal:5432/gangway",
            "postgres://postgres@10.0.0.5/gangway",
            "postgres://postgres@127.0.0.1/gangway?sslmode=prefer",
            "postgres://postgres@127.0.0.1/gangway?ssl-mode=require",
            "postgres://postgres@localhost/gangway?host=/var/run/postgresql",
            "not a url",
        ] {
            assert!(!loopback_without_tls_asked(url, None), "{url}");
        }
        assert!(loopback_without_tls_asked(
            "postgres://localhost/g",
            Some("")
        ));
    }

    #[test]
    fn the_rule_sets_the_mode_and_a_stated_mode_is_kept() {
        if std::env::var_os("PGSSLMODE").is_some() {
            return;
        }
        let mode = |url| options(url).unwrap().get_ssl_mode();
        assert!(matches!(
            mode("postgres://u@127.0.0.1/g"),
            PgSslMode::Disable
        ));
        assert!(matches!(
            mode("postgres://u@127.0.0.1/g?sslmode=require"),
            PgSslMode::Require
        ));
        assert!(matches!(
            mode("postgres://u@db.internal/g"),
            PgSslMode::Prefer
        ));
    }

    #[test]
    fn a_search_takes_wildcards_and_the_escape_character_literally() {
        assert_eq!(contains_pattern("adele"), "%adele%");
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
