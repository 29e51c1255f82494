//! The tenant plans port: each tenant's own request rate, burst and daily quota (D-1, D-2), as
//! API Gateway usage plans give them on AWS. A tenant without a plan of its own is on the
//! deployment's default plan (the template's `Tenant*` parameters on AWS, `[throttle]` on
//! `sluice serve`).
//!
//! On AWS the gateway counts and enforces: the authorizer names the tenant's usage-plan key
//! ([`usage_key`]) and API Gateway applies the plan that key is in. On `sluice serve` the server
//! reads the plans from its store and enforces them itself.

use crate::tenant::Tenant;
use async_trait::async_trait;
use sha2::{Digest, Sha256};

/// One tenant's limits. Through the CLI every value is at least 1 (a plan always bounds); in
/// `[throttle.tenants.<tenant>]` a 0 means "no limit" for that value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimits {
    /// Sustained requests per second over all the tenant's keys.
    pub rate_per_sec: u32,
    /// Bucket size (0: equal to the rate).
    pub burst: u32,
    /// Requests per UTC day.
    pub quota_per_day: u64,
}

/// Why a plan operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanError {
    /// The backing service is unavailable or refused the call.
    #[error("tenant plans unavailable: {0}")]
    Unavailable(String),
    /// The limits cannot be a plan (a zero rate, burst or quota).
    #[error("invalid plan: {0}")]
    Invalid(String),
}

/// Where tenants' plans are kept.
#[async_trait]
pub trait TenantPlans: Send + Sync + 'static {
    /// Makes the tenant known to the gateway, on the default plan unless it has its own; a
    /// second call changes nothing. `sluice keys create` calls it for every new key.
    async fn enroll(&self, tenant: &Tenant) -> Result<(), PlanError>;
    /// Gives the tenant a plan of its own with these limits, or changes it.
    async fn set(&self, tenant: &Tenant, limits: TenantLimits) -> Result<(), PlanError>;
    /// The tenant's own plan; `None` when it is on the default plan.
    async fn get(&self, tenant: &Tenant) -> Result<Option<TenantLimits>, PlanError>;
    /// Every tenant with a plan of its own, by tenant.
    async fn list(&self) -> Result<Vec<(Tenant, TenantLimits)>, PlanError>;
    /// Puts the tenant back on the default plan; `false` if it had no plan of its own.
    async fn clear(&self, tenant: &Tenant) -> Result<bool, PlanError>;
}

/// Checks limits that are to become a plan: every value at least 1, the burst at least the rate.
pub fn check_limits(l: &TenantLimits) -> Result<(), PlanError> {
    if l.rate_per_sec == 0 || l.burst == 0 || l.quota_per_day == 0 {
        return Err(PlanError::Invalid(
            "rate, burst and quota per day are each at least 1".into(),
        ));
    }
    if l.burst < l.rate_per_sec {
        return Err(PlanError::Invalid("the burst is at least the rate".into()));
    }
    Ok(())
}

/// The value of the tenant's API Gateway API key in the REST API `api_id`: what the authorizer
/// returns as `usageIdentifierKey`, so that API Gateway applies the tenant's usage plan.
///
/// It is derived from the API and the tenant alone, never from a Sluice key's secret, so the
/// authorizer needs no lookup for it, JWT principals get their tenant's plan too, and API
/// Gateway learns nothing of any credential. Knowing it gives a client nothing: the API's key
/// source is `AUTHORIZER`, so an `x-api-key` a client sends is never read (S-1). 64 hex
/// characters, within API Gateway's 20 to 128, and distinct per API and tenant.
pub fn usage_key(api_id: &str, tenant: &Tenant) -> String {
    let mut h = Sha256::new();
    h.update(b"sluice usage plan key\0");
    h.update(api_id.as_bytes());
    h.update(b"\0");
    h.update(tenant.as_str().as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_keys_are_per_api_and_tenant_and_fit_api_gateway() {
        let acme = Tenant::parse("acme").unwrap();
        let other = Tenant::parse("other").unwrap();
        let k = usage_key("a1b2c3d4e5", &acme);
        assert_eq!(k.len(), 64);
        assert_eq!(k, usage_key("a1b2c3d4e5", &acme), "stable");
        assert_ne!(k, usage_key("a1b2c3d4e5", &other));
        assert_ne!(k, usage_key("zzzzzzzzzz", &acme));
    }

    #[test]
    fn d1_a_plan_always_bounds() {
        let ok = TenantLimits {
            rate_per_sec: 10,
            burst: 20,
            quota_per_day: 1000,
        };
        assert!(check_limits(&ok).is_ok());
        for bad in [
            TenantLimits { rate_per_sec: 0, ..ok },
            TenantLimits { burst: 0, ..ok },
            TenantLimits { quota_per_day: 0, ..ok },
            TenantLimits { burst: 5, ..ok },
        ] {
            assert!(matches!(check_limits(&bad), Err(PlanError::Invalid(_))), "{bad:?}");
        }
    }
}
