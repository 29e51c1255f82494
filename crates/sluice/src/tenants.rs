//! `sluice tenants limits`: each tenant's own request rate, burst and daily quota (D-1, D-2), as
//! one usage plan per tenant.
//!
//! On the embedded backend the plans live in the store and `sluice serve` enforces them (a change
//! applies within `auth.cache_secs`). With `--backend aws` they are API Gateway usage plans on the
//! REST API that `SLUICE_REST_API_ID`, `SLUICE_API_STAGE` and `SLUICE_DEFAULT_USAGE_PLAN_ID` name
//! (the template's outputs), and API Gateway enforces them. A tenant without a plan of its own is
//! on the default plan: `[throttle]` locally, the template's `Tenant*` parameters on AWS.

use crate::cli::emit;
use crate::config::{Backend, Config};
use crate::exit::{Classify, CliError};
use crate::output::{Format, Listing};
use crate::serve;
use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use sluice_core::Tenant;
use sluice_core::ports::{PlanError, TenantLimits, TenantPlans};
use std::sync::Arc;

/// `sluice tenants …`.
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// A tenant's own limits: rate, burst and quota per day (API Gateway usage plans on AWS).
    #[command(subcommand)]
    Limits(LimitsCommand),
}

/// `sluice tenants limits …`.
#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// Give a tenant a plan of its own, or change it.
    Set {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Sustained requests per second over all the tenant's keys (at least 1).
        #[arg(long)]
        rate: u32,
        /// Bucket size, at least the rate.
        #[arg(long)]
        burst: u32,
        /// Requests per UTC day (at least 1).
        #[arg(long)]
        quota_per_day: u64,
    },
    /// Show a tenant's plan: its own, or the default.
    Show {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// List the tenants with a plan of their own.
    List,
    /// Put a tenant back on the default plan.
    Clear {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
}

fn plan_error(e: PlanError) -> CliError {
    match e {
        PlanError::Invalid(_) => CliError::Refused(e.into()),
        PlanError::Unavailable(_) => CliError::Unavailable(e.into()),
    }
}

/// The configured backend's plans; on AWS only with the REST API named.
pub(crate) async fn open(config: &Config) -> Result<Arc<dyn TenantPlans>, CliError> {
    let ports = serve::open_ports(config).await.unavailable()?;
    ports.plans.ok_or_else(|| {
        CliError::Refused(anyhow::anyhow!(
            "tenant plans on AWS are the REST API's usage plans: set SLUICE_REST_API_ID, SLUICE_API_STAGE \
             and SLUICE_DEFAULT_USAGE_PLAN_ID (the stack's RestApiId, ApiStageName and DefaultUsagePlanId \
             outputs); the HTTP API variant has route limits only"
        ))
    })
}

fn row(tenant: &Tenant, plan: &str, l: &TenantLimits) -> [serde_json::Value; 5] {
    [
        json!(tenant.as_str()),
        json!(plan),
        json!(l.rate_per_sec),
        json!(l.burst),
        json!(l.quota_per_day),
    ]
}

/// The default plan as `sluice serve` applies it (0: no limit). On AWS it is the template's.
fn default_limits(config: &Config) -> TenantLimits {
    TenantLimits {
        rate_per_sec: config.throttle.rate_per_sec,
        burst: config.throttle.burst,
        quota_per_day: config.throttle.quota_per_day,
    }
}

/// Runs `sluice tenants …`.
pub async fn run(config: &Config, cmd: TenantsCommand, output: Format) -> Result<(), CliError> {
    let TenantsCommand::Limits(cmd) = cmd;
    let plans = open(config).await?;
    let tenant = |t: &str| Tenant::parse(t).context("--tenant").refused();
    let columns = ["tenant", "plan", "rate_per_sec", "burst", "quota_per_day"];
    match cmd {
        LimitsCommand::Set {
            tenant: t,
            rate,
            burst,
            quota_per_day,
        } => {
            let t = tenant(&t)?;
            let limits = TenantLimits {
                rate_per_sec: rate,
                burst,
                quota_per_day,
            };
            plans.set(&t, limits).await.map_err(plan_error)?;
            eprintln!(
                "tenant {t}: {rate} requests/s, burst {burst}, {quota_per_day} requests a day{}",
                match config.backend {
                    Backend::Embedded => " (a running server applies it within auth.cache_secs)",
                    Backend::Aws => " (API Gateway applies it within seconds)",
                }
            );
        }
        LimitsCommand::Show { tenant: t } => {
            let t = tenant(&t)?;
            let mut listing = Listing::new(columns);
            match plans.get(&t).await.map_err(plan_error)? {
                Some(l) => listing.push(row(&t, "own", &l)),
                None => match config.backend {
                    Backend::Embedded => {
                        let own = config.throttle.tenants.get(t.as_str()).copied();
                        let (plan, l) = own.map_or(("default", default_limits(config)), |l| ("configured", l));
                        listing.push(row(&t, plan, &l));
                    }
                    // The default plan's limits are the stack's parameters, not read here.
                    Backend::Aws => listing.push([
                        json!(t.as_str()),
                        json!("default"),
                        json!(null),
                        json!(null),
                        json!(null),
                    ]),
                },
            }
            emit(&listing.render(output))?;
        }
        LimitsCommand::List => {
            let mut listing = Listing::new(columns);
            for (t, l) in plans.list().await.map_err(plan_error)? {
                listing.push(row(&t, "own", &l));
            }
            emit(&listing.render(output))?;
        }
        LimitsCommand::Clear { tenant: t } => {
            let t = tenant(&t)?;
            if plans.clear(&t).await.map_err(plan_error)? {
                eprintln!("tenant {t} is on the default plan again");
            } else {
                return Err(CliError::NotFound(format!("tenant {t} has no plan of its own")));
            }
        }
    }
    Ok(())
}
