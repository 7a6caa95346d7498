//! Per-client rate limits on the routes worth guessing at: token links and operator sign-in.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::Error;
use crate::config::RateLimit;

/// A token bucket per client address.
pub type Limiter = DefaultKeyedRateLimiter<IpAddr>;

/// The limiters the portal keeps, one bucket per client address each.
pub struct Limits {
    /// Opening token links.
    pub links: Limiter,
    /// Operator sign-in attempts.
    pub sign_ins: Limiter,
    /// Customer-app credential checks (each one calls Microsoft).
    pub app_checks: Limiter,
}

/// A limiter allowing `rate.burst` at once, then one per `rate.period`.
pub fn limiter(rate: RateLimit) -> Limiter {
    let burst = NonZeroU32::new(rate.burst.max(1)).expect("burst is at least one");
    RateLimiter::keyed(
        Quota::with_period(rate.period)
            .expect("a non-zero period")
            .allow_burst(burst),
    )
}

/// Takes one request from `client`'s bucket, or says how long to wait.
pub fn check(limiter: &Limiter, client: IpAddr) -> Result<(), Error> {
    limiter
        .check_key(&client)
        .map_err(|not_until| Error::TooManyRequests {
            retry_after_secs: not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1),
        })
}
