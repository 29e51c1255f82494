//! SQLite plumbing shared by the queue and the store: opening connections with the durability
//! pragmas, schema migration, a small pool of read-only connections, and the mapping of SQLite
//! errors to short, client-safe reasons.
//!
//! Every database file is opened in WAL mode with `synchronous=FULL`: a commit that returned is on
//! disk, and readers never block the single writer (nor the writer them).

use crate::EmbeddedError;
use parking_lot::Mutex;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a connection waits on a lock held by another connection (another process, or a
/// reader checkpointing) before giving up with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Page cache of the connection that writes a file, in KiB (SQLite's default is 2000).
///
/// A send, receive or delete touches a handful of pages: the B-trees' roots, the right-most
/// leaves where rows arrive and the left-most where they leave. Everything else is in the
/// operating system's page cache a `pread` away. Measured under `wrk -c256` with 100-event
/// bodies, 1 MiB for writers and 256 KiB for readers cut peak RSS by about 4 MiB (of 49 to 52)
/// and cost no throughput.
const WRITER_CACHE_KIB: i64 = 1024;

/// Page cache of each read connection, in KiB: reads are point lookups and index scans
/// (the depth count walks a whole index once, and would otherwise keep 2 MB of it).
const READER_CACHE_KIB: i64 = 256;

/// Read connections per database file, and so reads running at once on the blocking pool.
///
/// A bound, not a pool size: without it a burst of concurrent reads (every connection's API key
/// falling out of the authenticator's cache at the same instant, or a flood of queries) would
/// spawn a blocking thread and open a fresh connection, with its own page cache and parsed
/// schema, for each one, up to tokio's 512 blocking threads. Reads beyond it wait their turn.
const MAX_READERS: usize = 4;

/// Why a database operation did not happen, in words safe to show a caller.
///
/// Never carries SQL or file paths: the full error is logged where it happens, and only this
/// classification travels up to code that might put it in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DbFailure(pub(crate) &'static str);

impl DbFailure {
    /// Classifies a SQLite error.
    pub(crate) fn from_sqlite(e: &rusqlite::Error) -> Self {
        Self(match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => "disk full",
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => "database busy",
            Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => "database is read-only",
            Some(ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => "database I/O error",
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => "database is corrupt",
            Some(ErrorCode::OutOfMemory) => "out of memory",
            _ => "database error",
        })
    }

    /// The reason, for the port error types.
    pub(crate) fn reason(self) -> String {
        self.0.to_owned()
    }
}

/// Opens the connection that will own all writes to `path`, creating the file if needed, and
/// brings its schema to the current version.
pub(crate) fn open_writer(path: &Path, migrations: &[&str]) -> Result<Connection, EmbeddedError> {
    let open = |source| EmbeddedError::Open {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open)?;
    tune(&conn, WRITER_CACHE_KIB).map_err(open)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(open)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(EmbeddedError::NotWal {
            path: path.to_owned(),
            mode,
        });
    }
    conn.pragma_update(None, "synchronous", "FULL").map_err(open)?;
    migrate(&conn, migrations).map_err(|source| EmbeddedError::Migrate {
        path: path.to_owned(),
        source,
    })?;
    Ok(conn)
}

/// Settings every connection gets, writer or reader: a page cache of `cache_kib`, and stable
/// query plans.
///
/// Each cached statement keeps its query plan across executions. The bundled SQLite is built with
/// STAT4, which otherwise marks a statement whose range bounds are bound parameters (the queue's
/// `visible_at_ms <= ?`, `seq > ?`) as expired at every new binding and re-parses and re-plans it
/// on every receive: 7% of the queue writer's CPU under load. The plans do not depend on the values.
fn tune(conn: &Connection, cache_kib: i64) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    // Negative: KiB rather than pages.
    conn.pragma_update(None, "cache_size", -cache_kib)
}

/// Applies the migrations the file has not seen yet, tracked in `PRAGMA user_version`.
///
/// Each migration runs in its own immediate transaction so two processes opening the same fresh
/// file cannot both apply it.
fn migrate(conn: &Connection, migrations: &[&str]) -> rusqlite::Result<()> {
    // Up to date (the usual case) needs no write lock: in WAL mode reading the version never
    // waits, so a command such as `sluice status` opens the file while another process holds
    // the write lock for a long time (a backup, an operator's tool, the fault tests' locker).
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if usize::try_from(current).is_ok_and(|v| v >= migrations.len()) {
        return Ok(());
    }
    for (i, sql) in migrations.iter().enumerate() {
        let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if current < version {
                conn.execute_batch(sql)?;
                conn.pragma_update(None, "user_version", version)?;
            }
            conn.execute_batch("COMMIT")
        })();
        if result.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        result?;
    }
    Ok(())
}

/// A few read-only connections for queries that need not go through the writer.
pub(crate) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection that may be in use ([`MAX_READERS`]).
    permits: Arc<Semaphore>,
}

impl ReadPool {
    /// A pool over `path`, which must already exist in WAL mode (open the writer first).
    pub(crate) fn new(path: &Path) -> Result<Arc<Self>, EmbeddedError> {
        let pool = Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(MAX_READERS)),
        };
        // Open one now so a misconfigured file fails at startup rather than on the first query.
        let first = pool.connect().map_err(|source| EmbeddedError::Open {
            path: path.to_owned(),
            source,
        })?;
        pool.idle.lock().push(first);
        Ok(Arc::new(pool))
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        tune(&conn, READER_CACHE_KIB)?;
        Ok(conn)
    }

    /// Runs `f` on a read connection on the blocking thread pool, so the async runtime never
    /// waits on the disk.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, DbFailure>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = self.clone();
        // The semaphore is never closed, so acquiring only waits.
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return Err(DbFailure("database read failed"));
        };
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let taken = pool.idle.lock().pop();
            let conn = match taken {
                Some(c) => c,
                None => pool.connect()?,
            };
            let out = f(&conn);
            // A connection whose read failed may hold a stale snapshot or a broken handle: drop it.
            // Holding a permit, this read's connection is one of at most `MAX_READERS`, so the
            // idle list never outgrows it.
            if out.is_ok() {
                pool.idle.lock().push(conn);
            }
            out
        })
        .await;
        match joined {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "database read failed");
                Err(DbFailure::from_sqlite(&e))
            }
            Err(e) => {
                tracing::error!(error = %e, "database read task failed");
                Err(DbFailure("database read failed"))
            }
        }
    }
}

/// Caps the file at its current size plus `extra_pages` pages (`None` lifts the cap), so tests
/// can make writes fail with `SQLITE_FULL` as on a full disk; used by both databases.
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

/// Nanoseconds since the Unix epoch, saturating outside `i64` (years 1677 to 2262).
pub(crate) fn to_nanos(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(if t.unix_timestamp() < 0 { i64::MIN } else { i64::MAX })
}

/// The instant `nanos` after the Unix epoch, in UTC.
pub(crate) fn from_nanos(nanos: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_connection_is_durable_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let migrations = ["CREATE TABLE a (x)", "CREATE TABLE b (y)"];
        let conn = open_writer(&path, &migrations).unwrap();
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 2, "FULL");
        let cache: i64 = conn.query_row("PRAGMA cache_size", [], |r| r.get(0)).unwrap();
        assert_eq!(cache, -WRITER_CACHE_KIB, "negative: KiB, not pages");
        let reader = ReadPool::new(&path).unwrap().idle.lock().pop().unwrap();
        let cache: i64 = reader.query_row("PRAGMA cache_size", [], |r| r.get(0)).unwrap();
        assert_eq!(cache, -READER_CACHE_KIB);
        drop(conn);
        // Reopening applies nothing twice (CREATE TABLE would fail if it did).
        let conn = open_writer(&path, &migrations).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, 2);
    }

    #[test]
    fn an_up_to_date_file_opens_while_another_connection_holds_the_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let migrations = ["CREATE TABLE a (x)"];
        let holder = open_writer(&path, &migrations).unwrap();
        holder
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO a VALUES (1);")
            .unwrap();
        let started = std::time::Instant::now();
        let other = open_writer(&path, &migrations).unwrap();
        assert!(
            started.elapsed() < BUSY_TIMEOUT / 2,
            "waited {:?} for a lock it does not need",
            started.elapsed()
        );
        let rows: i64 = other.query_row("SELECT COUNT(*) FROM a", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 0, "the holder's write is not committed yet");
        // A file that still needs a migration does wait for the lock, and says so.
        assert!(open_writer(&path, &["CREATE TABLE a (x)", "CREATE TABLE b (y)"]).is_err());
        holder.execute_batch("COMMIT").unwrap();
    }

    #[test]
    fn a_cached_range_query_is_planned_once_not_at_every_binding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let migrations = ["CREATE TABLE m (seq INTEGER PRIMARY KEY, q TEXT, v INTEGER); CREATE INDEX m_v ON m (q, v)"];
        let conn = open_writer(&path, &migrations).unwrap();
        let readers = ReadPool::new(&path).unwrap();
        let reader = readers.idle.lock().pop().unwrap();
        for c in [&conn, &reader] {
            let sql = "SELECT seq FROM m WHERE q = ?1 AND v <= ?2 AND seq > ?3 ORDER BY seq LIMIT ?4";
            for bound in 0..5_i64 {
                let mut stmt = c.prepare_cached(sql).unwrap();
                let n = stmt
                    .query_map(rusqlite::params!["q", bound, bound, 10], |_| Ok(()))
                    .unwrap()
                    .count();
                assert_eq!(n, 0);
                assert_eq!(
                    stmt.get_status(rusqlite::StatementStatus::RePrepare),
                    0,
                    "binding {bound}"
                );
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn d2_a_burst_of_reads_runs_on_at_most_max_readers_connections() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let _writer = open_writer(&path, &["CREATE TABLE a (x)"]).unwrap();
        let readers = ReadPool::new(&path).unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let reads = (0..48).map(|_| {
            let (readers, running, most) = (readers.clone(), running.clone(), most.clone());
            tokio::spawn(async move {
                readers
                    .read(move |c| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(10));
                        running.fetch_sub(1, Ordering::SeqCst);
                        c.query_row("SELECT COUNT(*) FROM a", [], |r| r.get::<_, i64>(0))
                    })
                    .await
            })
        });
        for read in reads.collect::<Vec<_>>() {
            assert_eq!(read.await.unwrap(), Ok(0), "every read is served, none refused");
        }
        let most = most.load(Ordering::SeqCst);
        assert_eq!(most, MAX_READERS, "48 reads at once ran {most} at a time");
        assert!(
            readers.idle.lock().len() <= MAX_READERS,
            "no more connections kept than may run"
        );
    }

    #[test]
    fn failures_are_classified_without_sql() {
        let e = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("INSERT ...".into()),
        );
        assert_eq!(DbFailure::from_sqlite(&e).reason(), "disk full");
        let e = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        assert_eq!(DbFailure::from_sqlite(&e).reason(), "database busy");
        let e = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY), None);
        assert_eq!(DbFailure::from_sqlite(&e).reason(), "database is read-only");
    }
}
