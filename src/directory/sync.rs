//! One sync of one tenant: the users and groups delta chains, side by side, each fetching its
//! next page while the current one is written. Throttling is waited out as Graph says
//! (`Retry-After`, fractions too) or with jittered backoff; dropped connections and Graph's
//! 500/502/504 are retried the same way; an expired or reset delta link (410, or any 4xx with a
//! resync code) starts a full round. Memory holds at most three batches per chain (two being
//! written, one being fetched), whatever the directory's size.

use std::collections::HashSet;
use std::time::Duration;

use rand::Rng;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::budget::{self, Budget};
use super::credentials::{CredentialError, TenantAccess, TokenSource};
use super::delta::{self, GroupFields, Link, Page, UserFields};
use super::store::{self, ChainState, StoreError, Stored, Tally};
use crate::graph::{GraphClient, GraphError};

/// During a full round, pages are gathered until they hold this many objects and member
/// changes (or [`BATCH_PAGES`] pages), then written in one transaction: a round that copies a
/// whole directory is bound by the cost of each transaction and statement, not by its rows.
/// Incremental rounds keep one page a transaction, and the events and counts of each.
const BATCH_SIZE: usize = 1_000;

/// At most this many pages in one transaction.
const BATCH_PAGES: i32 = 10;

/// How hard a sync tries before giving a page up (the job is then retried later).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries per request (throttled, dropped, timed out or a 5xx) before the run fails.
    pub attempts: u32,
    /// The first backoff without a `Retry-After`; doubled each time, with jitter.
    pub backoff: Duration,
    /// No single wait is longer.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 10,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(120),
        }
    }
}

/// Why a sync stopped short.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The tenant's grant no longer works: only a new consent helps.
    #[error("{0}")]
    ReconsentRequired(String),
    /// Graph refused a read for want of a permission, named.
    #[error("{0}")]
    PermissionMissing(String),
    /// Entra ID knows no such tenant any more.
    #[error("{0}")]
    TenantNotFound(String),
    /// Graph kept failing (after retries) or answered out of shape.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// Getting a token failed for a reason worth retrying.
    #[error("{0}")]
    Credentials(String),
    /// Asked to stop (shutdown), after committing the page in hand.
    #[error("stopped before the round was complete")]
    Stopped,
    /// The tenant was offboarded or stopped meanwhile.
    #[error("the tenant is no longer active")]
    TenantInactive,
    /// The chain moved on under this worker: another worker has the tenant now.
    #[error("another worker took this sync over")]
    TakenOver,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<CredentialError> for SyncError {
    fn from(e: CredentialError) -> Self {
        match e {
            CredentialError::ReconsentRequired(why) => Self::ReconsentRequired(why),
            CredentialError::TenantNotFound(why) => Self::TenantNotFound(why),
            CredentialError::Failed(why) => Self::Credentials(why),
            CredentialError::Db(e) => Self::Db(e),
        }
    }
}

/// What kind of failure a failed run was, stored beside the tenant's sync error so the console
/// can say what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Entra ID knows no such tenant any more (AADSTS90002).
    TenantNotFound,
    /// Graph refused for want of a permission.
    PermissionMissing,
    /// Graph kept throttling (429/503) after the retries.
    Throttled,
    /// Anything else: retried later.
    Other,
}

impl FailureKind {
    /// Its stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TenantNotFound => "tenant_not_found",
            Self::PermissionMissing => "permission_missing",
            Self::Throttled => "throttled",
            Self::Other => "other",
        }
    }

    /// Whether a later run may succeed without anyone doing anything.
    pub fn retried(self) -> bool {
        matches!(self, Self::Throttled | Self::Other)
    }

    /// Reads the stored form; an unknown one is `Other`.
    pub fn parse(stored: &str) -> Self {
        [
            Self::TenantNotFound,
            Self::PermissionMissing,
            Self::Throttled,
        ]
        .into_iter()
        .find(|k| k.as_str() == stored)
        .unwrap_or(Self::Other)
    }
}

impl SyncError {
    /// The kind of failure this is, as the tenant's page explains it.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            Self::TenantNotFound(_) => FailureKind::TenantNotFound,
            Self::PermissionMissing(_) => FailureKind::PermissionMissing,
            Self::Graph(GraphError::Throttled { .. }) => FailureKind::Throttled,
            _ => FailureKind::Other,
        }
    }
}

impl From<StoreError> for SyncError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TenantInactive => Self::TenantInactive,
            StoreError::StateMoved => Self::TakenOver,
            StoreError::Db(e) => Self::Db(e),
        }
    }
}

/// Runs syncs: Graph, tokens and the database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Syncer {
    db: PgPool,
    graph: GraphClient,
    tokens: TokenSource,
    policy: RetryPolicy,
    budget: Budget,
}

impl Syncer {
    /// A syncer over `db`, reading Graph with tokens from `tokens`.
    pub fn new(db: PgPool, graph: GraphClient, tokens: TokenSource, policy: RetryPolicy) -> Self {
        Self {
            budget: Budget::new(db.clone(), 0.0),
            db,
            graph,
            tokens,
            policy,
        }
    }

    /// The same syncer, its Graph reads drawing on `budget` (without one, they do not wait).
    pub fn with_budget(self, budget: Budget) -> Self {
        Self { budget, ..self }
    }

    /// The database.
    pub fn db(&self) -> &PgPool {
        &self.db
    }

    /// The Graph client.
    pub fn graph(&self) -> &GraphClient {
        &self.graph
    }

    /// The Graph client for calls to `tenant` outside its delta rounds, each counted against
    /// its throttle budget.
    pub fn graph_for(&self, tenant: &TenantAccess) -> GraphClient {
        self.graph
            .for_tenant(budget::app_of(tenant), tenant.entra_tenant_id)
    }

    /// Where tokens come from.
    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    /// Syncs `tenant`'s users and groups into the copy, recording progress on run `run_id`
    /// page by page. Stops after the page in hand when `stop` is cancelled. The run's total is
    /// in the `sync_runs` row; the returned tally is this call's.
    pub async fn sync(
        &self,
        tenant: &TenantAccess,
        run_id: i64,
        stop: &CancellationToken,
    ) -> Result<Tally, SyncError> {
        let (users, groups) = tokio::join!(
            self.chain::<UserFields>(tenant, run_id, stop),
            self.chain::<GroupFields>(tenant, run_id, stop),
        );
        // One chain's failure does not undo the other's progress: both are committed.
        let (mut total, groups) = (users?, groups?);
        total.add(&groups);
        // Both chains have ended their rounds: the scope is recomputed over the whole picture.
        super::scope::after_round(&self.db, &self.graph, &self.tokens, tenant, run_id).await?;
        Ok(total)
    }

    /// One chain to the end of its round, starting over (once or twice) when Graph says the
    /// delta link is no longer good.
    async fn chain<F: Stored + serde::de::DeserializeOwned + Default + Send + 'static>(
        &self,
        tenant: &TenantAccess,
        run_id: i64,
        stop: &CancellationToken,
    ) -> Result<Tally, SyncError> {
        let mut state = store::chain_state(&self.db, tenant.id, F::RESOURCE).await?;
        let mut total = Tally::default();
        for _ in 0..3 {
            match self
                .round::<F>(tenant, run_id, &mut state, &mut total, stop)
                .await
            {
                Err(SyncError::Graph(e)) if e.needs_resync() => {
                    tracing::info!(resource = F::RESOURCE.as_str(), error = %e, "delta link no longer valid: starting a full round");
                    state = store::restart_chain(&self.db, tenant.id, F::RESOURCE).await?;
                }
                other => return other.map(|()| total),
            }
        }
        Err(SyncError::Graph(GraphError::Resync {
            status: 410,
            code: "resyncRequired".into(),
        }))
    }

    /// Pages from `state` to the round's delta link. While a page is written the next one is
    /// already being fetched; during a full round, a batch sharing no object with the one being
    /// written is written beside it (see [`Flight`]), except the round's last, which decides
    /// what the round did not see and so waits for everything before it.
    async fn round<F: Stored + serde::de::DeserializeOwned + Default + Send + 'static>(
        &self,
        tenant: &TenantAccess,
        run_id: i64,
        state: &mut ChainState,
        total: &mut Tally,
        stop: &CancellationToken,
    ) -> Result<(), SyncError> {
        let full = state.full_round;
        let mut fetched = self
            .fetch_batch::<F>(tenant, state.link(F::RESOURCE), full, stop)
            .await;
        let mut flying: Option<Flight> = None;
        // The chain as the next batch's write finds it, once those in flight have committed.
        let mut from = state.clone();
        let ended = loop {
            let (page, fetching) = match fetched {
                Ok(fetched) => fetched,
                Err(e) => break Err(e),
            };
            let next = match &page.link {
                Link::Next(next) => Some(next.clone()),
                Link::Delta(_) => None,
            };
            let ids: HashSet<Uuid> = page.changes.iter().map(|c| c.id()).collect();
            let beside =
                full && next.is_some() && flying.as_ref().is_some_and(|f| f.ids.is_disjoint(&ids));
            if !beside && let Err(e) = land(flying.take(), state, total).await {
                break Err(e);
            }
            if let Some(started) = flying.as_mut().and_then(|f| f.started.take()) {
                // The batch before holds its connection before this one asks for one: a
                // batch waiting for the one before it never keeps that one from the pool.
                let _ = started.await;
            }
            let after = from.after(&page.link);
            let flight = Flight::launch(
                (self.db.clone(), tenant.id, run_id),
                std::mem::replace(&mut from, after),
                (page, fetching, ids),
                flying.as_mut(),
            );
            let earlier = flying.replace(flight);
            let Some(next) = next else {
                break land(flying.take(), state, total).await;
            };
            let (landed, prefetched) = tokio::join!(
                land(earlier, state, total),
                self.fetch_batch::<F>(tenant, &next, full, stop)
            );
            fetched = prefetched;
            if let Err(e) = landed {
                break Err(e);
            }
            if stop.is_cancelled() {
                break Err(SyncError::Stopped);
            }
        };
        // A write still in flight lands before the round says how it ended; when it failed
        // after the round did, the round's own error is the one reported.
        let last = land(flying, state, total).await;
        ended.and(last)
    }

    /// The page at `link`; during a full round, with the pages after it until the batch is
    /// worth a transaction of its own (see [`BATCH_SIZE`]). Their changes and the last one's
    /// link are applied together. Stops gathering when asked to stop.
    async fn fetch_batch<F: serde::de::DeserializeOwned + Default>(
        &self,
        tenant: &TenantAccess,
        link: &str,
        full_round: bool,
        stop: &CancellationToken,
    ) -> Result<(Page<F>, Tally), SyncError> {
        let (mut page, mut fetching) = self.fetch::<F>(tenant, link, stop).await?;
        while full_round
            && fetching.pages < BATCH_PAGES
            && page.size() < BATCH_SIZE
            && !stop.is_cancelled()
        {
            let Link::Next(next) = &page.link else { break };
            let (later, more) = self.fetch::<F>(tenant, &next.clone(), stop).await?;
            page.append(later);
            fetching.add(&more);
        }
        Ok((page, fetching))
    }

    /// One page, retried through throttling and dropped connections; the page and the waits
    /// are counted.
    async fn fetch<F: serde::de::DeserializeOwned + Default>(
        &self,
        tenant: &TenantAccess,
        link: &str,
        stop: &CancellationToken,
    ) -> Result<(Page<F>, Tally), SyncError> {
        let mut waited = Tally {
            pages: 1,
            ..Tally::default()
        };
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let take = self.budget.take(
                budget::app_of(tenant),
                tenant.id,
                tenant.entra_tenant_id,
                budget::cost(link),
            );
            tokio::select! {
                taken = take => { taken?; }
                () = stop.cancelled() => return Err(SyncError::Stopped),
            }
            let token = self.tokens.token(tenant).await?;
            let error = match self.graph.delta_page(link, &token).await {
                Ok(body) => {
                    let page =
                        delta::parse::<F>(&body).map_err(|e| GraphError::Decode(e.to_string()))?;
                    return Ok((page, waited));
                }
                Err(e) => e,
            };
            let wait = match &error {
                // An access token may be revoked before it expires: one fresh try.
                GraphError::Api { status: 401, .. } if !refreshed => {
                    refreshed = true;
                    self.tokens.forget(tenant.id);
                    continue;
                }
                GraphError::Api { status: 403, .. } => {
                    return Err(SyncError::PermissionMissing(missing_permission(link)));
                }
                GraphError::Throttled { retry_after, .. } => {
                    let wait = retry_after
                        .unwrap_or_else(|| self.backoff(attempt))
                        .min(self.policy.max_wait);
                    waited.throttled_waits += 1;
                    waited.throttled_seconds += wait.as_secs_f64();
                    wait
                }
                // 500, 502, 504: Graph's passing trouble; 503 came as throttling above.
                GraphError::Transport(_) | GraphError::ServerError { .. } => self.backoff(attempt),
                _ => return Err(error.into()),
            };
            if attempt >= self.policy.attempts {
                return Err(error.into());
            }
            tracing::debug!(error = %error, wait_ms = wait.as_millis() as u64, "Graph read failed; trying again");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return Err(SyncError::Stopped),
            }
        }
    }

    /// Exponential backoff with full jitter: spreads retries of many workers apart.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .policy
            .backoff
            .saturating_mul(1 << attempt.min(16))
            .min(self.policy.max_wait);
        ceiling.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// A batch being written in a task of its own, so that a full round's next batch can be
/// written beside it: its object ids (batches sharing one are written one after the other:
/// each statement sees only what had committed when it began, so the later write would miss
/// the earlier one's row), and word of its commit for the batch after it, whose link waits for
/// that word (a page's rows and its link still commit together, one batch after the other).
struct Flight {
    task: tokio::task::JoinHandle<Result<(ChainState, Tally), StoreError>>,
    ids: HashSet<Uuid>,
    /// Word that it holds its connection.
    started: Option<oneshot::Receiver<()>>,
    committed: Option<oneshot::Receiver<()>>,
}

impl Flight {
    /// Starts writing `batch` (its page, what fetching it met, its ids) for `(db, tenant, run)`
    /// to the chain at `from`, after `earlier` if one is in flight.
    fn launch<F: Stored + Send + 'static>(
        (db, tenant, run_id): (PgPool, Uuid, i64),
        from: ChainState,
        (page, fetching, ids): (Page<F>, Tally, HashSet<Uuid>),
        earlier: Option<&mut Flight>,
    ) -> Self {
        let after_earlier = earlier.and_then(|f| f.committed.take());
        let (done, committed) = oneshot::channel();
        let (holding, started) = oneshot::channel();
        let task = tokio::spawn(
            async move {
                let mut conn = db.acquire().await?;
                let _ = holding.send(());
                let written = store::apply_page(
                    &mut *conn,
                    tenant,
                    run_id,
                    &from,
                    page,
                    fetching,
                    after_earlier,
                )
                .await;
                if written.is_ok() {
                    let _ = done.send(());
                }
                written
            }
            .in_current_span(),
        );
        Self {
            task,
            ids,
            started: Some(started),
            committed: Some(committed),
        }
    }
}

/// Waits for `flight`'s write, if any, and moves `state` and `total` on by it.
async fn land(
    flight: Option<Flight>,
    state: &mut ChainState,
    total: &mut Tally,
) -> Result<(), SyncError> {
    let Some(flight) = flight else {
        return Ok(());
    };
    let (after, tally) = match flight.task.await {
        Ok(written) => written?,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => return Err(SyncError::Stopped),
    };
    *state = after;
    total.add(&tally);
    Ok(())
}

/// The permission a 403 on `link` says is missing, in the words ipSCAPE's admins know.
fn missing_permission(link: &str) -> String {
    if link.contains("groups") {
        "Group.Read.All is required to read the tenant's groups and their members: the customer's admin must grant it (consent again)".into()
    } else {
        "User.Read.All is required to read the tenant's users: the customer's admin must grant it (consent again)".into()
    }
}

/// Which run a sync records into, and which tenant; read once per job.
pub async fn tenant_access(db: &PgPool, tenant: Uuid) -> Result<Option<TenantAccess>, sqlx::Error> {
    sqlx::query_as!(
        TenantAccess,
        r#"select t.id, t.entra_tenant_id, t.consent_mode as "consent_mode: crate::types::ConsentMode",
                  t.customer_client_id, t.credential_ciphertext, t.credential_key_id,
                  coalesce(array(select jsonb_array_elements(p.delegated)->>'name'), '{}')
                      as "profile_scopes!"
           from tenants t left join permission_profiles p on p.id = t.permission_profile_id
           where t.id = $1 and t.status = 'active'"#,
        tenant,
    )
    .fetch_optional(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::store::Resource;

    #[test]
    fn a_missing_permission_is_named_by_the_chain_that_met_it() {
        assert!(missing_permission(Resource::Users.first_link()).starts_with("User.Read.All"));
        assert!(missing_permission(Resource::Groups.first_link()).starts_with("Group.Read.All"));
    }
}
