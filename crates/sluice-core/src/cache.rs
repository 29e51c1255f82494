//! A read-through cache for records the request path reads on every call (API keys, webhook
//! sources): each entry lives for a TTL, so a revocation, rotation or deletion takes effect within
//! it, as API Gateway caches authorizer results.
//!
//! Concurrent misses on one key share a single load. Every client of a busy key misses at the
//! same instant when its entry expires, and without this each would read the store: hundreds of
//! reads, blocking threads and database connections for one record, every TTL. Absent records
//! are cached like present ones, so the cache is bounded: at [`MAX_ENTRIES`] it starts over, and
//! a flood of random ids cannot grow memory.

use futures::future::{BoxFuture, FutureExt, Shared};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// The most entries kept before the cache starts over.
pub const MAX_ENTRIES: usize = 10_000;

type Load<V, E> = Shared<BoxFuture<'static, Result<V, E>>>;

/// Values by key for `ttl`, loaded once per miss however many requests miss together.
pub(crate) struct ReadThrough<K, V, E> {
    ttl: Duration,
    entries: RwLock<HashMap<K, (V, Instant)>>,
    /// Loads under way, by key; each finishes once, whoever polls it.
    loads: Mutex<HashMap<K, Load<V, E>>>,
}

impl<K, V, E> ReadThrough<K, V, E>
where
    K: Eq + Hash + Clone,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// A cache keeping each value for `ttl`; zero keeps nothing (every call loads).
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
            loads: Mutex::new(HashMap::new()),
        }
    }

    /// Loads under way (none once every caller is back).
    #[cfg(test)]
    pub(crate) fn loads_in_flight(&self) -> usize {
        self.loads.lock().map_or(0, |l| l.len())
    }

    /// Whether `key` has an entry that has not expired.
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.entries
            .read()
            .is_ok_and(|entries| entries.get(key).is_some_and(|(_, at)| at.elapsed() < self.ttl))
    }

    /// Drops `key`'s entry, so the next [`ReadThrough::get`] loads it.
    pub(crate) fn forget(&self, key: &K) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(key);
        }
    }

    /// The value for `key`, from the cache or from `load` (errors are not cached).
    pub(crate) async fn get(&self, key: &K, load: impl FnOnce() -> BoxFuture<'static, Result<V, E>>) -> Result<V, E> {
        if let Ok(entries) = self.entries.read()
            && let Some((value, at)) = entries.get(key)
            && at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        // With no cache, every call loads for itself: a change counts from the next one.
        if self.ttl.is_zero() {
            return load().await;
        }
        let shared = match self.loads.lock() {
            Ok(mut loads) => loads.entry(key.clone()).or_insert_with(|| load().shared()).clone(),
            Err(_) => load().shared(),
        };
        let result = shared.clone().await;
        // The first waiter back publishes the value, then retires the load; a call arriving in
        // between finds one or the other, never neither, so it does not load again.
        if let Ok(mut loads) = self.loads.lock()
            && loads.get(key).is_some_and(|l| l.ptr_eq(&shared))
        {
            if let Ok(value) = &result
                && let Ok(mut entries) = self.entries.write()
            {
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
                entries.insert(key.clone(), (value.clone(), Instant::now()));
            }
            loads.remove(key);
        }
        result
    }
}
