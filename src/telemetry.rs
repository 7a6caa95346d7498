//! Logging: human-readable by default, JSON with `GANGWAY_LOG_FORMAT=json`; `RUST_LOG` filters.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// What is logged when `RUST_LOG` says nothing.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_sessions=warn,tower_http=info";

/// Installs the global subscriber with [`DEFAULT_FILTER`] (idempotent).
pub fn init() {
    init_with_default(DEFAULT_FILTER)
}

/// Installs the global subscriber, logging what `RUST_LOG` says or else `default` (`off` for
/// commands whose output is their figures).
pub fn init_with_default(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    if std::env::var("GANGWAY_LOG_FORMAT").as_deref() == Ok("json") {
        let _ = json_subscriber(filter, std::io::stderr).try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// The JSON-lines subscriber of `GANGWAY_LOG_FORMAT=json`: each line carries its event's
/// fields, the current span's (`span`: a request's `request_id`, a sync's `tenant_id` and
/// `run_id`) and every enclosing span's (`spans`).
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .finish()
}
