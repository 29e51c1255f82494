//! [`EmbeddedQueue`]: the [`Queue`] port (SQS semantics: at-least-once delivery, visibility
//! timeout, receive count, dead-letter redrive on receive) on a queue of a [`QueueDb`].
//!
//! Every state change (send, receive, delete, change visibility) goes through the file's
//! group-commit [writer](crate::writer), so a receive that hides a message and the move of a
//! message to its dead-letter queue are each one transaction. `depth` uses a read connection. A
//! long-polling receive sleeps on a [`Notify`] that senders ring after their commit, and on a
//! timer for the moment the next hidden message becomes visible.
//!
//! The database itself (schema, opening, retention purge) is in `queue_db.rs`; the operator tools
//! that are not part of the port (`peek`, `move_all_to`) are in `queue_tools.rs`.

use crate::queue_db::{QueueConfig, QueueDb, duration_ms, now_ms, now_ns, retention_cutoff_ns};
use crate::sqlite::DbFailure;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use sluice_core::ports::{
    MessageAttributes, OutgoingMessage, Queue, QueueDepth, QueueError, ReceiptHandle, ReceivedMessage,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use sluice_core::ports::{MAX_ATTRIBUTES, MAX_BATCH, MAX_MESSAGE_BYTES, MAX_VISIBILITY, MAX_WAIT};
use sluice_core::ports::{check_receive, check_send_batch, check_visibility};

/// Another process may send to the same file without ringing our [`Notify`]; a long poll
/// therefore also looks again this often. In-process sends wake it at once.
const CROSS_PROCESS_RECHECK: Duration = Duration::from_secs(1);

/// A queue inside a [`QueueDb`]: the [`Queue`] port; made by [`QueueDb::queue`]. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedQueue {
    pub(crate) db: Arc<QueueDb>,
    pub(crate) name: Arc<str>,
    pub(crate) config: Arc<QueueConfig>,
    pub(crate) notify: Arc<Notify>,
    /// The group the last receive reached in its first round: the next starts after it.
    pub(crate) rotation: Arc<parking_lot::Mutex<Option<String>>>,
}

impl std::fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedQueue")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

pub(crate) fn unavailable(f: DbFailure) -> QueueError {
    QueueError::Unavailable(f.reason())
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

/// A row as read for a receive or a peek.
pub(crate) struct Row {
    seq: i64,
    visible_at_ms: i64,
    message_id: String,
    body: String,
    attributes: String,
    sent_at_ns: i64,
    pub(crate) receive_count: i64,
    grp: String,
}

impl Row {
    pub(crate) const COLUMNS: &'static str =
        "seq, visible_at_ms, message_id, body, attributes, sent_at_ns, receive_count, grp";

    pub(crate) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: r.get(0)?,
            visible_at_ms: r.get(1)?,
            message_id: r.get(2)?,
            body: r.get(3)?,
            attributes: r.get(4)?,
            sent_at_ns: r.get(5)?,
            receive_count: r.get(6)?,
            grp: r.get(7)?,
        })
    }

    pub(crate) fn into_message(
        self,
        receipt: ReceiptHandle,
        receive_count: i64,
    ) -> Result<ReceivedMessage, QueueError> {
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
            group: (!self.grp.is_empty()).then_some(self.grp),
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
    /// The group the next receive starts after.
    rotation: Option<String>,
}

/// The next visible messages of one group after a cursor, in the order they became visible (a
/// send makes a message visible at once), oldest first, so a message whose visibility timeout
/// ran out is not starved by a stream of new sends. The row value walks the (queue, grp,
/// visible_at_ms) index, whose entries end in seq, so no sort is needed.
pub(crate) fn receive_sql() -> String {
    format!(
        "SELECT {} FROM messages WHERE queue = ?1 AND grp = ?2 AND visible_at_ms <= ?3 AND sent_at_ns >= ?4 \
         AND (visible_at_ms, seq) > (?5, ?6) ORDER BY visible_at_ms, seq LIMIT ?7",
        Row::COLUMNS
    )
}

/// The first group of a queue (`after` false), or the first after `?2` (`after` true): one seek
/// each in the index, so walking the groups costs one step per group, not per message.
pub(crate) fn next_group_sql(after: bool) -> String {
    let cond = if after { " AND grp > ?2" } else { "" };
    format!("SELECT grp FROM messages WHERE queue = ?1{cond} ORDER BY grp LIMIT 1")
}

/// The group after `after` in `queue`, wrapping around to the first; `None` if the queue is empty.
fn next_group(c: &Connection, queue: &str, after: Option<&str>) -> rusqlite::Result<Option<String>> {
    if let Some(a) = after {
        let next = c
            .prepare_cached(&next_group_sql(true))?
            .query_row(params![queue, a], |r| r.get(0))
            .optional()?;
        if next.is_some() {
            return Ok(next);
        }
    }
    c.prepare_cached(&next_group_sql(false))?
        .query_row(params![queue], |r| r.get(0))
        .optional()
}

/// One group's place in a receive: where its index walk stands, and whether it may have more.
struct GroupCursor {
    grp: String,
    last: (i64, i64),
    live: bool,
}

/// A receive inside the writer's transaction: fair across groups, oldest first within each.
///
/// The first round takes one message from each group that has a visible one, starting after
/// the group the previous receive reached last (`rotation`), so every group's turn comes within
/// a few receives however many messages another holds. Later rounds share what is left of
/// `max` evenly among the groups that still have messages. With one group this is two queries;
/// with a backlog in one group and a single message in another, the single message is in the
/// very next receive (SQS fair queues' promise, D-3).
fn receive_tx(
    c: &Connection,
    queue: &str,
    config: &QueueConfig,
    max: usize,
    visibility: Duration,
    rotation: Option<String>,
) -> rusqlite::Result<Result<Received, QueueError>> {
    let now = now_ms();
    let mut out = Received {
        messages: Vec::new(),
        dead_lettered: 0,
        next_visible_ms: None,
        rotation: rotation.clone(),
    };
    let mut take = Take {
        c,
        queue,
        config,
        now,
        cutoff: retention_cutoff_ns(config.retention),
        hidden_until: now.saturating_add(duration_ms(visibility)),
        taken: Vec::new(),
    };
    // Round one: walk the groups once, from after the rotation point, one message each.
    let mut groups: Vec<GroupCursor> = Vec::new();
    let first = next_group(c, queue, rotation.as_deref())?;
    let mut at = first.clone();
    while let Some(grp) = at {
        if out.messages.len() >= max {
            break;
        }
        let mut g = GroupCursor {
            grp,
            last: (i64::MIN, i64::MIN),
            live: true,
        };
        match take.group(&mut g, 1, &mut out)? {
            Ok(got) if got > 0 => out.rotation = Some(g.grp.clone()),
            Ok(_) => {}
            Err(e) => return Ok(Err(e)),
        }
        let next = next_group(c, queue, Some(&g.grp))?;
        if g.live {
            groups.push(g);
        }
        at = next.filter(|n| Some(n) != first.as_ref());
    }
    // Later rounds: what is left, shared evenly by the groups that still have messages.
    loop {
        let live = groups.iter().filter(|g| g.live).count();
        if live == 0 || out.messages.len() >= max {
            break;
        }
        let share = (max - out.messages.len()).div_ceil(live);
        for g in groups.iter_mut().filter(|g| g.live) {
            let want = share.min(max - out.messages.len());
            if want == 0 {
                break;
            }
            if let Err(e) = take.group(g, want, &mut out)? {
                return Ok(Err(e));
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

/// What the rounds of one receive share.
struct Take<'a> {
    c: &'a Connection,
    queue: &'a str,
    config: &'a QueueConfig,
    now: i64,
    cutoff: i64,
    hidden_until: i64,
    /// Rows handed out by this receive: a zero visibility timeout leaves them visible (at a
    /// later place in the index), so one may be met again.
    taken: Vec<i64>,
}

impl Take<'_> {
    /// Hands out up to `want` of `g`'s next visible messages (dead-lettering those received too
    /// often instead); marks `g` spent when it has no more. Returns how many were handed out.
    fn group(
        &mut self,
        g: &mut GroupCursor,
        want: usize,
        out: &mut Received,
    ) -> rusqlite::Result<Result<usize, QueueError>> {
        let mut select = self.c.prepare_cached(&receive_sql())?;
        let mut got = 0;
        while got < want {
            let limit = i64::try_from(want - got).unwrap_or(1);
            let rows = select
                .query_map(
                    params![self.queue, g.grp, self.now, self.cutoff, g.last.0, g.last.1, limit],
                    Row::read,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let exhausted = rows.len() < usize::try_from(limit).unwrap_or(usize::MAX);
            if rows.is_empty() {
                g.live = false;
                break;
            }
            for row in rows {
                g.last = (row.visible_at_ms, row.seq);
                if self.taken.contains(&row.seq) {
                    continue;
                }
                if let Some(redrive) = &self.config.redrive
                    && row.receive_count >= i64::from(redrive.max_receive_count)
                {
                    // Body, attributes, id, group and sent time travel unchanged; the count
                    // restarts because it counts receives from the dead-letter queue now.
                    self.c
                        .prepare_cached(
                            "UPDATE messages SET queue = ?2, receive_count = 0, visible_at_ms = 0, receipt = NULL \
                             WHERE seq = ?1",
                        )?
                        .execute(params![row.seq, redrive.dead_letter_queue])?;
                    tracing::info!(
                        queue = %self.queue, dead_letter_queue = %redrive.dead_letter_queue,
                        message_id = %row.message_id, receive_count = row.receive_count,
                        "message moved to the dead-letter queue"
                    );
                    out.dead_lettered += 1;
                    continue;
                }
                let token = new_token();
                let count = row.receive_count.saturating_add(1);
                self.c
                    .prepare_cached(
                        "UPDATE messages SET receive_count = ?2, visible_at_ms = ?3, receipt = ?4 WHERE seq = ?1",
                    )?
                    .execute(params![row.seq, count, self.hidden_until, token])?;
                self.taken.push(row.seq);
                let receipt = receipt_handle(row.seq, &row.message_id, &token);
                match row.into_message(receipt, count) {
                    Ok(m) => out.messages.push(m),
                    Err(e) => return Ok(Err(e)),
                }
                got += 1;
            }
            if exhausted {
                g.live = false;
                break;
            }
        }
        Ok(Ok(got))
    }
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

    async fn receive_once(&self, max: usize, visibility: Duration) -> Result<Received, QueueError> {
        let name = self.name.clone();
        let config = self.config.clone();
        let rotation = self.rotation.lock().clone();
        let out = self
            .db
            .writer
            // A receipt lost with the power only hands the message out again (see `writer`).
            .run_relaxed(move |c| receive_tx(c, &name, &config, max, visibility, rotation))
            .await
            .map_err(unavailable)??;
        if !out.messages.is_empty() {
            self.rotation.lock().clone_from(&out.rotation);
        }
        if out.dead_lettered > 0
            && let Some(r) = &self.config.redrive
        {
            self.db.notify(&r.dead_letter_queue).notify_waiters();
        }
        Ok(out)
    }
}

/// Messages ready to insert into a queue inside a writer command: by a send, or by a claim with
/// its send (`claiming.rs`).
pub(crate) struct Rows {
    queue: Arc<str>,
    rows: Vec<(String, String, String, String)>,
}

impl Rows {
    /// `messages` for `queue`, each with a fresh message id.
    pub(crate) fn new(
        queue: Arc<str>,
        messages: impl IntoIterator<Item = OutgoingMessage>,
    ) -> Result<Self, QueueError> {
        let mut rows = Vec::new();
        for m in messages {
            let attributes = serde_json::to_string(&m.attributes)
                .map_err(|_| QueueError::Invalid("attributes cannot be encoded".into()))?;
            rows.push((
                ulid::Ulid::new().to_string(),
                m.body,
                attributes,
                m.group.unwrap_or_default(),
            ));
        }
        Ok(Self { queue, rows })
    }

    /// The message ids, in order.
    pub(crate) fn message_ids(&self) -> Vec<String> {
        self.rows.iter().map(|(id, ..)| id.clone()).collect()
    }

    /// Inserts every message, visible now.
    pub(crate) fn insert(&self, c: &Connection) -> rusqlite::Result<()> {
        let sent = now_ns();
        // The same instant as `sent`, so a change of visibility to zero can put a message back
        // at exactly its place in send order.
        let visible = sent / 1_000_000;
        let mut insert = c.prepare_cached(
            "INSERT INTO messages (queue, message_id, body, attributes, sent_at_ns, visible_at_ms, grp) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (id, body, attributes, grp) in &self.rows {
            insert.execute(params![&*self.queue, id, body, attributes, sent, visible, grp])?;
        }
        Ok(())
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        check_send_batch(&messages)?;
        let rows = Rows::new(self.name.clone(), messages)?;
        let ids = rows.message_ids();
        self.db.writer.run(move |c| rows.insert(c)).await.map_err(unavailable)?;
        self.notify.notify_waiters();
        Ok(ids)
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        check_receive(max, wait, visibility)?;
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
            .run_relaxed(move |c| delete_tx(c, &name, &receipt))
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
        // Deletes follow the stored event: one lost with the power redelivers a duplicate, which
        // the store's conditional put answers as such.
        let applied = self
            .db
            .writer
            .run_relaxed(move |c| {
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
        check_visibility(visibility)?;
        let name = self.name.clone();
        let receipt = receipt.clone();
        self.db
            .writer
            .run_relaxed(move |c| {
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

    async fn oldest_age(&self) -> Result<Option<Duration>, QueueError> {
        let name = self.name.clone();
        let cutoff = retention_cutoff_ns(self.config.retention);
        // Seq order is send order (a moved message keeps its row): the first row of the queue
        // in the primary key is the oldest, found without an index on sent times.
        let sent: Option<i64> = self
            .db
            .reader
            .read(move |c| {
                c.prepare_cached(
                    "SELECT sent_at_ns FROM messages WHERE queue = ?1 AND sent_at_ns >= ?2 ORDER BY seq LIMIT 1",
                )?
                .query_row(params![&*name, cutoff], |r| r.get(0))
                .optional()
            })
            .await
            .map_err(unavailable)?;
        Ok(sent.map(|ns| {
            let age = now_ns().saturating_sub(ns);
            Duration::from_nanos(u64::try_from(age).unwrap_or(0))
        }))
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
