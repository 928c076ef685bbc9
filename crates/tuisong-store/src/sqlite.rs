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
use tuisong_core::store::{
    AccessToken, AddTemplateOutcome, App, CodeOutcome, LoginCode, Message, MessageStatus,
    NewMessage, SendOutcome, Store, StoreError, Subscriber, TokenKind, User,
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
        let (tx, rx) = mpsc::channel::<Job>(settings.batch_max * 8);
        let batch_max = settings.batch_max.max(1);
        std::thread::Builder::new()
            .name("tuisong-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, batch_max))
            .map_err(|e| StoreError::Backend(format!("starting the writer thread: {e}")))?;
        Ok(SqliteStore {
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

const MESSAGE_COLS: &str = "msgid, appid, openid, user_id, tmpl_id, title, page, rows, lang, miniprogram_state, status, created_at";

fn message_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    let rows: String = r.get(7)?;
    let status: String = r.get(10)?;
    Ok(Message {
        msgid: MsgId(r.get::<_, i64>(0)? as u64),
        appid: AppId::from_trusted(r.get(1)?),
        openid: OpenId::from_trusted(r.get(2)?),
        user_id: UserId::from_trusted(r.get(3)?),
        template_id: TemplateId::from_trusted(r.get(4)?),
        title: r.get(5)?,
        page: r.get(6)?,
        rows: serde_json::from_str(&rows).map_err(|_| corrupt("message rows"))?,
        lang: r.get(8)?,
        miniprogram_state: r.get(9)?,
        status: MessageStatus::parse(&status).ok_or_else(|| corrupt("message status"))?,
        created_at: r.get(11)?,
    })
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
        if limit == 0 {
            return Ok(false);
        }
        let key = key.to_owned();
        self.write(move |c| {
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
        })
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

    async fn consume_login_code(&self, code: &str, now: Millis) -> Result<CodeOutcome, StoreError> {
        let code = code.to_owned();
        self.write(move |c| {
            let taken = c
                .prepare_cached(
                    "UPDATE login_codes SET used_at = ?2 WHERE code = ?1 AND used_at IS NULL AND expires_at > ?2",
                )?
                .execute(params![code, now])?;
            let row: Option<(String, String, Option<i64>)> = c
                .prepare_cached("SELECT openid, session_key, used_at FROM login_codes WHERE code = ?1")?
                .query_row([&code], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
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
        let d = if on {
            Decision::Accept
        } else {
            Decision::Reject
        };
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO consents (appid, openid, tmpl_id, status, switched_off, kept, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?6)
                 ON CONFLICT (appid, openid, tmpl_id) DO UPDATE SET
                    status = excluded.status, switched_off = excluded.switched_off,
                    kept = excluded.kept, updated_at = excluded.updated_at",
            )?
            .execute(params![appid.as_str(), openid.as_str(), tid.as_str(), d.as_str(), !on, now])?;
            Ok(())
        })
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
                "SELECT {MESSAGE_COLS} FROM messages WHERE msgid = ?1 AND appid = ?2"
            ))?
            .query_row(params![id, appid.as_str()], message_from_row)
            .optional()
        })
        .await
    }
}

/// The atomic send step: idempotency, recipient, consent, insert.
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
    let sql = match m.consume {
        ConsumeRule::OneTime => {
            "UPDATE consents SET remaining = remaining - 1, consumed_total = consumed_total + 1
             WHERE appid = ?1 AND openid = ?2 AND tmpl_id = ?3 AND remaining > 0 AND switched_off = 0"
        }
        ConsumeRule::LongTerm => {
            "UPDATE consents SET consumed_total = consumed_total + 1
             WHERE appid = ?1 AND openid = ?2 AND tmpl_id = ?3 AND status = 'accept' AND switched_off = 0"
        }
    };
    let taken = c.prepare_cached(sql)?.execute(params![
        m.appid.as_str(),
        m.openid.as_str(),
        m.template_id.as_str()
    ])?;
    if taken != 1 {
        return Ok(SendOutcome::NoConsent);
    }
    let (key, hash) = match &m.idempotency {
        Some((k, h)) => (Some(k.as_str()), Some(h.as_str())),
        None => (None, None),
    };
    c.prepare_cached(
        "INSERT INTO messages (appid, openid, user_id, tmpl_id, title, page, rows, data, lang,
            miniprogram_state, status, idempotency_key, request_hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
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
        MessageStatus::Accepted.as_str(),
        key,
        hash,
        m.created_at
    ])?;
    Ok(SendOutcome::Accepted(MsgId(c.last_insert_rowid() as u64)))
}

/// Path of the database file inside a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tuisong.db")
}
