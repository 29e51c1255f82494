//! The queue port: SQS semantics (at-least-once, visibility timeout, receive count, DLQ redrive).

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

/// SQS's limit on entries per batch request: messages per send and per receive, receipts per
/// delete.
pub const MAX_BATCH: usize = 10;

/// SQS's limit on one message: body plus attribute names and values, in bytes (1 MiB since
/// August 2025; a queue's `MaximumMessageSize` must be set to it, as the template and
/// `provision` do). A request body is at most `limits.max_body_bytes` (256 KiB by default), so
/// a single event and its envelope fit with room to spare; ingest still measures every sealed
/// message and refuses one that does not fit with 413 before anything is queued.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The room a single event's envelope and attributes may need beyond its request body: ingest
/// refuses a body limit above `MAX_MESSAGE_BYTES - ENVELOPE_HEADROOM` at start-up.
pub const ENVELOPE_HEADROOM: usize = 64 * 1024;
/// SQS's limit on attributes per message.
pub const MAX_ATTRIBUTES: usize = 10;
/// SQS's longest long poll.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// SQS's longest visibility timeout.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// Checks a send against SQS's limits, as SQS itself would: 1 to [`MAX_BATCH`] messages, none
/// empty, at most [`MAX_ATTRIBUTES`] attributes and [`MAX_MESSAGE_BYTES`] each. Adapters that
/// are not SQS call it so that a request SQS would refuse is refused everywhere.
pub fn check_send_batch(messages: &[OutgoingMessage]) -> Result<(), QueueError> {
    if messages.is_empty() || messages.len() > MAX_BATCH {
        return Err(QueueError::Invalid(format!("a batch holds 1 to {MAX_BATCH} messages")));
    }
    for m in messages {
        if m.body.is_empty() {
            return Err(QueueError::Invalid("a message body must not be empty".into()));
        }
        check_group(m)?;
        if m.attributes.len() > MAX_ATTRIBUTES {
            return Err(QueueError::Invalid(format!(
                "a message has at most {MAX_ATTRIBUTES} attributes"
            )));
        }
        if message_size(m) > MAX_MESSAGE_BYTES {
            return Err(QueueError::Invalid(format!(
                "a message is at most {MAX_MESSAGE_BYTES} bytes"
            )));
        }
    }
    Ok(())
}

/// A message's size as SQS counts it: the body plus every attribute's name and value.
pub fn message_size(m: &OutgoingMessage) -> usize {
    m.body.len() + m.attributes.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
}

/// Checks a receive against SQS's limits: 1 to [`MAX_BATCH`] messages, a wait of at most
/// [`MAX_WAIT`] and a visibility of at most [`MAX_VISIBILITY`].
pub fn check_receive(max: usize, wait: Duration, visibility: Duration) -> Result<(), QueueError> {
    if max == 0 || max > MAX_BATCH {
        return Err(QueueError::Invalid(format!("receive 1 to {MAX_BATCH} messages")));
    }
    if wait > MAX_WAIT {
        return Err(QueueError::Invalid(format!("wait at most {} s", MAX_WAIT.as_secs())));
    }
    check_visibility(visibility)
}

/// Checks a visibility timeout against SQS's limit, [`MAX_VISIBILITY`].
pub fn check_visibility(visibility: Duration) -> Result<(), QueueError> {
    if visibility > MAX_VISIBILITY {
        return Err(QueueError::Invalid(format!(
            "visibility is at most {} s",
            MAX_VISIBILITY.as_secs()
        )));
    }
    Ok(())
}

/// String message attributes (SQS `MessageAttributes` of type `String`).
pub type MessageAttributes = BTreeMap<String, String>;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The body (at most 256 KiB on SQS).
    pub body: String,
    /// Metadata that travels beside the body and survives a move to the DLQ.
    pub attributes: MessageAttributes,
    /// The fairness group (SQS fair queues' `MessageGroupId` on a standard queue): when one
    /// group has a backlog, messages of the other groups are handed out first, so one tenant's
    /// burst does not delay another's events (D-3). Sluice uses the tenant. At most
    /// [`MAX_GROUP_LEN`] characters of `[A-Za-z0-9!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~]`.
    pub group: Option<String>,
}

/// SQS's longest `MessageGroupId`.
pub const MAX_GROUP_LEN: usize = 128;

/// Whether `group` is a `MessageGroupId` SQS accepts: 1 to [`MAX_GROUP_LEN`] printable ASCII
/// characters other than space.
pub fn valid_group(group: &str) -> bool {
    !group.is_empty() && group.len() <= MAX_GROUP_LEN && group.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks a message's group as SQS would ([`valid_group`]); the SQS adapter calls it too, so a
/// group SQS would refuse is refused before any request.
pub fn check_group(m: &OutgoingMessage) -> Result<(), QueueError> {
    if m.group.as_deref().is_some_and(|g| !valid_group(g)) {
        return Err(QueueError::Invalid(format!(
            "a message group is 1 to {MAX_GROUP_LEN} printable ASCII characters"
        )));
    }
    Ok(())
}

/// An opaque handle that names one receipt of a message.
///
/// A later receive of the same message *supersedes* the handle, but the port does not promise that
/// a superseded handle is refused (see [`Queue::delete`]): only the newest handle is sure to work.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReceiptHandle(pub String);

/// A received message, invisible to other consumers until its visibility timeout passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The queue's id for the message (stable across receives).
    pub message_id: String,
    /// The handle for delete and change-visibility.
    pub receipt: ReceiptHandle,
    /// The body as sent.
    pub body: String,
    /// The attributes as sent.
    pub attributes: MessageAttributes,
    /// `ApproximateReceiveCount`: how many times it has been received, this time included.
    pub receive_count: u32,
    /// `SentTimestamp`.
    pub sent_at: OffsetDateTime,
    /// The fairness group it was sent with (`MessageGroupId`).
    pub group: Option<String>,
}

/// Approximate counts, as SQS reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// `ApproximateNumberOfMessages`: waiting to be received.
    pub visible: u64,
    /// `ApproximateNumberOfMessagesNotVisible`: received, not yet deleted.
    pub in_flight: u64,
}

impl QueueDepth {
    /// Everything the queue holds.
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight
    }
}

/// Why a queue operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// The queue cannot take the message now (disk full, service down); retry later.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The receipt handle is unknown or malformed, or (on adapters that detect it) superseded by a
    /// later receive or naming a message no longer in flight.
    #[error("receipt handle is no longer valid")]
    InvalidReceipt,
    /// The request breaks the queue's limits (batch size, body size).
    #[error("invalid queue request: {0}")]
    Invalid(String),
}

/// A queue with SQS semantics.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Sends up to 10 messages; returns their ids once they are durable. All or none.
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError>;

    /// Receives up to `max` (1 to 10) messages, waiting up to `wait` for the first one, and hides
    /// them for `visibility`. A message received more than the redrive policy's count moves to the
    /// dead-letter queue instead of being returned.
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;

    /// Deletes a received message; deleting a message that is already gone is not an error (as on
    /// SQS).
    ///
    /// A receipt handle superseded by a later receive of the message is what SQS standard queues
    /// give no guarantee about: the call may succeed, with or without deleting the message, or
    /// fail with [`QueueError::InvalidReceipt`]. Only an unknown or malformed handle is sure to be
    /// refused. Callers must therefore delete with the handle of their own, latest receive, and
    /// must not count on a stale handle either failing or taking effect (Sluice deletes only after
    /// processing succeeded, and the store's conditional put makes a redelivery harmless).
    async fn delete(&self, receipt: &ReceiptHandle) -> Result<(), QueueError>;

    /// Deletes up to [`MAX_BATCH`] received messages in one request (SQS `DeleteMessageBatch`): one result
    /// per receipt, in order, each with [`Queue::delete`]'s meaning, so one stale receipt does not
    /// keep the others. The default deletes them concurrently one by one.
    async fn delete_batch(&self, receipts: &[ReceiptHandle]) -> Vec<Result<(), QueueError>> {
        futures::future::join_all(receipts.iter().map(|r| self.delete(r))).await
    }

    /// Changes how long a received message stays hidden (zero makes it visible at once).
    ///
    /// As with [`Queue::delete`], a superseded receipt handle may be accepted or refused with
    /// [`QueueError::InvalidReceipt`]; only the latest receive's handle is sure to take effect.
    async fn change_visibility(&self, receipt: &ReceiptHandle, visibility: Duration) -> Result<(), QueueError>;

    /// Approximate counts.
    async fn depth(&self) -> Result<QueueDepth, QueueError>;

    /// How long ago the oldest message still held was first sent; `None` when the queue is
    /// empty or the backend cannot say (SQS reports it only as a CloudWatch metric,
    /// `ApproximateAgeOfOldestMessage`).
    async fn oldest_age(&self) -> Result<Option<Duration>, QueueError> {
        Ok(None)
    }

    /// Sends one message.
    async fn send(&self, message: OutgoingMessage) -> Result<String, QueueError> {
        let mut ids = self.send_batch(vec![message]).await?;
        ids.pop()
            .ok_or_else(|| QueueError::Unavailable("the queue returned no message id".into()))
    }
}

/// A queue whose messages can be removed by what they say, without receiving them: the
/// embedded queue. An erasure uses it to drop a subject's messages from the queue and the
/// dead-letter queue at once (SQS has no such call: see [`crate::feed::SweptQueue`]).
#[async_trait]
pub trait QueueSweep: Send + Sync + 'static {
    /// Deletes every message of `group` (hidden or not) for which `matches` holds; how many.
    async fn drop_matching(
        &self,
        group: &str,
        matches: &(dyn for<'m> Fn(&'m ReceivedMessage) -> bool + Send + Sync),
    ) -> Result<u64, QueueError>;
}
