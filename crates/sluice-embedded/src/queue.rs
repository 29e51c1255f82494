//! The embedded queue: SQS semantics (at-least-once delivery, visibility timeout, receive count,
//! dead-letter redrive, retention) on one SQLite file that holds many named queues.
//!
//! Every state change (send, receive, delete, change visibility, redrive) goes through the file's
//! group-commit [writer](crate::writer), so a receive that hides a message and the move of a
//! message to its dead-letter queue are each one transaction. Read-only views (`depth`, `peek`)
//! use separate read connections. A long-polling receive sleeps on a [`Notify`] that senders ring
//! after their commit, and on a timer for the moment the next hidden message becomes visible.

use crate::EmbeddedError;
use crate::sqlite::{DbFailure, ReadPool, open_writer};
use crate::writer::{Maintenance, Writer, WriterStats};
use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use sluice_core::ports::{
    MessageAttributes, OutgoingMessage, Queue, QueueDepth, QueueError, ReceiptHandle, ReceivedMessage,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::time::Instant;

pub use sluice_core::ports::MAX_BATCH;
/// SQS's limit on one message: body plus attribute names and values, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// SQS's limit on attributes per message.
pub const MAX_ATTRIBUTES: usize = 10;
/// SQS's longest long poll.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// SQS's longest visibility timeout.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// Another process may send to the same file without ringing our [`Notify`]; a long poll
/// therefore also looks again this often. In-process sends wake it at once.
const CROSS_PROCESS_RECHECK: Duration = Duration::from_secs(1);

const MIGRATIONS: &[&str] = &[
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
    writer: Writer,
    reader: Arc<ReadPool>,
    registry: Arc<Mutex<Registry>>,
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
        }))
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

    fn notify(&self, name: &str) -> Arc<Notify> {
        self.registry.lock().notify(name)
    }
}

/// See [`QueueDb::limit_pages`]; shared with the store.
pub(crate) fn limit_pages(c: &Connection, extra_pages: Option<u64>) -> rusqlite::Result<()> {
    let max = match extra_pages {
        Some(extra) => {
            let current: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            current.saturating_add(i64::try_from(extra).unwrap_or(i64::MAX))
        }
        None => 0xFFFF_FFFE,
    };
    let _: i64 = c.query_row(&format!("PRAGMA max_page_count = {max}"), [], |r| r.get(0))?;
    Ok(())
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

/// A queue inside a [`QueueDb`]. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedQueue {
    db: Arc<QueueDb>,
    name: Arc<str>,
    config: Arc<QueueConfig>,
    notify: Arc<Notify>,
}

impl std::fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedQueue")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn unavailable(f: DbFailure) -> QueueError {
    QueueError::Unavailable(f.reason())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Messages sent before this instant (Unix nanos) are past `retention`.
fn retention_cutoff_ns(retention: Duration) -> i64 {
    now_ns().saturating_sub(i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX))
}

fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// What a receipt handle names: the row, the message it held when received, and the token of
/// that one receipt.
struct Receipt<'a> {
    seq: i64,
    message_id: &'a str,
    token: &'a str,
}

/// Splits a receipt handle, `{seq}:{message_id}:{token}`. The seq finds the row without an index
/// on message ids; the message id tells a reused seq (SQLite may hand a deleted row's seq to a
/// later send) from the message the receipt was for.
fn parse_receipt(receipt: &ReceiptHandle) -> Option<Receipt<'_>> {
    let mut parts = receipt.0.splitn(3, ':');
    let seq = parts.next()?.parse().ok()?;
    let message_id = parts.next()?;
    let token = parts.next()?;
    (!message_id.is_empty() && !token.is_empty()).then_some(Receipt { seq, message_id, token })
}

fn receipt_handle(seq: i64, message_id: &str, token: &str) -> ReceiptHandle {
    ReceiptHandle(format!("{seq}:{message_id}:{token}"))
}

fn validate_batch(messages: &[OutgoingMessage]) -> Result<(), QueueError> {
    if messages.is_empty() || messages.len() > MAX_BATCH {
        return Err(QueueError::Invalid(format!("a batch holds 1 to {MAX_BATCH} messages")));
    }
    for m in messages {
        if m.body.is_empty() {
            return Err(QueueError::Invalid("a message body must not be empty".into()));
        }
        if m.attributes.len() > MAX_ATTRIBUTES {
            return Err(QueueError::Invalid(format!(
                "a message has at most {MAX_ATTRIBUTES} attributes"
            )));
        }
        let size = m.body.len() + m.attributes.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if size > MAX_MESSAGE_BYTES {
            return Err(QueueError::Invalid(format!(
                "a message is at most {MAX_MESSAGE_BYTES} bytes"
            )));
        }
    }
    Ok(())
}

/// A row as read for a receive or a peek.
struct Row {
    seq: i64,
    visible_at_ms: i64,
    message_id: String,
    body: String,
    attributes: String,
    sent_at_ns: i64,
    receive_count: i64,
}

impl Row {
    const COLUMNS: &'static str = "seq, visible_at_ms, message_id, body, attributes, sent_at_ns, receive_count";

    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: r.get(0)?,
            visible_at_ms: r.get(1)?,
            message_id: r.get(2)?,
            body: r.get(3)?,
            attributes: r.get(4)?,
            sent_at_ns: r.get(5)?,
            receive_count: r.get(6)?,
        })
    }

    fn into_message(self, receipt: ReceiptHandle, receive_count: i64) -> Result<ReceivedMessage, QueueError> {
        let corrupt = || QueueError::Unavailable("a stored message is corrupt".into());
        let attributes: MessageAttributes = serde_json::from_str(&self.attributes).map_err(|_| corrupt())?;
        let sent_at = crate::sqlite::from_nanos(self.sent_at_ns).ok_or_else(corrupt)?;
        Ok(ReceivedMessage {
            message_id: self.message_id,
            receipt,
            body: self.body,
            attributes,
            receive_count: u32::try_from(receive_count).unwrap_or(u32::MAX),
            sent_at,
        })
    }
}

/// What one receive attempt inside the writer did.
struct Received {
    messages: Vec<ReceivedMessage>,
    /// Messages moved to the dead-letter queue instead of being returned.
    dead_lettered: u64,
    /// When the earliest hidden message becomes visible again (Unix ms), if nothing was returned.
    next_visible_ms: Option<i64>,
}

/// The next visible messages after a cursor, in the order they became visible (a send makes a
/// message visible at once), oldest first, so a message whose visibility timeout ran out is not
/// starved by a stream of new sends. The row value walks the (queue, visible_at_ms) index, whose
/// entries end in seq, so no sort is needed.
fn receive_sql() -> String {
    format!(
        "SELECT {} FROM messages WHERE queue = ?1 AND visible_at_ms <= ?2 AND sent_at_ns >= ?3 \
         AND (visible_at_ms, seq) > (?4, ?5) ORDER BY visible_at_ms, seq LIMIT ?6",
        Row::COLUMNS
    )
}

fn receive_tx(
    c: &Connection,
    queue: &str,
    config: &QueueConfig,
    max: usize,
    visibility: Duration,
) -> rusqlite::Result<Result<Received, QueueError>> {
    let now = now_ms();
    let cutoff = retention_cutoff_ns(config.retention);
    let hidden_until = now.saturating_add(duration_ms(visibility));
    let mut select = c.prepare_cached(&receive_sql())?;
    let mut out = Received {
        messages: Vec::new(),
        dead_lettered: 0,
        next_visible_ms: None,
    };
    // A cursor over the index rather than relying on rows turning invisible: a zero visibility
    // timeout leaves them visible (at a later place in the index, so one may be met again: the
    // `taken` check), and a redriven row must not be looked at twice.
    let mut last = (i64::MIN, i64::MIN);
    let mut taken: Vec<i64> = Vec::new();
    while out.messages.len() < max {
        let want = i64::try_from(max - out.messages.len()).unwrap_or(1);
        let rows = select
            .query_map(params![queue, now, cutoff, last.0, last.1, want], Row::read)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            last = (row.visible_at_ms, row.seq);
            if taken.contains(&row.seq) {
                continue;
            }
            if let Some(redrive) = &config.redrive
                && row.receive_count >= i64::from(redrive.max_receive_count)
            {
                // Body, attributes, id and sent time travel unchanged; the count restarts
                // because it counts receives from the dead-letter queue now.
                c.prepare_cached(
                    "UPDATE messages SET queue = ?2, receive_count = 0, visible_at_ms = 0, receipt = NULL \
                     WHERE seq = ?1",
                )?
                .execute(params![row.seq, redrive.dead_letter_queue])?;
                tracing::info!(
                    queue = %queue, dead_letter_queue = %redrive.dead_letter_queue, message_id = %row.message_id,
                    receive_count = row.receive_count, "message moved to the dead-letter queue"
                );
                out.dead_lettered += 1;
                continue;
            }
            let token = new_token();
            let count = row.receive_count.saturating_add(1);
            c.prepare_cached(
                "UPDATE messages SET receive_count = ?2, visible_at_ms = ?3, receipt = ?4 WHERE seq = ?1",
            )?
            .execute(params![row.seq, count, hidden_until, token])?;
            taken.push(row.seq);
            let receipt = receipt_handle(row.seq, &row.message_id, &token);
            match row.into_message(receipt, count) {
                Ok(m) => out.messages.push(m),
                Err(e) => return Ok(Err(e)),
            }
        }
    }
    if out.messages.is_empty() {
        out.next_visible_ms = c
            .prepare_cached("SELECT MIN(visible_at_ms) FROM messages WHERE queue = ?1 AND visible_at_ms > ?2")?
            .query_row(params![queue, now], |r| r.get(0))?;
    }
    Ok(Ok(out))
}

/// Deletes the message a receipt names, inside the writer's transaction.
fn delete_tx(c: &Connection, queue: &str, receipt: &ReceiptHandle) -> rusqlite::Result<Result<(), QueueError>> {
    Ok(match check_receipt(c, queue, receipt)? {
        Ok(Some(seq)) => {
            c.prepare_cached("DELETE FROM messages WHERE seq = ?1")?
                .execute(params![seq])?;
            Ok(())
        }
        // Already deleted: SQS answers success, so retried deletes are harmless.
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    })
}

/// Finds the message a receipt names in `queue`: `Ok(None)` if it is gone from the queue,
/// `Err(InvalidReceipt)` if the receipt is not its latest one.
fn check_receipt(
    c: &Connection,
    queue: &str,
    receipt: &ReceiptHandle,
) -> rusqlite::Result<Result<Option<i64>, QueueError>> {
    let Some(named) = parse_receipt(receipt) else {
        return Ok(Err(QueueError::InvalidReceipt));
    };
    let row: Option<(String, String, Option<String>)> = c
        .prepare_cached("SELECT queue, message_id, receipt FROM messages WHERE seq = ?1")?
        .query_row(params![named.seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    Ok(match row {
        None => Ok(None),
        // The seq went to a later message: the one the receipt named was deleted.
        Some((_, id, _)) if id != named.message_id => Ok(None),
        Some((q, _, Some(current))) if current == named.token => {
            if q == queue {
                Ok(Some(named.seq))
            } else {
                // A live receipt of another queue's message: a caller mixing up queues.
                Err(QueueError::InvalidReceipt)
            }
        }
        // Moving a message (dead-lettering, redrive) clears its receipt: gone from this queue.
        Some((q, _, _)) if q != queue => Ok(None),
        Some(_) => Err(QueueError::InvalidReceipt),
    })
}

impl EmbeddedQueue {
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Lists up to `limit` messages in send order without receiving them: visibility and receive
    /// counts stay as they are, and the receipts returned are not valid for delete.
    pub async fn peek(&self, limit: usize) -> Result<Vec<ReceivedMessage>, QueueError> {
        let name = self.name.clone();
        let cutoff = retention_cutoff_ns(self.config.retention);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .db
            .reader
            .read(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {} FROM messages WHERE queue = ?1 AND sent_at_ns >= ?2 ORDER BY seq LIMIT ?3",
                    Row::COLUMNS
                ))?
                .query_map(params![&*name, cutoff, limit], Row::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(unavailable)?;
        rows.into_iter()
            .map(|r| {
                let count = r.receive_count;
                r.into_message(ReceiptHandle(String::new()), count)
            })
            .collect()
    }

    /// Moves every message of this queue (typically a dead-letter queue) to `target`, keeping
    /// body, attributes, id and sent time, resetting the receive count and making each visible.
    /// Returns how many moved.
    pub async fn move_all_to(&self, target: &str) -> Result<u64, QueueError> {
        if target == &*self.name {
            return Err(QueueError::Invalid("source and target are the same queue".into()));
        }
        let name = self.name.clone();
        let to = target.to_owned();
        let moved = self
            .db
            .writer
            .run(move |c| {
                c.execute(
                    "UPDATE messages SET queue = ?2, receive_count = 0, visible_at_ms = 0, receipt = NULL WHERE queue = ?1",
                    params![&*name, to],
                )
            })
            .await
            .map_err(unavailable)?;
        if moved > 0 {
            tracing::info!(from = %self.name, to = %target, moved, "messages redriven");
            self.db.notify(target).notify_waiters();
        }
        Ok(moved as u64)
    }

    async fn receive_once(&self, max: usize, visibility: Duration) -> Result<Received, QueueError> {
        let name = self.name.clone();
        let config = self.config.clone();
        let out = self
            .db
            .writer
            .run(move |c| receive_tx(c, &name, &config, max, visibility))
            .await
            .map_err(unavailable)??;
        if out.dead_lettered > 0
            && let Some(r) = &self.config.redrive
        {
            self.db.notify(&r.dead_letter_queue).notify_waiters();
        }
        Ok(out)
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        validate_batch(&messages)?;
        let mut rows = Vec::with_capacity(messages.len());
        for m in messages {
            let attributes = serde_json::to_string(&m.attributes)
                .map_err(|_| QueueError::Invalid("attributes cannot be encoded".into()))?;
            rows.push((ulid::Ulid::new().to_string(), m.body, attributes));
        }
        let ids: Vec<String> = rows.iter().map(|(id, _, _)| id.clone()).collect();
        let name = self.name.clone();
        self.db
            .writer
            .run(move |c| {
                let sent = now_ns();
                // The same instant as `sent`, so a change of visibility to zero can put a message
                // back at exactly its place in send order.
                let visible = sent / 1_000_000;
                let mut insert = c.prepare_cached(
                    "INSERT INTO messages (queue, message_id, body, attributes, sent_at_ns, visible_at_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for (id, body, attributes) in &rows {
                    insert.execute(params![&*name, id, body, attributes, sent, visible])?;
                }
                Ok(())
            })
            .await
            .map_err(unavailable)?;
        self.notify.notify_waiters();
        Ok(ids)
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        if max == 0 || max > MAX_BATCH {
            return Err(QueueError::Invalid(format!("receive 1 to {MAX_BATCH} messages")));
        }
        if wait > MAX_WAIT {
            return Err(QueueError::Invalid(format!("wait at most {} s", MAX_WAIT.as_secs())));
        }
        if visibility > MAX_VISIBILITY {
            return Err(QueueError::Invalid(format!(
                "visibility is at most {} s",
                MAX_VISIBILITY.as_secs()
            )));
        }
        let deadline = Instant::now() + wait;
        loop {
            // Registered before looking, so a send that commits between our look and our sleep
            // still wakes us.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let out = self.receive_once(max, visibility).await?;
            let now = Instant::now();
            if !out.messages.is_empty() || now >= deadline {
                return Ok(out.messages);
            }
            let mut wake = deadline.min(now + CROSS_PROCESS_RECHECK);
            if let Some(at) = out.next_visible_ms {
                let until = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
                wake = wake.min(now + Duration::from_millis(until + 1));
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn delete(&self, receipt: &ReceiptHandle) -> Result<(), QueueError> {
        let name = self.name.clone();
        let receipt = receipt.clone();
        self.db
            .writer
            .run(move |c| delete_tx(c, &name, &receipt))
            .await
            .map_err(unavailable)?
    }

    async fn delete_batch(&self, receipts: &[ReceiptHandle]) -> Vec<Result<(), QueueError>> {
        if receipts.len() > MAX_BATCH {
            let e = QueueError::Invalid(format!("delete at most {MAX_BATCH} messages at once"));
            return receipts.iter().map(|_| Err(e.clone())).collect();
        }
        let name = self.name.clone();
        let owned = receipts.to_vec();
        let n = receipts.len();
        // One command, so the batch costs one job and one reply; a stale receipt is an answer
        // for that entry, not a failure of the group.
        let applied = self
            .db
            .writer
            .run(move |c| {
                owned
                    .iter()
                    .map(|receipt| delete_tx(c, &name, receipt))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await;
        match applied {
            Ok(results) => results,
            Err(f) => {
                let e = unavailable(f);
                (0..n).map(|_| Err(e.clone())).collect()
            }
        }
    }

    async fn change_visibility(&self, receipt: &ReceiptHandle, visibility: Duration) -> Result<(), QueueError> {
        if visibility > MAX_VISIBILITY {
            return Err(QueueError::Invalid(format!(
                "visibility is at most {} s",
                MAX_VISIBILITY.as_secs()
            )));
        }
        let name = self.name.clone();
        let receipt = receipt.clone();
        self.db
            .writer
            .run(move |c| {
                Ok(match check_receipt(c, &name, &receipt)? {
                    Ok(Some(seq)) if visibility.is_zero() => {
                        // Released at once: back to its place in send order, not behind every
                        // message sent since it was received.
                        c.prepare_cached("UPDATE messages SET visible_at_ms = sent_at_ns / 1000000 WHERE seq = ?1")?
                            .execute(params![seq])?;
                        Ok(())
                    }
                    Ok(Some(seq)) => {
                        let until = now_ms().saturating_add(duration_ms(visibility));
                        c.prepare_cached("UPDATE messages SET visible_at_ms = ?2 WHERE seq = ?1")?
                            .execute(params![seq, until])?;
                        Ok(())
                    }
                    Ok(None) => Err(QueueError::InvalidReceipt),
                    Err(e) => Err(e),
                })
            })
            .await
            .map_err(unavailable)??;
        if visibility.is_zero() {
            self.notify.notify_waiters();
        }
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let name = self.name.clone();
        self.db
            .reader
            .read(move |c| {
                let now = now_ms();
                let visible: i64 = c
                    .prepare_cached("SELECT COUNT(*) FROM messages WHERE queue = ?1 AND visible_at_ms <= ?2")?
                    .query_row(params![&*name, now], |r| r.get(0))?;
                let in_flight: i64 = c
                    .prepare_cached("SELECT COUNT(*) FROM messages WHERE queue = ?1 AND visible_at_ms > ?2")?
                    .query_row(params![&*name, now], |r| r.get(0))?;
                Ok(QueueDepth {
                    visible: u64::try_from(visible).unwrap_or(0),
                    in_flight: u64::try_from(in_flight).unwrap_or(0),
                })
            })
            .await
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let receive = plan(&c, &receive_sql());
        assert!(receive.contains("USING INDEX messages_by_visibility"), "{receive}");
        assert!(!receive.contains("TEMP B-TREE"), "{receive}");
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
        q.delete(&got[0].receipt).await.unwrap();
        assert_eq!(q.depth().await.unwrap().total(), 0);
    }

    #[tokio::test]
    async fn a_receipt_whose_seq_went_to_a_later_message_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = QueueDb::open(&dir.path().join("q.db")).unwrap();
        let q = db.queue("q", QueueConfig::default());
        let long = Duration::from_secs(30);
        q.send(sluice_testkit::message("first")).await.unwrap();
        let first = q.receive(1, Duration::ZERO, long).await.unwrap();
        q.delete(&first[0].receipt).await.unwrap();
        // SQLite hands the deleted row's seq to the next insert.
        q.send(sluice_testkit::message("second")).await.unwrap();
        let second = q.receive(1, Duration::ZERO, long).await.unwrap();
        let seq = |m: &ReceivedMessage| parse_receipt(&m.receipt).map(|r| r.seq);
        assert_eq!(seq(&first[0]), seq(&second[0]), "the test needs a reused seq");
        // The stale receipt is a harmless no-op (SQS semantics), and the new message stays.
        q.delete(&first[0].receipt).await.unwrap();
        assert_eq!(q.depth().await.unwrap().in_flight, 1);
        q.delete(&second[0].receipt).await.unwrap();
        assert_eq!(q.depth().await.unwrap().total(), 0);
    }
}
