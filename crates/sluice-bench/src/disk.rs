//! The disk ceiling: raw batched inserts into a SQLite table shaped like the queue's, with the
//! same durability as the embedded queue (WAL, `synchronous=FULL`, one writer thread committing
//! every waiting request in one transaction, at most 512 per group). `conns` producer threads
//! each insert `per_request` rows and wait for the commit, like HTTP connections waiting for
//! their 202. No validation, signing, HTTP or async runtime: what is left is the disk.

use crate::stats::percentile;
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// Same cap as the embedded queue's writer.
const MAX_GROUP: usize = 512;

struct Insert {
    rows: usize,
    done: mpsc::Sender<()>,
}

/// Runs the reference for `duration` and returns the JSON report.
pub fn run(dir: &Path, conns: usize, per_request: usize, duration: Duration) -> anyhow::Result<serde_json::Value> {
    let path = dir.join("disk-ceiling.db");
    let _ = std::fs::remove_file(&path);
    let conn = Connection::open(&path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "WAL refused: {mode}");
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE messages (seq INTEGER PRIMARY KEY, queue TEXT NOT NULL, message_id TEXT NOT NULL,
            body TEXT NOT NULL, attributes TEXT NOT NULL, sent_at_ns INTEGER NOT NULL,
            visible_at_ms INTEGER NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT);
         CREATE INDEX messages_by_visibility ON messages (queue, visible_at_ms);",
    )?;
    // A real sealed envelope, so rows are as large as the queue's.
    let sealer = sluice_cpu::sealer()?;
    let validator = sluice_core::validate::Validator::default();
    let sample = sluice_cpu::ingest_work(
        &validator,
        &sealer,
        &sluice_cpu::context()?,
        br#"{"type":"bench.event","data":{"n":1,"user":"u-123","tags":["a","b"],"amount":12.5}}"#,
    )?
    .pop()
    .ok_or_else(|| anyhow::anyhow!("no sample message"))?;
    let row_bytes = sample.body.len();
    let body = Arc::new(sample.body);
    let attributes = Arc::new(serde_json::to_string(&sample.attributes)?);
    let attributes_len = attributes.len();

    let (tx, rx) = mpsc::channel::<Insert>();
    let commits = Arc::new(AtomicU64::new(0));
    let writer_commits = commits.clone();
    let writer = std::thread::spawn(move || -> rusqlite::Result<()> {
        let mut next_id: u64 = 0;
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(i) => group.push(i),
                    Err(_) => break,
                }
            }
            conn.execute_batch("BEGIN IMMEDIATE")?;
            {
                let mut stmt = conn.prepare_cached(
                    "INSERT INTO messages (queue, message_id, body, attributes, sent_at_ns, visible_at_ms)
                     VALUES ('events', ?1, ?2, ?3, ?4, ?4 / 1000000)",
                )?;
                for insert in &group {
                    for _ in 0..insert.rows {
                        next_id += 1;
                        stmt.execute(params![
                            format!("m-{next_id:012}"),
                            body.as_str(),
                            attributes.as_str(),
                            next_id as i64
                        ])?;
                    }
                }
            }
            conn.execute_batch("COMMIT")?;
            writer_commits.fetch_add(1, Ordering::Relaxed);
            for insert in group {
                let _ = insert.done.send(());
            }
        }
        Ok(())
    });

    let start = Instant::now();
    let deadline = start + duration;
    let producers: Vec<_> = (0..conns)
        .map(|_| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let (done_tx, done_rx) = mpsc::channel();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if tx
                        .send(Insert {
                            rows: per_request,
                            done: done_tx.clone(),
                        })
                        .is_err()
                        || done_rx.recv().is_err()
                    {
                        break;
                    }
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    drop(tx);
    let mut latencies = Vec::new();
    for p in producers {
        latencies.extend(p.join().map_err(|_| anyhow::anyhow!("a producer panicked"))?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    writer.join().map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    let requests = latencies.len() as f64;
    Ok(serde_json::json!({
        "bench": "disk",
        "conns": conns,
        "per_request": per_request,
        "requests_per_sec": requests / elapsed,
        "events_per_sec": requests * per_request as f64 / elapsed,
        "p50_ms": percentile(&mut latencies, 50.0),
        "p99_ms": percentile(&mut latencies, 99.0),
        "commits": commits.load(Ordering::Relaxed),
        "row_bytes": row_bytes + attributes_len,
    }))
}
