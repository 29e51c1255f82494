//! SQLite adapters for Sluice's ports, for `sluice serve` on one machine: one adapter type per
//! port, as in `sluice-aws`, each over a shared database handle.
//!
//! # Layout
//! Two database files, each a handle that owns the file's schema, its one writer thread and its
//! read connections, and hands out cheap port adapters:
//!
//! - [`QueueDb`] (`queue_db.rs`): many named queues in one file, as one SQS service holds many
//!   queues; the schema, the per-queue settings ([`QueueConfig`], [`Redrive`]) and the retention
//!   purge. [`QueueDb::queue`] makes an [`EmbeddedQueue`], the [`Queue`](sluice_core::ports::Queue)
//!   port (`queue.rs`) and the [`ClaimingQueue`](sluice_core::ports::ClaimingQueue) port
//!   (`claiming.rs`); [`QueueDb::idempotency`] an [`EmbeddedIdempotency`]
//!   ([`IdempotencyStore`](sluice_core::ports::IdempotencyStore), `idempotency.rs`), whose records
//!   live beside the messages; the queue's operator tools outside the port, `peek` and
//!   `move_all_to`, are in `queue_tools.rs`.
//! - [`StoreDb`] (`store.rs`): the DynamoDB tables in one file. [`StoreDb::events`] makes an
//!   [`EmbeddedEvents`] ([`EventStore`](sluice_core::ports::EventStore), `events.rs`),
//!   [`StoreDb::keys`] an [`EmbeddedKeys`] ([`KeyStore`](sluice_core::ports::KeyStore),
//!   `keys.rs`) and [`StoreDb::sources`] an [`EmbeddedSources`]
//!   ([`SourceStore`](sluice_core::ports::SourceStore), `sources.rs`). Open the file once and take each adapter from the one `Arc<StoreDb>`.
//! - `sqlite.rs`: the SQLite plumbing both files share (opening and tuning connections, busy
//!   handling, migrations, the read pool, error classification, page limits for tests);
//!   `writer.rs`: the group-commit writer thread.
//!
//! The queue and the store are deliberately separate files, and no transaction spans both, so
//! code that works here has no hidden atomicity it would lose on SQS and DynamoDB. The one
//! atomic step across two ports, an idempotency claim with its send, is explicit: the
//! [`ClaimingQueue`](sluice_core::ports::ClaimingQueue) port, which the AWS backend does not
//! offer, so ingest claims then sends there.
//!
//! Both files run in WAL mode with `synchronous=FULL`: a write that returned `Ok` survives a power
//! cut. (A queue's receipts, deletions and visibility changes, whose loss only hands a message out
//! again, commit without an fsync of their own when no durable write shares their group: they
//! still survive any crash of the process.) To keep that affordable, each file has one writer thread that commits concurrent writes
//! together (group commit, see `writer`). Nothing here blocks the async runtime: writes wait on a
//! channel, reads run on the blocking pool.

mod claiming;
mod events;
mod feed;
mod idempotency;
mod keys;
mod plans;
mod queue;
mod queue_db;
mod queue_tools;
mod sources;
mod sqlite;
mod store;
mod writer;

pub use events::{EmbeddedEvents, MAX_LIST_LIMIT};
pub use idempotency::EmbeddedIdempotency;
pub use keys::EmbeddedKeys;
pub use plans::EmbeddedPlans;
pub use queue::{EmbeddedQueue, MAX_ATTRIBUTES, MAX_BATCH, MAX_MESSAGE_BYTES, MAX_VISIBILITY, MAX_WAIT};
pub use queue_db::{QueueConfig, QueueDb, Redrive};
pub use sources::EmbeddedSources;
pub use store::StoreDb;
#[doc(hidden)]
pub use writer::WriterStats;

use std::path::PathBuf;

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The file could not be opened or configured.
    #[error("cannot open database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file refused WAL mode (for example on a file system without shared memory), which the
    /// durability and concurrency guarantees depend on.
    #[error("database {} cannot use WAL journaling (mode is {mode})", path.display())]
    NotWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// The schema could not be brought up to date.
    #[error("cannot migrate database {}: {source}", path.display())]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the database writer thread: {0}")]
    Spawn(#[source] std::io::Error),
}
