//! The group-commit writer: one thread per database file that owns the only write connection.
//!
//! With `synchronous=FULL` every commit costs an fsync, which would cap throughput at a few
//! hundred commits a second if each send committed alone. Instead, callers hand closures to this
//! thread over a channel; it takes every command already waiting (up to [`MAX_GROUP`]), applies
//! them all in one transaction, commits once and only then answers each caller. A caller that got
//! `Ok` therefore knows its write is on disk, and a hundred concurrent callers share one fsync.
//!
//! Not every write needs its own fsync. A message's receipt, its deletion after its event is
//! stored, a visibility change: if a power failure loses one, the message is only handed out
//! again, which SQS semantics allow and the store's conditional put absorbs. Such writes go
//! through [`Writer::run_relaxed`]; a group made only of them commits with `synchronous=NORMAL`,
//! which in WAL mode still survives any crash of the process and never reorders or tears
//! transactions (only the last few can be lost with the machine's power). A group holding one
//! durable write commits with `synchronous=FULL`, as every group did before.
//!
//! A group is all or nothing: if any statement or the commit fails (disk full, busy, read-only),
//! the transaction is rolled back and every command in the group gets the same failure. Commands
//! report refusals that must not undo their neighbours (a stale receipt, say) as values inside
//! their `Ok` result instead. The thread survives failed groups, and even panicking commands, so
//! later groups succeed once the cause goes away.

use crate::sqlite::DbFailure;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The most commands applied in one transaction, so one huge burst cannot hold the write lock
/// (and delay every reply in it) for long.
pub(crate) const MAX_GROUP: usize = 512;

/// How often housekeeping (retention, expired records) runs at most.
pub(crate) const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

/// Housekeeping the writer runs in its own transaction, at most once per [`MAINTENANCE_INTERVAL`].
pub(crate) type Maintenance = Box<dyn FnMut(&Connection) -> rusqlite::Result<()> + Send>;

/// Counters for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: u64,
    /// Commands applied in committed transactions.
    pub commands: u64,
    /// Groups rolled back because a statement or the commit failed.
    pub failed_groups: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    commands: AtomicU64,
    failed_groups: AtomicU64,
}

/// One command, type-erased so one channel carries every kind of write.
trait Job: Send {
    /// The caller stopped waiting (its future was dropped); applying the command would only
    /// produce effects nobody learns about, such as messages hidden but never handed out.
    fn is_abandoned(&self) -> bool;
    /// Runs the command inside the group's transaction.
    fn apply(&mut self, conn: &Connection) -> rusqlite::Result<()>;
    /// Whether its caller is told it is on disk (an fsync'd commit), not only committed.
    fn durable(&self) -> bool;
    /// Answers the caller once the group's fate is known.
    fn finish(self: Box<Self>, outcome: Result<(), DbFailure>);
}

struct Typed<T, F> {
    f: Option<F>,
    out: Option<T>,
    reply: oneshot::Sender<Result<T, DbFailure>>,
    durable: bool,
}

impl<T, F> Job for Typed<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send,
{
    fn is_abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn durable(&self) -> bool {
        self.durable
    }

    fn apply(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if let Some(f) = self.f.take() {
            self.out = Some(f(conn)?);
        }
        Ok(())
    }

    fn finish(self: Box<Self>, outcome: Result<(), DbFailure>) {
        let Typed { out, reply, .. } = *self;
        let result = outcome.and_then(|()| out.ok_or(DbFailure("command was not applied")));
        // The caller may have gone away meanwhile; the write stands either way.
        let _ = reply.send(result);
    }
}

/// A command nobody waits for: applied in the next group like any other, its failure only logged.
struct Detached<F> {
    f: Option<F>,
    what: &'static str,
}

impl<F> Job for Detached<F>
where
    F: FnOnce(&Connection) -> rusqlite::Result<()> + Send,
{
    fn is_abandoned(&self) -> bool {
        false
    }

    fn durable(&self) -> bool {
        false
    }

    fn apply(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        match self.f.take() {
            Some(f) => f(conn),
            None => Ok(()),
        }
    }

    fn finish(self: Box<Self>, outcome: Result<(), DbFailure>) {
        if let Err(f) = outcome {
            tracing::warn!(reason = f.0, what = self.what, "a background write failed");
        }
    }
}

/// A handle to a writer thread. Dropping every handle lets the thread finish and close the file.
pub(crate) struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the thread that owns `conn`.
    pub(crate) fn spawn(name: &str, conn: Connection, maintenance: Option<Maintenance>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        // The `db` label of the group-commit metric: `queue` or `store`, from the thread's name.
        let db: &'static str = if name.contains("queue") { "queue" } else { "store" };
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(&conn, &rx, &thread_counters, maintenance, db))?;
        Ok(Self { tx, counters })
    }

    /// Applies `f` in the next group and resolves once that group committed (or failed) and is
    /// on disk.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, DbFailure>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.run_with(f, true).await
    }

    /// Like [`Writer::run`] for a write whose loss with the machine's power costs only a message
    /// handed out again (see the module's documentation): it shares no fsync it does not need.
    pub(crate) async fn run_relaxed<T, F>(&self, f: F) -> Result<T, DbFailure>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.run_with(f, false).await
    }

    async fn run_with<T, F>(&self, f: F, durable: bool) -> Result<T, DbFailure>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Typed {
            f: Some(f),
            out: None,
            reply,
            durable,
        });
        self.tx.send(job).map_err(|_| DbFailure("database writer stopped"))?;
        rx.await.unwrap_or(Err(DbFailure("database writer stopped")))
    }

    /// Queues `f` for the next group and returns at once, for writes whose loss costs nothing
    /// but a little redundant work later (`what` names it in the log if its group fails). Jobs
    /// are applied in the order they were queued, so a later [`Writer::run`] sees its effect.
    pub(crate) fn submit<F>(&self, what: &'static str, f: F) -> Result<(), DbFailure>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    {
        let job: Box<dyn Job> = Box::new(Detached { f: Some(f), what });
        self.tx.send(job).map_err(|_| DbFailure("database writer stopped"))
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            commands: self.counters.commands.load(Ordering::Relaxed),
            failed_groups: self.counters.failed_groups.load(Ordering::Relaxed),
        }
    }
}

fn run(
    conn: &Connection,
    rx: &mpsc::Receiver<Box<dyn Job>>,
    counters: &Counters,
    mut maintenance: Option<Maintenance>,
    db: &'static str,
) {
    // Housekeeping is due right away, so leftovers from a previous run go at startup.
    let mut last_maintenance: Option<Instant> = None;
    // The connection opens with synchronous=FULL.
    let mut full = true;
    loop {
        let first = match rx.recv_timeout(MAINTENANCE_INTERVAL) {
            Ok(job) => Some(job),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(first) = first {
            let mut group = Vec::with_capacity(16);
            group.push(first);
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            group.retain(|job| !job.is_abandoned());
            if !group.is_empty() {
                let outcome = sync_for(conn, &mut full, group.iter().any(|job| job.durable()))
                    .and_then(|()| apply_group(conn, &mut group));
                match outcome {
                    Ok(()) => {
                        counters.commits.fetch_add(1, Ordering::Relaxed);
                        counters.commands.fetch_add(group.len() as u64, Ordering::Relaxed);
                        metrics::histogram!(sluice_core::metrics::GROUP_COMMIT_SIZE, "db" => db)
                            .record(group.len() as f64);
                    }
                    Err(_) => {
                        counters.failed_groups.fetch_add(1, Ordering::Relaxed);
                    }
                }
                for job in group {
                    job.finish(outcome);
                }
            }
        }
        let due = last_maintenance.is_none_or(|t| t.elapsed() >= MAINTENANCE_INTERVAL);
        if let (Some(m), true) = (maintenance.as_mut(), due) {
            last_maintenance = Some(Instant::now());
            if let Err(f) = sync_for(conn, &mut full, true).and_then(|()| in_transaction(conn, |c| m(c))) {
                tracing::warn!(reason = f.0, "database housekeeping failed; will retry later");
            }
        }
    }
    tracing::debug!("database writer stopped");
}

/// Sets `synchronous` for the next transaction, FULL when it holds a durable write, where it is
/// not already so (`full` tracks the connection's setting).
fn sync_for(conn: &Connection, full: &mut bool, durable: bool) -> Result<(), DbFailure> {
    if *full != durable {
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })
            .map_err(|e| DbFailure::from_sqlite(&e))?;
        *full = durable;
    }
    Ok(())
}

fn apply_group(conn: &Connection, group: &mut [Box<dyn Job>]) -> Result<(), DbFailure> {
    in_transaction(conn, |c| {
        for job in group.iter_mut() {
            job.apply(c)?;
        }
        Ok(())
    })
}

/// Runs `f` in one immediate transaction, rolling back on any error or panic.
fn in_transaction(conn: &Connection, f: impl FnOnce(&Connection) -> rusqlite::Result<()>) -> Result<(), DbFailure> {
    let result = catch_unwind(AssertUnwindSafe(|| -> rusqlite::Result<()> {
        // IMMEDIATE takes the write lock up front, so another process holding it makes us wait
        // (busy_timeout) at the start instead of failing at commit after doing all the work.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        f(conn)?;
        conn.execute_batch("COMMIT")
    }));
    let failure = match result {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "database transaction failed; the whole group is rolled back");
            DbFailure::from_sqlite(&e)
        }
        Err(_) => {
            tracing::error!("a database command panicked; the whole group is rolled back");
            DbFailure("internal error")
        }
    };
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::error!(error = %e, "rollback failed");
    }
    Err(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(c: &Connection) -> rusqlite::Result<i64> {
        c.query_row("PRAGMA synchronous", [], |r| r.get(0))
    }

    #[tokio::test]
    async fn a_relaxed_group_commits_without_an_fsync_and_a_durable_one_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::sqlite::open_writer(&dir.path().join("w.db"), &[]).unwrap();
        let writer = Writer::spawn("test-queue-writer", conn, None).unwrap();
        // 2 is FULL (an fsync per commit), 1 NORMAL; each group reads its own setting.
        assert_eq!(writer.run_relaxed(synchronous).await.unwrap(), 1);
        assert_eq!(writer.run(synchronous).await.unwrap(), 2);
        assert_eq!(writer.run_relaxed(synchronous).await.unwrap(), 1);
        assert_eq!(writer.run(synchronous).await.unwrap(), 2);
        assert_eq!(writer.stats().commits, 4);
    }
}
