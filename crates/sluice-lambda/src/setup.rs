//! Init steps shared by several functions: the validator and the envelope sealer.

use crate::InitError;
use crate::env::{self, Lookup};
use sluice_aws::secrets::SecretParameters;
use sluice_core::envelope::Sealer;
use sluice_core::validate::{Limits, Schemas, Validator};
use std::sync::Arc;

/// The variable naming the SSM parameter that holds the envelope signing key ring.
pub(crate) const SIGNING_KEY_PARAM: &str = "SLUICE_SIGNING_KEY_PARAM";
/// The variable naming a directory of `<event type>.json` JSON Schemas bundled with the function.
pub(crate) const SCHEMA_DIR: &str = "SLUICE_SCHEMA_DIR";
/// `true` to refuse event types without a schema.
pub(crate) const REQUIRE_SCHEMA: &str = "SLUICE_REQUIRE_SCHEMA";

/// Where the validator's schemas come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaSource {
    dir: Option<std::path::PathBuf>,
    require: bool,
}

impl SchemaSource {
    /// Reads `SLUICE_SCHEMA_DIR` and `SLUICE_REQUIRE_SCHEMA`.
    pub(crate) fn from_lookup(env: Lookup<'_>) -> Result<Self, InitError> {
        Ok(Self {
            dir: env::path(env, SCHEMA_DIR),
            require: env::flag(env, REQUIRE_SCHEMA, false)?,
        })
    }

    /// The validator, with the default limits (the same in ingest and process, so an event
    /// accepted at ingest passes the process step's re-check).
    pub(crate) fn validator(&self) -> Result<Arc<Validator>, InitError> {
        let schemas = match &self.dir {
            Some(dir) => Schemas::load_dir(dir).map_err(|e| InitError::Schemas(e.to_string()))?,
            None => Schemas::none(),
        }
        .require_schema(self.require);
        Ok(Arc::new(Validator::new(Limits::default(), schemas)))
    }
}

/// The sealer over the key ring in SSM parameter `param`.
pub(crate) async fn sealer(secrets: &SecretParameters, param: &str) -> Result<Arc<Sealer>, InitError> {
    let keys = secrets.signing_keys(param).await?;
    let sealer = Sealer::new(keys, Limits::default().max_depth).map_err(|e| InitError::Invalid {
        var: "SLUICE_SIGNING_KEY_PARAM",
        reason: e.to_string(),
    })?;
    Ok(Arc::new(sealer))
}
