//! [`SqsQueue`]: the [`Queue`] port on Amazon SQS (standard queues).
//!
//! SQS already has the semantics the port describes (at-least-once delivery, visibility timeout,
//! `ApproximateReceiveCount`, redrive to a dead-letter queue), so this adapter translates types
//! and errors and does little else. Redrive is configured on the queue (`RedrivePolicy`, see
//! [`crate::provision`]), never in code.
//!
//! # Differences from the port's wording
//! - `send_batch` is not atomic on SQS: `SendMessageBatch` reports success per entry. Entries that
//!   fail server-side are retried once; if any still fail, the call returns `Unavailable` even
//!   though the other entries were sent. A caller that retries then sends those again, which the
//!   store's conditional put on the event id makes harmless.
//! - Batches above SQS's total payload limit are split into several `SendMessageBatch` calls.
//! - `delete` and `change_visibility` with a *superseded* receipt handle (the message was
//!   received again since) usually succeed on SQS standard queues; only unknown or malformed
//!   handles give [`QueueError::InvalidReceipt`]. The port allows either answer (see
//!   [`Queue::delete`]); the embedded queue is the stricter one.
//! - Durations are sent in whole seconds, rounded up (SQS's granularity); waits are capped at
//!   SQS's 20 s long poll and visibility at 12 hours.

use crate::error::{Failure, Kind};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use sluice_core::ports::{
    MAX_BATCH, MessageAttributes, OutgoingMessage, Queue, QueueDepth, QueueError, ReceiptHandle, ReceivedMessage,
};
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;

/// SQS's limit on the total payload of one `SendMessageBatch` (body plus attribute names, types
/// and values of every entry). Queues may be configured lower, never higher than this default.
const MAX_BATCH_BYTES: usize = sluice_core::ports::MAX_MESSAGE_BYTES;
/// SQS's longest long poll.
const MAX_WAIT_SECS: u64 = 20;
/// SQS's longest visibility timeout.
const MAX_VISIBILITY_SECS: u64 = 12 * 3600;
/// The type every attribute is sent with.
const STRING: &str = "String";

/// An SQS queue. Cheap to clone: the client is shared.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    /// The queue at `url`, reached through `client` (build the client once and share it).
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one `SendMessageBatch` of at most 10 entries that fit the payload limit; returns the
    /// message ids in input order. Server-side entry failures are retried once.
    async fn send_chunk(&self, messages: &[OutgoingMessage]) -> Result<Vec<String>, QueueError> {
        let mut ids: Vec<Option<String>> = vec![None; messages.len()];
        let mut pending: Vec<usize> = (0..messages.len()).collect();
        for attempt in 0..2 {
            let mut entries = Vec::with_capacity(pending.len());
            for &i in &pending {
                entries.push(entry(i, &messages[i])?);
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    let f = Failure::classify("SQS", "SendMessageBatch", &e);
                    let invalid = e.as_service_error().is_some_and(|s| {
                        s.is_batch_request_too_long()
                            || s.is_too_many_entries_in_batch_request()
                            || s.is_empty_batch_request()
                            || s.is_batch_entry_ids_not_distinct()
                            || s.is_invalid_batch_entry_id()
                    }) || f.code.as_deref().is_some_and(is_invalid_request_code);
                    if invalid {
                        QueueError::Invalid(f.to_string())
                    } else {
                        QueueError::Unavailable(f.to_string())
                    }
                })?;
            for ok in out.successful() {
                if let Some(slot) = ok.id().parse::<usize>().ok().and_then(|i| ids.get_mut(i)) {
                    *slot = Some(ok.message_id().to_owned());
                }
            }
            let mut retry = Vec::new();
            for failed in out.failed() {
                tracing::warn!(
                    aws.error_code = failed.code(),
                    sender_fault = failed.sender_fault(),
                    attempt,
                    "SQS SendMessageBatch entry failed"
                );
                if failed.sender_fault() {
                    return Err(QueueError::Invalid(format!(
                        "SQS SendMessageBatch: entry refused ({})",
                        failed.code()
                    )));
                }
                if let Ok(i) = failed.id().parse::<usize>() {
                    retry.push(i);
                }
            }
            // An entry in neither list would be an SQS bug; treat it like a failure.
            retry.extend((0..messages.len()).filter(|&i| ids[i].is_none()));
            retry.sort_unstable();
            retry.dedup();
            if retry.is_empty() {
                break;
            }
            pending = retry;
        }
        ids.into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| QueueError::Unavailable("SQS SendMessageBatch: entries still failing after a retry".into()))
    }
}

/// Codes for requests SQS will never accept, whatever the load.
fn is_invalid_request_code(code: &str) -> bool {
    matches!(
        code,
        "InvalidMessageContents"
            | "InvalidParameterValue"
            | "InvalidAttributeName"
            | "InvalidAttributeValue"
            | "MissingParameter"
            | "AWS.SimpleQueueService.BatchRequestTooLong"
            | "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    )
}

/// One batch entry; its id is the message's index in the chunk.
fn entry(index: usize, m: &OutgoingMessage) -> Result<SendMessageBatchRequestEntry, QueueError> {
    let mut attributes = HashMap::with_capacity(m.attributes.len());
    for (k, v) in &m.attributes {
        let value = MessageAttributeValue::builder()
            .data_type(STRING)
            .string_value(v)
            .build()
            .map_err(|_| QueueError::Invalid(format!("message attribute {k} could not be encoded")))?;
        attributes.insert(k.clone(), value);
    }
    sluice_core::ports::check_group(m)?;
    // The trace as X-Ray's AWSTraceHeader too (a system attribute, outside the ten), so X-Ray
    // links the sending function's trace with the consumer's.
    let trace = m
        .attributes
        .get(sluice_core::envelope::attr::TRACEPARENT)
        .and_then(|t| sluice_core::trace::TraceContext::parse_traceparent(t))
        .map(|t| {
            MessageSystemAttributeValue::builder()
                .data_type(STRING)
                .string_value(t.xray_header())
                .build()
                .map(|v| HashMap::from([(MessageSystemAttributeNameForSends::AwsTraceHeader, v)]))
        })
        .transpose()
        .map_err(|_| QueueError::Invalid("the trace header could not be encoded".into()))?;
    SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(&m.body)
        .set_message_system_attributes(trace)
        // A standard queue with message groups is a fair queue: SQS hands out other groups'
        // messages first while one group has a backlog (D-3 per tenant).
        .set_message_group_id(m.group.clone())
        .set_message_attributes((!attributes.is_empty()).then_some(attributes))
        .build()
        .map_err(|_| QueueError::Invalid("a batch entry could not be encoded".into()))
}

/// The size SQS counts against the batch payload limit.
fn payload_size(m: &OutgoingMessage) -> usize {
    m.body.len()
        + m.attributes
            .iter()
            .map(|(k, v)| k.len() + STRING.len() + v.len())
            .sum::<usize>()
}

/// Splits messages into runs of at most 10 entries and [`MAX_BATCH_BYTES`], keeping order.
fn chunks(messages: &[OutgoingMessage]) -> Result<Vec<&[OutgoingMessage]>, QueueError> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        let size = payload_size(m);
        if size > MAX_BATCH_BYTES {
            return Err(QueueError::Invalid(format!(
                "a message of {size} bytes exceeds SQS's {MAX_BATCH_BYTES} byte limit"
            )));
        }
        if i - start == MAX_BATCH || bytes + size > MAX_BATCH_BYTES {
            out.push(&messages[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    Ok(out)
}

/// Whole seconds, rounded up, capped at `max`, as SQS's `i32`.
fn seconds(d: Duration, max: u64) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs.min(max)).unwrap_or(i32::MAX)
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        if messages.len() > MAX_BATCH {
            return Err(QueueError::Invalid(format!(
                "a batch holds at most {MAX_BATCH} messages"
            )));
        }
        let mut ids = Vec::with_capacity(messages.len());
        for chunk in chunks(&messages)? {
            ids.extend(self.send_chunk(chunk).await?);
        }
        Ok(ids)
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        if !(1..=MAX_BATCH).contains(&max) {
            return Err(QueueError::Invalid(format!("receive takes 1 to {MAX_BATCH} messages")));
        }
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(max).unwrap_or(10))
            .wait_time_seconds(seconds(wait, MAX_WAIT_SECS))
            .visibility_timeout(seconds(visibility, MAX_VISIBILITY_SECS))
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(Failure::classify("SQS", "ReceiveMessage", &e).to_string()))?;
        let mut received = Vec::with_capacity(out.messages().len());
        for m in out.messages() {
            let (Some(id), Some(receipt)) = (m.message_id(), m.receipt_handle()) else {
                tracing::warn!("SQS returned a message without id or receipt handle; skipped");
                continue;
            };
            let system = m.attributes();
            let sys = |k: &MessageSystemAttributeName| system.and_then(|a| a.get(k));
            let receive_count = sys(&MessageSystemAttributeName::ApproximateReceiveCount)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(1);
            let sent_at = sys(&MessageSystemAttributeName::SentTimestamp)
                .and_then(|v| v.parse::<i128>().ok())
                .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok())
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let mut attributes = MessageAttributes::new();
            for (k, v) in m.message_attributes().into_iter().flatten() {
                // Sluice only sends String attributes; anything else was not written by Sluice and
                // is dropped rather than guessed at (the envelope signature covers the body only).
                if let Some(s) = v.string_value() {
                    attributes.insert(k.clone(), s.to_owned());
                }
            }
            received.push(ReceivedMessage {
                message_id: id.to_owned(),
                receipt: ReceiptHandle(receipt.to_owned()),
                body: m.body().unwrap_or_default().to_owned(),
                attributes,
                receive_count,
                sent_at,
                group: sys(&MessageSystemAttributeName::MessageGroupId).cloned(),
            });
        }
        Ok(received)
    }

    async fn delete(&self, receipt: &ReceiptHandle) -> Result<(), QueueError> {
        match self
            .client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&receipt.0)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let stale = e
                    .as_service_error()
                    .is_some_and(|s| s.is_receipt_handle_is_invalid() || s.is_invalid_id_format());
                let f = Failure::classify("SQS", "DeleteMessage", &e);
                if stale {
                    Err(QueueError::InvalidReceipt)
                } else {
                    Err(QueueError::Unavailable(f.to_string()))
                }
            }
        }
    }

    async fn change_visibility(&self, receipt: &ReceiptHandle, visibility: Duration) -> Result<(), QueueError> {
        match self
            .client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(&receipt.0)
            .visibility_timeout(seconds(visibility, MAX_VISIBILITY_SECS))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let f = Failure::classify("SQS", "ChangeMessageVisibility", &e);
                let stale = e
                    .as_service_error()
                    .is_some_and(|s| s.is_receipt_handle_is_invalid() || s.is_message_not_inflight())
                    // SQS answers a handle of a deleted message with InvalidParameterValue; the
                    // timeout itself is always in range here.
                    || (f.kind == Kind::Refused
                        && matches!(
                            f.code.as_deref(),
                            Some("InvalidParameterValue" | "ReceiptHandleIsInvalid")
                        ));
                if stale {
                    Err(QueueError::InvalidReceipt)
                } else {
                    Err(QueueError::Unavailable(f.to_string()))
                }
            }
        }
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(Failure::classify("SQS", "GetQueueAttributes", &e).to_string()))?;
        let count = |k: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&k))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body_len: usize) -> OutgoingMessage {
        OutgoingMessage {
            group: None,
            body: "x".repeat(body_len),
            attributes: MessageAttributes::from([("k".to_owned(), "v".to_owned())]),
        }
    }

    /// a message's `traceparent` also goes as X-Ray's AWSTraceHeader (the same trace id,
    /// X-Ray's spelling), so X-Ray joins the producer's and the consumer's traces; its group is
    /// the MessageGroupId.
    #[test]
    fn r1_the_trace_travels_as_aws_trace_header_and_the_group_as_message_group_id() {
        let mut m = msg(10);
        m.attributes.insert(
            "traceparent".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        );
        m.group = Some("acme".into());
        let e = entry(0, &m).unwrap();
        let trace = &e.message_system_attributes().unwrap()[&MessageSystemAttributeNameForSends::AwsTraceHeader];
        assert_eq!(
            trace.string_value(),
            Some("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1")
        );
        assert_eq!(e.message_group_id(), Some("acme"));
        assert!(entry(0, &msg(10)).unwrap().message_system_attributes().is_none());
    }

    #[test]
    fn seconds_round_up_and_cap() {
        assert_eq!(seconds(Duration::ZERO, 20), 0);
        assert_eq!(seconds(Duration::from_millis(1), 20), 1);
        assert_eq!(seconds(Duration::from_millis(1500), 20), 2);
        assert_eq!(seconds(Duration::from_secs(60), 20), 20);
    }

    #[test]
    fn chunks_respect_the_payload_limit_and_keep_order() {
        let small: Vec<_> = (0..10).map(|_| msg(10)).collect();
        assert_eq!(chunks(&small).unwrap().len(), 1);
        let big: Vec<_> = (0..5).map(|_| msg(400 * 1024)).collect();
        let c = chunks(&big).unwrap();
        assert_eq!(c.iter().map(|c| c.len()).collect::<Vec<_>>(), vec![2, 2, 1]);
        assert!(matches!(
            chunks(&[msg(MAX_BATCH_BYTES + 1)]),
            Err(QueueError::Invalid(_))
        ));
    }
}
