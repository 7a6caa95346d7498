//! Graph's throttle budget, shared through Postgres by every worker of every process.
//!
//! Graph limits each app per tenant (3,500 / 5,000 / 8,000 resource units per 10 s for tenants
//! of under 50 / 50–500 / over 500 users) and per app across all tenants (150,000 per 20 s), as
//! token buckets (learn.microsoft.com/graph/throttling-limits, "Identity and access service
//! limits"). Before each Graph read a worker takes the read's cost from both buckets in one
//! statement; when either is short it sleeps until the refill covers it, holding no connection.
//! A process takes a few units per round trip and spends them locally, so a sync does not wait
//! on Postgres for every page. The buckets are a margin below Microsoft's limits, scaled by
//! `GANGWAY_GRAPH_BUDGET_SCALE` (0 turns the budget off).
//!
//! The other calls to a tenant's Graph — onboarding's checks, the subscription keeper's, the
//! scope's assignment reads — are counted too, by the Graph client itself (the budget is its
//! [`crate::graph::Meter`], and those callers ask for a client for the tenant): at normal
//! priority, never waiting. When the budget is short
//! they go anyway (Graph throttles them last) and leave the buckets below empty, so the
//! background reads wait for the refill instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use super::credentials::TenantAccess;

/// The share of Microsoft's limits the buckets hold: other callers of the same app (a doctor
/// run, a consent check) and clock skew between processes use the rest.
const MARGIN: f64 = 0.9;
/// The app+tenant window.
const PAIR_WINDOW_SECS: f64 = 10.0;
/// The app-across-tenants window and limit.
const APP_WINDOW_SECS: f64 = 20.0;
const APP_LIMIT: f64 = 150_000.0;
/// How long a tenant's size (users in the copy) is trusted before it is counted again.
const SIZE_TTL: Duration = Duration::from_secs(60);
/// At most this many units are taken per round trip, and at most this share of a bucket, so
/// what a process holds unspent stays small against the bucket.
const MOST_PER_TRIP: f64 = 20.0;
const SHARE_PER_TRIP: f64 = 1.0 / 50.0;

/// The budget name of the provider's own app (one app across every tenant that consented to
/// it); a customer's own app registration goes by its client id.
pub const PROVIDER_APP: &str = "provider";

/// The budget name of the app Gangway reads `tenant` as.
pub fn app_of(tenant: &TenantAccess) -> &str {
    tenant.customer_client_id.as_deref().unwrap_or(PROVIDER_APP)
}

/// Microsoft's app+tenant limit for a tenant of `users` users (S under 50, M 50–500, L above).
pub fn pair_limit(users: i64) -> f64 {
    match users {
        ..50 => 3_500.0,
        50..=500 => 5_000.0,
        _ => 8_000.0,
    }
}

/// What a GET of `link` (a path under the Graph base or an absolute link) costs, by the
/// documented table for the paths Gangway reads: `users` and `applications` 2, a group's
/// `members` 3, `transitiveMembers` 5, `memberOf`/`transitiveMemberOf` 2, a service
/// principal's `appRoleAssignments` 2, any other identity path 1 (a delta page); `$select` −1,
/// `$expand` +1, `$top` under 20 −1; never below 1.
pub fn cost(link: &str) -> f64 {
    let rel = link.split_once("v1.0/").map_or(link, |(_, r)| r);
    let (path, query) = rel.split_once('?').unwrap_or((rel, ""));
    let segs: Vec<&str> = path.split('/').collect();
    let base: i32 = match segs.as_slice() {
        ["users"] | ["applications"] => 2,
        ["groups", _, "members", ..] => 3,
        ["groups", _, "transitiveMembers", ..] => 5,
        ["servicePrincipals", _, "appRoleAssignments"] => 2,
        ["me" | "users", .., "memberOf" | "transitiveMemberOf"]
        | ["me" | "users", .., "memberOf" | "transitiveMemberOf", _] => 2,
        _ => 1,
    };
    let option = |name: &str| {
        query.split('&').find_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k == name || k.strip_prefix("%24") == name.strip_prefix('$')).then_some(v)
        })
    };
    let small_top = option("$top")
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|n| n < 20);
    let adjusted = base - i32::from(option("$select").is_some())
        + i32::from(option("$expand").is_some())
        - i32::from(small_top);
    f64::from(adjusted.max(1))
}

/// What a process holds for one app and tenant.
#[derive(Default)]
struct Local {
    /// Units taken from the shared buckets and not yet spent.
    allowance: f64,
    /// Users in the copy, and when they were counted.
    users: Option<(i64, Instant)>,
    /// The buckets exist in Postgres (created once, full).
    seeded: bool,
    /// Held by the take making the round trip: the reads that come meanwhile (a sync's two
    /// chains start together) wait for its units instead of making trips of their own.
    trip: Arc<tokio::sync::Mutex<()>>,
}

struct Inner {
    db: PgPool,
    scale: f64,
    local: Mutex<HashMap<(String, Uuid), Local>>,
    round_trips: std::sync::atomic::AtomicU64,
}

/// The shared budget; cheap to clone.
#[derive(Clone)]
pub struct Budget(Arc<Inner>);

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("scale", &self.0.scale)
            .finish_non_exhaustive()
    }
}

/// The two buckets a read in one tenant draws on: their keys, sizes and refill per second.
struct Buckets {
    keys: [String; 2],
    capacity: [f64; 2],
    per_sec: [f64; 2],
}

impl Budget {
    /// A budget in `db` at `scale` times Microsoft's limits (less the margin); 0 is off.
    pub fn new(db: PgPool, scale: f64) -> Self {
        Self(Arc::new(Inner {
            db,
            scale: scale.max(0.0),
            local: Mutex::new(HashMap::new()),
            round_trips: Default::default(),
        }))
    }

    /// Whether reads wait for the budget at all.
    pub fn is_on(&self) -> bool {
        self.0.scale > 0.0
    }

    /// Round trips to Postgres so far (to measure the amortisation).
    pub fn round_trips(&self) -> u64 {
        self.0
            .round_trips
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn buckets(&self, app: &str, entra_tenant: Uuid, users: i64) -> Buckets {
        let scale = self.0.scale * MARGIN;
        let (pair, whole) = (pair_limit(users) * scale, APP_LIMIT * scale);
        Buckets {
            keys: [
                format!("app:{app}"),
                format!("app:{app}:tenant:{entra_tenant}"),
            ],
            capacity: [whole, pair],
            per_sec: [whole / APP_WINDOW_SECS, pair / PAIR_WINDOW_SECS],
        }
    }

    /// Takes `cost` units for a read by `app` (a client id, or any name the app is known by)
    /// in `entra_tenant`, whose copy in Gangway is `tenant`; waits while the budget is short.
    /// Returns how long it waited.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn take(
        &self,
        app: &str,
        tenant: Uuid,
        entra_tenant: Uuid,
        cost: f64,
    ) -> Result<Duration, sqlx::Error> {
        if !self.is_on() {
            return Ok(Duration::ZERO);
        }
        let key = (app.to_owned(), entra_tenant);
        let trip = match self.spend_local(&key, cost) {
            Ok(()) => return Ok(Duration::ZERO),
            Err(trip) => trip,
        };
        let _trip = trip.lock().await;
        // The trip just made may have brought enough for this read too.
        if self.spend_local(&key, cost).is_ok() {
            return Ok(Duration::ZERO);
        }
        let users = self.size(&key, Some(tenant)).await?;
        let b = self.buckets(app, entra_tenant, users);
        self.seed(&key, &b).await?;
        let smallest = b.capacity[0].min(b.capacity[1]);
        // Never more than a bucket holds, or the take could never be granted.
        let cost = cost.min(smallest);
        let amount = cost.max((smallest * SHARE_PER_TRIP).min(MOST_PER_TRIP));
        let started = Instant::now();
        loop {
            let wait = self.take_shared(&b, amount).await?;
            let Some(wait) = wait else { break };
            tokio::time::sleep(wait.max(Duration::from_millis(20))).await;
        }
        if let Some(e) = self.lock().get_mut(&key) {
            e.allowance += amount - cost;
        }
        Ok(started.elapsed())
    }

    /// Spends `cost` from what this process holds for `key`; when that is short, the lock to
    /// hold while taking more from Postgres.
    fn spend_local(
        &self,
        key: &(String, Uuid),
        cost: f64,
    ) -> Result<(), Arc<tokio::sync::Mutex<()>>> {
        let mut local = self.lock();
        let entry = local.entry(key.clone()).or_default();
        if entry.allowance >= cost {
            entry.allowance -= cost;
            return Ok(());
        }
        Err(entry.trip.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Uuid), Local>> {
        self.0.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Users in the copy of the tenant `key` names, as last counted within [`SIZE_TTL`];
    /// `tenant` is its id in Gangway, `None` to find it by its Entra id (0 until it is
    /// connected).
    async fn size(&self, key: &(String, Uuid), tenant: Option<Uuid>) -> Result<i64, sqlx::Error> {
        let counted = self.lock().get(key).and_then(|e| e.users);
        if let Some((n, _)) = counted.filter(|(_, at)| at.elapsed() < SIZE_TTL) {
            return Ok(n);
        }
        let tenant = match tenant {
            Some(id) => Some(id),
            None => {
                sqlx::query_scalar!("select id from tenants where entra_tenant_id = $1", key.1)
                    .fetch_optional(&self.0.db)
                    .await?
            }
        };
        let n = match tenant {
            Some(id) => self.count_users(id).await?,
            None => 0,
        };
        self.lock().entry(key.clone()).or_default().users = Some((n, Instant::now()));
        Ok(n)
    }

    /// Users in the copy of `tenant`, without those in the recycle bin, counted up to one past
    /// the largest size class (all [`pair_limit`] tells apart): counting a 100,000-user copy
    /// took a sync round longer than the rest of an idle one; 0 (the smallest size) until the
    /// first round has copied them.
    async fn count_users(&self, tenant: Uuid) -> Result<i64, sqlx::Error> {
        // Counted by an index scan that stops at the limit, however stale the statistics (see
        // the function's migration): planned from statistics of a smaller copy, the count read
        // every row of a 100,000-user tenant.
        sqlx::query_scalar!(r#"select users_in_copy_up_to($1, 501) as "n!""#, tenant)
            .fetch_one(&self.0.db)
            .await
    }

    /// Counts a call by `app` in Entra tenant `entra_tenant` that does not wait: takes `cost`
    /// units at once, below empty if need be.
    pub async fn spend(&self, app: &str, entra_tenant: Uuid, cost: f64) -> Result<(), sqlx::Error> {
        if !self.is_on() {
            return Ok(());
        }
        let key = (app.to_owned(), entra_tenant);
        let users = self.size(&key, None).await?;
        let b = self.buckets(app, entra_tenant, users);
        self.seed(&key, &b).await?;
        self.0
            .round_trips
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Rows locked in key order, as a take locks them (no deadlock between the two).
        sqlx::query!(
            r#"with now as materialized (select clock_timestamp() as t),
               cur as (
                   select g.bucket,
                          least(w.capacity, g.level + w.per_sec
                                * greatest(0, extract(epoch from (select t from now) - g.refilled_at)::float8))
                              as level
                   from graph_budgets g
                   join unnest($1::text[], $2::float8[], $3::float8[]) as w(bucket, capacity, per_sec)
                     on w.bucket = g.bucket
                   order by g.bucket
                   for update of g
               )
               update graph_budgets g set level = cur.level - $4, refilled_at = (select t from now)
               from cur where g.bucket = cur.bucket"#,
            &b.keys[..],
            &b.capacity[..],
            &b.per_sec[..],
            cost,
        )
        .execute(&self.0.db)
        .await?;
        Ok(())
    }

    /// Creates the buckets of `key` full, unless this process or another already has.
    async fn seed(&self, key: &(String, Uuid), b: &Buckets) -> Result<(), sqlx::Error> {
        if self.lock().get(key).is_some_and(|e| e.seeded) {
            return Ok(());
        }
        sqlx::query!(
            "insert into graph_budgets (bucket, level)
             select * from unnest($1::text[], $2::float8[])
             on conflict (bucket) do nothing",
            &b.keys[..],
            &b.capacity[..],
        )
        .execute(&self.0.db)
        .await?;
        self.lock().entry(key.clone()).or_default().seeded = true;
        Ok(())
    }

    /// Takes `amount` from both buckets, or nothing; `None` when taken, else how long until
    /// the refill covers it. One statement: the rows are locked in key order (no deadlock
    /// between two workers), refilled up to their size, and charged only if both can pay.
    async fn take_shared(&self, b: &Buckets, amount: f64) -> Result<Option<Duration>, sqlx::Error> {
        self.0
            .round_trips
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let row = sqlx::query!(
            r#"with now as materialized (select clock_timestamp() as t),
               cur as (
                   select g.bucket, w.per_sec,
                          least(w.capacity, g.level + w.per_sec
                                * greatest(0, extract(epoch from (select t from now) - g.refilled_at)::float8))
                              as level
                   from graph_budgets g
                   join unnest($1::text[], $2::float8[], $3::float8[]) as w(bucket, capacity, per_sec)
                     on w.bucket = g.bucket
                   order by g.bucket
                   for update of g
               ),
               verdict as (
                   select coalesce(bool_and(level >= $4), false) and count(*) = cardinality($1::text[])
                              as granted,
                          coalesce(max(greatest(0, ($4 - level) / per_sec)), 0) as wait_secs
                   from cur
               )
               update graph_budgets g
               set level = cur.level - case when verdict.granted then $4 else 0 end,
                   refilled_at = (select t from now)
               from cur, verdict
               where g.bucket = cur.bucket
               returning verdict.granted as "granted!", verdict.wait_secs::float8 as "wait_secs!""#,
            &b.keys[..],
            &b.capacity[..],
            &b.per_sec[..],
            amount,
        )
        .fetch_optional(&self.0.db)
        .await?;
        Ok(match row {
            Some(r) if r.granted => None,
            Some(r) => Some(Duration::from_secs_f64(r.wait_secs.clamp(0.0, 60.0))),
            // The rows vanished (a database restored, say): seed again on the next take.
            None => {
                self.lock().values_mut().for_each(|l| l.seeded = false);
                Some(Duration::from_millis(100))
            }
        })
    }
}

impl crate::graph::Meter for Budget {
    fn count<'a>(
        &'a self,
        app: &'a str,
        tenant: Uuid,
        url: &'a url::Url,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            // Counting must not fail the call a person waits for.
            if let Err(e) = self.spend(app, tenant, cost(url.as_str())).await {
                tracing::warn!(error = %e, "a Graph call could not be counted against the budget");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_match_the_documented_table() {
        assert_eq!(cost("v1.0/users"), 2.0);
        assert_eq!(cost("v1.0/users?$top=1&$select=id"), 1.0);
        assert_eq!(
            cost("https://graph.microsoft.com/v1.0/users?$expand=manager"),
            3.0
        );
        assert_eq!(cost("v1.0/users/delta?$select=id,displayName"), 1.0);
        assert_eq!(
            cost("http://127.0.0.1:1/v1.0/users/delta?$skiptoken=abc"),
            1.0
        );
        assert_eq!(cost("v1.0/groups/g/members"), 3.0);
        assert_eq!(cost("v1.0/groups/g/transitiveMembers"), 5.0);
        assert_eq!(
            cost("v1.0/users/u/transitiveMemberOf/microsoft.graph.directoryRole"),
            2.0
        );
        assert_eq!(cost("v1.0/organization"), 1.0);
        assert_eq!(cost("v1.0/servicePrincipals/s/appRoleAssignments"), 2.0);
        assert_eq!(cost("v1.0/servicePrincipals/s/oauth2PermissionGrants"), 1.0);
    }

    #[test]
    fn tenant_sizes_follow_microsofts_thresholds() {
        assert_eq!(pair_limit(0), 3_500.0);
        assert_eq!(pair_limit(49), 3_500.0);
        assert_eq!(pair_limit(50), 5_000.0);
        assert_eq!(pair_limit(500), 5_000.0);
        assert_eq!(pair_limit(501), 8_000.0);
    }
}
