//! What a process runs and how it stops: the portal and its background tasks (mail and webhook
//! delivery, directory sync workers and scheduler, SCIM push, session sweeping, rate-limit pruning,
//! metrics upkeep) in one [`Registry`], ended by Ctrl-C or SIGTERM: the requests in flight
//! finish, each task finishes or gives back the item in hand, each running sync stops after
//! the page in hand. `gangway serve`, `gangway worker` and `gangway demo` run through here.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::background::{Registry, Task, from_fn};
use crate::directory::subscriptions;
use crate::directory::sync::Syncer;
use crate::directory::worker::{self, WorkerConfig};
use crate::invitations::mail;
use crate::scim;
use crate::signin::{self, backchannel};
use crate::web::{AppState, Application, MetricsServer, session_store};
use crate::webhooks::delivery;

/// Builds the portal from `cfg` and runs it.
pub async fn serve(cfg: crate::config::Config) -> anyhow::Result<()> {
    run_portal(Application::build(cfg).await?).await
}

/// Runs the portal with its background tasks until the process is interrupted.
pub async fn run_portal(application: Application) -> anyhow::Result<()> {
    let state = application.state().clone();
    tracing::info!(port = application.port(), public_url = %state.cfg.public_url, "gangway is listening");
    let stop = stop_on_signal();
    let tasks = portal_tasks(&state, state.cfg.sync.workers, stop.clone())?;
    let metrics = spawn_metrics(&state, stop.clone()).await?;
    let tasks = tokio::spawn(tasks.run(stop.clone()));
    let served = application.run_until(stop.clone().cancelled_owned()).await;
    // The portal can also end on its own (a listener error): its tasks end with it.
    stop.cancel();
    tasks.await?;
    metrics.await?;
    served?;
    tracing::info!("stopped; requests in flight were finished");
    Ok(())
}

/// The portal process's background tasks: mail (when SMTP is configured), webhooks, sessions,
/// the setup's sign-in, rate limits, metrics and `sync_workers` syncs at once (none at 0).
pub fn portal_tasks(
    state: &AppState,
    sync_workers: usize,
    stop: CancellationToken,
) -> anyhow::Result<Registry> {
    let mut registry = worker_tasks(state, sync_workers, stop);
    match &state.cfg.smtp_url {
        Some(url) => registry.register(
            Task::MailOutbox,
            mail::PERIOD,
            mail::OutboxTask::new(
                state.db.clone(),
                state.cfg.keys.clone(),
                mail::Mailer::new(url, &state.cfg.mail_from)?,
            ),
        ),
        None => tracing::warn!("GANGWAY_SMTP_URL is not set: invitation mail stays queued"),
    }
    let db = state.db.clone();
    registry.register(
        Task::SessionSweep,
        Duration::from_secs(3600),
        from_fn(move || {
            let db = db.clone();
            Box::pin(async move {
                let deleted = session_store::delete_expired(&db).await?;
                Ok(format!("deleted {deleted} expired sessions"))
            })
        }),
    );
    let following = state.clone();
    registry.register(
        Task::SetupSignIn,
        // Woken when a sign-in starts; the period only picks up one a stopped process followed.
        Duration::from_secs(60),
        from_fn(move || {
            let state = following.clone();
            Box::pin(async move { follow_setup(&state).await })
        }),
    );
    let limits = state.limits.clone();
    registry.register(
        Task::RateLimitPruning,
        Duration::from_secs(60),
        from_fn(move || {
            limits.prune();
            Box::pin(async { Ok("pruned".to_owned()) })
        }),
    );
    Ok(registry)
}

/// A worker process's background tasks: `concurrency` syncs at once with their scheduler (none
/// at 0), webhook delivery and its log's pruning, back-channel logouts, sign-in upkeep, consent
/// checks, client secret rotation, metrics upkeep.
pub fn worker_tasks(state: &AppState, concurrency: usize, stop: CancellationToken) -> Registry {
    let mut registry = Registry::new(state.db.clone());
    if concurrency > 0 {
        tracing::info!(concurrency, "directory sync workers started");
        let cfg = WorkerConfig {
            lease: state.cfg.sync.lease,
            ..WorkerConfig::new(concurrency)
        };
        worker::register(&mut registry, syncer(state), cfg, stop);
        let keeper = state.subscriptions();
        if keeper.enabled() {
            registry.register(
                Task::DirectorySubscriptions,
                subscriptions::PERIOD,
                from_fn(move || {
                    let keeper = keeper.clone();
                    Box::pin(async move {
                        let kept = keeper.keep_all().await?;
                        Ok(format!(
                            "{} created, {} renewed, {} tenants failed",
                            kept.created, kept.renewed, kept.failed
                        ))
                    })
                }),
            );
        } else {
            tracing::info!(
                "the public URL is not HTTPS: no change notifications, tenants are polled on their schedules"
            );
        }
    }
    registry.register(
        Task::WebhookDeliveries,
        delivery::PERIOD,
        delivery::DeliveryTask::new(state.db.clone(), state.cfg.keys.clone()),
    );
    let db = state.db.clone();
    registry.register(
        Task::WebhookLogPruning,
        Duration::from_secs(3600),
        from_fn(move || {
            let db = db.clone();
            Box::pin(async move {
                let deleted = delivery::prune(&db).await?;
                Ok(format!("deleted {deleted} old deliveries"))
            })
        }),
    );
    let db = state.db.clone();
    registry.register(
        Task::EventLogPruning,
        Duration::from_secs(3600),
        from_fn(move || {
            let db = db.clone();
            Box::pin(async move {
                let deleted = crate::events::prune(&db).await?;
                Ok(format!("deleted {deleted} old events"))
            })
        }),
    );
    registry.register(
        Task::BackchannelLogouts,
        backchannel::PERIOD,
        backchannel::LogoutTask::new(
            state.db.clone(),
            state.cfg.keys.clone(),
            crate::web::oidc::issuer(&state.cfg),
        ),
    );
    let (db, keys) = (state.db.clone(), state.cfg.keys.clone());
    registry.register(
        Task::SigninUpkeep,
        signin::UPKEEP_PERIOD,
        from_fn(move || {
            let (db, keys) = (db.clone(), keys.clone());
            Box::pin(async move { Ok(signin::upkeep(&db, &keys).await?) })
        }),
    );
    let checker = state.consent_checker();
    registry.register(
        Task::ConsentChecks,
        Duration::from_secs(3600),
        from_fn(move || {
            let checker = checker.clone();
            Box::pin(async move { Ok(checker.check_due().await?) })
        }),
    );
    let rotating = state.clone();
    registry.register(
        Task::CertificateRotation,
        Duration::from_secs(3600),
        from_fn(move || {
            let state = rotating.clone();
            Box::pin(async move { rotate_certificate(&state).await })
        }),
    );
    registry.register(
        Task::ScimPush,
        scim::push::PERIOD,
        scim::push::PushTask::new(state.db.clone(), state.cfg.keys.clone()),
    );
    let (db, keys, settings, graph) = (
        state.db.clone(),
        state.cfg.keys.clone(),
        state.settings.clone(),
        state.graph.clone(),
    );
    registry.register(
        Task::SecretRotation,
        crate::setup::rotation::PERIOD,
        from_fn(move || {
            let (db, keys, settings, graph) =
                (db.clone(), keys.clone(), settings.clone(), graph.clone());
            Box::pin(async move {
                let live = settings.current().await?;
                let done = crate::setup::rotation::try_rotate(&db, &keys, &live, &graph).await?;
                Ok(done.summary())
            })
        }),
    );
    registry.register(
        Task::MetricsUpkeep,
        Duration::from_secs(10),
        from_fn(|| {
            crate::metrics::upkeep();
            Box::pin(async { Ok("histograms drained".to_owned()) })
        }),
    );
    registry
}

/// How long a replaced app certificate stays registered: every process reads the active one
/// again within seconds (the settings cache), and past five minutes no assertion it signed
/// (they live five minutes) is still in flight.
pub const CERTIFICATE_OVERLAP: Duration = Duration::from_secs(15 * 60);

/// Follows the newest setup sign-in (Console → Setup) until it ends: polls Entra ID at the
/// interval it gave and, once the administrator signed in, runs the setup with their token and
/// records its checklist (or why it stopped). Woken when a sign-in starts.
async fn follow_setup(state: &AppState) -> anyhow::Result<String> {
    loop {
        match follow_setup_step(state).await? {
            SetupStep::Waiting(next) => tokio::time::sleep(next).await,
            SetupStep::Ended(summary) => return Ok(summary),
        }
    }
}

/// Where a setup sign-in stands after one [`follow_setup_step`].
#[derive(Debug)]
pub enum SetupStep {
    /// Still waiting for the administrator: look again after this long.
    Waiting(Duration),
    /// Nothing (more) to follow: what happened.
    Ended(String),
}

/// One step of [`follow_setup`]: polls Entra ID if the newest sign-in's next poll is due (one
/// process per interval), and runs the setup once it signed in.
pub async fn follow_setup_step(state: &AppState) -> anyhow::Result<SetupStep> {
    use crate::setup::pending::{self, Advanced, State};

    let Some(current) = pending::latest(&state.db).await? else {
        return Ok(SetupStep::Ended("no setup sign-in".into()));
    };
    if current.state != State::Waiting {
        return Ok(SetupStep::Ended("no setup sign-in is waiting".into()));
    }
    let actor = current.actor();
    let advanced = pending::advance(
        &state.db,
        &state.cfg.keys,
        &state.http,
        |tenant| state.cfg.setup_login(tenant),
        current.id,
        &actor,
    )
    .await?;
    let Advanced::SignedIn(id, tenant, token) = advanced else {
        let interval = u64::try_from(current.interval_secs).unwrap_or(5);
        return Ok(SetupStep::Waiting(Duration::from_secs(interval)));
    };
    let live = state.settings.current().await?;
    let outcome = crate::setup::run_and_store(
        &state.db,
        &state.cfg.keys,
        &state.graph,
        &live,
        &state.cfg.public_url,
        &token,
        tenant,
        &actor,
    )
    .await;
    state.settings.invalidate();
    let recorded = match &outcome {
        Ok(o) => Ok(o.steps.as_slice()),
        Err(e) => Err(format!(
            "Signed in, but the setup stopped at {e}. Nothing after that step was changed; the administrator needs {} in this tenant. Sign in again to retry.",
            crate::setup::SETUP_SCOPES.join(", ")
        )),
    };
    pending::finish(&state.db, id, recorded, &actor).await?;
    Ok(SetupStep::Ended(match outcome {
        Ok(_) => format!("set up the app registration in tenant {tenant}"),
        Err(e) => format!("the setup in tenant {tenant} stopped: {e}"),
    }))
}

/// One rotation pass over the provider app's certificates, with the live settings.
async fn rotate_certificate(state: &AppState) -> anyhow::Result<String> {
    let live = state.settings.current().await?;
    let (Some(tenant), Ok(entra), Ok(client_id)) = (
        live.settings.provider_tenant_id,
        live.entra(),
        live.client_id(),
    ) else {
        return Ok(
            "the app is not set up yet (no provider tenant id or client id): nothing to rotate"
                .into(),
        );
    };
    let provider = crate::credentials::rotation::Provider {
        entra,
        graph: &state.graph,
        tenant: &tenant,
        client_id,
    };
    let outcome = crate::credentials::rotation::rotate(
        &state.db,
        &state.cfg.keys,
        provider,
        live.settings.certificate_rotation_days.into(),
        CERTIFICATE_OVERLAP,
    )
    .await?;
    Ok(outcome.to_string())
}

/// `gangway worker`: sync workers (and the scheduler) and webhook delivery, `concurrency` syncs
/// at once, until Ctrl-C or SIGTERM; each running sync commits the page in hand and gives its
/// job back.
pub async fn run_workers(state: AppState, concurrency: usize) -> anyhow::Result<()> {
    let stop = stop_on_signal();
    let metrics = spawn_metrics(&state, stop.clone()).await?;
    worker_tasks(&state, concurrency, stop.clone())
        .run(stop.clone())
        .await;
    metrics.await?;
    Ok(())
}

/// A token cancelled on Ctrl-C or SIGTERM.
fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown_requested() => cancel.cancel(),
            () = cancel.cancelled() => {}
        }
    });
    stop
}

/// With `GANGWAY_METRICS_LISTEN`, serves `/metrics` there until `stop`.
async fn spawn_metrics(
    state: &AppState,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let server = match state.cfg.metrics.listen {
        Some(addr) => Some(MetricsServer::bind(state.clone(), addr).await?),
        None => None,
    };
    Ok(tokio::spawn(async move {
        let Some(server) = server else { return };
        if let Ok(addr) = server.local_addr() {
            tracing::info!(%addr, "metrics are served on their own listener");
        }
        if let Err(e) = server.run_until(stop.cancelled_owned()).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    }))
}

/// The sync engine over the state's database, Entra ID and Graph clients.
pub fn syncer(state: &AppState) -> Syncer {
    state.syncer()
}

/// Ctrl-C, or SIGTERM as sent by `docker stop` and process managers.
async fn shutdown_requested() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight and the work in hand");
}
