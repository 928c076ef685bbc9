//! The embedded store: one SQLite database in WAL mode.
//!
//! Writes go to one writer thread that owns the only write connection. It takes every
//! job waiting in its queue (up to `batch_max`), runs each inside its own SAVEPOINT
//! within one transaction, commits once, and only then answers the callers. Throughput
//! is therefore bounded by commits (one fsync each with `synchronous=FULL`) per batch,
//! not per request, and a caller is answered only after its write is durable.
//! Reads use a small pool of read connections on blocking threads; WAL lets them run
//! beside the writer and they see every committed write.
//!
//! This module holds the store type, its settings, opening and migrating; the writer,
//! checkpoint and readers are in `writer`, the statements the shared flows run in
//! `steps`, and one file per aggregate implements its part of the `Store` contract.

mod apps;
mod consent;
mod delivery;
mod messages;
mod policy;
mod push;
mod steps;
mod templates;
mod writer;

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tuisong_core::store::StoreError;
use writer::{Job, Readers};

const SCHEMA_V1: &str = include_str!("../schema_sqlite.sql");

#[derive(Debug, Clone)]
pub struct SqliteSettings {
    pub path: PathBuf,
    /// Most jobs in one transaction.
    pub batch_max: usize,
    /// Read connections kept open.
    pub readers: usize,
    /// `synchronous=FULL` (fsync every commit). Off only for throwaway benchmarks.
    pub fsync: bool,
}

impl SqliteSettings {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            batch_max: 512,
            readers: 4,
            fsync: true,
        }
    }
}

pub struct SqliteStore {
    /// The checkpoint thread runs while this lives.
    _alive: Arc<()>,
    jobs: mpsc::Sender<Job>,
    readers: Arc<Readers>,
}

fn be(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database, migrates it, and starts the writer thread.
    pub fn open(settings: SqliteSettings) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = settings.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(&settings.path).map_err(be)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(be)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(be)?;
        conn.pragma_update(
            None,
            "synchronous",
            if settings.fsync { "FULL" } else { "OFF" },
        )
        .map_err(be)?;
        migrate(&conn)?;
        // Checkpoints run on their own thread and connection, not inside the writer's
        // commits (a profile of `bench send` put 8 % of the writer's time there).
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(be)?;
        let alive = Arc::new(());
        let checkpointer = Connection::open(&settings.path).map_err(be)?;
        checkpointer
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(be)?;
        let weak = Arc::downgrade(&alive);
        std::thread::Builder::new()
            .name("tuisong-sqlite-checkpoint".into())
            .spawn(move || writer::checkpoint_loop(checkpointer, weak))
            .map_err(|e| StoreError::Backend(format!("starting the checkpoint thread: {e}")))?;
        let (tx, rx) = mpsc::channel::<Job>(settings.batch_max * 8);
        let batch_max = settings.batch_max.max(1);
        std::thread::Builder::new()
            .name("tuisong-sqlite-writer".into())
            .spawn(move || writer::writer_loop(conn, rx, batch_max))
            .map_err(|e| StoreError::Backend(format!("starting the writer thread: {e}")))?;
        Ok(SqliteStore {
            _alive: alive,
            jobs: tx,
            readers: Arc::new(Readers {
                path: settings.path,
                idle: Mutex::new(Vec::new()),
                keep: settings.readers.max(1),
            }),
        })
    }

    /// Runs `f` in the writer's current transaction; answers after the commit.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(writer::job(f, tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await
            .map_err(|_| StoreError::Backend("the write was not committed".into()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let r = f(&conn).map_err(be);
            readers.give_back(conn);
            r
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(be)?;
    if version == 0 {
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA_V1}; PRAGMA user_version = 1; COMMIT;"
        ))
        .map_err(be)?;
    } else if version > 1 {
        return Err(StoreError::Backend(format!(
            "the database has schema version {version}, newer than this build knows (1)"
        )));
    }
    Ok(())
}

/// Path of the database file inside a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tuisong.db")
}
