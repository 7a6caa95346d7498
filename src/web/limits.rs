//! Per-client rate limits on the routes worth guessing at or replaying: token links, operator
//! sign-in, customer-app checks, the Microsoft round trip and refused API bearer tokens.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::client_addr::ClientAddr;
use super::error::Error;
use crate::config::{Config, RateLimit};

/// A token bucket per client: per IPv4 address, per IPv6 /64 (what one subscriber gets).
pub struct Limiter(DefaultKeyedRateLimiter<IpAddr>);

impl Limiter {
    /// A limiter allowing `rate.burst` at once, then one per `rate.period`.
    pub fn new(rate: RateLimit) -> Self {
        Self(keyed(rate))
    }

    /// Takes one request from `client`'s bucket, or says how long to wait.
    pub fn check(&self, client: ClientAddr) -> Result<(), Error> {
        self.wait_secs(client)
            .map_err(|retry_after_secs| Error::TooManyRequests { retry_after_secs })
    }

    /// Takes one request from `client`'s bucket, or says how many seconds to wait.
    pub fn wait_secs(&self, client: ClientAddr) -> Result<(), u64> {
        self.0.check_key(&bucket(client.ip())).map_err(|not_until| {
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1)
        })
    }

    /// Forgets clients whose bucket has filled up again, so the map does not grow for good.
    fn prune(&self) {
        self.0.retain_recent();
        self.0.shrink_to_fit();
    }
}

fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
    }
}

/// A token bucket per API token, filled at the token's own rate: tokens at the same rate share
/// one keyed limiter, so a rate change (the System Settings default or the token's own) gives
/// the token a fresh bucket at the new rate.
#[derive(Default)]
pub struct TokenLimiter(RwLock<HashMap<u32, DefaultKeyedRateLimiter<uuid::Uuid>>>);

impl TokenLimiter {
    /// Takes one request from `token`'s bucket at `per_second` calls per second (five seconds'
    /// worth at once), or says how many seconds to wait.
    pub fn check_key(&self, token: uuid::Uuid, per_second: u32) -> Result<(), u64> {
        let checked = |limiter: &DefaultKeyedRateLimiter<uuid::Uuid>| {
            limiter.check_key(&token).map_err(|not_until| {
                not_until
                    .wait_time_from(DefaultClock::default().now())
                    .as_secs()
                    .max(1)
            })
        };
        if let Some(limiter) = self.read().get(&per_second) {
            return checked(limiter);
        }
        let mut limiters = self.0.write().unwrap_or_else(PoisonError::into_inner);
        checked(
            limiters
                .entry(per_second)
                .or_insert_with(|| keyed(RateLimit::api(per_second))),
        )
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<u32, DefaultKeyedRateLimiter<uuid::Uuid>>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets tokens whose bucket has filled up again, and rates no token uses any more.
    fn prune(&self) {
        let mut limiters = self.0.write().unwrap_or_else(PoisonError::into_inner);
        limiters.retain(|_, limiter| {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            !limiter.is_empty()
        });
    }
}

fn keyed<K: std::hash::Hash + Eq + Clone>(rate: RateLimit) -> DefaultKeyedRateLimiter<K> {
    let burst = NonZeroU32::new(rate.burst.max(1)).expect("burst is at least one");
    RateLimiter::keyed(
        Quota::with_period(rate.period)
            .expect("a non-zero period")
            .allow_burst(burst),
    )
}

/// Bearer tokens a client may present that let nobody in (unknown, revoked, expired, forged):
/// 20 at once, then one every 3 s. Tokens that work are never counted.
pub const API_AUTH_FAILURE_RATE: RateLimit = RateLimit {
    burst: 20,
    period: Duration::from_secs(3),
};

/// Graph's change-notification deliveries, per client: Graph batches notifications and a
/// burst of directory changes is a few deliveries, so 200 at once, then 50 a second.
pub const NOTIFICATION_RATE: RateLimit = RateLimit {
    burst: 200,
    period: Duration::from_millis(20),
};

/// The limiters the portal keeps.
pub struct Limits {
    /// Opening token links.
    pub links: Limiter,
    /// Operator sign-in attempts.
    pub sign_ins: Limiter,
    /// Customer-app credential checks (each one calls Microsoft).
    pub app_checks: Limiter,
    /// Leaving for Microsoft (`POST /invitation/start`).
    pub consent_starts: Limiter,
    /// Coming back from Microsoft (the OAuth2 callback; a code exchange calls Microsoft).
    pub callbacks: Limiter,
    /// JSON API calls, per token.
    pub api_calls: TokenLimiter,
    /// Refused JSON API bearer tokens, per client.
    pub api_auth_failures: Limiter,
    /// Refused requests at the sign-in token and revocation endpoints, per client.
    pub token_failures: Limiter,
    /// Graph's change-notification deliveries (an endpoint anyone can call), per client.
    pub notifications: Limiter,
}

impl Limits {
    /// The limiters `cfg` asks for.
    pub fn new(cfg: &Config) -> Self {
        Self {
            links: Limiter::new(cfg.link_rate),
            sign_ins: Limiter::new(cfg.sign_in_rate),
            app_checks: Limiter::new(cfg.link_rate),
            consent_starts: Limiter::new(cfg.consent_rate),
            callbacks: Limiter::new(cfg.consent_rate),
            api_calls: TokenLimiter::default(),
            api_auth_failures: Limiter::new(API_AUTH_FAILURE_RATE),
            token_failures: Limiter::new(API_AUTH_FAILURE_RATE),
            notifications: Limiter::new(NOTIFICATION_RATE),
        }
    }

    /// Forgets idle clients in every limiter, so addresses seen once (or rotated through) do
    /// not pile up in memory (the `rate_limit_pruning` background task calls it).
    pub fn prune(&self) {
        for limiter in [
            &self.links,
            &self.sign_ins,
            &self.app_checks,
            &self.consent_starts,
            &self.callbacks,
            &self.api_auth_failures,
            &self.token_failures,
            &self.notifications,
        ] {
            limiter.prune();
        }
        self.api_calls.prune();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    use crate::config::TrustedProxies;

    fn addr(ip: &str) -> ClientAddr {
        ClientAddr::resolve(
            ip.parse().unwrap(),
            &HeaderMap::new(),
            &TrustedProxies::default(),
        )
    }

    fn one_per_hour() -> Limiter {
        Limiter::new(RateLimit {
            burst: 1,
            period: Duration::from_secs(3600),
        })
    }

    #[test]
    fn ipv6_addresses_share_a_bucket_per_64_and_ipv4_addresses_do_not() {
        let limiter = one_per_hour();
        assert!(limiter.check(addr("2001:db8:1:2::1")).is_ok());
        assert!(limiter.check(addr("2001:db8:1:2:ffff::9")).is_err());
        assert!(limiter.check(addr("2001:db8:1:3::1")).is_ok());
        assert!(limiter.check(addr("192.0.2.1")).is_ok());
        assert!(limiter.check(addr("192.0.2.2")).is_ok());
        assert!(limiter.check(addr("192.0.2.1")).is_err());
    }

    #[test]
    fn idle_rate_limit_keys_are_pruned() {
        let quick = Limiter::new(RateLimit {
            burst: 1,
            period: Duration::from_millis(20),
        });
        for i in 0..100 {
            quick.check(addr(&format!("198.51.100.{i}"))).unwrap();
        }
        assert_eq!(quick.0.len(), 100);
        std::thread::sleep(Duration::from_millis(60));
        quick.prune();
        assert_eq!(
            quick.0.len(),
            0,
            "buckets that filled up again are forgotten"
        );

        // A client still waiting for its bucket to refill is remembered.
        let slow = one_per_hour();
        slow.check(addr("198.51.100.1")).unwrap();
        slow.prune();
        assert_eq!(slow.0.len(), 1);
        assert!(slow.check(addr("198.51.100.1")).is_err());
    }

    #[test]
    fn each_token_gets_five_seconds_of_its_own_rate_at_once() {
        let limiter = TokenLimiter::default();
        let (slow, fast) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        for _ in 0..5 {
            limiter.check_key(slow, 1).unwrap();
        }
        assert_eq!(limiter.check_key(slow, 1), Err(1), "the sixth call waits");
        for _ in 0..500 {
            limiter.check_key(fast, 100).unwrap();
        }
        assert!(limiter.check_key(fast, 100).is_err());
        // A new rate is a new bucket: raising a token's rate takes effect at once.
        limiter.check_key(slow, 1000).unwrap();
    }
}
