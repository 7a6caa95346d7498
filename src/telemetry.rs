//! Logging: human-readable by default, JSON with `GANGWAY_LOG_FORMAT=json`; `RUST_LOG` filters.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (idempotent).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("GANGWAY_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
