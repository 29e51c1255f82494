//! Init steps the ingest and process functions share: the validator and the envelope sealer.

use crate::InitError;
use sluice_aws::secrets::SecretParameters;
use sluice_core::envelope::Sealer;
use sluice_core::validate::{Limits, Validator};
use sluice_host::env::SchemaSource;
use std::sync::Arc;

/// The validator, with the default limits (the same in ingest and process, so an event accepted
/// at ingest passes the process step's re-check).
pub(crate) fn validator(schemas: &SchemaSource) -> Result<Arc<Validator>, InitError> {
    Ok(Arc::new(Validator::new(Limits::default(), schemas.load()?)))
}

/// The sealer over the key ring in SSM parameter `param`.
pub(crate) async fn sealer(secrets: &SecretParameters, param: &str) -> Result<Arc<Sealer>, InitError> {
    let keys = secrets.signing_keys(param).await?;
    let sealer = Sealer::new(keys, Limits::default().max_depth).map_err(|e| InitError::SigningKeys(e.to_string()))?;
    Ok(Arc::new(sealer))
}
