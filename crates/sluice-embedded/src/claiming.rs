//! The [`ClaimingQueue`] port on [`EmbeddedQueue`]: an idempotency claim and the messages it
//! sends in one writer command, so one commit (one fsync, shared with the group) where a claim
//! followed by a send would wait for two in a row. The claim is the one [`EmbeddedIdempotency`]
//! makes, on the same table; the messages are inserted as [`Queue::send_batch`] inserts them.
//!
//! [`EmbeddedIdempotency`]: crate::EmbeddedIdempotency
//! [`Queue::send_batch`]: sluice_core::ports::Queue::send_batch

use crate::idempotency::Claiming;
use crate::queue::{EmbeddedQueue, Rows, unavailable};
use async_trait::async_trait;
use sluice_core::ports::{
    Claim, ClaimingQueue, IdempotencyError, IdempotencyRecord, MAX_BATCH, OutgoingMessage, QueueError, check_send_batch,
};
use time::OffsetDateTime;

fn claim_failed(e: IdempotencyError) -> QueueError {
    match e {
        IdempotencyError::Unavailable(m) => QueueError::Unavailable(m),
    }
}

#[async_trait]
impl ClaimingQueue for EmbeddedQueue {
    async fn claim_and_send(
        &self,
        record: &IdempotencyRecord,
        now: OffsetDateTime,
        messages: &[OutgoingMessage],
    ) -> Result<Claim, QueueError> {
        for chunk in messages.chunks(MAX_BATCH) {
            check_send_batch(chunk)?;
        }
        let claim = Claiming::new(record, now, &self.db.last_idempotency_purge_ns)
            .map_err(claim_failed)?
            .completed();
        let rows = Rows::new(self.name.clone(), messages.iter().cloned())?;
        let claim = self
            .db
            .writer
            .run(move |c| {
                let claim = claim.apply(c)?;
                if matches!(claim, Ok(Claim::Claimed)) {
                    rows.insert(c)?;
                }
                Ok(claim)
            })
            .await
            .map_err(unavailable)?
            .map_err(claim_failed)?;
        if claim == Claim::Claimed {
            self.notify.notify_waiters();
        }
        Ok(claim)
    }
}
