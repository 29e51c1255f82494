//! Throttling (D-1): a token bucket per principal key and one global bucket, as API Gateway's
//! usage plans and account limits do; and per tenant, as a usage plan per tenant does on AWS: a
//! tenant with a plan (`[throttle.tenants.<tenant>]`) has one bucket for all its keys, and every
//! tenant has a daily request quota (its plan's, else `[throttle] quota_per_day`), counted per UTC
//! day like a usage plan's `DAY` period. Quota counts live in memory: a restart starts them again.

use crate::problem::{Code, Problem};
use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY_SECS: u64 = 24 * 3600;

/// Above this many tracked keys, buckets that have refilled are dropped.
const MAX_TRACKED_KEYS: usize = 10_000;

/// One tenant's plan: its own request rate for all its keys, and its daily quota (each 0: no
/// limit). `[throttle.tenants.<tenant>]`; the same limits `sluice tenants limits set` stores.
pub type TenantPlan = sluice_core::ports::TenantLimits;

/// Tenant plans that change while the server runs: the host fills it from its store (`sluice
/// tenants limits set`) and refreshes it; they take precedence over `[throttle.tenants]`. A
/// tenant whose plan changes gets a fresh bucket; its day's count is kept.
#[derive(Clone, Default)]
pub struct PlanBook(Arc<RwLock<Arc<BTreeMap<String, TenantPlan>>>>);

impl PlanBook {
    /// Replaces every plan in the book.
    pub fn replace(&self, plans: BTreeMap<String, TenantPlan>) {
        if let Ok(mut current) = self.0.write() {
            *current = Arc::new(plans);
        }
    }

    fn current(&self) -> Arc<BTreeMap<String, TenantPlan>> {
        self.0.read().map(|c| c.clone()).unwrap_or_default()
    }
}

impl std::fmt::Debug for PlanBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PlanBook").field(&self.current().len()).finish()
    }
}

/// Two handles are equal when they are the same book.
impl PartialEq for PlanBook {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PlanBook {}

/// A plan's bucket and quota, built once per plan.
struct Plan {
    limits: TenantPlan,
    bucket: Option<DefaultDirectRateLimiter>,
    quota_per_day: u64,
}

impl Plan {
    fn new(p: &TenantPlan) -> Self {
        Self {
            limits: *p,
            bucket: quota(p.rate_per_sec, p.burst).map(RateLimiter::direct),
            quota_per_day: p.quota_per_day,
        }
    }
}

/// The buckets of one router instance.
pub(crate) struct Throttle {
    per_key: Option<DefaultKeyedRateLimiter<String>>,
    global: Option<DefaultDirectRateLimiter>,
    plans: HashMap<String, Arc<Plan>>,
    /// Plans from the host's store, over `plans`, with the buckets built for them so far.
    book: PlanBook,
    built: Mutex<HashMap<String, Arc<Plan>>>,
    default_quota_per_day: u64,
    /// Requests counted per tenant: (UTC day number, count).
    usage: Mutex<HashMap<String, (u64, u64)>>,
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

/// A 429 from the `scope` bucket, counted.
fn throttled(wait: Duration, scope: &'static str) -> Problem {
    sluice_core::metrics::throttled(scope);
    Problem::new(Code::Throttled)
        .detail("the request rate limit was exceeded; retry after the indicated number of seconds")
        .retry_after(retry_after_secs(wait))
}

fn over_quota(limit: u64, until_reset: Duration) -> Problem {
    sluice_core::metrics::throttled("quota");
    Problem::new(Code::Throttled)
        .detail(format!(
            "the tenant's quota of {limit} requests per day is used up; it resets at midnight UTC"
        ))
        .retry_after(retry_after_secs(until_reset))
}

impl Throttle {
    /// Buckets for the given per-key and global limits.
    pub(crate) fn new(rate: u32, burst: u32, global_rate: u32, global_burst: u32) -> Self {
        Self {
            per_key: quota(rate, burst).map(RateLimiter::keyed),
            global: quota(global_rate, global_burst).map(RateLimiter::direct),
            plans: HashMap::new(),
            book: PlanBook::default(),
            built: Mutex::new(HashMap::new()),
            default_quota_per_day: 0,
            usage: Mutex::new(HashMap::new()),
        }
    }

    /// With tenant plans and the daily quota of tenants without one (0: none).
    pub(crate) fn with_tenants(mut self, plans: &BTreeMap<String, TenantPlan>, default_quota_per_day: u64) -> Self {
        self.plans = plans
            .iter()
            .map(|(tenant, p)| (tenant.clone(), Arc::new(Plan::new(p))))
            .collect();
        self.default_quota_per_day = default_quota_per_day;
        self
    }

    /// With plans from `book` taking precedence over the configured ones.
    pub(crate) fn with_book(mut self, book: PlanBook) -> Self {
        self.book = book;
        self
    }

    /// The plan that applies to `tenant`: the book's (its bucket kept while the plan is
    /// unchanged), else the configured one.
    fn plan(&self, tenant: &str) -> Option<Arc<Plan>> {
        let book = self.book.current();
        let Some(limits) = book.get(tenant) else {
            return self.plans.get(tenant).cloned();
        };
        let Ok(mut built) = self.built.lock() else {
            return Some(Arc::new(Plan::new(limits)));
        };
        if built.len() > MAX_TRACKED_KEYS {
            built.retain(|t, _| book.contains_key(t));
        }
        let plan = built
            .entry(tenant.to_owned())
            .and_modify(|p| {
                if p.limits != *limits {
                    *p = Arc::new(Plan::new(limits));
                }
            })
            .or_insert_with(|| Arc::new(Plan::new(limits)));
        Some(plan.clone())
    }

    /// For an authenticated request of `tenant` with key `key`: the tenant's plan bucket (or the
    /// key's), the global bucket, then the tenant's daily quota.
    pub(crate) fn check_principal(&self, tenant: &str, key: &str) -> Result<(), Problem> {
        let plan = self.plan(tenant);
        match plan.as_deref() {
            Some(Plan {
                bucket: Some(bucket), ..
            }) => bucket
                .check()
                .map_err(|not_until| throttled(not_until.wait_time_from(bucket.clock().now()), "tenant"))?,
            Some(_) => {}
            None => self.check_per_key(key, "key")?,
        }
        self.check_global()?;
        let limit = plan.map_or(self.default_quota_per_day, |p| p.quota_per_day);
        if limit > 0 {
            self.count(tenant, limit)?;
        }
        Ok(())
    }

    /// Counts one request of `tenant` against `limit` for the current UTC day.
    fn count(&self, tenant: &str, limit: u64) -> Result<(), Problem> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let day = now.as_secs() / DAY_SECS;
        let until_reset = Duration::from_secs((day + 1) * DAY_SECS).saturating_sub(now);
        let Ok(mut usage) = self.usage.lock() else {
            // A poisoned count is no reason to refuse everyone: the rate limits still hold.
            return Ok(());
        };
        if usage.len() > MAX_TRACKED_KEYS {
            usage.retain(|_, (d, _)| *d == day);
        }
        let entry = usage.entry(tenant.to_owned()).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        if entry.1 >= limit {
            return Err(over_quota(limit, until_reset));
        }
        entry.1 += 1;
        Ok(())
    }

    fn check_per_key(&self, key: &str, scope: &'static str) -> Result<(), Problem> {
        if let Some(limiter) = &self.per_key {
            if limiter.len() > MAX_TRACKED_KEYS {
                limiter.retain_recent();
            }
            limiter
                .check_key(&key.to_owned())
                .map_err(|not_until| throttled(not_until.wait_time_from(limiter.clock().now()), scope))?;
        }
        Ok(())
    }

    fn check_global(&self) -> Result<(), Problem> {
        if let Some(limiter) = &self.global {
            limiter
                .check()
                .map_err(|not_until| throttled(not_until.wait_time_from(limiter.clock().now()), "global"))?;
        }
        Ok(())
    }

    /// Takes one token from `key`'s bucket and one from the global bucket, or says how long to wait.
    ///
    /// The key's bucket is checked first, so a client over its own limit does not drain the
    /// global bucket that everyone else shares.
    /// `scope` names the per-key bucket in the throttle metric (`key`, `source`).
    pub(crate) fn check(&self, key: &str, scope: &'static str) -> Result<(), Problem> {
        self.check_per_key(key, scope)?;
        self.check_global()
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
    fn d1_a_tenant_plan_shares_one_bucket_across_its_keys_and_quotas_count_per_tenant() {
        let plans = BTreeMap::from([(
            "acme".to_owned(),
            TenantPlan {
                rate_per_sec: 1,
                burst: 2,
                quota_per_day: 0,
            },
        )]);
        let t = Throttle::new(100, 100, 0, 0).with_tenants(&plans, 3);
        // acme: one bucket of 2 for both keys, and no quota (its plan says none).
        assert!(t.check_principal("acme", "k1").is_ok());
        assert!(t.check_principal("acme", "k2").is_ok());
        assert!(t.check_principal("acme", "k3").is_err());
        // beta: per-key buckets, and the default quota of 3 a day across its keys.
        for key in ["b1", "b2", "b1"] {
            assert!(t.check_principal("beta", key).is_ok());
        }
        let p = t.check_principal("beta", "b3").unwrap_err();
        assert_eq!(p.code(), Code::Throttled);
        let wait = p.retry_after_value().unwrap_or_default();
        assert!((1..=DAY_SECS).contains(&wait), "{wait}");
        assert!(
            t.check_principal("gamma", "g1").is_ok(),
            "another tenant's quota is its own"
        );
    }

    #[test]
    fn d1_buckets_are_per_key_and_global() {
        let t = Throttle::new(1, 2, 0, 0);
        assert!(t.check("a", "key").is_ok());
        assert!(t.check("a", "key").is_ok());
        assert!(t.check("a", "key").is_err());
        assert!(t.check("b", "key").is_ok());
        let g = Throttle::new(0, 0, 1, 1);
        assert!(g.check("a", "key").is_ok());
        assert!(g.check("b", "key").is_err());
    }
}
