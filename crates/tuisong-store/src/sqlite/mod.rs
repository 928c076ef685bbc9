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
//! This module holds the store type, its settings, opening (with owner-only file modes)
//! and migrating; the writer, checkpoint and readers are in `writer`, the statements the
//! shared flows run in `steps`, and one file per aggregate implements its part of the
//! `Store` contract (`retention` the bounded sweeps).

mod apps;
mod consent;
mod delivery;
mod messages;
mod policy;
mod push;
mod retention;
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
const SCHEMA_V2: &str = include_str!("../schema_sqlite_v2.sql");
/// Schema version N is `MIGRATIONS[N - 1]` applied on top of version N - 1.
const MIGRATIONS: [&str; 2] = [SCHEMA_V1, SCHEMA_V2];

/// The WAL is cut back to this size whenever it restarts (a burst leaves no huge file).
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

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
    /// The connection checkpoints run on: the thread's passive ones, `compact`'s truncation.
    checkpointer: Arc<Mutex<Connection>>,
    jobs: mpsc::Sender<Job>,
    readers: Arc<Readers>,
    /// Jobs per commit and commit time, recorded by the writer thread.
    commits: Arc<tuisong_core::store::CommitStats>,
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
            files::create_private_dir(dir)?;
        }
        files::create_private_file(&settings.path)?;
        let conn = Connection::open(&settings.path).map_err(be)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(be)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(be)?;
        conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
            .map_err(be)?;
        conn.pragma_update(
            None,
            "synchronous",
            if settings.fsync { "FULL" } else { "OFF" },
        )
        .map_err(be)?;
        migrate(&conn)?;
        // SQLite gives the -wal and -shm files the database's mode; these may be older.
        files::tighten(&settings.path)?;
        // Checkpoints run on their own thread and connection, not inside the writer's
        // commits (a profile of `bench send` put 8 % of the writer's time there).
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(be)?;
        let alive = Arc::new(());
        let checkpointer = Connection::open(&settings.path).map_err(be)?;
        checkpointer
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(be)?;
        checkpointer
            .pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
            .map_err(be)?;
        let checkpointer = Arc::new(Mutex::new(checkpointer));
        let (weak, ckpt) = (Arc::downgrade(&alive), checkpointer.clone());
        std::thread::Builder::new()
            .name("tuisong-sqlite-checkpoint".into())
            .spawn(move || writer::checkpoint_loop(ckpt, weak))
            .map_err(|e| StoreError::Backend(format!("starting the checkpoint thread: {e}")))?;
        let (tx, rx) = mpsc::channel::<Job>(settings.batch_max * 8);
        let batch_max = settings.batch_max.max(1);
        let commits = Arc::new(tuisong_core::store::CommitStats::new());
        let recorder = commits.clone();
        std::thread::Builder::new()
            .name("tuisong-sqlite-writer".into())
            .spawn(move || writer::writer_loop(conn, rx, batch_max, &recorder))
            .map_err(|e| StoreError::Backend(format!("starting the writer thread: {e}")))?;
        Ok(SqliteStore {
            _alive: alive,
            checkpointer,
            jobs: tx,
            commits,
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

#[async_trait::async_trait]
impl tuisong_core::store::HealthStore for SqliteStore {
    /// An empty job through the writer: answered only once the writer thread is alive
    /// and its batch committed (no change, so no fsync).
    async fn ping(&self) -> Result<(), StoreError> {
        self.write(|_| Ok(())).await
    }

    fn commit_stats(&self) -> Option<&tuisong_core::store::CommitStats> {
        Some(&self.commits)
    }
}

/// Brings the schema to the last version, one version per transaction: a fresh database
/// runs version 1 then 2, one made by an older release only what it lacks.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(be)?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::Backend(format!(
            "the database has schema version {version}, newer than this build knows ({known})"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let to = i + 1;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(be)?;
        match conn.execute_batch(&format!("{sql}\nPRAGMA user_version = {to};")) {
            Ok(()) => conn.execute_batch("COMMIT").map_err(be)?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(StoreError::Backend(format!(
                    "migrating the schema to version {to}: {e}"
                )));
            }
        }
    }
    Ok(())
}

/// Owner-only modes for what the store creates: the directory 0700, the database and its
/// -wal and -shm files 0600 (set explicitly, whatever the umask), and existing files
/// tightened at start. Only on Unix; elsewhere the platform's defaults stay.
mod files {
    use std::path::Path;
    use tuisong_core::store::StoreError;

    fn err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
        StoreError::Backend(format!("{what} {}: {e}", path.display()))
    }

    pub(super) fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
        if dir.is_dir() {
            return Ok(());
        }
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).map_err(|e| err("creating", dir, e))?;
        set_mode(dir, 0o700)
    }

    /// Creates an empty database file 0600 when there is none, so SQLite never creates it
    /// with the umask's mode.
    pub(super) fn create_private_file(path: &Path) -> Result<(), StoreError> {
        if path.exists() {
            return Ok(());
        }
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(path).map_err(|e| err("creating", path, e))?;
        set_mode(path, 0o600)
    }

    /// The database, -wal and -shm files (those that exist) to 0600.
    pub(super) fn tighten(db: &Path) -> Result<(), StoreError> {
        let name = db.as_os_str().to_owned();
        for suffix in ["", "-wal", "-shm"] {
            let mut p = name.clone();
            p.push(suffix);
            let p = Path::new(&p);
            if p.exists() {
                set_mode(p, 0o600)?;
            }
        }
        Ok(())
    }

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let now = std::fs::metadata(path)
            .map_err(|e| err("reading", path, e))?
            .permissions()
            .mode();
        if now & 0o777 != mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| err("restricting the mode of", path, e))?;
        }
        Ok(())
    }

    #[cfg(not(unix))]
    fn set_mode(_: &Path, _: u32) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Path of the database file inside a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tuisong.db")
}
