//! The embedded store's plumbing: the one writer thread with its group commit (every job
//! waiting, up to `batch_max`, each in its own SAVEPOINT inside one transaction, one
//! COMMIT, then every caller answered), the checkpoint thread, and the pool of read-only
//! connections.

use super::be;
use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tuisong_core::store::StoreError;

pub(super) type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
pub(super) type Job = Box<dyn FnOnce(&Connection) -> Finish + Send>;

/// Wraps `f` as a job: it runs in its own savepoint, and its answer goes to `tx` once the
/// batch's commit is known.
pub(super) fn job<T: Send + 'static>(
    f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    tx: oneshot::Sender<Result<T, StoreError>>,
) -> Job {
    Box::new(move |conn| {
        let result = match conn.execute_batch("SAVEPOINT job") {
            Err(e) => Err(e),
            Ok(()) => {
                let r = f(conn);
                let end = if r.is_ok() {
                    conn.execute_batch("RELEASE job")
                } else {
                    conn.execute_batch("ROLLBACK TO job; RELEASE job")
                };
                match (r, end) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                }
            }
        };
        Box::new(move |commit: Result<(), String>| {
            let answer = match (result, commit) {
                (Ok(v), Ok(())) => Ok(v),
                (Err(e), _) => Err(be(e)),
                (Ok(_), Err(e)) => Err(StoreError::Backend(format!("commit failed: {e}"))),
            };
            let _ = tx.send(answer);
        })
    })
}

pub(super) struct Readers {
    pub(super) path: PathBuf,
    pub(super) idle: Mutex<Vec<Connection>>,
    pub(super) keep: usize,
}

impl Readers {
    pub(super) fn take(&self) -> Result<Connection, StoreError> {
        if let Some(c) = self.idle.lock().map_err(|_| StoreError::Closed)?.pop() {
            return Ok(c);
        }
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(be)?;
        c.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(be)?;
        Ok(c)
    }

    pub(super) fn give_back(&self, c: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.keep
        {
            idle.push(c);
        }
    }
}

/// Copies the WAL back into the database every 200 ms (PASSIVE: it never blocks the
/// writer or readers), until the store is dropped.
pub(super) fn checkpoint_loop(conn: Arc<Mutex<Connection>>, alive: std::sync::Weak<()>) {
    let passive = |conn: &Mutex<Connection>| match conn.lock() {
        Ok(c) => c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())),
        Err(_) => Ok(()),
    };
    while alive.upgrade().is_some() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Err(e) = passive(&conn) {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
    // A last one so a clean shutdown leaves a small WAL.
    let _ = passive(&conn);
}

/// Copies the whole WAL into the database and truncates it to zero bytes: first a
/// PASSIVE pass (no waiting), then TRUNCATE, which holds writers back only while it waits
/// for the readers still on the old WAL and copies what the first pass left. Returns
/// false when a reader kept it from truncating (the next sweep tries again).
pub(super) fn truncate_wal(conn: &Mutex<Connection>) -> Result<bool, StoreError> {
    let c = conn.lock().map_err(|_| StoreError::Closed)?;
    c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .map_err(be)?;
    let busy: i64 = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .map_err(be)?;
    Ok(busy == 0)
}

pub(super) fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    batch_max: usize,
    commits: &tuisong_core::store::CommitStats,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(batch_max);
    let mut finishes: Vec<Finish> = Vec::with_capacity(batch_max);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "could not begin a write transaction");
            // Dropping the jobs drops their reply channels: callers get an error.
            batch.clear();
            continue;
        }
        for job in batch.drain(..) {
            finishes.push(job(&conn));
        }
        let jobs = finishes.len();
        let started = std::time::Instant::now();
        let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        commits.record(jobs, started.elapsed());
        if let Err(e) = &commit {
            tracing::error!(error = %e, "commit failed; the batch is rolled back");
            let _ = conn.execute_batch("ROLLBACK");
        }
        for finish in finishes.drain(..) {
            finish(commit.clone());
        }
    }
}
