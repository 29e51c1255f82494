//! The byte budget (D-2): how many body bytes the ingest route works on at once.
//!
//! Two bounds keep memory flat however many connections are open. The request count
//! (`max_in_flight`, a layer in front of every route) bounds the bodies being read, since each is
//! at most `max_body_bytes`. This budget bounds what comes after reading, where the memory is: a
//! parsed batch and its sealed envelopes take many times the body. A request takes its share once
//! its whole body is in, weighed by the bytes it actually sent, so a client trickling a body holds
//! no share (only its count slot), and many single events fit where a few large batches fill the
//! budget. Each send waits for its group commit, so the more small requests work at once, the more
//! sends share one fsync. The semaphore is fair: a large batch is not starved by small ones.

use crate::problem::{Code, Problem};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The least a request weighs, in bytes: its parsed value, envelope and response cost memory
/// however small its body is.
pub(crate) const MIN_WEIGHT: u32 = 1024;

/// Body bytes in work at once, shared by every request of one router.
#[derive(Debug, Clone)]
pub(crate) struct ByteBudget {
    semaphore: Arc<Semaphore>,
    total: u32,
}

impl ByteBudget {
    /// A budget of `bytes` (at least [`MIN_WEIGHT`]); `None` for 0, no budget.
    pub(crate) fn new(bytes: usize) -> Option<Self> {
        if bytes == 0 {
            return None;
        }
        let total = u32::try_from(bytes).unwrap_or(u32::MAX).max(MIN_WEIGHT);
        Some(Self {
            semaphore: Arc::new(Semaphore::new(total as usize)),
            total,
        })
    }

    /// What a body of `len` bytes weighs: its length, at least [`MIN_WEIGHT`], at most the whole
    /// budget (a body larger than the budget still runs, alone).
    pub(crate) fn weight(&self, len: usize) -> u32 {
        u32::try_from(len).unwrap_or(u32::MAX).clamp(MIN_WEIGHT, self.total)
    }

    /// Waits for room for a body of `len` bytes; the share is returned when the permit drops.
    pub(crate) async fn hold(&self, len: usize) -> Result<OwnedSemaphorePermit, Problem> {
        // The semaphore is never closed; should that change, refuse rather than run unbounded.
        Arc::clone(&self.semaphore)
            .acquire_many_owned(self.weight(len))
            .await
            .map_err(|_| Problem::new(Code::Internal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d2_a_body_weighs_its_length_between_the_floor_and_the_whole_budget() {
        let b = ByteBudget::new(64 * 1024).unwrap();
        assert_eq!(b.weight(0), MIN_WEIGHT);
        assert_eq!(b.weight(10), MIN_WEIGHT);
        assert_eq!(b.weight(5000), 5000);
        assert_eq!(b.weight(100_000), 64 * 1024);
        assert!(ByteBudget::new(0).is_none());
        assert_eq!(ByteBudget::new(1).unwrap().weight(5000), MIN_WEIGHT);
    }

    #[tokio::test]
    async fn d2_shares_come_back_when_their_permits_drop() {
        let b = ByteBudget::new(4096).unwrap();
        let first = b.hold(3000).await.unwrap();
        let small = b.hold(10).await.unwrap();
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(100), b.hold(2000)).await;
        assert!(waiting.is_err(), "2000 bytes fitted beside 4024 of 4096");
        drop((first, small));
        assert!(b.hold(4096).await.is_ok());
    }
}
