//! The host layer: what `sluice serve` and the four Lambda functions share, so each concern lives
//! in one place and both hosts call it.
//!
//! # Layout
//! - [`settle`]: what a host does with a processed batch, one function with a named policy per
//!   host: local backoff (`sluice serve`) or batch item failures (Lambda).
//! - [`worker`]: `sluice serve`'s process step: the poller loop, its low-priority threads and the
//!   queue-depth gauge behind ingest's backpressure (D-3).
//! - [`env`]: every `SLUICE_*` variable, named once, and the one way to read them.
//! - [`feed`]: the store wrapper that wakes the feed's waiting readers on `sluice serve`.
//! - [`files`]: the schema directory and JWKS file reads, handed to the core parsed.
//! - [`clients`]: the AWS SDK clients, built once per process for `serve --backend aws` and the
//!   Lambda functions alike.
//! - [`telemetry`]: the redacting JSON log subscriber (R-1, I-1) every host installs.
//! - [`metrics`]: the metrics exporters: Prometheus text (`sluice serve`), CloudWatch EMF (Lambda).
//!
//! The core (`sluice-core`) stays free of I/O: files, the environment, threads and the clock's
//! real source are here or in the binaries.

#![forbid(unsafe_code)]

pub mod clients;
pub mod env;
pub mod feed;
pub mod files;
pub mod metrics;
pub mod settle;
pub mod telemetry;
pub mod worker;

pub use clients::Clients;
pub use env::{EnvError, Lookup, RecordingEnv, process_env};
