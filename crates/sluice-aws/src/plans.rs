//! [`ApiGatewayPlans`]: the [`TenantPlans`] port as API Gateway usage plans on the deployment's
//! REST API stage (D-1, D-2 per tenant).
//!
//! Each tenant has one API Gateway API key, named `sluice-{api}-tenant-{tenant}`, whose value is
//! [`usage_key`]: what the authorizer returns as `usageIdentifierKey`. The key is in exactly one
//! usage plan on the stage: the template's default plan (`SLUICE_DEFAULT_USAGE_PLAN_ID`), or the
//! tenant's own, named like the key. Nothing of a Sluice key's secret reaches API Gateway.
//!
//! A change of limits creates the tenant's new plan, moves the key to it and deletes the old one,
//! rather than patching the plan in place: moto stores a patched quota limit as a string, which
//! no SDK can read back, and a replacement is the same few calls on AWS. Between the move's two
//! calls (a few milliseconds) the key is in no plan, and API Gateway refuses the tenant's
//! requests (`INVALID_API_KEY`, which the template answers as the 401 problem); plan changes take
//! a few seconds to apply on AWS in any case.

use crate::error::Failure;
use async_trait::async_trait;
use aws_sdk_apigateway::Client;
use aws_sdk_apigateway::types::{ApiStage, QuotaPeriodType, QuotaSettings, ThrottleSettings, UsagePlan};
use sluice_core::Tenant;
use sluice_core::ports::{PlanError, TenantLimits, TenantPlans, check_limits, usage_key};

/// API Gateway's name for an API key in a usage plan.
const KEY_TYPE: &str = "API_KEY";
/// The most items API Gateway lists per page.
const PAGE: i32 = 500;

/// The [`TenantPlans`] port on one REST API stage. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiGatewayPlans {
    client: Client,
    api_id: String,
    stage: String,
    default_plan: String,
}

fn unavailable<E>(
    operation: &'static str,
) -> impl FnOnce(aws_sdk_apigateway::error::SdkError<E, aws_sdk_apigateway::config::http::HttpResponse>) -> PlanError
where
    E: aws_sdk_apigateway::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| PlanError::Unavailable(Failure::classify("API Gateway", operation, &e).to_string())
}

impl ApiGatewayPlans {
    /// Plans on stage `stage` of REST API `api_id`, with `default_plan` (a usage plan id) for
    /// tenants without their own.
    pub fn new(client: Client, api_id: &str, stage: &str, default_plan: &str) -> Self {
        Self {
            client,
            api_id: api_id.to_owned(),
            stage: stage.to_owned(),
            default_plan: default_plan.to_owned(),
        }
    }

    /// [`ApiGatewayPlans::new`] with a client over `sdk`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, api_id: &str, stage: &str, default_plan: &str) -> Self {
        Self::new(Client::new(sdk), api_id, stage, default_plan)
    }

    /// The name of the tenant's API key and of its own plan.
    fn name(&self, tenant: &Tenant) -> String {
        format!("sluice-{}-tenant-{}", self.api_id, tenant.as_str())
    }

    /// The prefix of every name this API's tenants have.
    fn prefix(&self) -> String {
        format!("sluice-{}-tenant-", self.api_id)
    }

    /// The id of the tenant's API key, if it has one.
    async fn key_id(&self, tenant: &Tenant) -> Result<Option<String>, PlanError> {
        let name = self.name(tenant);
        let mut position = None;
        loop {
            let page = self
                .client
                .get_api_keys()
                .name_query(&name)
                .limit(PAGE)
                .set_position(position)
                .send()
                .await
                .map_err(unavailable("GetApiKeys"))?;
            // The query matches by prefix: tenant `a` must not find `a-b`'s key.
            if let Some(id) = page
                .items()
                .iter()
                .find(|k| k.name() == Some(name.as_str()))
                .and_then(|k| k.id())
            {
                return Ok(Some(id.to_owned()));
            }
            match page.position() {
                Some(p) if !page.items().is_empty() => position = Some(p.to_owned()),
                _ => return Ok(None),
            }
        }
    }

    /// Every usage plan of the account (API Gateway has no name filter).
    async fn all_plans(&self, key_id: Option<&str>) -> Result<Vec<UsagePlan>, PlanError> {
        let mut out = Vec::new();
        let mut position = None;
        loop {
            let page = self
                .client
                .get_usage_plans()
                .set_key_id(key_id.map(str::to_owned))
                .limit(PAGE)
                .set_position(position)
                .send()
                .await
                .map_err(unavailable("GetUsagePlans"))?;
            out.extend(page.items().iter().cloned());
            match page.position() {
                Some(p) if !page.items().is_empty() => position = Some(p.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// The tenant's own plans (one, but a replacement interrupted half way may leave two).
    async fn own_plans(&self, tenant: &Tenant) -> Result<Vec<UsagePlan>, PlanError> {
        let name = self.name(tenant);
        Ok(self
            .all_plans(None)
            .await?
            .into_iter()
            .filter(|p| p.name() == Some(name.as_str()))
            .collect())
    }

    /// The tenant's API key id, created (with its derived value) if missing.
    async fn ensure_key(&self, tenant: &Tenant) -> Result<String, PlanError> {
        if let Some(id) = self.key_id(tenant).await? {
            return Ok(id);
        }
        let created = self
            .client
            .create_api_key()
            .name(self.name(tenant))
            .description(format!("Sluice tenant {tenant}: the authorizer's usageIdentifierKey"))
            .value(usage_key(&self.api_id, tenant))
            .enabled(true)
            .send()
            .await
            .map_err(unavailable("CreateApiKey"))?;
        created
            .id()
            .map(str::to_owned)
            .ok_or_else(|| PlanError::Unavailable("API Gateway CreateApiKey returned no id".into()))
    }

    async fn add_key(&self, plan: &str, key_id: &str) -> Result<(), PlanError> {
        self.client
            .create_usage_plan_key()
            .usage_plan_id(plan)
            .key_id(key_id)
            .key_type(KEY_TYPE)
            .send()
            .await
            .map_err(unavailable("CreateUsagePlanKey"))?;
        Ok(())
    }

    async fn remove_key(&self, plan: &str, key_id: &str) -> Result<(), PlanError> {
        self.client
            .delete_usage_plan_key()
            .usage_plan_id(plan)
            .key_id(key_id)
            .send()
            .await
            .map_err(unavailable("DeleteUsagePlanKey"))?;
        Ok(())
    }

    async fn delete_plan(&self, plan: &str) -> Result<(), PlanError> {
        self.client
            .delete_usage_plan()
            .usage_plan_id(plan)
            .send()
            .await
            .map_err(unavailable("DeleteUsagePlan"))?;
        Ok(())
    }

    /// Moves the key out of every plan in `from` into `to` (removing first: a key may not be in
    /// two plans of one stage), then deletes the tenant's plans among `from`.
    async fn move_key(&self, key_id: &str, from: &[UsagePlan], to: &str, tenant: &Tenant) -> Result<(), PlanError> {
        let own = self.name(tenant);
        for plan in from.iter().filter_map(|p| p.id().map(|id| (id, p.name()))) {
            if plan.0 != to {
                self.remove_key(plan.0, key_id).await?;
            }
        }
        if !from.iter().any(|p| p.id() == Some(to)) {
            self.add_key(to, key_id).await?;
        }
        for (id, name) in from.iter().filter_map(|p| p.id().map(|id| (id, p.name()))) {
            if id != to && name == Some(own.as_str()) {
                self.delete_plan(id).await?;
            }
        }
        Ok(())
    }
}

/// The limits of a plan, if it has a throttle and a daily quota.
fn limits_of(plan: &UsagePlan) -> Option<TenantLimits> {
    let throttle = plan.throttle()?;
    let quota = plan.quota()?;
    if quota.period() != Some(&QuotaPeriodType::Day) {
        return None;
    }
    Some(TenantLimits {
        rate_per_sec: u32::try_from(throttle.rate_limit().round() as i64).ok()?,
        burst: u32::try_from(throttle.burst_limit()).ok()?,
        quota_per_day: u64::try_from(quota.limit()).ok()?,
    })
}

#[async_trait]
impl TenantPlans for ApiGatewayPlans {
    async fn enroll(&self, tenant: &Tenant) -> Result<(), PlanError> {
        let key_id = self.ensure_key(tenant).await?;
        if self.all_plans(Some(&key_id)).await?.is_empty() {
            self.add_key(&self.default_plan, &key_id).await?;
        }
        Ok(())
    }

    async fn set(&self, tenant: &Tenant, limits: TenantLimits) -> Result<(), PlanError> {
        check_limits(&limits)?;
        let quota = i32::try_from(limits.quota_per_day)
            .map_err(|_| PlanError::Invalid(format!("a quota per day is at most {}", i32::MAX)))?;
        let burst =
            i32::try_from(limits.burst).map_err(|_| PlanError::Invalid(format!("a burst is at most {}", i32::MAX)))?;
        let key_id = self.ensure_key(tenant).await?;
        let created = self
            .client
            .create_usage_plan()
            .name(self.name(tenant))
            .description(format!("Sluice tenant {tenant}"))
            .api_stages(ApiStage::builder().api_id(&self.api_id).stage(&self.stage).build())
            .throttle(
                ThrottleSettings::builder()
                    .rate_limit(f64::from(limits.rate_per_sec))
                    .burst_limit(burst)
                    .build(),
            )
            .quota(
                QuotaSettings::builder()
                    .limit(quota)
                    .period(QuotaPeriodType::Day)
                    .build(),
            )
            .send()
            .await
            .map_err(unavailable("CreateUsagePlan"))?;
        let plan = created
            .id()
            .ok_or_else(|| PlanError::Unavailable("API Gateway CreateUsagePlan returned no id".into()))?;
        let current = self.all_plans(Some(&key_id)).await?;
        self.move_key(&key_id, &current, plan, tenant).await?;
        // A plan left behind by an interrupted earlier change, holding no key.
        for stale in self.own_plans(tenant).await? {
            if let Some(id) = stale.id().filter(|id| *id != plan) {
                self.delete_plan(id).await?;
            }
        }
        Ok(())
    }

    async fn get(&self, tenant: &Tenant) -> Result<Option<TenantLimits>, PlanError> {
        let Some(key_id) = self.key_id(tenant).await? else {
            return Ok(None);
        };
        let name = self.name(tenant);
        Ok(self
            .all_plans(Some(&key_id))
            .await?
            .iter()
            .find(|p| p.name() == Some(name.as_str()))
            .and_then(limits_of))
    }

    async fn list(&self) -> Result<Vec<(Tenant, TenantLimits)>, PlanError> {
        let prefix = self.prefix();
        let mut out: Vec<(Tenant, TenantLimits)> = self
            .all_plans(None)
            .await?
            .iter()
            .filter_map(|p| {
                let tenant = Tenant::parse(p.name()?.strip_prefix(&prefix)?).ok()?;
                Some((tenant, limits_of(p)?))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        Ok(out)
    }

    async fn clear(&self, tenant: &Tenant) -> Result<bool, PlanError> {
        let own = self.own_plans(tenant).await?;
        if own.is_empty() {
            return Ok(false);
        }
        match self.key_id(tenant).await? {
            Some(key_id) => {
                let current = self.all_plans(Some(&key_id)).await?;
                let default = self.default_plan.clone();
                self.move_key(&key_id, &current, &default, tenant).await?;
            }
            None => {
                for id in own.iter().filter_map(UsagePlan::id) {
                    self.delete_plan(id).await?;
                }
            }
        }
        Ok(true)
    }
}
