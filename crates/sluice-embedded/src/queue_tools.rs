//! Operator tools on an [`EmbeddedQueue`] that are not part of the
//! [`Queue`](sluice_core::ports::Queue) port: looking at a dead-letter queue without receiving
//! from it (`peek`), and redriving it (`move_all_to`, what the SQS console's "start DLQ redrive"
//! does).

use crate::queue::{EmbeddedQueue, Row, unavailable};
use crate::queue_db::retention_cutoff_ns;
use rusqlite::params;
use sluice_core::ports::{QueueError, ReceiptHandle, ReceivedMessage};

impl EmbeddedQueue {
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
        Ok(self.redriven(target, moved))
    }

    /// Moves the messages of this queue with these ids to `target`, as [`Self::move_all_to`]
    /// moves all. Ids not in this queue are skipped. Returns how many moved.
    pub async fn move_ids_to(&self, target: &str, message_ids: &[String]) -> Result<u64, QueueError> {
        if target == &*self.name {
            return Err(QueueError::Invalid("source and target are the same queue".into()));
        }
        let name = self.name.clone();
        let to = target.to_owned();
        let ids = message_ids.to_vec();
        let moved = self
            .db
            .writer
            .run(move |c| {
                let mut update = c.prepare_cached(
                    "UPDATE messages SET queue = ?2, receive_count = 0, visible_at_ms = 0, receipt = NULL \
                     WHERE queue = ?1 AND message_id = ?3",
                )?;
                let mut n = 0;
                for id in &ids {
                    n += update.execute(params![&*name, to, id])?;
                }
                Ok(n)
            })
            .await
            .map_err(unavailable)?;
        Ok(self.redriven(target, moved))
    }

    /// Deletes the messages of this queue with these ids (an operator dropping dead letters).
    /// Returns how many were deleted.
    pub async fn delete_ids(&self, message_ids: &[String]) -> Result<u64, QueueError> {
        let name = self.name.clone();
        let ids = message_ids.to_vec();
        let deleted = self
            .db
            .writer
            .run(move |c| {
                let mut delete = c.prepare_cached("DELETE FROM messages WHERE queue = ?1 AND message_id = ?2")?;
                let mut n = 0;
                for id in &ids {
                    n += delete.execute(params![&*name, id])?;
                }
                Ok(n)
            })
            .await
            .map_err(unavailable)?;
        Ok(deleted as u64)
    }

    /// Logs a redrive of `moved` messages to `target` and wakes its consumers.
    fn redriven(&self, target: &str, moved: usize) -> u64 {
        if moved > 0 {
            tracing::info!(from = %self.name, to = %target, moved, "messages redriven");
            self.db.notify(target).notify_waiters();
        }
        moved as u64
    }
}

#[async_trait::async_trait]
impl sluice_core::ports::QueueSweep for EmbeddedQueue {
    /// Reads the group's messages (hidden ones too) without receiving them, then deletes the
    /// matching ones by id. A message received meanwhile is deleted all the same; its consumer's
    /// delete then finds nothing, and the erasure marker, written first, keeps it from being
    /// stored.
    async fn drop_matching(
        &self,
        group: &str,
        matches: &(dyn for<'m> Fn(&'m ReceivedMessage) -> bool + Send + Sync),
    ) -> Result<u64, QueueError> {
        let name = self.name.clone();
        let grp = group.to_owned();
        let rows = self
            .db
            .reader
            .read(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {} FROM messages WHERE queue = ?1 AND grp = ?2",
                    Row::COLUMNS
                ))?
                .query_map(params![&*name, grp], Row::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(unavailable)?;
        let mut ids = Vec::new();
        for r in rows {
            let count = r.receive_count;
            let msg = r.into_message(ReceiptHandle(String::new()), count)?;
            if matches(&msg) {
                ids.push(msg.message_id);
            }
        }
        if ids.is_empty() {
            return Ok(0);
        }
        self.delete_ids(&ids).await
    }
}
