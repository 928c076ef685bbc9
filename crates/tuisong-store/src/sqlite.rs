//! The embedded store: one SQLite database in WAL mode.
//!
//! Writes go to one writer thread that owns the only write connection. It takes every
//! job waiting in its queue (up to `batch_max`), runs each inside its own SAVEPOINT
//! within one transaction, commits once, and only then answers the callers. Throughput
//! is therefore bounded by commits (one fsync each with `synchronous=FULL`) per batch,
//! not per request, and a caller is answered only after its write is durable.
//! Reads use a small pool of read connections on blocking threads; WAL lets them run
//! beside the writer and they see every committed write.

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tuisong_core::clock::Millis;
use tuisong_core::consent::{ConsentState, ConsumeRule, Decision, PromptEffect};
use tuisong_core::ids::{AppId, MsgId, OpenId, Secret, TemplateId, UserId};
use tuisong_core::library::TemplateKind;
use tuisong_core::policy::{Policy, QuietHours};
use tuisong_core::push::{
    OutboxItem, PromptItem, PushAttempt, PushConfig, PushEvent, SENT_CANCELLED, SENT_EXPIRED,
    SENT_RECALLED, SENT_SUCCESS,
};
use tuisong_core::store::{
    AccessToken, AddTemplateOutcome, App, CodeOutcome, EntryKind, InboxEntry, LoginCode, Message,
    MessageFilter, MessageStatus, NewMessage, SendOutcome, StatRow, StopOutcome, Store, StoreError,
    Subscriber, TimelineEvent, TokenKind, User,
};
use tuisong_core::template::PrivateTemplate;

const SCHEMA_V1: &str = include_str!("schema_sqlite.sql");

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

type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Finish + Send>;

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    keep: usize,
}

impl Readers {
    fn take(&self) -> Result<Connection, StoreError> {
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

    fn give_back(&self, c: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.keep
        {
            idle.push(c);
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

fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text)
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
            .spawn(move || checkpoint_loop(checkpointer, weak))
            .map_err(|e| StoreError::Backend(format!("starting the checkpoint thread: {e}")))?;
        let (tx, rx) = mpsc::channel::<Job>(settings.batch_max * 8);
        let batch_max = settings.batch_max.max(1);
        std::thread::Builder::new()
            .name("tuisong-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, batch_max))
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
        let job: Job = Box::new(move |conn| {
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
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
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

/// Copies the WAL back into the database every 200 ms (PASSIVE: it never blocks the
/// writer or readers), until the store is dropped.
fn checkpoint_loop(conn: Connection, alive: std::sync::Weak<()>) {
    while alive.upgrade().is_some() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
    // A last one so a clean shutdown leaves a small WAL.
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<Job>, batch_max: usize) {
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
        let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if let Err(e) = &commit {
            tracing::error!(error = %e, "commit failed; the batch is rolled back");
            let _ = conn.execute_batch("ROLLBACK");
        }
        for finish in finishes.drain(..) {
            finish(commit.clone());
        }
    }
}

// ----------------------------------------------------------------- row mapping

fn parse_appid(s: String) -> rusqlite::Result<AppId> {
    Ok(AppId::from_trusted(s))
}

fn app_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<App> {
    Ok(App {
        appid: parse_appid(r.get(0)?)?,
        name: r.get(1)?,
        secret: Secret::new(r.get::<_, String>(2)?),
        original_id: r.get(3)?,
        created_at: r.get(4)?,
    })
}

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccessToken> {
    let kind: String = r.get(2)?;
    Ok(AccessToken {
        token: r.get(0)?,
        appid: AppId::from_trusted(r.get(1)?),
        kind: TokenKind::parse(&kind).ok_or_else(|| corrupt("token kind"))?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        superseded: r.get(5)?,
    })
}

const TOKEN_COLS: &str = "token, appid, kind, created_at, expires_at, superseded";

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        user_id: UserId::from_trusted(r.get(0)?),
        nickname: r.get(1)?,
        token_hash: r.get(2)?,
        created_at: r.get(3)?,
    })
}

fn subscriber_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Subscriber> {
    Ok(Subscriber {
        appid: AppId::from_trusted(r.get(0)?),
        openid: OpenId::from_trusted(r.get(1)?),
        user_id: UserId::from_trusted(r.get(2)?),
        main_switch: r.get(3)?,
    })
}

const TEMPLATE_COLS: &str =
    "pri_tmpl_id, appid, tid, title, kind, keywords, scene_desc, created_at";

fn template_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PrivateTemplate> {
    let kind: u8 = r.get(4)?;
    let keywords: String = r.get(5)?;
    Ok(PrivateTemplate {
        id: TemplateId::from_trusted(r.get(0)?),
        appid: AppId::from_trusted(r.get(1)?),
        tid: r.get(2)?,
        title: r.get(3)?,
        kind: TemplateKind::try_from(kind).map_err(|_| corrupt("template kind"))?,
        keywords: serde_json::from_str(&keywords).map_err(|_| corrupt("template keywords"))?,
        scene_desc: r.get(6)?,
        created_at: r.get(7)?,
    })
}

fn decision(s: Option<String>) -> rusqlite::Result<Option<Decision>> {
    match s {
        None => Ok(None),
        Some(s) => Decision::parse(&s)
            .map(Some)
            .ok_or_else(|| corrupt("decision")),
    }
}

fn consent_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConsentState> {
    Ok(ConsentState {
        template_id: TemplateId::from_trusted(r.get(0)?),
        status: decision(r.get(1)?)?,
        remaining: r.get(2)?,
        switched_off: r.get(3)?,
        kept: decision(r.get(4)?)?,
        granted_total: r.get(5)?,
        consumed_total: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

const MESSAGE_COLS: &str = "m.msgid, m.appid, m.openid, m.user_id, m.tmpl_id, m.title, m.page, m.rows, m.lang, \
     m.miniprogram_state, m.status, m.created_at, m.urgent, m.release_at, m.expires_at, m.delivered_at";

/// Maps the 16 columns of `MESSAGE_COLS` starting at `at`.
fn message_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Message> {
    let rows: String = r.get(at + 7)?;
    let status: String = r.get(at + 10)?;
    Ok(Message {
        msgid: MsgId(r.get::<_, i64>(at)? as u64),
        appid: AppId::from_trusted(r.get(at + 1)?),
        openid: OpenId::from_trusted(r.get(at + 2)?),
        user_id: UserId::from_trusted(r.get(at + 3)?),
        template_id: TemplateId::from_trusted(r.get(at + 4)?),
        title: r.get(at + 5)?,
        page: r.get(at + 6)?,
        rows: serde_json::from_str(&rows).map_err(|_| corrupt("message rows"))?,
        lang: r.get(at + 8)?,
        miniprogram_state: r.get(at + 9)?,
        status: MessageStatus::parse(&status).ok_or_else(|| corrupt("message status"))?,
        created_at: r.get(at + 11)?,
        urgent: r.get(at + 12)?,
        release_at: r.get(at + 13)?,
        expires_at: r.get(at + 14)?,
        delivered_at: r.get(at + 15)?,
    })
}

fn message_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    message_at(r, 0)
}

fn load_message(c: &Connection, msgid: i64) -> rusqlite::Result<Message> {
    c.prepare_cached(&format!(
        "SELECT {MESSAGE_COLS} FROM messages m WHERE m.msgid = ?1"
    ))?
    .query_row([msgid], message_from_row)
}

/// Appends an entry to a user's inbox with the next seq (no gaps: the counter row is
/// updated in the same transaction).
fn push_entry(
    c: &Connection,
    user_id: &str,
    kind: EntryKind,
    msgid: i64,
    now: Millis,
) -> rusqlite::Result<u64> {
    let seq: i64 = c
        .prepare_cached(
            "UPDATE users SET inbox_seq = inbox_seq + 1 WHERE user_id = ?1 RETURNING inbox_seq",
        )?
        .query_row([user_id], |r| r.get(0))?;
    c.prepare_cached(
        "INSERT INTO inbox (user_id, seq, kind, msgid, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![user_id, seq, kind.as_str(), msgid, now])?;
    Ok(seq as u64)
}

fn event(
    c: &Connection,
    msgid: i64,
    now: Millis,
    name: &str,
    device: Option<&str>,
    detail: Option<&str>,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO message_events (msgid, at, event, device, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![msgid, now, name, device, detail])?;
    Ok(())
}

/// Gives a cancelled or expired message's one-time grant back. True if one was given.
fn refund(c: &Connection, msgid: i64) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached(
            "UPDATE consents SET remaining = remaining + 1, consumed_total = consumed_total - 1
             WHERE (appid, openid, tmpl_id) = (SELECT appid, openid, tmpl_id FROM messages WHERE msgid = ?1)
               AND (SELECT consume_rule FROM messages WHERE msgid = ?1) = 'one_time'",
        )?
        .execute([msgid])?;
    Ok(n == 1)
}

/// Ends a pending message that was never delivered (TTL or cancel/recall): final
/// `status`, its one-time grant back, the timeline line, the `subscribe_msg_sent_event`
/// with `code`/`why`, and the counters. Returns whether a grant was refunded.
fn end_pending(
    c: &Connection,
    msgid: i64,
    now: Millis,
    status: &str,
    code: i64,
    why: &str,
) -> rusqlite::Result<bool> {
    c.prepare_cached("UPDATE messages SET status = ?3, final_at = ?2 WHERE msgid = ?1")?
        .execute(params![msgid, now, status])?;
    let refunded = refund(c, msgid)?;
    let detail = if refunded {
        "grant refunded"
    } else {
        "no grant to refund"
    };
    event(c, msgid, now, status, None, Some(detail))?;
    sent_event(c, msgid, code, why, now)?;
    bump_message(c, msgid, now, status, 0.0)?;
    if refunded {
        bump_message(c, msgid, now, "grant_refunded", 0.0)?;
    }
    Ok(refunded)
}

/// Takes one unit from a windowed counter unless it is at its limit.
fn take_unit(
    c: &Connection,
    key: &str,
    window_start: Millis,
    limit: u64,
) -> rusqlite::Result<bool> {
    if limit == 0 {
        return Ok(false);
    }
    let n = c
        .prepare_cached(
            "INSERT INTO counters (key, window_start, count) VALUES (?1, ?2, 1)
             ON CONFLICT (key) DO UPDATE SET
                count = CASE WHEN counters.window_start = excluded.window_start
                             THEN counters.count + 1 ELSE 1 END,
                window_start = excluded.window_start
             WHERE counters.window_start <> excluded.window_start OR counters.count < ?3",
        )?
        .execute(params![key, window_start, limit as i64])?;
    Ok(n == 1)
}

const PENDING: &str = "('scheduled', 'held', 'accepted')";

/// Counts one occurrence of `metric` (with `value`) for a template in the current hour.
fn bump(
    c: &Connection,
    appid: &str,
    tmpl: &str,
    now: Millis,
    metric: &str,
    value: f64,
) -> rusqlite::Result<()> {
    let hour = now.div_euclid(3_600_000) * 3_600_000;
    c.prepare_cached(
        "INSERT INTO stats (appid, tmpl_id, hour, metric, count, value) VALUES (?1, ?2, ?3, ?4, 1, ?5)
         ON CONFLICT (appid, hour, tmpl_id, metric) DO UPDATE SET
            count = stats.count + 1, value = stats.value + excluded.value",
    )?
    .execute(params![appid, tmpl, hour, metric, value])?;
    Ok(())
}

/// Counts a metric of one message (its app and template).
fn bump_message(
    c: &Connection,
    msgid: i64,
    now: Millis,
    metric: &str,
    value: f64,
) -> rusqlite::Result<()> {
    let (appid, _, tmpl) = message_keys(c, msgid)?;
    bump(c, &appid, &tmpl, now, metric, value)
}

/// Queues a push event for the app's receiving server, in the caller's transaction.
/// Nothing is queued for an app without a push config, nor extension events for an app
/// that did not opt in.
fn enqueue(
    c: &Connection,
    appid: &str,
    openid: &str,
    ev: &PushEvent,
    now: Millis,
) -> rusqlite::Result<()> {
    let ext: Option<bool> = c
        .prepare_cached("SELECT extension_events FROM push_configs WHERE appid = ?1")?
        .query_row([appid], |r| r.get(0))
        .optional()?;
    match ext {
        None => return Ok(()),
        Some(false) if ev.is_extension() => return Ok(()),
        _ => {}
    }
    c.prepare_cached(
        "INSERT INTO push_outbox (appid, openid, event, next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?4)",
    )?
    .execute(params![appid, openid, json(ev)?, now])?;
    Ok(())
}

/// The (appid, openid, template id) of a message.
fn message_keys(c: &Connection, msgid: i64) -> rusqlite::Result<(String, String, String)> {
    c.prepare_cached("SELECT appid, openid, tmpl_id FROM messages WHERE msgid = ?1")?
        .query_row([msgid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
}

fn sent_event(
    c: &Connection,
    msgid: i64,
    code: i64,
    status: &str,
    now: Millis,
) -> rusqlite::Result<()> {
    let (appid, openid, tmpl) = message_keys(c, msgid)?;
    let ev = PushEvent::Sent {
        template_id: tmpl,
        msgid: msgid as u64,
        error_code: code,
        error_status: status.to_owned(),
    };
    enqueue(c, &appid, &openid, &ev, now)
}

fn extension_event(
    c: &Connection,
    msgid: i64,
    name: &str,
    extra: &[(&str, String)],
    now: Millis,
) -> rusqlite::Result<()> {
    let (appid, openid, tmpl) = message_keys(c, msgid)?;
    enqueue(
        c,
        &appid,
        &openid,
        &PushEvent::extension(name, &tmpl, msgid as u64, extra),
        now,
    )
}

/// The settings switch of one template. Turning it off queues a change event (only
/// rejections are pushed, as WeChat does) when it was not off already.
fn switch_item(
    c: &Connection,
    appid: &str,
    openid: &str,
    tmpl: &str,
    on: bool,
    now: Millis,
) -> rusqlite::Result<()> {
    let was_off: Option<bool> = c
        .prepare_cached(
            "SELECT switched_off FROM consents WHERE appid = ?1 AND openid = ?2 AND tmpl_id = ?3",
        )?
        .query_row(params![appid, openid, tmpl], |r| r.get(0))
        .optional()?;
    if on {
        // Only a template the user was asked about can be switched back on; the settings
        // page lists nothing else, and it must not subscribe anyone without a prompt.
        c.prepare_cached(
            "UPDATE consents SET status = 'accept', switched_off = 0, kept = 'accept', updated_at = ?4
             WHERE appid = ?1 AND openid = ?2 AND tmpl_id = ?3",
        )?
        .execute(params![appid, openid, tmpl, now])?;
        return Ok(());
    }
    let d = Decision::Reject;
    c.prepare_cached(
        "INSERT INTO consents (appid, openid, tmpl_id, status, switched_off, kept, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?6)
         ON CONFLICT (appid, openid, tmpl_id) DO UPDATE SET
            status = excluded.status, switched_off = excluded.switched_off,
            kept = excluded.kept, updated_at = excluded.updated_at",
    )?
    .execute(params![appid, openid, tmpl, d.as_str(), !on, now])?;
    if !on && was_off != Some(true) {
        let ev = PushEvent::Change {
            items: vec![PromptItem {
                template_id: tmpl.to_owned(),
                status: "reject".to_owned(),
            }],
        };
        enqueue(c, appid, openid, &ev, now)?;
    }
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> rusqlite::Result<String> {
    serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

// ----------------------------------------------------------------------- Store

#[async_trait]
impl Store for SqliteStore {
    async fn create_app(&self, app: &App) -> Result<(), StoreError> {
        let app = app.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO apps (appid, name, secret, original_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                app.appid.as_str(),
                app.name,
                app.secret.expose(),
                app.original_id,
                app.created_at
            ])?;
            Ok(())
        })
        .await
    }

    async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT appid, name, secret, original_id, created_at FROM apps ORDER BY created_at, appid")?
                .query_map([], app_from_row)?
                .collect()
        })
        .await
    }

    async fn get_app(&self, appid: &AppId) -> Result<Option<App>, StoreError> {
        let appid = appid.clone();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT appid, name, secret, original_id, created_at FROM apps WHERE appid = ?1",
            )?
            .query_row([appid.as_str()], app_from_row)
            .optional()
        })
        .await
    }

    async fn set_app_secret(&self, appid: &AppId, secret: &Secret) -> Result<bool, StoreError> {
        let (appid, secret) = (appid.clone(), secret.clone());
        self.write(move |c| {
            Ok(
                c.prepare_cached("UPDATE apps SET secret = ?2 WHERE appid = ?1")?
                    .execute(params![appid.as_str(), secret.expose()])?
                    == 1,
            )
        })
        .await
    }

    async fn issue_token(
        &self,
        token: &AccessToken,
        supersede_until: Millis,
    ) -> Result<(), StoreError> {
        let t = token.clone();
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE access_tokens SET expires_at = ?3, superseded = 1
                 WHERE appid = ?1 AND kind = ?2 AND expires_at > ?3",
            )?
            .execute(params![t.appid.as_str(), t.kind.as_str(), supersede_until])?;
            // Expired tokens are kept a day so a late caller hears "expired", then go.
            c.prepare_cached("DELETE FROM access_tokens WHERE appid = ?1 AND expires_at < ?2")?
                .execute(params![t.appid.as_str(), t.created_at - 86_400_000])?;
            c.prepare_cached(&format!(
                "INSERT INTO access_tokens ({TOKEN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, 0)"
            ))?
            .execute(params![
                t.token,
                t.appid.as_str(),
                t.kind.as_str(),
                t.created_at,
                t.expires_at
            ])?;
            Ok(())
        })
        .await
    }

    async fn get_token(&self, token: &str) -> Result<Option<AccessToken>, StoreError> {
        let token = token.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {TOKEN_COLS} FROM access_tokens WHERE token = ?1"
            ))?
            .query_row([token], token_from_row)
            .optional()
        })
        .await
    }

    async fn latest_token(
        &self,
        appid: &AppId,
        kind: TokenKind,
    ) -> Result<Option<AccessToken>, StoreError> {
        let appid = appid.clone();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {TOKEN_COLS} FROM access_tokens WHERE appid = ?1 AND kind = ?2
                 ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ))?
            .query_row(params![appid.as_str(), kind.as_str()], token_from_row)
            .optional()
        })
        .await
    }

    async fn take_quota(
        &self,
        key: &str,
        window_start: Millis,
        limit: u64,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.write(move |c| take_unit(c, &key, window_start, limit))
            .await
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let u = user.clone();
        self.write(move |c| {
            c.prepare_cached("INSERT INTO users (user_id, nickname, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![u.user_id.as_str(), u.nickname, u.token_hash, u.created_at])?;
            Ok(())
        })
        .await
    }

    async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        let h = token_hash.to_owned();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT user_id, nickname, token_hash, created_at FROM users WHERE token_hash = ?1",
            )?
            .query_row([h], user_from_row)
            .optional()
        })
        .await
    }

    async fn subscriber_for_user(
        &self,
        appid: &AppId,
        user_id: &UserId,
        new_openid: &OpenId,
        now: Millis,
    ) -> Result<Subscriber, StoreError> {
        let (appid, user_id, openid) = (appid.clone(), user_id.clone(), new_openid.clone());
        let existing = {
            let (appid, user_id) = (appid.clone(), user_id.clone());
            self.read(move |c| {
                c.prepare_cached(
                    "SELECT appid, openid, user_id, main_switch FROM subscribers WHERE appid = ?1 AND user_id = ?2",
                )?
                .query_row(params![appid.as_str(), user_id.as_str()], subscriber_from_row)
                .optional()
            })
            .await?
        };
        if let Some(s) = existing {
            return Ok(s);
        }
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO subscribers (appid, openid, user_id, main_switch, created_at)
                 VALUES (?1, ?2, ?3, 1, ?4) ON CONFLICT DO NOTHING",
            )?
            .execute(params![appid.as_str(), openid.as_str(), user_id.as_str(), now])?;
            c.prepare_cached(
                "SELECT appid, openid, user_id, main_switch FROM subscribers WHERE appid = ?1 AND user_id = ?2",
            )?
            .query_row(params![appid.as_str(), user_id.as_str()], subscriber_from_row)
        })
        .await
    }

    async fn subscriber(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Option<Subscriber>, StoreError> {
        let (appid, openid) = (appid.clone(), openid.clone());
        self.read(move |c| {
            c.prepare_cached(
                "SELECT appid, openid, user_id, main_switch FROM subscribers WHERE appid = ?1 AND openid = ?2",
            )?
            .query_row(params![appid.as_str(), openid.as_str()], subscriber_from_row)
            .optional()
        })
        .await
    }

    async fn set_main_switch(
        &self,
        appid: &AppId,
        openid: &OpenId,
        on: bool,
    ) -> Result<(), StoreError> {
        let (appid, openid) = (appid.clone(), openid.clone());
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE subscribers SET main_switch = ?3 WHERE appid = ?1 AND openid = ?2",
            )?
            .execute(params![appid.as_str(), openid.as_str(), on])?;
            Ok(())
        })
        .await
    }

    async fn insert_login_code(&self, code: &LoginCode) -> Result<(), StoreError> {
        let l = code.clone();
        self.write(move |c| {
            // Old codes are useless after expiry; sweep them as new ones arrive.
            c.prepare_cached("DELETE FROM login_codes WHERE expires_at < ?1")?
                .execute([l.expires_at - 86_400_000])?;
            c.prepare_cached(
                "INSERT INTO login_codes (code, appid, openid, session_key, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![l.code, l.appid.as_str(), l.openid.as_str(), l.session_key, l.expires_at])?;
            Ok(())
        })
        .await
    }

    async fn consume_login_code(
        &self,
        code: &str,
        appid: &AppId,
        now: Millis,
    ) -> Result<CodeOutcome, StoreError> {
        let (code, appid) = (code.to_owned(), appid.clone());
        self.write(move |c| {
            let taken = c
                .prepare_cached(
                    "UPDATE login_codes SET used_at = ?3
                     WHERE code = ?1 AND appid = ?2 AND used_at IS NULL AND expires_at > ?3",
                )?
                .execute(params![code, appid.as_str(), now])?;
            let row: Option<(String, String, Option<i64>)> = c
                .prepare_cached(
                    "SELECT openid, session_key, used_at FROM login_codes WHERE code = ?1 AND appid = ?2",
                )?
                .query_row(params![code, appid.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            Ok(match (taken, row) {
                (1, Some((openid, session_key, _))) => CodeOutcome::Valid {
                    openid: OpenId::from_trusted(openid),
                    session_key,
                },
                (_, None) => CodeOutcome::Unknown,
                (_, Some((_, _, Some(_)))) => CodeOutcome::Used,
                (_, Some((_, _, None))) => CodeOutcome::Expired,
            })
        })
        .await
    }

    async fn add_template(
        &self,
        t: &PrivateTemplate,
        cap: usize,
    ) -> Result<AddTemplateOutcome, StoreError> {
        let t = t.clone();
        self.write(move |c| {
            let count: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM templates WHERE appid = ?1")?
                .query_row([t.appid.as_str()], |r| r.get(0))?;
            if count as usize >= cap {
                return Ok(AddTemplateOutcome::CapReached);
            }
            let kid_set = t.keyword_set();
            let dup: Option<i64> = c
                .prepare_cached("SELECT 1 FROM templates WHERE appid = ?1 AND tid = ?2 AND kid_set = ?3")?
                .query_row(params![t.appid.as_str(), t.tid, kid_set], |r| r.get(0))
                .optional()?;
            if dup.is_some() {
                return Ok(AddTemplateOutcome::Duplicate);
            }
            c.prepare_cached(&format!(
                "INSERT INTO templates ({TEMPLATE_COLS}, kid_set) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?
            .execute(params![
                t.id.as_str(),
                t.appid.as_str(),
                t.tid,
                t.title,
                t.kind.code(),
                json(&t.keywords)?,
                t.scene_desc,
                t.created_at,
                kid_set
            ])?;
            Ok(AddTemplateOutcome::Added)
        })
        .await
    }

    async fn delete_template(&self, appid: &AppId, id: &TemplateId) -> Result<bool, StoreError> {
        let (appid, id) = (appid.clone(), id.clone());
        self.write(move |c| {
            Ok(
                c.prepare_cached("DELETE FROM templates WHERE appid = ?1 AND pri_tmpl_id = ?2")?
                    .execute(params![appid.as_str(), id.as_str()])?
                    == 1,
            )
        })
        .await
    }

    async fn list_templates(&self, appid: &AppId) -> Result<Vec<PrivateTemplate>, StoreError> {
        let appid = appid.clone();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {TEMPLATE_COLS} FROM templates WHERE appid = ?1 ORDER BY created_at, rowid"
            ))?
            .query_map([appid.as_str()], template_from_row)?
            .collect()
        })
        .await
    }

    async fn get_template(&self, id: &TemplateId) -> Result<Option<PrivateTemplate>, StoreError> {
        let id = id.clone();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {TEMPLATE_COLS} FROM templates WHERE pri_tmpl_id = ?1"
            ))?
            .query_row([id.as_str()], template_from_row)
            .optional()
        })
        .await
    }

    async fn consents(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Vec<ConsentState>, StoreError> {
        let (appid, openid) = (appid.clone(), openid.clone());
        self.read(move |c| {
            c.prepare_cached(
                "SELECT tmpl_id, status, remaining, switched_off, kept, granted_total, consumed_total, updated_at
                 FROM consents WHERE appid = ?1 AND openid = ?2 ORDER BY updated_at, tmpl_id",
            )?
            .query_map(params![appid.as_str(), openid.as_str()], consent_from_row)?
            .collect()
        })
        .await
    }

    async fn apply_prompt(
        &self,
        appid: &AppId,
        openid: &OpenId,
        effects: &[PromptEffect],
        now: Millis,
    ) -> Result<(), StoreError> {
        let (appid, openid) = (appid.clone(), openid.clone());
        let effects: Vec<PromptEffect> = effects
            .iter()
            .filter(|e| e.grant || e.set_status.is_some() || e.set_kept.is_some())
            .cloned()
            .collect();
        if effects.is_empty() {
            return Ok(());
        }
        self.write(move |c| {
            let mut stmt = c.prepare_cached(
                "INSERT INTO consents (appid, openid, tmpl_id, status, remaining, kept, granted_total, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5, ?7)
                 ON CONFLICT (appid, openid, tmpl_id) DO UPDATE SET
                    status = COALESCE(excluded.status, consents.status),
                    remaining = consents.remaining + excluded.remaining,
                    granted_total = consents.granted_total + excluded.remaining,
                    kept = COALESCE(excluded.kept, consents.kept),
                    updated_at = excluded.updated_at",
            )?;
            for e in &effects {
                stmt.execute(params![
                    appid.as_str(),
                    openid.as_str(),
                    e.template_id.as_str(),
                    e.set_status.map(Decision::as_str),
                    i64::from(e.grant),
                    e.set_kept.map(Decision::as_str),
                    now
                ])?;
            }
            for e in &effects {
                let t = e.template_id.as_str();
                if e.shown {
                    bump(c, appid.as_str(), t, now, "prompt_shown", 0.0)?;
                    let m = if e.set_status == Some(Decision::Accept) {
                        "prompt_accepted"
                    } else {
                        "prompt_rejected"
                    };
                    bump(c, appid.as_str(), t, now, m, 0.0)?;
                }
                if e.grant {
                    bump(c, appid.as_str(), t, now, "grant_given", 0.0)?;
                }
            }
            let shown: Vec<PromptItem> = effects
                .iter()
                .filter(|e| e.shown)
                .map(|e| PromptItem {
                    template_id: e.template_id.to_string(),
                    status: e.result.as_str().to_owned(),
                })
                .collect();
            if !shown.is_empty() {
                enqueue(c, appid.as_str(), openid.as_str(), &PushEvent::Popup { items: shown }, now)?;
            }
            Ok(())
        })
        .await
    }

    async fn set_item_switch(
        &self,
        appid: &AppId,
        openid: &OpenId,
        template_id: &TemplateId,
        on: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        let (appid, openid, tid) = (appid.clone(), openid.clone(), template_id.clone());
        self.write(move |c| switch_item(c, appid.as_str(), openid.as_str(), tid.as_str(), on, now))
            .await
    }

    async fn send(&self, msg: &NewMessage) -> Result<SendOutcome, StoreError> {
        let m = msg.clone();
        self.write(move |c| send_in_tx(c, &m)).await
    }

    async fn get_message(
        &self,
        appid: &AppId,
        msgid: MsgId,
    ) -> Result<Option<Message>, StoreError> {
        let appid = appid.clone();
        let Ok(id) = i64::try_from(msgid.0) else {
            return Ok(None);
        };
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {MESSAGE_COLS} FROM messages m WHERE m.msgid = ?1 AND m.appid = ?2"
            ))?
            .query_row(params![id, appid.as_str()], message_from_row)
            .optional()
        })
        .await
    }

    async fn timeline(&self, msgid: MsgId) -> Result<Vec<TimelineEvent>, StoreError> {
        let id = msgid.0 as i64;
        self.read(move |c| {
            c.prepare_cached(
                "SELECT at, event, device, detail FROM message_events WHERE msgid = ?1 ORDER BY id",
            )?
            .query_map([id], |r| {
                Ok(TimelineEvent {
                    at: r.get(0)?,
                    event: r.get(1)?,
                    device: r.get(2)?,
                    detail: r.get(3)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn stop_message(
        &self,
        appid: &AppId,
        msgid: MsgId,
        recall: bool,
        now: Millis,
    ) -> Result<StopOutcome, StoreError> {
        let appid = appid.clone();
        let Ok(id) = i64::try_from(msgid.0) else {
            return Ok(StopOutcome::NotFound);
        };
        self.write(move |c| stop_in_tx(c, appid.as_str(), id, recall, now))
            .await
    }

    async fn add_event(
        &self,
        appid: &AppId,
        msgid: MsgId,
        name: &str,
        detail: Option<&str>,
        value: Option<f64>,
        push: Option<&PushEvent>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let (appid, name, detail) = (appid.clone(), name.to_owned(), detail.map(str::to_owned));
        let push = push.cloned();
        let Ok(id) = i64::try_from(msgid.0) else {
            return Ok(false);
        };
        self.write(move |c| {
            let found: Option<i64> = c
                .prepare_cached("SELECT 1 FROM messages WHERE msgid = ?1 AND appid = ?2")?
                .query_row(params![id, appid.as_str()], |r| r.get(0))
                .optional()?;
            if found.is_none() {
                return Ok(false);
            }
            event(c, id, now, &name, None, detail.as_deref())?;
            bump_message(c, id, now, &name, value.unwrap_or(0.0))?;
            if let Some(ev) = &push {
                let (appid, openid, _) = message_keys(c, id)?;
                enqueue(c, &appid, &openid, ev, now)?;
            }
            Ok(true)
        })
        .await
    }

    async fn inbox(
        &self,
        user_id: &UserId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let user = user_id.clone();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT i.seq, i.kind, {MESSAGE_COLS} FROM inbox i JOIN messages m ON m.msgid = i.msgid
                 WHERE i.user_id = ?1 AND i.seq > ?2 ORDER BY i.seq LIMIT ?3"
            ))?
            .query_map(params![user.as_str(), after_seq as i64, limit as i64], |r| {
                let kind: String = r.get(1)?;
                Ok(InboxEntry {
                    user_id: user.clone(),
                    seq: r.get::<_, i64>(0)? as u64,
                    kind: EntryKind::parse(&kind).ok_or_else(|| corrupt("entry kind"))?,
                    message: message_at(r, 2)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn ack(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        device: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let (user, device) = (user_id.clone(), device.to_owned());
        let id = msgid.0 as i64;
        self.write(move |c| {
            let mine: Option<i64> = c
                .prepare_cached("SELECT 1 FROM messages WHERE msgid = ?1 AND user_id = ?2")?
                .query_row(params![id, user.as_str()], |r| r.get(0))
                .optional()?;
            if mine.is_none() {
                return Ok(false);
            }
            let first_on_device = c
                .prepare_cached("INSERT OR IGNORE INTO deliveries (msgid, device, at) VALUES (?1, ?2, ?3)")?
                .execute(params![id, device, now])?
                == 1;
            if first_on_device {
                event(c, id, now, "delivered", Some(&device), None)?;
            }
            let first = c
                .prepare_cached(
                    "UPDATE messages SET status = 'delivered', delivered_at = ?2 WHERE msgid = ?1 AND status = 'accepted'",
                )?
                .execute(params![id, now])?
                == 1;
            if first {
                bump_message(c, id, now, "delivered", 0.0)?;
                sent_event(c, id, SENT_SUCCESS, "success", now)?;
                extension_event(c, id, "tuisong_msg_delivered", &[("Device", device.clone())], now)?;
            }
            Ok(first)
        })
        .await
    }

    async fn open(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        device: &str,
        now: Millis,
    ) -> Result<Option<Message>, StoreError> {
        let (user, device) = (user_id.clone(), device.to_owned());
        let id = msgid.0 as i64;
        self.write(move |c| {
            let m = c
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLS} FROM messages m WHERE m.msgid = ?1 AND m.user_id = ?2"
                ))?
                .query_row(params![id, user.as_str()], message_from_row)
                .optional()?;
            if m.is_some() {
                event(c, id, now, "opened", Some(&device), None)?;
                extension_event(
                    c,
                    id,
                    "tuisong_msg_opened",
                    &[("Device", device.clone())],
                    now,
                )?;
                bump_message(c, id, now, "opened", 0.0)?;
                c.prepare_cached(
                    "UPDATE messages SET opened_at = COALESCE(opened_at, ?2) WHERE msgid = ?1",
                )?
                .execute(params![id, now])?;
            }
            Ok(m)
        })
        .await
    }

    async fn release_due(&self, now: Millis, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        self.write(move |c| {
            let due: Vec<(i64, String)> = c
                .prepare_cached(
                    "SELECT msgid, user_id FROM messages
                     WHERE status IN ('held', 'scheduled') AND release_at <= ?1
                       AND (expires_at IS NULL OR expires_at > ?1)
                     ORDER BY release_at, msgid LIMIT ?2",
                )?
                .query_map(params![now, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::with_capacity(due.len());
            for (msgid, user_id) in due {
                c.prepare_cached("UPDATE messages SET status = 'accepted' WHERE msgid = ?1")?
                    .execute([msgid])?;
                event(c, msgid, now, "released", None, None)?;
                let seq = push_entry(c, &user_id, EntryKind::Message, msgid, now)?;
                out.push(InboxEntry {
                    user_id: UserId::from_trusted(user_id),
                    seq,
                    kind: EntryKind::Message,
                    message: load_message(c, msgid)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn expire_due(&self, now: Millis, limit: usize) -> Result<Vec<MsgId>, StoreError> {
        self.write(move |c| {
            let due: Vec<i64> = c
                .prepare_cached(&format!(
                    "SELECT msgid FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ?1
                       AND status IN {PENDING} ORDER BY expires_at, msgid LIMIT ?2"
                ))?
                .query_map(params![now, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for &msgid in &due {
                end_pending(c, msgid, now, "expired", SENT_EXPIRED, "expired")?;
            }
            Ok(due.into_iter().map(|m| MsgId(m as u64)).collect())
        })
        .await
    }

    async fn get_policy(&self, appid: &AppId) -> Result<Option<Policy>, StoreError> {
        let appid = appid.clone();
        let text: Option<String> = self
            .read(move |c| {
                c.prepare_cached("SELECT policy FROM policies WHERE appid = ?1")?
                    .query_row([appid.as_str()], |r| r.get(0))
                    .optional()
            })
            .await?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("policy: {e}")))
        })
        .transpose()
    }

    async fn set_policy(&self, appid: &AppId, policy: &Policy) -> Result<(), StoreError> {
        let appid = appid.clone();
        let text = serde_json::to_string(policy).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO policies (appid, policy) VALUES (?1, ?2)
                 ON CONFLICT (appid) DO UPDATE SET policy = excluded.policy",
            )?
            .execute(params![appid.as_str(), text])?;
            Ok(())
        })
        .await
    }

    async fn user_quiet_hours(&self, user_id: &UserId) -> Result<Option<QuietHours>, StoreError> {
        let user = user_id.clone();
        let text: Option<String> = self
            .read(move |c| {
                Ok(
                    c.prepare_cached("SELECT quiet_hours FROM users WHERE user_id = ?1")?
                        .query_row([user.as_str()], |r| r.get::<_, Option<String>>(0))
                        .optional()?
                        .flatten(),
                )
            })
            .await?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("quiet hours: {e}")))
        })
        .transpose()
    }

    async fn set_user_quiet_hours(
        &self,
        user_id: &UserId,
        q: Option<&QuietHours>,
    ) -> Result<(), StoreError> {
        let user = user_id.clone();
        let text = q
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.write(move |c| {
            c.prepare_cached("UPDATE users SET quiet_hours = ?2 WHERE user_id = ?1")?
                .execute(params![user.as_str(), text])?;
            Ok(())
        })
        .await
    }

    async fn get_push_config(&self, appid: &AppId) -> Result<Option<PushConfig>, StoreError> {
        let appid = appid.clone();
        let text: Option<String> = self
            .read(move |c| {
                c.prepare_cached("SELECT config FROM push_configs WHERE appid = ?1")?
                    .query_row([appid.as_str()], |r| r.get(0))
                    .optional()
            })
            .await?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("push config: {e}")))
        })
        .transpose()
    }

    async fn set_push_config(
        &self,
        appid: &AppId,
        config: Option<&PushConfig>,
    ) -> Result<(), StoreError> {
        let appid = appid.clone();
        let row = config
            .map(|cfg| serde_json::to_string(cfg).map(|t| (t, cfg.extension_events)))
            .transpose()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.write(move |c| {
            match &row {
                Some((text, ext)) => c
                    .prepare_cached(
                        "INSERT INTO push_configs (appid, config, extension_events) VALUES (?1, ?2, ?3)
                         ON CONFLICT (appid) DO UPDATE SET config = excluded.config,
                            extension_events = excluded.extension_events",
                    )?
                    .execute(params![appid.as_str(), text, ext])?,
                None => c
                    .prepare_cached("DELETE FROM push_configs WHERE appid = ?1")?
                    .execute([appid.as_str()])?,
            };
            Ok(())
        })
        .await
    }

    async fn claim_push(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        self.write(move |c| {
            let rows: Vec<(i64, String, String, String, u32, i64)> = c
                .prepare_cached(
                    "SELECT o.id, o.appid, o.openid, o.event, o.attempts, o.created_at FROM push_outbox o
                     WHERE o.status = 'pending' AND o.next_attempt_at <= ?1
                       AND o.id = (SELECT MIN(p.id) FROM push_outbox p
                                   WHERE p.appid = o.appid AND p.openid = o.openid AND p.status = 'pending')
                     ORDER BY o.next_attempt_at, o.id LIMIT ?2",
                )?
                .query_map(params![now, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::with_capacity(rows.len());
            for (id, appid, openid, event, attempts, created_at) in rows {
                c.prepare_cached("UPDATE push_outbox SET next_attempt_at = ?2 WHERE id = ?1")?
                    .execute(params![id, lease_until])?;
                out.push(OutboxItem {
                    id,
                    appid,
                    openid,
                    event: serde_json::from_str(&event).map_err(|_| corrupt("push event"))?,
                    attempts,
                    created_at,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn finish_push(
        &self,
        appid: &AppId,
        a: &PushAttempt,
        next: Option<Millis>,
    ) -> Result<(), StoreError> {
        let (appid, a) = (appid.clone(), a.clone());
        self.write(move |c| {
            match (a.ok, next) {
                (true, _) => c
                    .prepare_cached("UPDATE push_outbox SET status = 'delivered', attempts = attempts + 1 WHERE id = ?1 AND status = 'pending'")?
                    .execute([a.outbox_id])?,
                (false, None) => c
                    .prepare_cached("UPDATE push_outbox SET status = 'dead', attempts = attempts + 1 WHERE id = ?1 AND status = 'pending'")?
                    .execute([a.outbox_id])?,
                (false, Some(t)) => c
                    .prepare_cached("UPDATE push_outbox SET next_attempt_at = ?2, attempts = attempts + 1 WHERE id = ?1 AND status = 'pending'")?
                    .execute(params![a.outbox_id, t])?,
            };
            c.prepare_cached(
                "INSERT INTO push_attempts (appid, at, outbox_id, event, openid, attempt, ok, http_status, error, duration_ms, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                appid.as_str(),
                a.at,
                a.outbox_id,
                a.event,
                a.openid,
                a.attempt,
                a.ok,
                a.http_status,
                a.error,
                a.duration_ms as i64,
                a.outcome
            ])?;
            // Keep the last 1000 attempts per app.
            c.prepare_cached(
                "DELETE FROM push_attempts WHERE appid = ?1 AND id < (
                    SELECT id FROM push_attempts WHERE appid = ?1 ORDER BY id DESC LIMIT 1 OFFSET 999)",
            )?
            .execute([appid.as_str()])?;
            Ok(())
        })
        .await
    }

    async fn push_attempts(
        &self,
        appid: &AppId,
        limit: usize,
    ) -> Result<Vec<PushAttempt>, StoreError> {
        let appid = appid.clone();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT at, outbox_id, event, openid, attempt, ok, http_status, error, duration_ms, outcome
                 FROM push_attempts WHERE appid = ?1 ORDER BY id DESC LIMIT ?2",
            )?
            .query_map(params![appid.as_str(), limit as i64], |r| {
                Ok(PushAttempt {
                    at: r.get(0)?,
                    outbox_id: r.get(1)?,
                    event: r.get(2)?,
                    openid: r.get(3)?,
                    attempt: r.get(4)?,
                    ok: r.get(5)?,
                    http_status: r.get(6)?,
                    error: r.get(7)?,
                    duration_ms: r.get::<_, i64>(8)? as u64,
                    outcome: r.get(9)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn unsubscribe_from_message(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        now: Millis,
    ) -> Result<Option<TemplateId>, StoreError> {
        let user = user_id.clone();
        let id = msgid.0 as i64;
        self.write(move |c| {
            let row: Option<(String, String, String)> = c
                .prepare_cached(
                    "SELECT appid, openid, tmpl_id FROM messages WHERE msgid = ?1 AND user_id = ?2",
                )?
                .query_row(params![id, user.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            let Some((appid, openid, tmpl)) = row else {
                return Ok(None);
            };
            switch_item(c, &appid, &openid, &tmpl, false, now)?;
            Ok(Some(TemplateId::from_trusted(tmpl)))
        })
        .await
    }

    async fn record_refusal(
        &self,
        appid: &AppId,
        template_id: &str,
        reason: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let (appid, tmpl, metric) = (
            appid.clone(),
            template_id.to_owned(),
            format!("refused:{reason}"),
        );
        self.write(move |c| bump(c, appid.as_str(), &tmpl, now, &metric, 0.0))
            .await
    }

    async fn stats(
        &self,
        appid: &AppId,
        template_id: Option<&str>,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<StatRow>, StoreError> {
        let (appid, tmpl) = (appid.clone(), template_id.map(str::to_owned));
        self.read(move |c| {
            c.prepare_cached(
                "SELECT hour, tmpl_id, metric, count, value FROM stats
                 WHERE appid = ?1 AND hour >= ?2 AND hour < ?3 AND (?4 IS NULL OR tmpl_id = ?4)
                 ORDER BY hour, tmpl_id, metric",
            )?
            .query_map(params![appid.as_str(), from, to, tmpl], |r| {
                Ok(StatRow {
                    hour: r.get(0)?,
                    template_id: r.get(1)?,
                    metric: r.get(2)?,
                    count: r.get::<_, i64>(3)? as u64,
                    value: r.get(4)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn list_messages(
        &self,
        appid: &AppId,
        f: &MessageFilter,
    ) -> Result<Vec<Message>, StoreError> {
        let appid = appid.clone();
        let f = f.clone();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {MESSAGE_COLS} FROM messages m
                 WHERE m.appid = ?1 AND (?2 IS NULL OR m.status = ?2) AND (?3 IS NULL OR m.tmpl_id = ?3)
                   AND (?4 IS NULL OR m.openid = ?4) AND (?5 IS NULL OR m.msgid < ?5)
                 ORDER BY m.msgid DESC LIMIT ?6"
            ))?
            .query_map(
                params![
                    appid.as_str(),
                    f.status.map(MessageStatus::as_str),
                    f.template_id,
                    f.openid,
                    f.before.map(|b| b as i64),
                    f.limit.clamp(1, 500) as i64
                ],
                message_from_row,
            )?
            .collect()
        })
        .await
    }
}

/// The atomic send step: idempotency, recipient, consent, caps, insert, inbox entry.
fn send_in_tx(c: &Connection, m: &NewMessage) -> rusqlite::Result<SendOutcome> {
    if let Some((key, hash)) = &m.idempotency {
        let prior: Option<(i64, Option<String>)> = c
            .prepare_cached("SELECT msgid, request_hash FROM messages WHERE appid = ?1 AND idempotency_key = ?2")?
            .query_row(params![m.appid.as_str(), key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((id, prior_hash)) = prior {
            return Ok(if prior_hash.as_deref() == Some(hash.as_str()) {
                SendOutcome::Replayed(MsgId(id as u64))
            } else {
                SendOutcome::IdempotencyConflict
            });
        }
    }
    let sub: Option<(String, bool)> = c
        .prepare_cached(
            "SELECT user_id, main_switch FROM subscribers WHERE appid = ?1 AND openid = ?2",
        )?
        .query_row(params![m.appid.as_str(), m.openid.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((user_id, main_switch)) = sub else {
        return Ok(SendOutcome::UnknownOpenId);
    };
    if !main_switch {
        return Ok(SendOutcome::NoConsent);
    }
    let (sql, rule) = match m.consume {
        ConsumeRule::OneTime => (
            "UPDATE consents SET remaining = remaining - 1, consumed_total = consumed_total + 1
             WHERE appid = ?1 AND openid = ?2 AND tmpl_id = ?3 AND remaining > 0 AND switched_off = 0",
            "one_time",
        ),
        ConsumeRule::LongTerm => (
            "UPDATE consents SET consumed_total = consumed_total + 1
             WHERE appid = ?1 AND openid = ?2 AND tmpl_id = ?3 AND status = 'accept' AND switched_off = 0",
            "long_term",
        ),
    };
    // The grant and the caps are taken together or not at all.
    c.execute_batch("SAVEPOINT send_step")?;
    let taken = c.prepare_cached(sql)?.execute(params![
        m.appid.as_str(),
        m.openid.as_str(),
        m.template_id.as_str()
    ])?;
    if taken != 1 {
        c.execute_batch("RELEASE send_step")?;
        return Ok(SendOutcome::NoConsent);
    }
    for q in &m.quotas {
        if !take_unit(c, &q.key, q.window_start, q.limit)? {
            c.execute_batch("ROLLBACK TO send_step; RELEASE send_step")?;
            return Ok(SendOutcome::Capped(q.rule));
        }
    }
    c.execute_batch("RELEASE send_step")?;
    let (key, hash) = match &m.idempotency {
        Some((k, h)) => (Some(k.as_str()), Some(h.as_str())),
        None => (None, None),
    };
    let (status, release_at) = match m.hold {
        Some((s, t)) => (s, t),
        None => (MessageStatus::Accepted, m.created_at),
    };
    c.prepare_cached(
        "INSERT INTO messages (appid, openid, user_id, tmpl_id, title, page, rows, data, lang,
            miniprogram_state, status, idempotency_key, request_hash, created_at, urgent,
            consume_rule, release_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?
    .execute(params![
        m.appid.as_str(),
        m.openid.as_str(),
        user_id,
        m.template_id.as_str(),
        m.title,
        m.page,
        json(&m.rows)?,
        json(&m.data)?,
        m.lang,
        m.miniprogram_state,
        status.as_str(),
        key,
        hash,
        m.created_at,
        m.urgent,
        rule,
        release_at,
        m.expires_at
    ])?;
    let msgid = c.last_insert_rowid();
    bump(
        c,
        m.appid.as_str(),
        m.template_id.as_str(),
        m.created_at,
        "sent",
        0.0,
    )?;
    if m.consume == ConsumeRule::OneTime {
        bump(
            c,
            m.appid.as_str(),
            m.template_id.as_str(),
            m.created_at,
            "grant_consumed",
            0.0,
        )?;
    }
    if m.hold.is_some() {
        event(
            c,
            msgid,
            m.created_at,
            status.as_str(),
            None,
            Some(&format!("until {release_at}")),
        )?;
        return Ok(SendOutcome::Accepted {
            msgid: MsgId(msgid as u64),
            entry: None,
        });
    }
    let seq = push_entry(c, &user_id, EntryKind::Message, msgid, m.created_at)?;
    let message = Message {
        msgid: MsgId(msgid as u64),
        appid: m.appid.clone(),
        openid: m.openid.clone(),
        user_id: UserId::from_trusted(user_id.clone()),
        template_id: m.template_id.clone(),
        title: m.title.clone(),
        page: m.page.clone(),
        rows: m.rows.clone(),
        lang: m.lang.clone(),
        miniprogram_state: m.miniprogram_state.clone(),
        status,
        urgent: m.urgent,
        release_at,
        expires_at: m.expires_at,
        created_at: m.created_at,
        delivered_at: None,
    };
    Ok(SendOutcome::Accepted {
        msgid: message.msgid,
        entry: Some(InboxEntry {
            user_id: message.user_id.clone(),
            seq,
            kind: EntryKind::Message,
            message,
        }),
    })
}

fn stop_in_tx(
    c: &Connection,
    appid: &str,
    msgid: i64,
    recall: bool,
    now: Millis,
) -> rusqlite::Result<StopOutcome> {
    let row: Option<(String, String)> = c
        .prepare_cached("SELECT status, user_id FROM messages WHERE msgid = ?1 AND appid = ?2")?
        .query_row(params![msgid, appid], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((status, user_id)) = row else {
        return Ok(StopOutcome::NotFound);
    };
    let status = MessageStatus::parse(&status).ok_or_else(|| corrupt("message status"))?;
    let tombstone = |c: &Connection| -> rusqlite::Result<InboxEntry> {
        let seq = push_entry(c, &user_id, EntryKind::Recall, msgid, now)?;
        Ok(InboxEntry {
            user_id: UserId::from_trusted(user_id.clone()),
            seq,
            kind: EntryKind::Recall,
            message: load_message(c, msgid)?,
        })
    };
    if status.is_pending() {
        let (code, why) = if recall {
            (SENT_RECALLED, "recalled")
        } else {
            (SENT_CANCELLED, "cancelled")
        };
        let refunded = end_pending(c, msgid, now, "cancelled", code, why)?;
        // An accepted card may already sit on a device without an ack: take it back.
        let tombstone = if status == MessageStatus::Accepted {
            Some(tombstone(c)?)
        } else {
            None
        };
        return Ok(StopOutcome::Cancelled {
            refunded,
            tombstone,
        });
    }
    if status == MessageStatus::Delivered && recall {
        c.prepare_cached(
            "UPDATE messages SET status = 'recalled', final_at = ?2 WHERE msgid = ?1",
        )?
        .execute(params![msgid, now])?;
        event(c, msgid, now, "recalled", None, None)?;
        extension_event(c, msgid, "tuisong_msg_recalled", &[], now)?;
        bump_message(c, msgid, now, "recalled", 0.0)?;
        return Ok(StopOutcome::Recalled {
            tombstone: tombstone(c)?,
        });
    }
    Ok(StopOutcome::TooLate(status))
}

/// Path of the database file inside a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tuisong.db")
}
