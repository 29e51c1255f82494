//! [`StoreDb`]: the embedded store database, one SQLite file standing in for DynamoDB's tables
//! (events, API keys, webhook sources), with its writer and readers. (Idempotency records live
//! in the queue's database, beside the messages their claims send: see `queue_db.rs`.)
//!
//! This file owns the database (schema, opening, the group-commit [writer](crate::writer) and the
//! read connections); each port has its own adapter type and file over the shared handle:
//! [`EmbeddedEvents`] (`events.rs`), [`EmbeddedKeys`] (`keys.rs`) and [`EmbeddedSources`]
//! (`sources.rs`), made by [`StoreDb::events`], [`StoreDb::keys`] and [`StoreDb::sources`].
//! Writes from all of them share the one writer, so they share fsyncs.

use crate::EmbeddedError;
use crate::events::EmbeddedEvents;
use crate::keys::EmbeddedKeys;
use crate::plans::EmbeddedPlans;
use crate::sources::EmbeddedSources;
use crate::sqlite::{DbFailure, ReadPool, limit_pages, open_writer};
use crate::writer::{Writer, WriterStats};
use rusqlite::OptionalExtension as _;
use sluice_core::ports::StoreError;
use std::path::Path;
use std::sync::Arc;

const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE events (
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        data TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        request_id TEXT NOT NULL,
        PRIMARY KEY (tenant, id)
    ) WITHOUT ROWID;
    CREATE INDEX events_by_type ON events (tenant, event_type, id);

    CREATE TABLE idempotency (
        tenant TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        ids TEXT NOT NULL,
        single INTEGER NOT NULL,
        payload TEXT NOT NULL,
        completed INTEGER NOT NULL,
        expires_at_ns INTEGER NOT NULL,
        PRIMARY KEY (tenant, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_by_expiry ON idempotency (expires_at_ns);

    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY NOT NULL,
        tenant TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        label TEXT NOT NULL,
        created_at_ns INTEGER NOT NULL,
        expires_at_ns INTEGER,
        revoked_at_ns INTEGER
    ) WITHOUT ROWID;
",
    "
    CREATE TABLE sources (
        id TEXT PRIMARY KEY NOT NULL,
        tenant TEXT NOT NULL,
        kind TEXT NOT NULL,
        secrets TEXT NOT NULL,
        created_at_ns INTEGER NOT NULL,
        deleted_at_ns INTEGER
    ) WITHOUT ROWID;
",
    // Optional: rows written before subjects existed read as none.
    "ALTER TABLE events ADD COLUMN subject TEXT;",
    // Optional, JSON: the webhook delivery an event came through and its CloudEvents extension
    // attributes; rows from before read as neither.
    "ALTER TABLE events ADD COLUMN webhook TEXT; ALTER TABLE events ADD COLUMN extensions TEXT;",
    // Idempotency records moved to the queue's database, where a claim commits with its send.
    // Records of requests accepted before the move are not consulted again: a retry of one of
    // those (within its 24 h) is accepted as a new request.
    "DROP TABLE idempotency;",
    // The trace id of the request that carried each event; rows from before have none.
    "ALTER TABLE events ADD COLUMN trace_id TEXT;",
    // Tenants' own plans (`sluice tenants limits set`), which `sluice serve` enforces.
    "
    CREATE TABLE tenant_plans (
        tenant TEXT PRIMARY KEY,
        rate_per_sec INTEGER NOT NULL,
        burst INTEGER NOT NULL,
        quota_per_day INTEGER NOT NULL
    ) WITHOUT ROWID;
",
    // The feed (issue: events out). Every event gets its tenant's next `seq` inside the writer's
    // transaction, so commit order is seq order and a reader's snapshot always holds a prefix
    // of each tenant's seqs. Events already stored get seqs in id (arrival) order. `expires_at_ms`
    // is retention (none on old rows: kept), `idempotency_key` the record a deletion forgets.
    "
    ALTER TABLE events ADD COLUMN seq INTEGER;
    ALTER TABLE events ADD COLUMN expires_at_ms INTEGER;
    ALTER TABLE events ADD COLUMN idempotency_key TEXT;
    UPDATE events SET seq = r.n FROM (
        SELECT tenant, id, row_number() OVER (PARTITION BY tenant ORDER BY id) AS n FROM events
    ) AS r WHERE events.tenant = r.tenant AND events.id = r.id;
    CREATE UNIQUE INDEX events_by_seq ON events (tenant, seq);
    CREATE INDEX events_by_subject ON events (tenant, subject) WHERE subject IS NOT NULL;
    CREATE INDEX events_by_expiry ON events (tenant, expires_at_ms) WHERE expires_at_ms IS NOT NULL;

    CREATE TABLE feed_counters (
        tenant TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        purged_through INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    INSERT INTO feed_counters (tenant, last_seq) SELECT tenant, MAX(seq) FROM events GROUP BY tenant;

    CREATE TABLE tombstones (
        tenant TEXT NOT NULL,
        seq INTEGER NOT NULL,
        deleted TEXT NOT NULL,
        deleted_at TEXT NOT NULL,
        event_type TEXT NOT NULL,
        expires_at_ms INTEGER,
        PRIMARY KEY (tenant, seq)
    ) WITHOUT ROWID;
    CREATE INDEX tombstones_by_expiry ON tombstones (tenant, expires_at_ms) WHERE expires_at_ms IS NOT NULL;

    CREATE TABLE erasures (
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (tenant, id)
    ) WITHOUT ROWID;
    CREATE TABLE erased_subjects (
        tenant TEXT NOT NULL,
        subject_sha256 TEXT NOT NULL,
        until_ns INTEGER NOT NULL,
        PRIMARY KEY (tenant, subject_sha256)
    ) WITHOUT ROWID;
",
    // A deleted event's tombstone by its id: a redelivery of the deleted event finds it and
    // stores nothing.
    "CREATE INDEX tombstones_by_deleted ON tombstones (tenant, deleted);",
];

/// One SQLite file holding events, idempotency records and API keys (one DynamoDB account's
/// tables): the handle the port adapters share. Open it once and take the adapters from it.
pub struct StoreDb {
    pub(crate) writer: Writer,
    pub(crate) reader: Arc<ReadPool>,
}

impl std::fmt::Debug for StoreDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreDb").finish_non_exhaustive()
    }
}

impl StoreDb {
    /// Opens (creating and migrating if needed) the store database at `path`.
    pub fn open(path: &Path) -> Result<Arc<StoreDb>, EmbeddedError> {
        let conn = open_writer(path, MIGRATIONS)?;
        // Retention: expired rows leave every read at once; this removes them from the file.
        let sweep: crate::writer::Maintenance =
            Box::new(|c| crate::feed::purge_expired(c, time::OffsetDateTime::now_utc()).map(|_| ()));
        let writer = Writer::spawn("sluice-store-writer", conn, Some(sweep)).map_err(EmbeddedError::Spawn)?;
        let reader = ReadPool::new(path)?;
        Ok(Arc::new(StoreDb { writer, reader }))
    }

    /// The row `sql` selects by its one parameter `?1 = key`, read by `row`; `None` when absent.
    pub(crate) async fn select_one<T: Send + 'static>(
        &self,
        sql: String,
        key: String,
        row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, DbFailure> {
        self.reader
            .read(move |c| c.prepare_cached(&sql)?.query_row([key], row).optional())
            .await
    }

    /// Every row `sql` selects (no parameters), read by `row`.
    pub(crate) async fn select_all<T: Send + 'static>(
        &self,
        sql: String,
        row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, DbFailure> {
        self.reader
            .read(move |c| c.prepare_cached(&sql)?.query_map([], row)?.collect())
            .await
    }

    /// The [`EventStore`](sluice_core::ports::EventStore) on this database.
    pub fn events(self: &Arc<Self>) -> EmbeddedEvents {
        EmbeddedEvents::new(self.clone())
    }

    /// The [`KeyStore`](sluice_core::ports::KeyStore) on this database.
    pub fn keys(self: &Arc<Self>) -> EmbeddedKeys {
        EmbeddedKeys::new(self.clone())
    }

    /// The [`SourceStore`](sluice_core::ports::SourceStore) on this database.
    pub fn sources(self: &Arc<Self>) -> EmbeddedSources {
        EmbeddedSources::new(self.clone())
    }

    /// The [`TenantPlans`](sluice_core::ports::TenantPlans) on this database.
    pub fn plans(self: &Arc<Self>) -> EmbeddedPlans {
        EmbeddedPlans::new(self.clone())
    }

    /// Removes events and tombstones expired at `now` (at most a bounded number per call, as
    /// the writer's housekeeping does every minute); how many. For tests and operators.
    #[doc(hidden)]
    pub async fn purge_expired(&self, now: time::OffsetDateTime) -> Result<u64, StoreError> {
        self.writer
            .run(move |c| crate::feed::purge_expired(c, now))
            .await
            .map_err(|f: DbFailure| StoreError::Unavailable(f.reason()))
    }

    /// Commit counters of the writer, for tests of group commit.
    #[doc(hidden)]
    pub fn stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// Caps the file at its current size plus `extra_pages` (`None` lifts the cap), so tests can
    /// make writes fail with `SQLITE_FULL` as on a full disk.
    #[doc(hidden)]
    pub async fn limit_pages(&self, extra_pages: Option<u64>) -> Result<(), StoreError> {
        self.writer
            .run(move |c| limit_pages(c, extra_pages))
            .await
            .map_err(|f: DbFailure| StoreError::Unavailable(f.reason()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sluice_core::ports::EventStore;
    use sluice_core::{EventId, Tenant};

    #[tokio::test]
    async fn a_store_from_before_subjects_is_migrated_and_its_rows_read_as_no_subject_webhook_or_extension() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let id = EventId::new_at(time::OffsetDateTime::now_utc());
        {
            // The database as the first release left it: only the first migration, one row.
            let old = open_writer(&path, &MIGRATIONS[..1]).unwrap();
            old.execute(
                "INSERT INTO events (tenant, id, event_type, data, occurred_at, received_at, request_id) \
                 VALUES ('acme', ?1, 'a', '1', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'r-1')",
                [id.to_string()],
            )
            .unwrap();
        }
        let db = StoreDb::open(&path).unwrap();
        let e = db
            .events()
            .get(&Tenant::parse("acme").unwrap(), &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((e.subject, e.webhook), (None, None));
        // The migration gave the old row its tenant's first seq, and no expiry: it is kept.
        assert_eq!((e.seq, e.expires_at), (1, None));
        assert!(e.extensions.is_empty());
        assert_eq!(e.data, serde_json::json!(1));
    }
}
