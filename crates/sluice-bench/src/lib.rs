//! Sluice's benchmark references and measurement tools, driven by `bench/run.sh`.
//!
//! Absolute numbers on a shared 2-core machine are noise; ratios to a reference measured in the
//! same run are not. Each module is either a reference (what the machine can do at best) or a
//! measurement of Sluice itself, and every one prints one JSON object for the report.
//!
//! # Layout
//! - [`bare`] — the HTTP ceiling, an axum handler that answers 202 and does nothing else.
//! - [`disk`] — the disk ceiling, raw batched SQLite inserts with the queue's durability
//!   (WAL, `synchronous=FULL`, group commit).
//! - [`process`] — records per second of the process step alone, embedded and on moto.
//! - [`e2e`] — events per second from HTTP to the store, and the time from 202 to readable.
//! - [`intake`] — signed-webhook intake next to bearer-key ingest, with the same client.
//! - [`openloop`] — request latency at a fixed offered rate, from each request's intended send
//!   time (free of coordinated omission, as `wrk2`).
//! - [`coldstart`] — a minimal Lambda Runtime API that times a function from exec to its first
//!   response and reads its peak memory.
//! - `cpu` (the `sluice-cpu` crate) — the work of validation and envelope sealing per event, for `callgrind`.
//! - [`stats`] — percentiles.

pub mod bare;
pub mod coldstart;
pub mod disk;
pub mod e2e;
pub mod feed;
pub mod intake;
pub mod openloop;
pub mod process;
pub mod stats;
