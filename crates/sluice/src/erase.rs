//! `sluice erase --tenant T --subject S`: an operator's erasure of one subject's events, the same
//! use case as `POST /v1/erasures` (stored events deleted with tombstones, their idempotency
//! records forgotten, the embedded queue and dead-letter queue swept, the subject marked so the
//! process step drops whatever of it still arrives), recorded with `cli` as who asked.

use crate::cli::emit;
use crate::exit::{Classify, CliError};
use crate::output::{Format, Listing};
use crate::{config::Config, serve};
use anyhow::Context;
use serde_json::json;
use sluice_core::Tenant;
use sluice_core::clock::SystemClock;
use sluice_core::envelope::Sealer;
use sluice_core::feed::{FeedService, FeedServiceError};
use std::sync::Arc;

/// `sluice erase`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tenant whose events are erased.
    #[arg(long)]
    tenant: String,
    /// The subject (the events' `subject`) to erase.
    #[arg(long)]
    subject: String,
}

/// Runs the erasure and prints its receipt.
pub async fn run(config: &Config, args: Args, output: Format) -> Result<(), CliError> {
    let tenant = Tenant::parse(&args.tenant).context("--tenant").refused()?;
    let ports = serve::open_ports(config).await.unavailable()?;
    let (signing, _) = serve::load_keys(config).await.unavailable()?;
    let sealer = Arc::new(Sealer::new(signing, config.limits.max_depth).unavailable()?);
    let retention = config.retention.rule().refused()?;
    let service = FeedService::new(ports.events, retention, Arc::new(SystemClock))
        .with_idempotency(ports.idempotency)
        .with_swept_queues(sealer, ports.swept);
    let r = service
        .erase(&tenant, &args.subject, "cli")
        .await
        .map_err(|e| match e {
            FeedServiceError::InvalidParameter { .. } => CliError::Refused(e.into()),
            other => CliError::Unavailable(other.into()),
        })?;
    tracing::info!(
        target: "sluice::audit", tenant = %tenant, by = "cli", erasure_id = %r.id, events_deleted = r.events_deleted,
        queued_dropped = r.queued_dropped, dead_lettered_dropped = r.dead_lettered_dropped, "subject erased"
    );
    let mut listing = Listing::new([
        "id",
        "status",
        "events_deleted",
        "idempotency_records",
        "queued_dropped",
        "dead_lettered_dropped",
        "completed_at",
    ]);
    listing.push([
        json!(r.id),
        json!(r.status.as_str()),
        json!(r.events_deleted),
        json!(r.idempotency_records),
        json!(r.queued_dropped),
        json!(r.dead_lettered_dropped),
        json!(
            r.completed_at
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        ),
    ]);
    emit(&listing.render(output))?;
    Ok(())
}
