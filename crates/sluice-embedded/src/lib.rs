//! SQLite adapters for Sluice's ports, for `sluice serve` on one machine.
//!
//! - [`QueueDb`] / [`EmbeddedQueue`]: many named queues with SQS semantics in one file.
//! - [`StoreDb`]: events (DynamoDB semantics), idempotency records and API keys in another file.
//!
//! The queue and the store are deliberately separate files, and no transaction spans both, so
//! code that works here has no hidden atomicity it would lose on SQS and DynamoDB.
//!
//! Both files run in WAL mode with `synchronous=FULL`: a write that returned `Ok` survives a power
//! cut. To keep that affordable, each file has one writer thread that commits concurrent writes
//! together (group commit, see `writer`). Nothing here blocks the async runtime: writes wait on a
//! channel, reads run on the blocking pool.

mod queue;
mod sqlite;
mod store;
mod writer;

pub use queue::{
    EmbeddedQueue, MAX_ATTRIBUTES, MAX_BATCH, MAX_MESSAGE_BYTES, MAX_VISIBILITY, MAX_WAIT, QueueConfig, QueueDb,
    Redrive,
};
pub use store::{MAX_LIST_LIMIT, StoreDb};
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
