//! The `sluice` command: the whole pipeline on one machine, plus operator tools.
//!
//! # Layout
//! - [`cli`]: the command line (clap) and what each subcommand does.
//! - [`config`]: layered configuration (defaults, file, `SLUICE_*` environment, flags).
//! - [`serve`]: `sluice serve`, the gateway and the worker pool over the embedded adapters.
//! - [`secrets`]: local signing and cursor keys.
//! - [`telemetry`]: JSON logs with redaction.
//!
//! `main.rs` only parses arguments and calls [`cli::run`].

pub mod cli;
pub mod config;
pub mod secrets;
pub mod serve;
pub mod telemetry;
