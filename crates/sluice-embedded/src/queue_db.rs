//! [`QueueDb`]: the embedded queue database, one SQLite file holding many named queues, as one
//! SQS service holds many queues, and the idempotency claims their sends commit with. This file owns what is not the [`Queue`](sluice_core::ports::Queue)
//! port itself: the schema, opening the file and starting its group-commit
//! [writer](crate::writer), the per-queue settings ([`QueueConfig`], [`Redrive`]), the wake-ups
//! the queues of one file share, and the retention purge the writer runs as housekeeping.
//!
//! Rows carry Unix times: `sent_at_ns` (nanoseconds, for retention and `SentTimestamp`) and
//! `visible_at_ms` (milliseconds, SQS's visibility granularity is coarser still).

use crate::EmbeddedError;
use crate::idempotency::EmbeddedIdempotency;
use crate::queue::{EmbeddedQueue, unavailable};
use crate::sqlite::{ReadPool, limit_pages, open_writer};
use crate::writer::{Maintenance, Writer, WriterStats};
use parking_lot::Mutex;
use rusqlite::{Connection, params};
use sluice_core::ports::QueueError;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

pub(crate) const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        queue TEXT NOT NULL,
        message_id TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL,
        attributes TEXT NOT NULL,
        sent_at_ns INTEGER NOT NULL,
        visible_at_ms INTEGER NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        receipt TEXT
    );
    CREATE INDEX messages_by_queue ON messages (queue, seq);
    CREATE INDEX messages_by_visibility ON messages (queue, visible_at_ms);
",
    "
    -- Two B-trees instead of four: every send, receive and delete writes each of them, and the
    -- queue's writer is the pipeline's busiest thread. Receipts now carry the row's seq, so the
    -- UNIQUE message_id index is not needed to find a message, and receives walk the visibility
    -- index (queue, visible_at_ms, seq) instead of a second (queue, seq) index.
    CREATE TABLE messages_v2 (
        seq INTEGER PRIMARY KEY,
        queue TEXT NOT NULL,
        message_id TEXT NOT NULL,
        body TEXT NOT NULL,
        attributes TEXT NOT NULL,
        sent_at_ns INTEGER NOT NULL,
        visible_at_ms INTEGER NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        receipt TEXT
    );
    INSERT INTO messages_v2
        SELECT seq, queue, message_id, body, attributes, sent_at_ns, visible_at_ms, receive_count, receipt
        FROM messages;
    DROP TABLE messages;
    ALTER TABLE messages_v2 RENAME TO messages;
    CREATE INDEX messages_by_visibility ON messages (queue, visible_at_ms);
",
    "
    -- Idempotency claims beside the messages they send, so a claim and its send commit together
    -- (the ClaimingQueue port). They hold ids, not envelopes.
    CREATE TABLE idempotency (
        tenant TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        ids TEXT NOT NULL,
        single INTEGER NOT NULL,
        completed INTEGER NOT NULL,
        expires_at_ns INTEGER NOT NULL,
        PRIMARY KEY (tenant, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_by_expiry ON idempotency (expires_at_ns);
",
    "
    -- Fair queues (SQS MessageGroupId on a standard queue): each message's group, and the one
    -- index now ordered by group first, so a receive can take the oldest visible messages of
    -- each group in turn (one tenant's backlog does not hold back another's events) and still
    -- writes two B-trees per send. Messages sent without a group share the group ''.
    ALTER TABLE messages ADD COLUMN grp TEXT NOT NULL DEFAULT '';
    DROP INDEX messages_by_visibility;
    CREATE INDEX messages_by_group ON messages (queue, grp, visible_at_ms);
",
];

/// Dead-letter policy of a queue (SQS `RedrivePolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    /// Name of the queue, in the same [`QueueDb`], that takes messages received too often.
    pub dead_letter_queue: String,
    /// A message already received this many times moves to the dead-letter queue on its next
    /// receive instead of being handed out.
    pub max_receive_count: u32,
}

/// Per-queue settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Where messages go after too many receives; `None` keeps them until retention ends.
    pub redrive: Option<Redrive>,
    /// Messages older than this (since their original send) are dropped (SQS
    /// `MessageRetentionPeriod`).
    pub retention: Duration,
}

impl Default for QueueConfig {
    /// No redrive, 4 days of retention (the SQS defaults).
    fn default() -> Self {
        Self {
            redrive: None,
            retention: Duration::from_secs(4 * 24 * 60 * 60),
        }
    }
}

/// What the queues of one file share beside the connections: wake-ups and retention settings.
#[derive(Default)]
struct Registry {
    notifies: HashMap<String, Arc<Notify>>,
    retention: HashMap<String, Duration>,
}

impl Registry {
    fn notify(&mut self, name: &str) -> Arc<Notify> {
        self.notifies.entry(name.to_owned()).or_default().clone()
    }
}

/// One SQLite file holding many named queues, as one SQS service holds many queues.
///
/// Opening starts the file's writer thread; it stops when the last handle
/// ([`QueueDb`] or [`EmbeddedQueue`]) is dropped.
pub struct QueueDb {
    pub(crate) writer: Writer,
    pub(crate) reader: Arc<ReadPool>,
    registry: Arc<Mutex<Registry>>,
    /// The caller's `now` at the last purge of expired idempotency records.
    pub(crate) last_idempotency_purge_ns: Arc<AtomicI64>,
}

impl std::fmt::Debug for QueueDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueDb").finish_non_exhaustive()
    }
}

impl QueueDb {
    /// Opens (creating and migrating if needed) the queue database at `path`.
    pub fn open(path: &Path) -> Result<Arc<QueueDb>, EmbeddedError> {
        let conn = open_writer(path, MIGRATIONS)?;
        let registry = Arc::new(Mutex::new(Registry::default()));
        let purge_registry = registry.clone();
        let maintenance: Maintenance = Box::new(move |c: &Connection| purge(c, &purge_registry).map(|_| ()));
        let writer = Writer::spawn("sluice-queue-writer", conn, Some(maintenance)).map_err(EmbeddedError::Spawn)?;
        let reader = ReadPool::new(path)?;
        Ok(Arc::new(QueueDb {
            writer,
            reader,
            registry,
            last_idempotency_purge_ns: Arc::new(AtomicI64::new(i64::MIN)),
        }))
    }

    /// The [`IdempotencyStore`](sluice_core::ports::IdempotencyStore) on this database: its
    /// records are the ones every [`EmbeddedQueue`] of the file claims with its sends (see
    /// [`ClaimingQueue`](sluice_core::ports::ClaimingQueue)).
    pub fn idempotency(self: &Arc<Self>) -> EmbeddedIdempotency {
        EmbeddedIdempotency::new(self.clone())
    }

    /// A handle on the queue `name`, created on first use. `config` applies to this handle's
    /// receives; its retention also governs the periodic purge of the queue.
    pub fn queue(self: &Arc<Self>, name: &str, config: QueueConfig) -> EmbeddedQueue {
        let notify = {
            let mut reg = self.registry.lock();
            reg.retention.insert(name.to_owned(), config.retention);
            reg.notify(name)
        };
        EmbeddedQueue {
            db: self.clone(),
            name: Arc::from(name),
            config: Arc::new(config),
            notify,
            rotation: Arc::default(),
        }
    }

    /// Commit counters of the writer, for tests of group commit.
    #[doc(hidden)]
    pub fn stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// Runs the retention purge now instead of waiting for the writer's next housekeeping.
    #[doc(hidden)]
    pub async fn purge_now(&self) -> Result<u64, QueueError> {
        let registry = self.registry.clone();
        self.writer.run(move |c| purge(c, &registry)).await.map_err(unavailable)
    }

    /// Caps the file at its current size plus `extra_pages` (`None` lifts the cap), so tests can
    /// make writes fail with `SQLITE_FULL` as on a full disk.
    #[doc(hidden)]
    pub async fn limit_pages(&self, extra_pages: Option<u64>) -> Result<(), QueueError> {
        self.writer
            .run(move |c| limit_pages(c, extra_pages))
            .await
            .map_err(unavailable)
    }

    /// The wake-up of the queue `name`, rung after a commit that makes messages visible in it.
    pub(crate) fn notify(&self, name: &str) -> Arc<Notify> {
        self.registry.lock().notify(name)
    }
}

/// Deletes messages past their queue's retention; returns how many.
fn purge(c: &Connection, registry: &Mutex<Registry>) -> rusqlite::Result<u64> {
    let retention: Vec<(String, Duration)> = registry.lock().retention.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let mut purged = 0;
    for (queue, keep) in retention {
        let n = c.execute(
            "DELETE FROM messages WHERE queue = ?1 AND sent_at_ns < ?2",
            params![queue, retention_cutoff_ns(keep)],
        )?;
        if n > 0 {
            tracing::info!(queue = %queue, purged = n, "purged messages past retention");
        }
        purged += n as u64;
    }
    Ok(purged)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Messages sent before this instant (Unix nanos) are past `retention`.
pub(crate) fn retention_cutoff_ns(retention: Duration) -> i64 {
    now_ns().saturating_sub(i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{next_group_sql, receive_sql};
    use sluice_core::ports::Queue;

    fn plan(c: &Connection, sql: &str) -> String {
        // Parameters stay unbound: the plan is what QPSG keeps for every binding.
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let mut rows = stmt.raw_query();
        let mut steps = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            steps.push(r.get::<_, String>(3).unwrap());
        }
        steps.join("; ")
    }

    #[test]
    fn messages_live_in_two_btrees_and_a_receive_walks_one_index_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let c = open_writer(&dir.path().join("q.db"), MIGRATIONS).unwrap();
        let btrees: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE tbl_name = 'messages' AND rootpage > 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(btrees, 2, "each B-tree is written by every send, receive and delete");
        for sql in [receive_sql(), next_group_sql(true), next_group_sql(false)] {
            let receive = plan(&c, &sql);
            assert!(
                receive.contains("USING COVERING INDEX messages_by_group")
                    || receive.contains("USING INDEX messages_by_group"),
                "{receive}"
            );
            assert!(!receive.contains("TEMP B-TREE"), "{receive}");
        }
        let by_receipt = plan(&c, "SELECT queue, message_id, receipt FROM messages WHERE seq = 1");
        assert!(by_receipt.contains("INTEGER PRIMARY KEY"), "{by_receipt}");
    }

    #[tokio::test]
    async fn messages_queued_before_the_two_btree_schema_survive_the_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        {
            let old = open_writer(&path, &MIGRATIONS[..1]).unwrap();
            old.execute(
                "INSERT INTO messages (queue, message_id, body, attributes, sent_at_ns, visible_at_ms) \
                 VALUES ('q', '01OLD', 'kept', '{\"k\":\"v\"}', ?1, 0)",
                params![now_ns()],
            )
            .unwrap();
        }
        let db = QueueDb::open(&path).unwrap();
        let q = db.queue("q", QueueConfig::default());
        let got = q.receive(10, Duration::ZERO, Duration::from_secs(30)).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].message_id.as_str(), got[0].body.as_str()), ("01OLD", "kept"));
        assert_eq!(got[0].attributes.get("k").map(String::as_str), Some("v"));
        assert_eq!(got[0].group, None, "sent before groups existed");
        q.delete(&got[0].receipt).await.unwrap();
        assert_eq!(q.depth().await.unwrap().total(), 0);
    }
}
