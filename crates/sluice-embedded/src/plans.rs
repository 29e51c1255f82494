//! [`EmbeddedPlans`]: the [`TenantPlans`] port on the store database's `tenant_plans` table,
//! which `sluice serve` reads (every `auth.cache_secs`) and enforces as API Gateway enforces
//! usage plans. Enrolling is a no-op here: every tenant is on the default plan until it has one.

use crate::sqlite::DbFailure;
use crate::store::StoreDb;
use async_trait::async_trait;
use rusqlite::params;
use sluice_core::Tenant;
use sluice_core::ports::{PlanError, TenantLimits, TenantPlans, check_limits};
use std::sync::Arc;

/// The [`TenantPlans`] port on a [`StoreDb`]; made by [`StoreDb::plans`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EmbeddedPlans {
    db: Arc<StoreDb>,
}

impl EmbeddedPlans {
    pub(crate) fn new(db: Arc<StoreDb>) -> Self {
        Self { db }
    }
}

fn unavailable(f: DbFailure) -> PlanError {
    PlanError::Unavailable(f.reason())
}

type PlanRow = (String, i64, i64, i64);

const SELECT: &str = "SELECT tenant, rate_per_sec, burst, quota_per_day FROM tenant_plans";

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<PlanRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn decode((tenant, rate, burst, quota): PlanRow) -> Result<(Tenant, TenantLimits), PlanError> {
    let corrupt = || PlanError::Unavailable("a stored tenant plan is corrupt".into());
    Ok((
        Tenant::parse(&tenant).map_err(|_| corrupt())?,
        TenantLimits {
            rate_per_sec: u32::try_from(rate).map_err(|_| corrupt())?,
            burst: u32::try_from(burst).map_err(|_| corrupt())?,
            quota_per_day: u64::try_from(quota).map_err(|_| corrupt())?,
        },
    ))
}

#[async_trait]
impl TenantPlans for EmbeddedPlans {
    async fn enroll(&self, _tenant: &Tenant) -> Result<(), PlanError> {
        Ok(())
    }

    async fn set(&self, tenant: &Tenant, limits: TenantLimits) -> Result<(), PlanError> {
        check_limits(&limits)?;
        let quota = i64::try_from(limits.quota_per_day).map_err(|_| PlanError::Invalid("quota too large".into()))?;
        let tenant = tenant.as_str().to_owned();
        self.db
            .writer
            .run(move |c| {
                c.prepare_cached(
                    "INSERT INTO tenant_plans (tenant, rate_per_sec, burst, quota_per_day) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (tenant) DO UPDATE SET rate_per_sec = ?2, burst = ?3, quota_per_day = ?4",
                )?
                .execute(params![tenant, limits.rate_per_sec, limits.burst, quota])
            })
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get(&self, tenant: &Tenant) -> Result<Option<TenantLimits>, PlanError> {
        let row = self
            .db
            .select_one(format!("{SELECT} WHERE tenant = ?1"), tenant.as_str().to_owned(), read)
            .await
            .map_err(unavailable)?;
        row.map(|r| decode(r).map(|(_, l)| l)).transpose()
    }

    async fn list(&self) -> Result<Vec<(Tenant, TenantLimits)>, PlanError> {
        self.db
            .select_all(format!("{SELECT} ORDER BY tenant"), read)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(decode)
            .collect()
    }

    async fn clear(&self, tenant: &Tenant) -> Result<bool, PlanError> {
        let tenant = tenant.as_str().to_owned();
        let n = self
            .db
            .writer
            .run(move |c| {
                c.prepare_cached("DELETE FROM tenant_plans WHERE tenant = ?1")?
                    .execute([tenant])
            })
            .await
            .map_err(unavailable)?;
        Ok(n > 0)
    }
}
