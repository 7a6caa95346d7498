//! `gangway bench sync`'s change-to-copy latency: the portal serves Graph's change
//! notifications on loopback (over plain HTTP, as in development), the tenants are subscribed,
//! sync workers run, and single-user changes made through the emulator's admin API one at a
//! time are timed until each is in the copy — nobody asks for a sync.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use entra_emulator::EmulatorAdmin;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::load::percentile_ms;
use crate::directory::worker::{self, WorkerConfig};
use crate::web::{AppState, Application};

/// How long one change may take to reach the copy before the benchmark gives up.
const GIVE_UP: Duration = Duration::from_secs(120);

/// Change-to-copy latency with change notifications.
#[derive(Debug, Clone, Serialize)]
pub struct NotifyReport {
    /// Changes timed, one user's display name each.
    pub changes: usize,
    /// The pause between one change being in the copy and the next change.
    pub interval_ms: u64,
    /// Median time from the emulator accepting a change to the copy holding it.
    pub p50_ms: f64,
    /// 95th percentile of the same.
    pub p95_ms: f64,
    /// The slowest.
    pub max_ms: f64,
    /// Sync runs the notifications started (a burst may share one).
    pub rounds: i64,
}

/// Serves the portal for `state` on `listener`, subscribes every tenant, runs sync workers and
/// times `changes` changes of users of `tenant` (`entra_tenant` at the emulator), spaced by
/// `interval`.
pub async fn change_to_copy(
    state: &AppState,
    listener: TcpListener,
    admin: &EmulatorAdmin,
    (tenant, entra_tenant): (Uuid, &str),
    changes: usize,
    interval: Duration,
) -> anyhow::Result<NotifyReport> {
    let stop = CancellationToken::new();
    let _stopped_whatever_happens = stop.clone().drop_guard();
    let portal = Application::with_listener((*state.cfg).clone(), state.db.clone(), listener)?;
    let served = stop.clone();
    tokio::spawn(portal.run_until(async move { served.cancelled().await }));
    let kept = state.subscriptions().keep_all().await?;
    if kept.failed > 0 || kept.created == 0 {
        bail!("the tenants could not be subscribed to change notifications: {kept:?}");
    }
    let before = sqlx::query_scalar!(r#"select coalesce(max(id), 0) as "id!" from sync_runs"#)
        .fetch_one(&state.db)
        .await?;
    let workers = tokio::spawn(worker::run(
        crate::runtime::syncer(state),
        WorkerConfig::new(2),
        stop.clone(),
    ));
    let users = sqlx::query_scalar!(
        "select object_id from directory_users
         where tenant_id = $1 and soft_deleted_at is null order by object_id limit $2",
        tenant,
        changes as i64,
    )
    .fetch_all(&state.db)
    .await?;
    let mut took = Vec::with_capacity(users.len());
    for (n, user) in users.iter().enumerate() {
        let name = format!("Notified change {n} {}", Uuid::new_v4());
        admin
            .patch(
                &format!("/_emulator/tenants/{entra_tenant}/users/{user}"),
                &json!({ "displayName": name }),
            )
            .await?;
        let changed = Instant::now();
        loop {
            let copied = sqlx::query_scalar!(
                r#"select exists(select 1 from directory_users
                   where tenant_id = $1 and object_id = $2 and display_name = $3) as "copied!""#,
                tenant,
                user,
                name,
            )
            .fetch_one(&state.db)
            .await?;
            if copied {
                break;
            }
            if changed.elapsed() > GIVE_UP || workers.is_finished() {
                bail!("change {n} did not reach the copy within {GIVE_UP:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        took.push(changed.elapsed());
        tokio::time::sleep(interval).await;
    }
    stop.cancel();
    workers.await.context("the sync workers")?;
    let rounds = sqlx::query_scalar!(
        r#"select count(*) as "n!" from sync_runs where id > $1 and tenant_id = $2"#,
        before,
        tenant,
    )
    .fetch_one(&state.db)
    .await?;
    took.sort();
    Ok(NotifyReport {
        changes: took.len(),
        interval_ms: interval.as_millis() as u64,
        p50_ms: percentile_ms(&took, 50),
        p95_ms: percentile_ms(&took, 95),
        max_ms: percentile_ms(&took, 100),
        rounds,
    })
}
