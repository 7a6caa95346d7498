//! How long failed work waits before its next try: exponential, capped, with jitter so items
//! that failed together do not retry together.

use std::time::Duration;

use rand::Rng;

/// An exponential backoff: `base`, doubling per failure, capped at `cap`, each wait scaled by
/// a random factor in `jitter`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The wait after the first failure (before jitter).
    pub base: Duration,
    /// No wait is longer (before jitter).
    pub cap: Duration,
    /// The random factor range: `(0.5, 1.0)` spreads waits below their nominal length,
    /// `(1.0, 1.2)` above it, so a schedule spans at least its nominal total.
    pub jitter: (f64, f64),
}

impl Backoff {
    /// The nominal wait after `failures` failures (0 is the first), before jitter.
    pub fn nominal(&self, failures: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << failures.min(20))
            .min(self.cap)
    }

    /// The wait after `failures` failures (0 is the first), jittered.
    pub fn after(&self, failures: u32) -> Duration {
        let (low, high) = self.jitter;
        let factor = if high > low {
            rand::thread_rng().gen_range(low..=high)
        } else {
            low
        };
        self.nominal(failures).mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        base: Duration::from_secs(30),
        cap: Duration::from_secs(3_600),
        jitter: (1.0, 1.2),
    };

    #[test]
    fn doubles_is_capped_and_jitters_within_its_range() {
        assert_eq!(B.nominal(0).as_secs(), 30);
        assert_eq!(B.nominal(1).as_secs(), 60);
        assert_eq!(B.nominal(40).as_secs(), 3_600);
        for failures in 0..30 {
            let wait = B.after(failures);
            let nominal = B.nominal(failures);
            assert!(wait >= nominal && wait <= nominal.mul_f64(1.2), "{wait:?}");
        }
    }
}
