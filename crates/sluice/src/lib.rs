//! The `sluice` command: the whole pipeline on one machine, plus operator tools.
//!
//! # Layout
//! - [`cli`]: the command line (clap) and what each subcommand does.
//! - [`output`]: the one output convention of every listing (`--output table|json`).
//! - [`exit`]: the typed command error and its exit status (not found, refused, unavailable).
//! - [`admin`]: the admin listener of `sluice serve`: Prometheus metrics and the console.
//! - [`aws`]: `sluice aws provision`, the AWS data path's queues and tables without SAM.
//! - [`cost`]: `sluice cost`, the AWS bill per million events and the worst hour an attacker can
//!   force (D-2).
//! - [`config`]: layered configuration (defaults, file, `SLUICE_*` environment, flags), including
//!   the backend, the AWS resources and `[auth.oidc]`; the sections other crates own
//!   (`[throttle]`, `[log]`, `[limits]`) are their types, embedded.
//! - [`listen`]: the accept loop, hyper's HTTP/1 server with a header-read timeout and bounded
//!   connections, in all and per client address (D-2).
//! - [`serve`]: `sluice serve`, the gateway and the worker pool over the ports: the embedded
//!   adapters, or SQS and DynamoDB (`--backend aws`).
//! - [`secrets`]: local signing and cursor keys.
//! - [`sources`]: `sluice sources`, webhook sources and their secrets.
//! - [`tenants`]: `sluice tenants limits`, per-tenant plans (usage plans on AWS).
//! - [`erase`]: `sluice erase`, one subject's events erased on either backend.
//!
//! The worker loop, the settle policy, the environment's names, the file reads, the SDK clients
//! and the redacting log subscriber are `sluice-host`'s, shared with the Lambda functions.
//!
//! `main.rs` only parses arguments and calls [`cli::run`].

pub mod admin;
pub mod aws;
pub mod cli;
pub mod config;
pub mod cost;
pub mod erase;
pub mod exit;
pub mod listen;
pub mod output;
pub mod secrets;
pub mod serve;
pub mod sources;
pub mod tenants;
