//! Throttling (D-1): a token bucket per principal key and one global bucket, as API Gateway's
//! usage plans and account limits do.

use crate::problem::{Code, Problem};
use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

/// Above this many tracked keys, buckets that have refilled are dropped.
const MAX_TRACKED_KEYS: usize = 10_000;

/// The buckets of one router instance.
pub(crate) struct Throttle {
    per_key: Option<DefaultKeyedRateLimiter<String>>,
    global: Option<DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("per_key", &self.per_key.is_some())
            .field("global", &self.global.is_some())
            .finish()
    }
}

/// A quota of `rate` per second with bucket `burst`; `None` (no limit) when `rate` is 0. A zero
/// burst means a burst equal to the rate.
fn quota(rate: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

/// Whole seconds to wait, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

fn throttled(wait: Duration) -> Problem {
    Problem::new(Code::Throttled)
        .detail("the request rate limit was exceeded; retry after the indicated number of seconds")
        .retry_after(retry_after_secs(wait))
}

impl Throttle {
    /// Buckets for the given per-key and global limits.
    pub(crate) fn new(rate: u32, burst: u32, global_rate: u32, global_burst: u32) -> Self {
        Self {
            per_key: quota(rate, burst).map(RateLimiter::keyed),
            global: quota(global_rate, global_burst).map(RateLimiter::direct),
        }
    }

    /// Takes one token from `key`'s bucket and one from the global bucket, or says how long to wait.
    ///
    /// The key's bucket is checked first, so a client over its own limit does not drain the
    /// global bucket that everyone else shares.
    pub(crate) fn check(&self, key: &str) -> Result<(), Problem> {
        if let Some(limiter) = &self.per_key {
            if limiter.len() > MAX_TRACKED_KEYS {
                limiter.retain_recent();
            }
            limiter
                .check_key(&key.to_owned())
                .map_err(|not_until| throttled(not_until.wait_time_from(limiter.clock().now())))?;
        }
        if let Some(limiter) = &self.global {
            limiter
                .check()
                .map_err(|not_until| throttled(not_until.wait_time_from(limiter.clock().now())))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }

    #[test]
    fn d1_buckets_are_per_key_and_global() {
        let t = Throttle::new(1, 2, 0, 0);
        assert!(t.check("a").is_ok());
        assert!(t.check("a").is_ok());
        assert!(t.check("a").is_err());
        assert!(t.check("b").is_ok());
        let g = Throttle::new(0, 0, 1, 1);
        assert!(g.check("a").is_ok());
        assert!(g.check("b").is_err());
    }
}
