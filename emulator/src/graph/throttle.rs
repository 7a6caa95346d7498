//! Graph's identity-and-access throttling (learn.microsoft.com/graph/throttling-limits,
//! "Identity and access service limits"): a token bucket of resource units per app and tenant
//! (3,500 / 5,000 / 8,000 per 10 s for tenants of under 50 / 50–500 / over 500 users) and one per
//! app across all tenants (150,000 per 20 s). Each request costs the documented base cost,
//! adjusted by `$select`, `$expand` and a small `$top`; a request either bucket cannot pay is
//! answered 429 with `Retry-After` and costs nothing. The limits are scaled by an option so a
//! test can reach them with a small load; scale 0 turns throttling off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use uuid::Uuid;

use super::errors::GraphError;
use crate::state::AppState;

/// The app+tenant limit's window.
const PAIR_WINDOW: Duration = Duration::from_secs(10);
/// The app-across-tenants limit's window.
const APP_WINDOW: Duration = Duration::from_secs(20);
/// The app-across-tenants limit, resource units per [`APP_WINDOW`].
const APP_LIMIT: f64 = 150_000.0;

/// The app+tenant limit for a tenant of `users` users: S under 50, M 50–500, L above 500.
pub fn pair_limit(users: usize) -> f64 {
    match users {
        0..50 => 3_500.0,
        50..=500 => 5_000.0,
        _ => 8_000.0,
    }
}

/// The resource units a request costs: the base cost of its path (any identity path not listed
/// costs 1), −1 with `$select`, +1 with `$expand`, −1 with `$top` under 20, never below 1.
pub fn cost(method: &Method, path: &str, query: &str) -> u32 {
    let rel = path.trim_start_matches("/v1.0/");
    let segs: Vec<&str> = rel.split('/').collect();
    // A path under `me/` costs what the same path under `users/{id}/` costs.
    let tail = match segs.as_slice() {
        ["me", rest @ ..] | ["users", _, rest @ ..] => Some(rest),
        _ => None,
    };
    let base: i64 = if method == Method::GET {
        match (segs.as_slice(), tail) {
            (["users"] | ["applications"] | ["oauth2PermissionGrants"], _) => 2,
            (["oauth2PermissionGrants", _], _) => 2,
            (["applications", _, "extensionProperties"], _) => 2,
            (["groups", _, "members", ..], _) => 3,
            (["groups", _, "transitiveMembers", ..], _) => 5,
            (["servicePrincipals", _, "appRoleAssignments"], _) => 2,
            (["subscribedSkus"] | ["contracts"], _) => 3,
            (
                _,
                Some(
                    ["licenseDetails", ..]
                    | ["memberOf", ..]
                    | ["ownedObjects", ..]
                    | ["transitiveMemberOf", ..],
                ),
            ) => 2,
            _ => 1,
        }
    } else {
        1
    };
    let has = |option: &str| {
        query.split('&').any(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            name == option || name == option.replace('$', "%24")
        })
    };
    let small_top = query.split('&').any(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name == "$top" || name == "%24top") && value.parse::<u32>().is_ok_and(|n| n < 20)
    });
    let adjusted =
        base - i64::from(has("$select")) + i64::from(has("$expand")) - i64::from(small_top);
    adjusted.max(1) as u32
}

/// What the throttle counted since it was last configured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ThrottleCounts {
    /// Identity requests metered (with a valid token).
    pub requests: u64,
    /// Resource units taken by the requests let through.
    pub resource_units: u64,
    /// Requests answered 429 because a bucket was empty.
    pub throttled: u64,
    /// Requests that sent `x-ms-throttle-priority: low`.
    pub low_priority: u64,
}

#[derive(Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    /// The level now, refilled at `capacity` per `window` since last time, at most `capacity`.
    fn refill(&mut self, capacity: f64, window: Duration, now: Instant) {
        let rate = capacity / window.as_secs_f64();
        self.level = (self.level + rate * (now - self.at).as_secs_f64()).min(capacity);
        self.at = now;
    }

    /// How long until `cost` can be paid at `capacity` per `window`.
    fn wait_for(&self, cost: f64, capacity: f64, window: Duration) -> Duration {
        let rate = capacity / window.as_secs_f64();
        Duration::from_secs_f64(((cost - self.level) / rate).max(0.0))
    }
}

struct Inner {
    scale: f64,
    pairs: HashMap<(String, Uuid), Bucket>,
    apps: HashMap<String, Bucket>,
    counts: ThrottleCounts,
}

/// The buckets and counters, shared by the middleware and the admin API.
pub struct Throttle {
    inner: Mutex<Inner>,
}

/// Which limit refused a request, and when to try again.
struct Refusal {
    scope: &'static str,
    retry_after: Duration,
}

impl Throttle {
    /// Limits at `scale` times Microsoft's (0: off).
    pub fn new(scale: f64) -> Self {
        Self {
            inner: Mutex::new(Inner {
                scale,
                pairs: HashMap::new(),
                apps: HashMap::new(),
                counts: ThrottleCounts::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the scale and starts over: full buckets, zero counts.
    pub fn configure(&self, scale: f64) {
        *self.lock() = Inner {
            scale,
            pairs: HashMap::new(),
            apps: HashMap::new(),
            counts: ThrottleCounts::default(),
        };
    }

    /// The scale and the counts.
    pub fn report(&self) -> (f64, ThrottleCounts) {
        let inner = self.lock();
        (inner.scale, inner.counts.clone())
    }

    /// Takes `cost` from both of the caller's buckets, or neither; the share of the tighter
    /// limit now used when it passes.
    fn take(
        &self,
        app: &str,
        tid: Uuid,
        users: usize,
        cost: u32,
        low: bool,
    ) -> Result<f64, Refusal> {
        let mut inner = self.lock();
        inner.counts.requests += 1;
        inner.counts.low_priority += u64::from(low);
        let scale = inner.scale;
        if scale <= 0.0 {
            inner.counts.resource_units += u64::from(cost);
            return Ok(0.0);
        }
        let now = Instant::now();
        let (pair_cap, app_cap) = (pair_limit(users) * scale, APP_LIMIT * scale);
        let fresh = |capacity| Bucket {
            level: capacity,
            at: now,
        };
        let mut pair = *inner
            .pairs
            .entry((app.to_owned(), tid))
            .or_insert_with(|| fresh(pair_cap));
        let mut whole = *inner
            .apps
            .entry(app.to_owned())
            .or_insert_with(|| fresh(app_cap));
        pair.refill(pair_cap, PAIR_WINDOW, now);
        whole.refill(app_cap, APP_WINDOW, now);
        let cost_f = f64::from(cost);
        let outcome = if pair.level < cost_f {
            Err(Refusal {
                scope: "Tenant_Application",
                retry_after: pair.wait_for(cost_f, pair_cap, PAIR_WINDOW),
            })
        } else if whole.level < cost_f {
            Err(Refusal {
                scope: "Application",
                retry_after: whole.wait_for(cost_f, app_cap, APP_WINDOW),
            })
        } else {
            pair.level -= cost_f;
            whole.level -= cost_f;
            inner.counts.resource_units += u64::from(cost);
            Ok((1.0 - pair.level / pair_cap).max(1.0 - whole.level / app_cap))
        };
        if outcome.is_err() {
            inner.counts.throttled += 1;
        }
        inner.pairs.insert((app.to_owned(), tid), pair);
        inner.apps.insert(app.to_owned(), whole);
        outcome
    }
}

/// Middleware metering each identity request of a known caller; unauthenticated ones pass to
/// the handler, which answers 401.
pub async fn meter(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // Subscriptions belong to the change-notification service, not identity and access.
    if path.starts_with("/v1.0/subscriptions") {
        return next.run(req).await;
    }
    let Ok(access) = super::caller(&st, req.headers()) else {
        return next.run(req).await;
    };
    let users = {
        let w = st.world();
        w.dir
            .tenant_index(access.tid)
            .map_or(0, |t| w.dir.tenants[t].users.len())
    };
    let cost = cost(req.method(), path, req.uri().query().unwrap_or_default());
    let low = req
        .headers()
        .get("x-ms-throttle-priority")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("low"));
    match st
        .throttle
        .take(&access.client_id, access.tid, users, cost, low)
    {
        Ok(used) => {
            let mut resp = next.run(req).await;
            let headers = resp.headers_mut();
            headers.insert("x-ms-resource-unit", HeaderValue::from(cost));
            // Sent only past 80 % of the limit, as a fraction from 0.8 to 1.8.
            if used > 0.8
                && let Ok(v) = HeaderValue::from_str(&format!("{:.1}", used.min(1.8)))
            {
                headers.insert("x-ms-throttle-limit-percentage", v);
            }
            resp
        }
        Err(refused) => {
            // Whole seconds, at least one: the bucket refills continuously.
            let secs = refused.retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let mut e = GraphError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests are being sent. Retry after the time in the Retry-After header.",
            )
            .with_header(header::RETRY_AFTER, secs.to_string());
            e = e.with_header(
                header::HeaderName::from_static("x-ms-throttle-scope"),
                format!(
                    "{}/ReadWrite/{}/{}",
                    refused.scope, access.client_id, access.tid
                ),
            );
            e.with_header(
                header::HeaderName::from_static("x-ms-throttle-information"),
                "ResourceUnitLimitExceeded".to_owned(),
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_follow_the_documented_table() {
        let get = Method::GET;
        assert_eq!(cost(&get, "/v1.0/users", ""), 2);
        assert_eq!(cost(&get, "/v1.0/users", "$select=id"), 1);
        assert_eq!(cost(&get, "/v1.0/users", "$top=1&$select=id"), 1);
        assert_eq!(cost(&get, "/v1.0/users", "$expand=manager"), 3);
        assert_eq!(cost(&get, "/v1.0/users/delta", ""), 1);
        assert_eq!(cost(&get, "/v1.0/groups/g/members", ""), 3);
        assert_eq!(cost(&get, "/v1.0/groups/g/transitiveMembers", "$top=5"), 4);
        assert_eq!(cost(&get, "/v1.0/me/transitiveMemberOf", ""), 2);
        assert_eq!(cost(&get, "/v1.0/users/u/memberOf", ""), 2);
        assert_eq!(cost(&get, "/v1.0/organization", "$select=id"), 1);
        assert_eq!(cost(&Method::POST, "/v1.0/users", ""), 1);
    }

    #[test]
    fn tenant_sizes() {
        assert_eq!(pair_limit(49), 3_500.0);
        assert_eq!(pair_limit(50), 5_000.0);
        assert_eq!(pair_limit(500), 5_000.0);
        assert_eq!(pair_limit(501), 8_000.0);
    }

    #[test]
    fn a_pair_bucket_refuses_past_its_limit_and_costs_nothing_then() {
        // 1 % of 3,500: 35 units per 10 s.
        let t = Throttle::new(0.01);
        let tid = Uuid::new_v4();
        for _ in 0..35 {
            assert!(t.take("app", tid, 10, 1, false).is_ok());
        }
        let Err(refused) = t.take("app", tid, 10, 1, true) else {
            panic!("the 36th unit is refused")
        };
        assert_eq!(refused.scope, "Tenant_Application");
        assert!(refused.retry_after <= Duration::from_millis(300));
        // Another tenant has its own pair bucket; another app its own everything.
        assert!(t.take("app", Uuid::new_v4(), 10, 1, false).is_ok());
        assert!(t.take("other", tid, 10, 1, false).is_ok());
        let (_, counts) = t.report();
        assert_eq!(
            (
                counts.requests,
                counts.throttled,
                counts.resource_units,
                counts.low_priority
            ),
            (38, 1, 37, 1)
        );
    }

    #[test]
    fn the_app_bucket_spans_tenants() {
        // 0.001 of 150,000: 150 units per 20 s; a large tenant's pair allows 8.
        let t = Throttle::new(0.001);
        let refused = (0..200)
            .map(|_| t.take("app", Uuid::new_v4(), 1000, 1, false))
            .position(|r| r.is_err())
            .expect("the app limit is reached");
        assert_eq!(refused, 150);
        let off = Throttle::new(0.0);
        assert!((0..10_000).all(|_| off.take("app", Uuid::nil(), 1, 5, false).is_ok()));
    }
}
