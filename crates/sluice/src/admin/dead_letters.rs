//! Dead letters for the console: list them with their reasons, redrive some or all to the main
//! queue, drop some. On the embedded backend the queue file's own tools do it without receiving
//! (`peek`, moves by id); on SQS, which has no peek, by receiving and releasing.

use async_trait::async_trait;
use sluice_core::envelope::attr;
use sluice_core::ports::{OutgoingMessage, Queue, QueueError, ReceivedMessage};
use sluice_embedded::EmbeddedQueue;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// What the console does with the dead-letter queue.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Up to `limit` dead letters, oldest first, left where they are.
    async fn list(&self, limit: usize) -> Result<Vec<ReceivedMessage>, QueueError>;
    /// Moves these (or, with `None`, all) back to the main queue; returns how many moved.
    async fn redrive(&self, ids: Option<&[String]>) -> Result<u64, QueueError>;
    /// Deletes these; returns how many were deleted.
    async fn discard(&self, ids: &[String]) -> Result<u64, QueueError>;
}

/// The embedded queue file's dead-letter queue.
pub struct EmbeddedDeadLetters {
    /// The dead-letter queue.
    pub dlq: EmbeddedQueue,
    /// The main queue's name.
    pub main: String,
}

#[async_trait]
impl DeadLetters for EmbeddedDeadLetters {
    async fn list(&self, limit: usize) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.dlq.peek(limit).await
    }

    async fn redrive(&self, ids: Option<&[String]>) -> Result<u64, QueueError> {
        match ids {
            None => self.dlq.move_all_to(&self.main).await,
            Some(ids) => self.dlq.move_ids_to(&self.main, ids).await,
        }
    }

    async fn discard(&self, ids: &[String]) -> Result<u64, QueueError> {
        self.dlq.delete_ids(ids).await
    }
}

/// Any queue port (SQS on the AWS backend): receives to look, releases what it does not act on.
pub struct QueueDeadLetters {
    /// The dead-letter queue.
    pub dlq: Arc<dyn Queue>,
    /// The main queue.
    pub main: Arc<dyn Queue>,
}

/// How many receives of ten one operation makes at most.
const ROUNDS: usize = 10;

/// What a scan does with a chosen message.
#[derive(Clone, Copy)]
enum Action {
    /// Back to the main queue.
    Redrive,
    /// Deleted.
    Drop,
}

impl QueueDeadLetters {
    /// Receives up to `ROUNDS` batches (hidden for a minute), applies `action` to each message
    /// `chosen` picks and releases the others at once; returns how many were acted on.
    async fn scan(&self, chosen: impl Fn(&ReceivedMessage) -> bool + Send, action: Action) -> Result<u64, QueueError> {
        let mut done = 0;
        let mut seen = BTreeSet::new();
        for _ in 0..ROUNDS {
            let batch = self.dlq.receive(10, Duration::ZERO, Duration::from_secs(60)).await?;
            if batch.is_empty() {
                break;
            }
            let mut fresh = false;
            for m in batch {
                fresh |= seen.insert(m.message_id.clone());
                if !chosen(&m) {
                    self.dlq.change_visibility(&m.receipt, Duration::ZERO).await?;
                    continue;
                }
                if let Action::Redrive = action {
                    // The dead-letter reason and time go: the main queue's messages carry
                    // neither, and SQS allows ten attributes.
                    let mut attributes = m.attributes.clone();
                    attributes.remove(attr::DLQ_REASON);
                    attributes.remove(attr::DLQ_AT);
                    self.main
                        .send(OutgoingMessage {
                            body: m.body.clone(),
                            attributes,
                            group: m.group.clone(),
                        })
                        .await?;
                }
                self.dlq.delete(&m.receipt).await?;
                done += 1;
            }
            if !fresh {
                break;
            }
        }
        Ok(done)
    }
}

#[async_trait]
impl DeadLetters for QueueDeadLetters {
    async fn list(&self, limit: usize) -> Result<Vec<ReceivedMessage>, QueueError> {
        let mut out: Vec<ReceivedMessage> = Vec::new();
        let mut seen = BTreeSet::new();
        for _ in 0..ROUNDS {
            // Visibility zero: looked at, not hidden from anyone.
            let batch = self.dlq.receive(10, Duration::ZERO, Duration::ZERO).await?;
            let mut fresh = false;
            for m in batch {
                if seen.insert(m.message_id.clone()) {
                    fresh = true;
                    out.push(m);
                }
            }
            if !fresh || out.len() >= limit {
                break;
            }
        }
        out.truncate(limit);
        out.sort_by_key(|m| m.sent_at);
        Ok(out)
    }

    async fn redrive(&self, ids: Option<&[String]>) -> Result<u64, QueueError> {
        let chosen = ids.map(|ids| ids.iter().cloned().collect::<BTreeSet<_>>());
        self.scan(
            |m| chosen.as_ref().is_none_or(|c| c.contains(&m.message_id)),
            Action::Redrive,
        )
        .await
    }

    async fn discard(&self, ids: &[String]) -> Result<u64, QueueError> {
        let chosen: BTreeSet<_> = ids.iter().cloned().collect();
        self.scan(|m| chosen.contains(&m.message_id), Action::Drop).await
    }
}
