//! Prometheus metrics: the process-wide recorder (installed once, whatever the number of
//! portals a process builds) and the counters the sync workers feed after each run. The
//! gauges read from Postgres are computed when `/metrics` is scraped (`web::ops`).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// HTTP requests served, by method, route template and status.
pub const HTTP_REQUESTS: &str = "gangway_http_requests_total";
/// How long requests took, by method, route template and status.
pub const HTTP_DURATION: &str = "gangway_http_request_duration_seconds";
/// Sync runs finished, by outcome.
pub const SYNC_RUNS: &str = "gangway_sync_runs_total";
/// Directory objects synced, by change (added, updated, soft_deleted, removed).
pub const SYNC_OBJECTS: &str = "gangway_sync_objects_total";
/// Waits Graph asked for (429, 503).
pub const SYNC_THROTTLED_WAITS: &str = "gangway_sync_throttled_waits_total";
/// Their total length, in milliseconds.
pub const SYNC_THROTTLED_MILLIS: &str = "gangway_sync_throttled_wait_milliseconds_total";

/// Sign-ins through Gangway's OpenID Provider, by outcome (succeeded, refused).
pub const SIGNINS: &str = "gangway_signins_total";
/// Counter: consent checks of tenants, by result (`ok`, `drifted`, `failed`).
pub const CONSENT_CHECKS: &str = "gangway_consent_checks_total";
/// Counter: the provider app's credentials Gangway rotated, by kind (`certificate`, `secret`).
pub const CREDENTIAL_ROTATIONS: &str = "gangway_credential_rotations_total";

/// Latency buckets, in seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use. Installing twice never panics: a process
/// that already has another global recorder gets a handle that renders nothing recorded.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .expect("the buckets are not empty")
        };
        let handle = match builder().install_recorder() {
            Ok(handle) => handle,
            Err(e) => {
                tracing::warn!(error = %e, "another metrics recorder is installed; /metrics shows only the database gauges");
                builder().build_recorder().handle()
            }
        };
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests served");
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency"
    );
    metrics::describe_counter!(SYNC_RUNS, "Directory sync runs finished, by outcome");
    metrics::describe_counter!(SIGNINS, "Sign-ins of customers' users, by outcome");
    metrics::describe_counter!(
        CONSENT_CHECKS,
        "Checks of what tenants grant the provider's app, by result"
    );
    metrics::describe_counter!(
        CREDENTIAL_ROTATIONS,
        "Credentials of the provider's app Gangway rotated, by kind"
    );
    metrics::describe_counter!(SYNC_OBJECTS, "Directory objects synced, by change");
    metrics::describe_counter!(SYNC_THROTTLED_WAITS, "Waits Graph asked for (429, 503)");
    metrics::describe_counter!(
        SYNC_THROTTLED_MILLIS,
        "Time spent waiting for Graph's throttling, in milliseconds"
    );
}

/// Renders what the recorder holds in Prometheus' text format.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

/// Drains the histograms, so a process nobody scrapes does not keep every sample (the
/// `metrics_upkeep` background task calls it).
pub fn upkeep() {
    handle().run_upkeep();
}

/// Counts one HTTP request.
pub fn record_request(method: &str, route: &str, status: u16, seconds: f64) {
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(seconds);
}

/// Counts one consent check with its `result` (`ok`, `drifted`, `failed`).
pub fn record_consent_check(result: &'static str) {
    metrics::counter!(CONSENT_CHECKS, "result" => result).increment(1);
}

/// Counts one rotation of the provider app's credential of `kind` (`certificate`, `secret`).
pub fn record_credential_rotation(kind: &'static str) {
    let _ = handle();
    metrics::counter!(CREDENTIAL_ROTATIONS, "kind" => kind).increment(1);
}

/// Counts a sign-in through Gangway's OpenID Provider by `outcome`.
pub fn record_signin(outcome: &'static str) {
    let _ = handle();
    metrics::counter!(SIGNINS, "outcome" => outcome).increment(1);
}

/// What a completed sync run changed and waited, as plain numbers (this module sits below the
/// directory code that counts them).
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncCounts {
    /// Objects new to the copy.
    pub added: i32,
    /// Objects whose properties changed.
    pub updated: i32,
    /// Objects moved to the recycle bin.
    pub soft_deleted: i32,
    /// Objects gone for good.
    pub removed: i32,
    /// Waits Graph asked for (429, 503).
    pub throttled_waits: i32,
    /// Their total, in seconds.
    pub throttled_seconds: f64,
}

/// Counts a finished sync run: its outcome and, when it completed, the objects it changed and
/// its throttled waits.
pub fn record_sync_run(outcome: &str, tally: Option<SyncCounts>) {
    let _ = handle();
    metrics::counter!(SYNC_RUNS, "outcome" => outcome.to_owned()).increment(1);
    let Some(tally) = tally else { return };
    for (change, n) in [
        ("added", tally.added),
        ("updated", tally.updated),
        ("soft_deleted", tally.soft_deleted),
        ("removed", tally.removed),
    ] {
        metrics::counter!(SYNC_OBJECTS, "change" => change)
            .increment(u64::try_from(n).unwrap_or(0));
    }
    metrics::counter!(SYNC_THROTTLED_WAITS)
        .increment(u64::try_from(tally.throttled_waits).unwrap_or(0));
    metrics::counter!(SYNC_THROTTLED_MILLIS)
        .increment((tally.throttled_seconds.max(0.0) * 1000.0) as u64);
}

/// The gauges read from `db` at scrape time, in Prometheus' text format, one query each:
/// invitations by effective status, tenants by status, the job queue, the outbox backlog.
pub async fn database_gauges(db: &sqlx::PgPool) -> Result<String, sqlx::Error> {
    use std::fmt::Write;
    let mut out = String::new();
    let invitations: Vec<(String, i64)> = sqlx::query!(
        r#"select effective_status as "status!", count(*) as "count!"
           from invitation_view group by 1 order by 1"#,
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| (r.status, r.count))
    .collect();
    by_label(
        &mut out,
        "gangway_invitations",
        "Invitations by effective status (expired derived from expires_at)",
        "status",
        &[
            "pending",
            "opened",
            "consented",
            "declined",
            "failed",
            "revoked",
            "expired",
        ],
        &invitations,
    );
    let tenants: Vec<(String, i64)> =
        sqlx::query!(r#"select status, count(*) as "count!" from tenants group by 1 order by 1"#,)
            .fetch_all(db)
            .await?
            .into_iter()
            .map(|r| (r.status, r.count))
            .collect();
    by_label(
        &mut out,
        "gangway_tenants",
        "Tenants by status",
        "status",
        &[
            "active",
            "syncing",
            "reconsent_required",
            "disabled",
            "offboarded",
        ],
        &tenants,
    );
    let queue = sqlx::query!(
        r#"select count(*) filter (where status = 'queued') as "queued!",
                  count(*) filter (where status = 'queued' and run_at <= now()) as "due!",
                  count(*) filter (where status = 'running') as "running!",
                  coalesce(extract(epoch from now() - min(run_at) filter (where status = 'queued' and run_at <= now()))::float8, 0)
                      as "oldest!"
           from jobs where status in ('queued', 'running')"#,
    )
    .fetch_one(db)
    .await?;
    let jobs = [
        ("queued".to_owned(), queue.queued),
        ("due".to_owned(), queue.due),
        ("running".to_owned(), queue.running),
    ];
    by_label(
        &mut out,
        "gangway_jobs",
        "Jobs queued (due: their time has come), and running",
        "state",
        &["queued", "due", "running"],
        &jobs,
    );
    let _ = writeln!(
        out,
        "# HELP gangway_jobs_oldest_due_age_seconds How long the oldest due job has waited to be claimed\n\
         # TYPE gangway_jobs_oldest_due_age_seconds gauge\n\
         gangway_jobs_oldest_due_age_seconds {}",
        queue.oldest.max(0.0)
    );
    let deliveries: Vec<(String, i64)> = sqlx::query!(
        r#"select case when delivered_at is not null then 'delivered'
                       when failed_at is not null then 'failed' else 'pending' end as "state!",
                  count(*) as "count!"
           from webhook_deliveries group by 1"#,
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| (r.state, r.count))
    .collect();
    by_label(
        &mut out,
        "gangway_webhook_deliveries",
        "Webhook deliveries: waiting or retrying, delivered, failed for good",
        "state",
        &["pending", "delivered", "failed"],
        &deliveries,
    );
    let unsent =
        sqlx::query_scalar!(r#"select count(*) as "count!" from outbox where sent_at is null"#)
            .fetch_one(db)
            .await?;
    let _ = writeln!(
        out,
        "# HELP gangway_outbox_unsent Invitation mail not delivered yet\n\
         # TYPE gangway_outbox_unsent gauge\n\
         gangway_outbox_unsent {unsent}"
    );
    Ok(out)
}

/// A gauge per label value: every `known` one (0 when absent) and any other the database holds.
fn by_label(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    known: &[&str],
    counts: &[(String, i64)],
) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    let count = |value: &str| {
        counts
            .iter()
            .find(|(v, _)| v == value)
            .map_or(0, |(_, n)| *n)
    };
    for value in known {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {}", count(value));
    }
    for (value, n) in counts {
        if !known.contains(&value.as_str()) {
            let value = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
        }
    }
}
