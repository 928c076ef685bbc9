//! The PostgreSQL store: the same tables and the same rules as the embedded SQLite store,
//! for several nodes sharing one database.
//!
//! Every state change is one transaction at READ COMMITTED, and every rule that must hold
//! across nodes is a conditional write checked by rows affected (consent, caps, state
//! transitions, login codes), a row lock (the per-user inbox counter, the message being
//! stopped) or a transaction-scoped advisory lock where there is no row to lock yet (an
//! app's template cap, an idempotency key, a token kind). Work queues (release, expiry,
//! the push outbox) are claimed with `FOR UPDATE SKIP LOCKED`, so two nodes never take the
//! same row.
//!
//! Lock order, so concurrent transactions rarely deadlock: each transaction takes its own
//! rows first, batches in a fixed order (by user, by consent key), and leaves the shared
//! hot rows for last — analytics bumps and outbox inserts are buffered in [`Tx`] and
//! written just before `COMMIT`, sorted, so a hot stats row is held for microseconds and
//! never while waiting for something else. What remains (a deadlock or a serialization
//! failure) is retried: a transaction that failed changed nothing.
//!
//! Outbox rows of one user get their ids in commit order (an advisory lock per
//! (app, openid) held to commit), because the worker hands out the smallest pending id of
//! each user first and must never see a later event before an earlier, uncommitted one.

use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement, Transaction};
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

const SCHEMA_V1: &str = include_str!("schema_postgres.sql");
const SCHEMA_VERSION: i64 = 1;

/// Namespaces of the two-key advisory locks (`pg_advisory_xact_lock(ns, hashtext(key))`).
/// A hash collision only serializes two unrelated keys; it never breaks a rule.
const LOCK_MIGRATE: i32 = 1;
const LOCK_TEMPLATES: i32 = 2;
const LOCK_IDEMPOTENCY: i32 = 3;
const LOCK_OUTBOX: i32 = 4;
const LOCK_TOKENS: i32 = 5;

/// How often a transaction that hit a deadlock or serialization failure is tried again.
const RETRIES: u32 = 10;

// ------------------------------------------------------------------------ errors

/// An error inside a transaction: from PostgreSQL (maybe worth retrying) or ours.
enum TxError {
    Pg(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for TxError {
    fn from(e: tokio_postgres::Error) -> Self {
        TxError::Pg(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

impl TxError {
    /// A failure that says nothing about the request, only about its timing: the whole
    /// transaction was rolled back and may simply run again.
    fn retryable(&self) -> bool {
        let TxError::Pg(e) = self else {
            return false;
        };
        match e.code() {
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED => true,
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE => true,
            // Sends with one idempotency key are serialized by an advisory lock; should
            // two ever meet at the unique index anyway, the retry sees the first and
            // answers Replayed or IdempotencyConflict.
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
                e.as_db_error().and_then(|d| d.constraint()) == Some("messages_idempotency")
            }
            _ => false,
        }
    }

    fn into_store(self) -> StoreError {
        match self {
            TxError::Pg(e) => be(e),
            TxError::Store(e) => e,
        }
    }
}

fn be(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!("{}: {}", db.code().code(), db.message())),
        None => StoreError::Backend(e.to_string()),
    }
}

fn corrupt(what: &str) -> TxError {
    TxError::Store(StoreError::Corrupt(what.to_owned()))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, TxError> {
    serde_json::to_string(v).map_err(|e| TxError::Store(StoreError::Backend(e.to_string())))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T, TxError> {
    serde_json::from_str(s).map_err(|_| corrupt(what))
}

/// A row count for LIMIT: PostgreSQL refuses a negative one where SQLite reads "no limit".
fn lim(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn int<T: TryFrom<i64>>(v: i64, what: &str) -> Result<T, TxError> {
    T::try_from(v).map_err(|_| corrupt(what))
}

// -------------------------------------------------------------------- the pool

/// One pooled connection with its prepared statements (prepared once per connection).
struct PgConn {
    client: Client,
    stmts: HashMap<String, Statement>,
}

impl PgConn {
    async fn prepared(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await?;
        self.stmts.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    async fn all(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let s = self.prepared(sql).await?;
        self.client.query(&s, params).await
    }

    async fn opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let s = self.prepared(sql).await?;
        self.client.query_opt(&s, params).await
    }

    async fn begin(&mut self) -> Result<Tx<'_>, tokio_postgres::Error> {
        let tx = self.client.transaction().await?;
        Ok(Tx {
            tx,
            stmts: &mut self.stmts,
            bumps: BTreeMap::new(),
            outbox: Vec::new(),
        })
    }
}

/// At most `size` connections, opened when first needed and kept while healthy. A
/// connection goes back only after its transaction ended (a dropped `Transaction` queues
/// its ROLLBACK ahead of anything the next user sends).
struct Pool {
    config: tokio_postgres::Config,
    idle: Mutex<Vec<PgConn>>,
    permits: Semaphore,
}

struct Pooled<'p> {
    conn: Option<PgConn>,
    pool: &'p Pool,
    _permit: SemaphorePermit<'p>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = PgConn;
    fn deref(&self) -> &PgConn {
        self.conn.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut PgConn {
        self.conn.as_mut().expect("present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take()
            && !c.client.is_closed()
            && let Ok(mut idle) = self.pool.idle.lock()
        {
            idle.push(c);
        }
    }
}

impl Pool {
    async fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        loop {
            let c = self.idle.lock().map_err(|_| StoreError::Closed)?.pop();
            match c {
                Some(c) if c.client.is_closed() => continue,
                Some(c) => {
                    return Ok(Pooled {
                        conn: Some(c),
                        pool: self,
                        _permit: permit,
                    });
                }
                None => break,
            }
        }
        let (client, connection) = self.config.connect(NoTls).await.map_err(be)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "postgres connection ended");
            }
        });
        Ok(Pooled {
            conn: Some(PgConn {
                client,
                stmts: HashMap::new(),
            }),
            pool: self,
            _permit: permit,
        })
    }
}

// ------------------------------------------------------------- the transaction

type StatKey = (String, Millis, String, String);

/// A transaction plus what it writes at the end: analytics bumps (summed per row) and
/// outbox events, both written by `commit` in a fixed order just before `COMMIT`.
struct Tx<'c> {
    tx: Transaction<'c>,
    stmts: &'c mut HashMap<String, Statement>,
    bumps: BTreeMap<StatKey, (i64, f64)>,
    /// (appid, openid, event JSON, at) in the order they were caused.
    outbox: Vec<(String, String, String, Millis)>,
}

impl Tx<'_> {
    async fn prepared(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(sql).await?;
        self.stmts.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    async fn exec(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let s = self.prepared(sql).await?;
        self.tx.execute(&s, params).await
    }

    async fn one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        let s = self.prepared(sql).await?;
        self.tx.query_one(&s, params).await
    }

    async fn opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let s = self.prepared(sql).await?;
        self.tx.query_opt(&s, params).await
    }

    async fn all(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let s = self.prepared(sql).await?;
        self.tx.query(&s, params).await
    }

    async fn batch(&mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.tx.batch_execute(sql).await
    }

    /// Holds the advisory lock (`ns`, hash of `key`) until this transaction ends.
    async fn lock(&mut self, ns: i32, key: &str) -> Result<(), tokio_postgres::Error> {
        self.exec(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&ns, &key],
        )
        .await?;
        Ok(())
    }

    /// Counts one occurrence of `metric` (with `value`) for a template in the current
    /// hour; written at commit.
    fn bump(&mut self, appid: &str, tmpl: &str, now: Millis, metric: &str, value: f64) {
        let hour = now.div_euclid(3_600_000) * 3_600_000;
        let e = self
            .bumps
            .entry((appid.to_owned(), hour, tmpl.to_owned(), metric.to_owned()))
            .or_insert((0, 0.0));
        e.0 += 1;
        e.1 += value;
    }

    async fn commit(mut self) -> Result<(), tokio_postgres::Error> {
        // Stable sort: one user's events keep the order they were caused in.
        let mut outbox = std::mem::take(&mut self.outbox);
        outbox.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let mut locked: Option<(String, String)> = None;
        for (appid, openid, event, at) in &outbox {
            if locked.as_ref() != Some(&(appid.clone(), openid.clone())) {
                self.lock(LOCK_OUTBOX, &format!("{appid}/{openid}")).await?;
                locked = Some((appid.clone(), openid.clone()));
            }
            self.exec(
                "INSERT INTO push_outbox (appid, openid, event, next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, $4)",
                &[appid, openid, event, at],
            )
            .await?;
        }
        let bumps = std::mem::take(&mut self.bumps);
        // One shard per transaction; the sorted keys keep the lock order the same for all.
        let shard = stat_shard();
        for ((appid, hour, tmpl, metric), (count, value)) in &bumps {
            self.exec(
                "INSERT INTO stats (appid, tmpl_id, hour, metric, count, value, shard)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (appid, hour, tmpl_id, metric, shard) DO UPDATE SET
                    count = stats.count + excluded.count, value = stats.value + excluded.value",
                &[appid, tmpl, hour, metric, count, value, &shard],
            )
            .await?;
        }
        self.tx.commit().await
    }
}

/// Which of the 16 counter rows a transaction adds to.
fn stat_shard() -> i16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos % 16) as i16
}

/// Runs `$body` (which uses `$tx: Tx` and `?`) in a transaction on a pooled connection,
/// commits, and runs it again from the start after a deadlock or serialization failure.
/// The body is an expression inside an async block: it must not `return` (that would
/// leave the block without committing).
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let mut conn = $store.pool.get().await?;
        let mut attempt: u32 = 0;
        loop {
            let r: Result<_, TxError> = async {
                #[allow(unused_mut)]
                let mut $tx = conn.begin().await?;
                let v = $body;
                $tx.commit().await?;
                Ok(v)
            }
            .await;
            match r {
                Ok(v) => break Ok(v),
                Err(e) if attempt < RETRIES && e.retryable() => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                Err(e) => break Err(e.into_store()),
            }
        }
    }};
}

/// A short, growing, jittered pause before a retry, so the transactions that collided do
/// not collide again in lockstep.
async fn backoff(attempt: u32) {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos() % 5_000))
        .unwrap_or(0);
    let micros = u64::from(attempt.min(8)) * 2_000 + jitter;
    tokio::time::sleep(Duration::from_micros(micros)).await;
}

// ----------------------------------------------------------------------- store

pub struct PgStore {
    pool: Pool,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`, plain TCP: the database is on
    /// loopback or a private network), keeps at most `pool_size` connections, and
    /// migrates the schema — once, however many nodes start at the same moment.
    pub async fn connect(url: &str, pool_size: usize) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("postgres url: {e}")))?;
        if config.get_application_name().is_none() {
            config.application_name("tuisong");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let store = PgStore {
            pool: Pool {
                config,
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(pool_size.max(1)),
            },
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Brings the schema (the first one on the connection's `search_path`) to
    /// `SCHEMA_VERSION` in one transaction, under an advisory lock so concurrent starters
    /// wait for the first and then find nothing to do.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(be)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
            &[&LOCK_MIGRATE],
        )
        .await
        .map_err(be)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .await
            .map_err(be)?;
        let version: i64 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
            .await
            .map_err(be)?
            .try_get(0)
            .map_err(be)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "the database has schema version {version}, newer than this build knows ({SCHEMA_VERSION})"
            )));
        }
        if version == 0 {
            tx.batch_execute(SCHEMA_V1).await.map_err(be)?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .await
            .map_err(be)?;
        }
        tx.commit().await.map_err(be)?;
        Ok(())
    }

    async fn read_all(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let mut conn = self.pool.get().await?;
        conn.all(sql, params).await.map_err(be)
    }

    async fn read_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let mut conn = self.pool.get().await?;
        conn.opt(sql, params).await.map_err(be)
    }
}

fn collect<T>(
    rows: Vec<Row>,
    f: impl Fn(&Row) -> Result<T, TxError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(|r| f(r).map_err(TxError::into_store))
        .collect()
}

// ----------------------------------------------------------------- row mapping

const APP_COLS: &str = "appid, name, secret, original_id, created_at";

fn app_from_row(r: &Row) -> Result<App, TxError> {
    Ok(App {
        appid: AppId::from_trusted(r.try_get(0)?),
        name: r.try_get(1)?,
        secret: Secret::new(r.try_get::<_, String>(2)?),
        original_id: r.try_get(3)?,
        created_at: r.try_get(4)?,
    })
}

const TOKEN_COLS: &str = "token, appid, kind, created_at, expires_at, superseded";

fn token_from_row(r: &Row) -> Result<AccessToken, TxError> {
    let kind: String = r.try_get(2)?;
    Ok(AccessToken {
        token: r.try_get(0)?,
        appid: AppId::from_trusted(r.try_get(1)?),
        kind: TokenKind::parse(&kind).ok_or_else(|| corrupt("token kind"))?,
        created_at: r.try_get(3)?,
        expires_at: r.try_get(4)?,
        superseded: r.try_get(5)?,
    })
}

fn user_from_row(r: &Row) -> Result<User, TxError> {
    Ok(User {
        user_id: UserId::from_trusted(r.try_get(0)?),
        nickname: r.try_get(1)?,
        token_hash: r.try_get(2)?,
        created_at: r.try_get(3)?,
    })
}

const SUBSCRIBER_COLS: &str = "appid, openid, user_id, main_switch";

fn subscriber_from_row(r: &Row) -> Result<Subscriber, TxError> {
    Ok(Subscriber {
        appid: AppId::from_trusted(r.try_get(0)?),
        openid: OpenId::from_trusted(r.try_get(1)?),
        user_id: UserId::from_trusted(r.try_get(2)?),
        main_switch: r.try_get(3)?,
    })
}

const TEMPLATE_COLS: &str =
    "pri_tmpl_id, appid, tid, title, kind, keywords, scene_desc, created_at";

fn template_from_row(r: &Row) -> Result<PrivateTemplate, TxError> {
    let kind: u8 = int(r.try_get(4)?, "template kind")?;
    let keywords: String = r.try_get(5)?;
    Ok(PrivateTemplate {
        id: TemplateId::from_trusted(r.try_get(0)?),
        appid: AppId::from_trusted(r.try_get(1)?),
        tid: int(r.try_get(2)?, "template tid")?,
        title: r.try_get(3)?,
        kind: TemplateKind::try_from(kind).map_err(|_| corrupt("template kind"))?,
        keywords: from_json(&keywords, "template keywords")?,
        scene_desc: r.try_get(6)?,
        created_at: r.try_get(7)?,
    })
}

fn decision(s: Option<String>) -> Result<Option<Decision>, TxError> {
    match s {
        None => Ok(None),
        Some(s) => Decision::parse(&s)
            .map(Some)
            .ok_or_else(|| corrupt("decision")),
    }
}

fn consent_from_row(r: &Row) -> Result<ConsentState, TxError> {
    Ok(ConsentState {
        template_id: TemplateId::from_trusted(r.try_get(0)?),
        status: decision(r.try_get(1)?)?,
        remaining: int(r.try_get(2)?, "consent remaining")?,
        switched_off: r.try_get(3)?,
        kept: decision(r.try_get(4)?)?,
        granted_total: int(r.try_get(5)?, "consent granted_total")?,
        consumed_total: int(r.try_get(6)?, "consent consumed_total")?,
        updated_at: r.try_get(7)?,
    })
}

/// The 16 columns `message_at` maps, as a macro so queries can `concat!` it.
macro_rules! message_cols {
    () => {
        "m.msgid, m.appid, m.openid, m.user_id, m.tmpl_id, m.title, m.page, m.rows, m.lang, \
         m.miniprogram_state, m.status, m.created_at, m.urgent, m.release_at, m.expires_at, \
         m.delivered_at"
    };
}

/// Maps the 16 columns of `message_cols!` starting at `at`.
fn message_at(r: &Row, at: usize) -> Result<Message, TxError> {
    let rows: String = r.try_get(at + 7)?;
    let status: String = r.try_get(at + 10)?;
    Ok(Message {
        msgid: MsgId(int(r.try_get(at)?, "msgid")?),
        appid: AppId::from_trusted(r.try_get(at + 1)?),
        openid: OpenId::from_trusted(r.try_get(at + 2)?),
        user_id: UserId::from_trusted(r.try_get(at + 3)?),
        template_id: TemplateId::from_trusted(r.try_get(at + 4)?),
        title: r.try_get(at + 5)?,
        page: r.try_get(at + 6)?,
        rows: from_json(&rows, "message rows")?,
        lang: r.try_get(at + 8)?,
        miniprogram_state: r.try_get(at + 9)?,
        status: MessageStatus::parse(&status).ok_or_else(|| corrupt("message status"))?,
        created_at: r.try_get(at + 11)?,
        urgent: r.try_get(at + 12)?,
        release_at: r.try_get(at + 13)?,
        expires_at: r.try_get(at + 14)?,
        delivered_at: r.try_get(at + 15)?,
    })
}

fn message_from_row(r: &Row) -> Result<Message, TxError> {
    message_at(r, 0)
}

fn attempt_from_row(r: &Row) -> Result<PushAttempt, TxError> {
    Ok(PushAttempt {
        at: r.try_get(0)?,
        outbox_id: r.try_get(1)?,
        event: r.try_get(2)?,
        openid: r.try_get(3)?,
        attempt: int(r.try_get(4)?, "push attempt number")?,
        ok: r.try_get(5)?,
        http_status: r
            .try_get::<_, Option<i64>>(6)?
            .map(|s| int(s, "push http status"))
            .transpose()?,
        error: r.try_get(7)?,
        duration_ms: int(r.try_get(8)?, "push duration")?,
        outcome: r.try_get(9)?,
    })
}

// ------------------------------------------------------- steps inside a transaction

async fn load_message(tx: &mut Tx<'_>, msgid: i64) -> Result<Message, TxError> {
    let r = tx
        .one(
            concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m WHERE m.msgid = $1"
            ),
            &[&msgid],
        )
        .await?;
    message_from_row(&r)
}

/// Appends an entry to a user's inbox with the next seq. The increment locks the user's
/// row until commit, so appends of one user are serial and their seqs have no gaps.
async fn push_entry(
    tx: &mut Tx<'_>,
    user_id: &str,
    kind: EntryKind,
    msgid: i64,
    now: Millis,
) -> Result<u64, TxError> {
    let seq: i64 = tx
        .one(
            "UPDATE users SET inbox_seq = inbox_seq + 1 WHERE user_id = $1 RETURNING inbox_seq",
            &[&user_id],
        )
        .await?
        .try_get(0)?;
    tx.exec(
        "INSERT INTO inbox (user_id, seq, kind, msgid, at) VALUES ($1, $2, $3, $4, $5)",
        &[&user_id, &seq, &kind.as_str(), &msgid, &now],
    )
    .await?;
    int(seq, "inbox seq")
}

async fn event(
    tx: &mut Tx<'_>,
    msgid: i64,
    now: Millis,
    name: &str,
    device: Option<&str>,
    detail: Option<&str>,
) -> Result<(), TxError> {
    tx.exec(
        "INSERT INTO message_events (msgid, at, event, device, detail) VALUES ($1, $2, $3, $4, $5)",
        &[&msgid, &now, &name, &device, &detail],
    )
    .await?;
    Ok(())
}

/// Gives a cancelled or expired message's one-time grant back. True if one was given.
async fn refund(tx: &mut Tx<'_>, msgid: i64) -> Result<bool, TxError> {
    let n = tx
        .exec(
            "UPDATE consents SET remaining = remaining + 1, consumed_total = consumed_total - 1
             WHERE (appid, openid, tmpl_id) = (SELECT appid, openid, tmpl_id FROM messages WHERE msgid = $1)
               AND (SELECT consume_rule FROM messages WHERE msgid = $1) = 'one_time'",
            &[&msgid],
        )
        .await?;
    Ok(n == 1)
}

/// Takes one unit from a windowed counter unless it is at its limit: one conditional
/// upsert, so concurrent takers from any node never overshoot.
async fn take_unit(
    tx: &mut Tx<'_>,
    key: &str,
    window_start: Millis,
    limit: u64,
) -> Result<bool, TxError> {
    if limit == 0 {
        return Ok(false);
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let n = tx
        .exec(
            "INSERT INTO counters (key, window_start, count) VALUES ($1, $2, 1)
             ON CONFLICT (key) DO UPDATE SET
                count = CASE WHEN counters.window_start = excluded.window_start
                             THEN counters.count + 1 ELSE 1 END,
                window_start = excluded.window_start
             WHERE counters.window_start <> excluded.window_start OR counters.count < $3",
            &[&key, &window_start, &limit],
        )
        .await?;
    Ok(n == 1)
}

const PENDING: &str = "('scheduled', 'held', 'accepted')";

/// The (appid, openid, template id) of a message.
async fn message_keys(tx: &mut Tx<'_>, msgid: i64) -> Result<(String, String, String), TxError> {
    let r = tx
        .one(
            "SELECT appid, openid, tmpl_id FROM messages WHERE msgid = $1",
            &[&msgid],
        )
        .await?;
    Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
}

/// Counts a metric of one message (its app and template).
async fn bump_message(
    tx: &mut Tx<'_>,
    msgid: i64,
    now: Millis,
    metric: &str,
    value: f64,
) -> Result<(), TxError> {
    let (appid, _, tmpl) = message_keys(tx, msgid).await?;
    tx.bump(&appid, &tmpl, now, metric, value);
    Ok(())
}

/// Queues a push event for the app's receiving server, in the caller's transaction.
/// Nothing is queued for an app without a push config, nor extension events for an app
/// that did not opt in.
async fn enqueue(
    tx: &mut Tx<'_>,
    appid: &str,
    openid: &str,
    ev: &PushEvent,
    now: Millis,
) -> Result<(), TxError> {
    let ext: Option<bool> = match tx
        .opt(
            "SELECT extension_events FROM push_configs WHERE appid = $1",
            &[&appid],
        )
        .await?
    {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    };
    match ext {
        None => return Ok(()),
        Some(false) if ev.is_extension() => return Ok(()),
        _ => {}
    }
    tx.outbox
        .push((appid.to_owned(), openid.to_owned(), json(ev)?, now));
    Ok(())
}

async fn sent_event(
    tx: &mut Tx<'_>,
    msgid: i64,
    code: i64,
    status: &str,
    now: Millis,
) -> Result<(), TxError> {
    let (appid, openid, tmpl) = message_keys(tx, msgid).await?;
    let ev = PushEvent::Sent {
        template_id: tmpl,
        msgid: msgid as u64,
        error_code: code,
        error_status: status.to_owned(),
    };
    enqueue(tx, &appid, &openid, &ev, now).await
}

async fn extension_event(
    tx: &mut Tx<'_>,
    msgid: i64,
    name: &str,
    extra: &[(&str, String)],
    now: Millis,
) -> Result<(), TxError> {
    let (appid, openid, tmpl) = message_keys(tx, msgid).await?;
    let ev = PushEvent::extension(name, &tmpl, msgid as u64, extra);
    enqueue(tx, &appid, &openid, &ev, now).await
}

/// The settings switch of one template. Turning it off queues a change event (only
/// rejections are pushed, as WeChat does) when it was not off already. The row is locked
/// (or created) before its old state is read, so two nodes switching it off at once
/// queue one event, as the serial store does.
async fn switch_item(
    tx: &mut Tx<'_>,
    appid: &str,
    openid: &str,
    tmpl: &str,
    on: bool,
    now: Millis,
) -> Result<(), TxError> {
    if on {
        // Only a template the user was asked about can be switched back on; the settings
        // page lists nothing else, and it must not subscribe anyone without a prompt.
        tx.exec(
            "UPDATE consents SET status = 'accept', switched_off = FALSE, kept = 'accept', updated_at = $4
             WHERE appid = $1 AND openid = $2 AND tmpl_id = $3",
            &[&appid, &openid, &tmpl, &now],
        )
        .await?;
        return Ok(());
    }
    let reject = Decision::Reject.as_str();
    let mut was_off: Option<Option<bool>> = None;
    for _ in 0..3 {
        if let Some(r) = tx
            .opt(
                "SELECT switched_off FROM consents
                 WHERE appid = $1 AND openid = $2 AND tmpl_id = $3 FOR UPDATE",
                &[&appid, &openid, &tmpl],
            )
            .await?
        {
            was_off = Some(Some(r.try_get(0)?));
            break;
        }
        let inserted = tx
            .exec(
                "INSERT INTO consents (appid, openid, tmpl_id, status, switched_off, kept, updated_at)
                 VALUES ($1, $2, $3, $4, TRUE, $4, $5) ON CONFLICT DO NOTHING",
                &[&appid, &openid, &tmpl, &reject, &now],
            )
            .await?;
        if inserted == 1 {
            was_off = Some(None);
            break;
        }
        // Another transaction created the row meanwhile: lock it and read it.
    }
    let Some(was_off) = was_off else {
        return Err(TxError::Store(StoreError::Backend(
            "consent row kept vanishing while switching it off".into(),
        )));
    };
    if was_off.is_some() {
        tx.exec(
            "UPDATE consents SET status = $4, switched_off = TRUE, kept = $4, updated_at = $5
             WHERE appid = $1 AND openid = $2 AND tmpl_id = $3",
            &[&appid, &openid, &tmpl, &reject, &now],
        )
        .await?;
    }
    if was_off != Some(true) {
        let ev = PushEvent::Change {
            items: vec![PromptItem {
                template_id: tmpl.to_owned(),
                status: "reject".to_owned(),
            }],
        };
        enqueue(tx, appid, openid, &ev, now).await?;
    }
    Ok(())
}

/// The atomic send step: idempotency, recipient, consent, caps, insert, inbox entry.
async fn send_in_tx(tx: &mut Tx<'_>, m: &NewMessage) -> Result<SendOutcome, TxError> {
    if let Some((key, hash)) = &m.idempotency {
        // Sends with the same key wait for each other, so the second sees the first.
        tx.lock(LOCK_IDEMPOTENCY, &format!("{}/{key}", m.appid.as_str()))
            .await?;
        let prior = tx
            .opt(
                "SELECT msgid, request_hash FROM messages WHERE appid = $1 AND idempotency_key = $2",
                &[&m.appid.as_str(), key],
            )
            .await?;
        if let Some(r) = prior {
            let (id, prior_hash): (i64, Option<String>) = (r.try_get(0)?, r.try_get(1)?);
            return Ok(if prior_hash.as_deref() == Some(hash.as_str()) {
                SendOutcome::Replayed(MsgId(int(id, "msgid")?))
            } else {
                SendOutcome::IdempotencyConflict
            });
        }
    }
    let sub = tx
        .opt(
            "SELECT user_id, main_switch FROM subscribers WHERE appid = $1 AND openid = $2",
            &[&m.appid.as_str(), &m.openid.as_str()],
        )
        .await?;
    let Some(sub) = sub else {
        return Ok(SendOutcome::UnknownOpenId);
    };
    let (user_id, main_switch): (String, bool) = (sub.try_get(0)?, sub.try_get(1)?);
    if !main_switch {
        return Ok(SendOutcome::NoConsent);
    }
    let (sql, rule) = match m.consume {
        ConsumeRule::OneTime => (
            "UPDATE consents SET remaining = remaining - 1, consumed_total = consumed_total + 1
             WHERE appid = $1 AND openid = $2 AND tmpl_id = $3 AND remaining > 0 AND NOT switched_off",
            "one_time",
        ),
        ConsumeRule::LongTerm => (
            "UPDATE consents SET consumed_total = consumed_total + 1
             WHERE appid = $1 AND openid = $2 AND tmpl_id = $3 AND status = 'accept' AND NOT switched_off",
            "long_term",
        ),
    };
    // The grant and the caps are taken together or not at all.
    tx.batch("SAVEPOINT send_step").await?;
    let taken = tx
        .exec(
            sql,
            &[
                &m.appid.as_str(),
                &m.openid.as_str(),
                &m.template_id.as_str(),
            ],
        )
        .await?;
    if taken != 1 {
        tx.batch("RELEASE SAVEPOINT send_step").await?;
        return Ok(SendOutcome::NoConsent);
    }
    for q in &m.quotas {
        if !take_unit(tx, &q.key, q.window_start, q.limit).await? {
            tx.batch("ROLLBACK TO SAVEPOINT send_step; RELEASE SAVEPOINT send_step")
                .await?;
            return Ok(SendOutcome::Capped(q.rule));
        }
    }
    tx.batch("RELEASE SAVEPOINT send_step").await?;
    let (key, hash) = match &m.idempotency {
        Some((k, h)) => (Some(k.as_str()), Some(h.as_str())),
        None => (None, None),
    };
    let (status, release_at) = match m.hold {
        Some((s, t)) => (s, t),
        None => (MessageStatus::Accepted, m.created_at),
    };
    let (rows, data) = (json(&m.rows)?, json(&m.data)?);
    let msgid: i64 = tx
        .one(
            "INSERT INTO messages (appid, openid, user_id, tmpl_id, title, page, rows, data, lang,
                miniprogram_state, status, idempotency_key, request_hash, created_at, urgent,
                consume_rule, release_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             RETURNING msgid",
            &[
                &m.appid.as_str(),
                &m.openid.as_str(),
                &user_id,
                &m.template_id.as_str(),
                &m.title,
                &m.page,
                &rows,
                &data,
                &m.lang,
                &m.miniprogram_state,
                &status.as_str(),
                &key,
                &hash,
                &m.created_at,
                &m.urgent,
                &rule,
                &release_at,
                &m.expires_at,
            ],
        )
        .await?
        .try_get(0)?;
    tx.bump(
        m.appid.as_str(),
        m.template_id.as_str(),
        m.created_at,
        "sent",
        0.0,
    );
    if m.consume == ConsumeRule::OneTime {
        tx.bump(
            m.appid.as_str(),
            m.template_id.as_str(),
            m.created_at,
            "grant_consumed",
            0.0,
        );
    }
    if m.hold.is_some() {
        event(
            tx,
            msgid,
            m.created_at,
            status.as_str(),
            None,
            Some(&format!("until {release_at}")),
        )
        .await?;
        return Ok(SendOutcome::Accepted {
            msgid: MsgId(int(msgid, "msgid")?),
            entry: None,
        });
    }
    let seq = push_entry(tx, &user_id, EntryKind::Message, msgid, m.created_at).await?;
    let message = Message {
        msgid: MsgId(int(msgid, "msgid")?),
        appid: m.appid.clone(),
        openid: m.openid.clone(),
        user_id: UserId::from_trusted(user_id),
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

async fn tombstone(
    tx: &mut Tx<'_>,
    user_id: &str,
    msgid: i64,
    now: Millis,
) -> Result<InboxEntry, TxError> {
    let seq = push_entry(tx, user_id, EntryKind::Recall, msgid, now).await?;
    Ok(InboxEntry {
        user_id: UserId::from_trusted(user_id.to_owned()),
        seq,
        kind: EntryKind::Recall,
        message: load_message(tx, msgid).await?,
    })
}

/// Cancel or recall. The message row is locked first, so its state cannot change between
/// the read and the transition (a concurrent ack, expiry or release waits, or went first).
async fn stop_in_tx(
    tx: &mut Tx<'_>,
    appid: &str,
    msgid: i64,
    recall: bool,
    now: Millis,
) -> Result<StopOutcome, TxError> {
    let row = tx
        .opt(
            "SELECT status, user_id FROM messages WHERE msgid = $1 AND appid = $2 FOR UPDATE",
            &[&msgid, &appid],
        )
        .await?;
    let Some(row) = row else {
        return Ok(StopOutcome::NotFound);
    };
    let (status, user_id): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    let status = MessageStatus::parse(&status).ok_or_else(|| corrupt("message status"))?;
    if status.is_pending() {
        tx.exec(
            "UPDATE messages SET status = 'cancelled', final_at = $2 WHERE msgid = $1",
            &[&msgid, &now],
        )
        .await?;
        let refunded = refund(tx, msgid).await?;
        event(
            tx,
            msgid,
            now,
            "cancelled",
            None,
            Some(if refunded {
                "grant refunded"
            } else {
                "no grant to refund"
            }),
        )
        .await?;
        bump_message(tx, msgid, now, "cancelled", 0.0).await?;
        if refunded {
            bump_message(tx, msgid, now, "grant_refunded", 0.0).await?;
        }
        if recall {
            sent_event(tx, msgid, SENT_RECALLED, "recalled", now).await?;
        } else {
            sent_event(tx, msgid, SENT_CANCELLED, "cancelled", now).await?;
        }
        // An accepted card may already sit on a device without an ack: take it back.
        let tombstone = if status == MessageStatus::Accepted {
            Some(tombstone(tx, &user_id, msgid, now).await?)
        } else {
            None
        };
        return Ok(StopOutcome::Cancelled {
            refunded,
            tombstone,
        });
    }
    if status == MessageStatus::Delivered && recall {
        tx.exec(
            "UPDATE messages SET status = 'recalled', final_at = $2 WHERE msgid = $1",
            &[&msgid, &now],
        )
        .await?;
        event(tx, msgid, now, "recalled", None, None).await?;
        extension_event(tx, msgid, "tuisong_msg_recalled", &[], now).await?;
        bump_message(tx, msgid, now, "recalled", 0.0).await?;
        return Ok(StopOutcome::Recalled {
            tombstone: tombstone(tx, &user_id, msgid, now).await?,
        });
    }
    Ok(StopOutcome::TooLate(status))
}

// ----------------------------------------------------------------------- Store

#[async_trait]
impl Store for PgStore {
    async fn create_app(&self, app: &App) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            tx.exec(
                "INSERT INTO apps (appid, name, secret, original_id, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[
                    &app.appid.as_str(),
                    &app.name,
                    &app.secret.expose(),
                    &app.original_id,
                    &app.created_at,
                ],
            )
            .await?;
        })
    }

    async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        let rows = self
            .read_all(
                &format!("SELECT {APP_COLS} FROM apps ORDER BY created_at, appid"),
                &[],
            )
            .await?;
        collect(rows, app_from_row)
    }

    async fn get_app(&self, appid: &AppId) -> Result<Option<App>, StoreError> {
        self.read_opt(
            &format!("SELECT {APP_COLS} FROM apps WHERE appid = $1"),
            &[&appid.as_str()],
        )
        .await?
        .map(|r| app_from_row(&r).map_err(TxError::into_store))
        .transpose()
    }

    async fn set_app_secret(&self, appid: &AppId, secret: &Secret) -> Result<bool, StoreError> {
        in_tx!(self, |tx| {
            tx.exec(
                "UPDATE apps SET secret = $2 WHERE appid = $1",
                &[&appid.as_str(), &secret.expose()],
            )
            .await?
                == 1
        })
    }

    async fn issue_token(
        &self,
        token: &AccessToken,
        supersede_until: Millis,
    ) -> Result<(), StoreError> {
        let t = token;
        in_tx!(self, |tx| {
            // Issues of one app and kind take turns, so each new token supersedes every
            // one before it, as in the serial store.
            tx.lock(
                LOCK_TOKENS,
                &format!("{}/{}", t.appid.as_str(), t.kind.as_str()),
            )
            .await?;
            tx.exec(
                "UPDATE access_tokens SET expires_at = $3, superseded = TRUE
                 WHERE appid = $1 AND kind = $2 AND expires_at > $3",
                &[&t.appid.as_str(), &t.kind.as_str(), &supersede_until],
            )
            .await?;
            // Expired tokens are kept a day so a late caller hears "expired", then go.
            tx.exec(
                "DELETE FROM access_tokens WHERE appid = $1 AND expires_at < $2",
                &[&t.appid.as_str(), &(t.created_at - 86_400_000)],
            )
            .await?;
            tx.exec(
                &format!(
                    "INSERT INTO access_tokens ({TOKEN_COLS}) VALUES ($1, $2, $3, $4, $5, FALSE)"
                ),
                &[
                    &t.token,
                    &t.appid.as_str(),
                    &t.kind.as_str(),
                    &t.created_at,
                    &t.expires_at,
                ],
            )
            .await?;
        })
    }

    async fn get_token(&self, token: &str) -> Result<Option<AccessToken>, StoreError> {
        self.read_opt(
            &format!("SELECT {TOKEN_COLS} FROM access_tokens WHERE token = $1"),
            &[&token],
        )
        .await?
        .map(|r| token_from_row(&r).map_err(TxError::into_store))
        .transpose()
    }

    async fn latest_token(
        &self,
        appid: &AppId,
        kind: TokenKind,
    ) -> Result<Option<AccessToken>, StoreError> {
        self.read_opt(
            &format!(
                "SELECT {TOKEN_COLS} FROM access_tokens WHERE appid = $1 AND kind = $2
                 ORDER BY created_at DESC, n DESC LIMIT 1"
            ),
            &[&appid.as_str(), &kind.as_str()],
        )
        .await?
        .map(|r| token_from_row(&r).map_err(TxError::into_store))
        .transpose()
    }

    async fn take_quota(
        &self,
        key: &str,
        window_start: Millis,
        limit: u64,
    ) -> Result<bool, StoreError> {
        in_tx!(self, |tx| take_unit(&mut tx, key, window_start, limit)
            .await?)
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let u = user;
        in_tx!(self, |tx| {
            tx.exec(
                "INSERT INTO users (user_id, nickname, token_hash, created_at) VALUES ($1, $2, $3, $4)",
                &[&u.user_id.as_str(), &u.nickname, &u.token_hash, &u.created_at],
            )
            .await?;
        })
    }

    async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        self.read_opt(
            "SELECT user_id, nickname, token_hash, created_at FROM users WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?
        .map(|r| user_from_row(&r).map_err(TxError::into_store))
        .transpose()
    }

    async fn subscriber_for_user(
        &self,
        appid: &AppId,
        user_id: &UserId,
        new_openid: &OpenId,
        now: Millis,
    ) -> Result<Subscriber, StoreError> {
        let select =
            format!("SELECT {SUBSCRIBER_COLS} FROM subscribers WHERE appid = $1 AND user_id = $2");
        if let Some(r) = self
            .read_opt(&select, &[&appid.as_str(), &user_id.as_str()])
            .await?
        {
            return subscriber_from_row(&r).map_err(TxError::into_store);
        }
        in_tx!(self, |tx| {
            // Two nodes creating the same user's record: the second waits for the first
            // at the unique index, inserts nothing, and reads the first one's openid.
            tx.exec(
                "INSERT INTO subscribers (appid, openid, user_id, main_switch, created_at)
                 VALUES ($1, $2, $3, TRUE, $4) ON CONFLICT DO NOTHING",
                &[
                    &appid.as_str(),
                    &new_openid.as_str(),
                    &user_id.as_str(),
                    &now,
                ],
            )
            .await?;
            let r = tx
                .one(&select, &[&appid.as_str(), &user_id.as_str()])
                .await?;
            subscriber_from_row(&r)?
        })
    }

    async fn subscriber(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Option<Subscriber>, StoreError> {
        self.read_opt(
            &format!("SELECT {SUBSCRIBER_COLS} FROM subscribers WHERE appid = $1 AND openid = $2"),
            &[&appid.as_str(), &openid.as_str()],
        )
        .await?
        .map(|r| subscriber_from_row(&r).map_err(TxError::into_store))
        .transpose()
    }

    async fn set_main_switch(
        &self,
        appid: &AppId,
        openid: &OpenId,
        on: bool,
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            tx.exec(
                "UPDATE subscribers SET main_switch = $3 WHERE appid = $1 AND openid = $2",
                &[&appid.as_str(), &openid.as_str(), &on],
            )
            .await?;
        })
    }

    async fn insert_login_code(&self, code: &LoginCode) -> Result<(), StoreError> {
        let l = code;
        in_tx!(self, |tx| {
            // Old codes are useless after expiry; sweep them as new ones arrive.
            tx.exec(
                "DELETE FROM login_codes WHERE expires_at < $1",
                &[&(l.expires_at - 86_400_000)],
            )
            .await?;
            tx.exec(
                "INSERT INTO login_codes (code, appid, openid, session_key, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[
                    &l.code,
                    &l.appid.as_str(),
                    &l.openid.as_str(),
                    &l.session_key,
                    &l.expires_at,
                ],
            )
            .await?;
        })
    }

    async fn consume_login_code(
        &self,
        code: &str,
        appid: &AppId,
        now: Millis,
    ) -> Result<CodeOutcome, StoreError> {
        in_tx!(self, |tx| {
            let taken = tx
                .exec(
                    "UPDATE login_codes SET used_at = $3
                     WHERE code = $1 AND appid = $2 AND used_at IS NULL AND expires_at > $3",
                    &[&code, &appid.as_str(), &now],
                )
                .await?;
            let row = tx
                .opt(
                    "SELECT openid, session_key, used_at FROM login_codes WHERE code = $1 AND appid = $2",
                    &[&code, &appid.as_str()],
                )
                .await?;
            let row: Option<(String, String, Option<i64>)> = match row {
                Some(r) => Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)),
                None => None,
            };
            match (taken, row) {
                (1, Some((openid, session_key, _))) => CodeOutcome::Valid {
                    openid: OpenId::from_trusted(openid),
                    session_key,
                },
                (_, None) => CodeOutcome::Unknown,
                (_, Some((_, _, Some(_)))) => CodeOutcome::Used,
                (_, Some((_, _, None))) => CodeOutcome::Expired,
            }
        })
    }

    async fn add_template(
        &self,
        t: &PrivateTemplate,
        cap: usize,
    ) -> Result<AddTemplateOutcome, StoreError> {
        let kid_set = t.keyword_set();
        let keywords = json(&t.keywords).map_err(TxError::into_store)?;
        in_tx!(self, |tx| {
            // Additions to one app take turns (there may be no app row to lock), so the
            // count and the insert cannot interleave with another node's.
            tx.lock(LOCK_TEMPLATES, t.appid.as_str()).await?;
            let count: i64 = tx
                .one(
                    "SELECT COUNT(*) FROM templates WHERE appid = $1",
                    &[&t.appid.as_str()],
                )
                .await?
                .try_get(0)?;
            if count as usize >= cap {
                AddTemplateOutcome::CapReached
            } else if tx
                .opt(
                    "SELECT pri_tmpl_id FROM templates WHERE appid = $1 AND tid = $2 AND kid_set = $3",
                    &[&t.appid.as_str(), &i64::from(t.tid), &kid_set],
                )
                .await?
                .is_some()
            {
                AddTemplateOutcome::Duplicate
            } else {
                tx.exec(
                    &format!(
                        "INSERT INTO templates ({TEMPLATE_COLS}, kid_set) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                    ),
                    &[
                        &t.id.as_str(),
                        &t.appid.as_str(),
                        &i64::from(t.tid),
                        &t.title,
                        &i64::from(t.kind.code()),
                        &keywords,
                        &t.scene_desc,
                        &t.created_at,
                        &kid_set,
                    ],
                )
                .await?;
                AddTemplateOutcome::Added
            }
        })
    }

    async fn delete_template(&self, appid: &AppId, id: &TemplateId) -> Result<bool, StoreError> {
        in_tx!(self, |tx| {
            tx.exec(
                "DELETE FROM templates WHERE appid = $1 AND pri_tmpl_id = $2",
                &[&appid.as_str(), &id.as_str()],
            )
            .await?
                == 1
        })
    }

    async fn list_templates(&self, appid: &AppId) -> Result<Vec<PrivateTemplate>, StoreError> {
        let rows = self
            .read_all(
                &format!(
                    "SELECT {TEMPLATE_COLS} FROM templates WHERE appid = $1 ORDER BY created_at, n"
                ),
                &[&appid.as_str()],
            )
            .await?;
        collect(rows, template_from_row)
    }

    async fn get_template(&self, id: &TemplateId) -> Result<Option<PrivateTemplate>, StoreError> {
        self.read_opt(
            &format!("SELECT {TEMPLATE_COLS} FROM templates WHERE pri_tmpl_id = $1"),
            &[&id.as_str()],
        )
        .await?
        .map(|r| template_from_row(&r).map_err(TxError::into_store))
        .transpose()
    }

    async fn consents(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Vec<ConsentState>, StoreError> {
        let rows = self
            .read_all(
                "SELECT tmpl_id, status, remaining, switched_off, kept, granted_total, consumed_total, updated_at
                 FROM consents WHERE appid = $1 AND openid = $2 ORDER BY updated_at, tmpl_id",
                &[&appid.as_str(), &openid.as_str()],
            )
            .await?;
        collect(rows, consent_from_row)
    }

    async fn apply_prompt(
        &self,
        appid: &AppId,
        openid: &OpenId,
        effects: &[PromptEffect],
        now: Millis,
    ) -> Result<(), StoreError> {
        let effects: Vec<&PromptEffect> = effects
            .iter()
            .filter(|e| e.grant || e.set_status.is_some() || e.set_kept.is_some())
            .collect();
        if effects.is_empty() {
            return Ok(());
        }
        // Rows in one order (stable: one template's effects keep theirs), so two prompts
        // of one user never lock each other's rows crosswise.
        let mut ordered = effects.clone();
        ordered.sort_by(|a, b| a.template_id.as_str().cmp(b.template_id.as_str()));
        let shown: Vec<PromptItem> = effects
            .iter()
            .filter(|e| e.shown)
            .map(|e| PromptItem {
                template_id: e.template_id.to_string(),
                status: e.result.as_str().to_owned(),
            })
            .collect();
        in_tx!(self, |tx| {
            for e in &ordered {
                tx.exec(
                    "INSERT INTO consents (appid, openid, tmpl_id, status, remaining, kept, granted_total, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $5, $7)
                     ON CONFLICT (appid, openid, tmpl_id) DO UPDATE SET
                        status = COALESCE(excluded.status, consents.status),
                        remaining = consents.remaining + excluded.remaining,
                        granted_total = consents.granted_total + excluded.remaining,
                        kept = COALESCE(excluded.kept, consents.kept),
                        updated_at = excluded.updated_at",
                    &[
                        &appid.as_str(),
                        &openid.as_str(),
                        &e.template_id.as_str(),
                        &e.set_status.map(Decision::as_str),
                        &i64::from(e.grant),
                        &e.set_kept.map(Decision::as_str),
                        &now,
                    ],
                )
                .await?;
            }
            for e in &effects {
                let t = e.template_id.as_str();
                if e.shown {
                    tx.bump(appid.as_str(), t, now, "prompt_shown", 0.0);
                    let m = if e.set_status == Some(Decision::Accept) {
                        "prompt_accepted"
                    } else {
                        "prompt_rejected"
                    };
                    tx.bump(appid.as_str(), t, now, m, 0.0);
                }
                if e.grant {
                    tx.bump(appid.as_str(), t, now, "grant_given", 0.0);
                }
            }
            if !shown.is_empty() {
                let ev = PushEvent::Popup {
                    items: shown.clone(),
                };
                enqueue(&mut tx, appid.as_str(), openid.as_str(), &ev, now).await?;
            }
        })
    }

    async fn set_item_switch(
        &self,
        appid: &AppId,
        openid: &OpenId,
        template_id: &TemplateId,
        on: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            switch_item(
                &mut tx,
                appid.as_str(),
                openid.as_str(),
                template_id.as_str(),
                on,
                now,
            )
            .await?
        })
    }

    async fn send(&self, msg: &NewMessage) -> Result<SendOutcome, StoreError> {
        in_tx!(self, |tx| send_in_tx(&mut tx, msg).await?)
    }

    async fn get_message(
        &self,
        appid: &AppId,
        msgid: MsgId,
    ) -> Result<Option<Message>, StoreError> {
        let Ok(id) = i64::try_from(msgid.0) else {
            return Ok(None);
        };
        self.read_opt(
            concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m WHERE m.msgid = $1 AND m.appid = $2"
            ),
            &[&id, &appid.as_str()],
        )
        .await?
        .map(|r| message_from_row(&r).map_err(TxError::into_store))
        .transpose()
    }

    async fn timeline(&self, msgid: MsgId) -> Result<Vec<TimelineEvent>, StoreError> {
        let id = msgid.0 as i64;
        let rows = self
            .read_all(
                "SELECT at, event, device, detail FROM message_events WHERE msgid = $1 ORDER BY id",
                &[&id],
            )
            .await?;
        collect(rows, |r| {
            Ok(TimelineEvent {
                at: r.try_get(0)?,
                event: r.try_get(1)?,
                device: r.try_get(2)?,
                detail: r.try_get(3)?,
            })
        })
    }

    async fn stop_message(
        &self,
        appid: &AppId,
        msgid: MsgId,
        recall: bool,
        now: Millis,
    ) -> Result<StopOutcome, StoreError> {
        let Ok(id) = i64::try_from(msgid.0) else {
            return Ok(StopOutcome::NotFound);
        };
        in_tx!(self, |tx| {
            stop_in_tx(&mut tx, appid.as_str(), id, recall, now).await?
        })
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
        let Ok(id) = i64::try_from(msgid.0) else {
            return Ok(false);
        };
        in_tx!(self, |tx| {
            let found = tx
                .opt(
                    "SELECT msgid FROM messages WHERE msgid = $1 AND appid = $2",
                    &[&id, &appid.as_str()],
                )
                .await?
                .is_some();
            if found {
                event(&mut tx, id, now, name, None, detail).await?;
                bump_message(&mut tx, id, now, name, value.unwrap_or(0.0)).await?;
                if let Some(ev) = push {
                    let (appid, openid, _) = message_keys(&mut tx, id).await?;
                    enqueue(&mut tx, &appid, &openid, ev, now).await?;
                }
            }
            found
        })
    }

    async fn inbox(
        &self,
        user_id: &UserId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let rows = self
            .read_all(
                concat!(
                    "SELECT i.seq, i.kind, ",
                    message_cols!(),
                    " FROM inbox i JOIN messages m ON m.msgid = i.msgid
                     WHERE i.user_id = $1 AND i.seq > $2 ORDER BY i.seq LIMIT $3"
                ),
                &[&user_id.as_str(), &(after_seq as i64), &lim(limit)],
            )
            .await?;
        collect(rows, |r| {
            let kind: String = r.try_get(1)?;
            Ok(InboxEntry {
                user_id: user_id.clone(),
                seq: int(r.try_get(0)?, "inbox seq")?,
                kind: EntryKind::parse(&kind).ok_or_else(|| corrupt("entry kind"))?,
                message: message_at(r, 2)?,
            })
        })
    }

    async fn ack(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        device: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let id = msgid.0 as i64;
        in_tx!(self, |tx| {
            let mine = tx
                .opt(
                    "SELECT msgid FROM messages WHERE msgid = $1 AND user_id = $2",
                    &[&id, &user_id.as_str()],
                )
                .await?
                .is_some();
            if !mine {
                false
            } else {
                let first_on_device = tx
                    .exec(
                        "INSERT INTO deliveries (msgid, device, at) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING",
                        &[&id, &device, &now],
                    )
                    .await?
                    == 1;
                if first_on_device {
                    event(&mut tx, id, now, "delivered", Some(device), None).await?;
                }
                // Conditional: of two devices acking at once, on any nodes, one wins.
                let first = tx
                    .exec(
                        "UPDATE messages SET status = 'delivered', delivered_at = $2
                         WHERE msgid = $1 AND status = 'accepted'",
                        &[&id, &now],
                    )
                    .await?
                    == 1;
                if first {
                    bump_message(&mut tx, id, now, "delivered", 0.0).await?;
                    sent_event(&mut tx, id, SENT_SUCCESS, "success", now).await?;
                    extension_event(
                        &mut tx,
                        id,
                        "tuisong_msg_delivered",
                        &[("Device", device.to_owned())],
                        now,
                    )
                    .await?;
                }
                first
            }
        })
    }

    async fn open(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        device: &str,
        now: Millis,
    ) -> Result<Option<Message>, StoreError> {
        let id = msgid.0 as i64;
        in_tx!(self, |tx| {
            let m = match tx
                .opt(
                    concat!(
                        "SELECT ",
                        message_cols!(),
                        " FROM messages m WHERE m.msgid = $1 AND m.user_id = $2"
                    ),
                    &[&id, &user_id.as_str()],
                )
                .await?
            {
                Some(r) => Some(message_from_row(&r)?),
                None => None,
            };
            if m.is_some() {
                event(&mut tx, id, now, "opened", Some(device), None).await?;
                extension_event(
                    &mut tx,
                    id,
                    "tuisong_msg_opened",
                    &[("Device", device.to_owned())],
                    now,
                )
                .await?;
                bump_message(&mut tx, id, now, "opened", 0.0).await?;
                tx.exec(
                    "UPDATE messages SET opened_at = COALESCE(opened_at, $2) WHERE msgid = $1",
                    &[&id, &now],
                )
                .await?;
            }
            m
        })
    }

    async fn release_due(&self, now: Millis, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        in_tx!(self, |tx| {
            // Claim and transition in one statement; rows another node is releasing are
            // skipped, and a row changed since the snapshot is re-checked by the lock.
            let rows = tx
                .all(
                    "WITH due AS (
                        SELECT msgid FROM messages
                        WHERE status IN ('held', 'scheduled') AND release_at <= $1
                          AND (expires_at IS NULL OR expires_at > $1)
                        ORDER BY release_at, msgid LIMIT $2
                        FOR UPDATE SKIP LOCKED)
                     UPDATE messages m SET status = 'accepted' FROM due
                     WHERE m.msgid = due.msgid AND m.status IN ('held', 'scheduled')
                     RETURNING m.msgid, m.user_id, m.release_at",
                    &[&now, &lim(limit)],
                )
                .await?;
            let mut due: Vec<(String, Millis, i64)> = Vec::with_capacity(rows.len());
            for r in &rows {
                due.push((r.try_get(1)?, r.try_get(2)?, r.try_get(0)?));
            }
            // Inbox appends lock each user's row: take them in user order so two nodes
            // releasing at once cannot lock two users crosswise. Within a user the order
            // is release order, as in the serial store.
            due.sort();
            let mut out = Vec::with_capacity(due.len());
            for (user_id, release_at, msgid) in due {
                event(&mut tx, msgid, now, "released", None, None).await?;
                let seq = push_entry(&mut tx, &user_id, EntryKind::Message, msgid, now).await?;
                let entry = InboxEntry {
                    user_id: UserId::from_trusted(user_id),
                    seq,
                    kind: EntryKind::Message,
                    message: load_message(&mut tx, msgid).await?,
                };
                out.push((release_at, msgid, entry));
            }
            out.sort_by_key(|(at, id, _)| (*at, *id));
            out.into_iter().map(|(_, _, e)| e).collect::<Vec<_>>()
        })
    }

    async fn expire_due(&self, now: Millis, limit: usize) -> Result<Vec<MsgId>, StoreError> {
        in_tx!(self, |tx| {
            let rows = tx
                .all(
                    &format!(
                        "WITH due AS (
                            SELECT msgid FROM messages
                            WHERE expires_at IS NOT NULL AND expires_at <= $1 AND status IN {PENDING}
                            ORDER BY expires_at, msgid LIMIT $2
                            FOR UPDATE SKIP LOCKED)
                         UPDATE messages m SET status = 'expired', final_at = $1 FROM due
                         WHERE m.msgid = due.msgid AND m.status IN {PENDING}
                         RETURNING m.appid, m.openid, m.msgid, m.expires_at"
                    ),
                    &[&now, &lim(limit)],
                )
                .await?;
            let mut due: Vec<(String, String, Millis, i64)> = Vec::with_capacity(rows.len());
            for r in &rows {
                due.push((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get::<_, Option<i64>>(3)?.unwrap_or(now),
                    r.try_get(2)?,
                ));
            }
            // Refunds lock consent rows: take them user by user so two nodes expiring at
            // once rarely lock crosswise; within a user in expiry order, so the user's
            // events are queued in the order the serial store queues them.
            due.sort();
            let mut out = Vec::with_capacity(due.len());
            for (_, _, expires_at, msgid) in due {
                let refunded = refund(&mut tx, msgid).await?;
                event(
                    &mut tx,
                    msgid,
                    now,
                    "expired",
                    None,
                    Some(if refunded {
                        "grant refunded"
                    } else {
                        "no grant to refund"
                    }),
                )
                .await?;
                sent_event(&mut tx, msgid, SENT_EXPIRED, "expired", now).await?;
                bump_message(&mut tx, msgid, now, "expired", 0.0).await?;
                if refunded {
                    bump_message(&mut tx, msgid, now, "grant_refunded", 0.0).await?;
                }
                out.push((expires_at, msgid));
            }
            out.sort_unstable();
            out.into_iter()
                .map(|(_, m)| MsgId(m as u64))
                .collect::<Vec<_>>()
        })
    }

    async fn get_policy(&self, appid: &AppId) -> Result<Option<Policy>, StoreError> {
        let text: Option<String> = self
            .read_opt(
                "SELECT policy FROM policies WHERE appid = $1",
                &[&appid.as_str()],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(be)?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("policy: {e}")))
        })
        .transpose()
    }

    async fn set_policy(&self, appid: &AppId, policy: &Policy) -> Result<(), StoreError> {
        let text = serde_json::to_string(policy).map_err(|e| StoreError::Backend(e.to_string()))?;
        in_tx!(self, |tx| {
            tx.exec(
                "INSERT INTO policies (appid, policy) VALUES ($1, $2)
                 ON CONFLICT (appid) DO UPDATE SET policy = excluded.policy",
                &[&appid.as_str(), &text],
            )
            .await?;
        })
    }

    async fn user_quiet_hours(&self, user_id: &UserId) -> Result<Option<QuietHours>, StoreError> {
        let text: Option<String> = self
            .read_opt(
                "SELECT quiet_hours FROM users WHERE user_id = $1",
                &[&user_id.as_str()],
            )
            .await?
            .map(|r| r.try_get::<_, Option<String>>(0))
            .transpose()
            .map_err(be)?
            .flatten();
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
        let text = q
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        in_tx!(self, |tx| {
            tx.exec(
                "UPDATE users SET quiet_hours = $2 WHERE user_id = $1",
                &[&user_id.as_str(), &text],
            )
            .await?;
        })
    }

    async fn get_push_config(&self, appid: &AppId) -> Result<Option<PushConfig>, StoreError> {
        let text: Option<String> = self
            .read_opt(
                "SELECT config FROM push_configs WHERE appid = $1",
                &[&appid.as_str()],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(be)?;
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
        let row = config
            .map(|cfg| serde_json::to_string(cfg).map(|t| (t, cfg.extension_events)))
            .transpose()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        in_tx!(self, |tx| {
            match &row {
                Some((text, ext)) => {
                    tx.exec(
                        "INSERT INTO push_configs (appid, config, extension_events) VALUES ($1, $2, $3)
                         ON CONFLICT (appid) DO UPDATE SET config = excluded.config,
                            extension_events = excluded.extension_events",
                        &[&appid.as_str(), text, ext],
                    )
                    .await?
                }
                None => {
                    tx.exec(
                        "DELETE FROM push_configs WHERE appid = $1",
                        &[&appid.as_str()],
                    )
                    .await?
                }
            };
        })
    }

    async fn claim_push(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        in_tx!(self, |tx| {
            // Only the oldest pending row of each user qualifies, and a row another node
            // is claiming is skipped, not waited for: while it is locked (and after, when
            // its lease is in the future) the user's later rows do not qualify either.
            let rows = tx
                .all(
                    "WITH picked AS (
                        SELECT o.id, o.next_attempt_at AS due FROM push_outbox o
                        WHERE o.status = 'pending' AND o.next_attempt_at <= $1
                          AND o.id = (SELECT MIN(p.id) FROM push_outbox p
                                      WHERE p.appid = o.appid AND p.openid = o.openid
                                        AND p.status = 'pending')
                        ORDER BY o.next_attempt_at, o.id LIMIT $3
                        FOR UPDATE OF o SKIP LOCKED)
                     UPDATE push_outbox u SET next_attempt_at = $2 FROM picked
                     WHERE u.id = picked.id
                     RETURNING u.id, u.appid, u.openid, u.event, u.attempts, u.created_at, picked.due",
                    &[&now, &lease_until, &lim(limit)],
                )
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let event: String = r.try_get(3)?;
                let due: Millis = r.try_get(6)?;
                out.push((
                    due,
                    OutboxItem {
                        id: r.try_get(0)?,
                        appid: r.try_get(1)?,
                        openid: r.try_get(2)?,
                        event: from_json(&event, "push event")?,
                        attempts: int(r.try_get(4)?, "push attempts")?,
                        created_at: r.try_get(5)?,
                    },
                ));
            }
            out.sort_by_key(|(due, item)| (*due, item.id));
            out.into_iter().map(|(_, i)| i).collect::<Vec<_>>()
        })
    }

    async fn finish_push(
        &self,
        appid: &AppId,
        a: &PushAttempt,
        next: Option<Millis>,
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            match (a.ok, next) {
                (true, _) => {
                    tx.exec(
                        "UPDATE push_outbox SET status = 'delivered', attempts = attempts + 1 WHERE id = $1 AND status = 'pending'",
                        &[&a.outbox_id],
                    )
                    .await?
                }
                (false, None) => {
                    tx.exec(
                        "UPDATE push_outbox SET status = 'dead', attempts = attempts + 1 WHERE id = $1 AND status = 'pending'",
                        &[&a.outbox_id],
                    )
                    .await?
                }
                (false, Some(t)) => {
                    tx.exec(
                        "UPDATE push_outbox SET next_attempt_at = $2, attempts = attempts + 1 WHERE id = $1 AND status = 'pending'",
                        &[&a.outbox_id, &t],
                    )
                    .await?
                }
            };
            tx.exec(
                "INSERT INTO push_attempts (appid, at, outbox_id, event, openid, attempt, ok, http_status, error, duration_ms, outcome)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[
                    &appid.as_str(),
                    &a.at,
                    &a.outbox_id,
                    &a.event,
                    &a.openid,
                    &i64::from(a.attempt),
                    &a.ok,
                    &a.http_status.map(i64::from),
                    &a.error,
                    &(a.duration_ms as i64),
                    &a.outcome,
                ],
            )
            .await?;
            // Keep the last 1000 attempts per app.
            tx.exec(
                "DELETE FROM push_attempts WHERE appid = $1 AND id < (
                    SELECT id FROM push_attempts WHERE appid = $1 ORDER BY id DESC LIMIT 1 OFFSET 999)",
                &[&appid.as_str()],
            )
            .await?;
        })
    }

    async fn push_attempts(
        &self,
        appid: &AppId,
        limit: usize,
    ) -> Result<Vec<PushAttempt>, StoreError> {
        let rows = self
            .read_all(
                "SELECT at, outbox_id, event, openid, attempt, ok, http_status, error, duration_ms, outcome
                 FROM push_attempts WHERE appid = $1 ORDER BY id DESC LIMIT $2",
                &[&appid.as_str(), &lim(limit)],
            )
            .await?;
        collect(rows, attempt_from_row)
    }

    async fn unsubscribe_from_message(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        now: Millis,
    ) -> Result<Option<TemplateId>, StoreError> {
        let id = msgid.0 as i64;
        in_tx!(self, |tx| {
            let row = tx
                .opt(
                    "SELECT appid, openid, tmpl_id FROM messages WHERE msgid = $1 AND user_id = $2",
                    &[&id, &user_id.as_str()],
                )
                .await?;
            match row {
                None => None,
                Some(r) => {
                    let (appid, openid, tmpl): (String, String, String) =
                        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                    switch_item(&mut tx, &appid, &openid, &tmpl, false, now).await?;
                    Some(TemplateId::from_trusted(tmpl))
                }
            }
        })
    }

    async fn record_refusal(
        &self,
        appid: &AppId,
        template_id: &str,
        reason: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let metric = format!("refused:{reason}");
        in_tx!(self, |tx| {
            tx.bump(appid.as_str(), template_id, now, &metric, 0.0);
        })
    }

    async fn stats(
        &self,
        appid: &AppId,
        template_id: Option<&str>,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<StatRow>, StoreError> {
        let rows = self
            .read_all(
                "SELECT hour, tmpl_id, metric, SUM(count)::BIGINT, SUM(value) FROM stats
                 WHERE appid = $1 AND hour >= $2 AND hour < $3 AND ($4::TEXT IS NULL OR tmpl_id = $4)
                 GROUP BY hour, tmpl_id, metric
                 ORDER BY hour, tmpl_id, metric",
                &[&appid.as_str(), &from, &to, &template_id],
            )
            .await?;
        collect(rows, |r| {
            Ok(StatRow {
                hour: r.try_get(0)?,
                template_id: r.try_get(1)?,
                metric: r.try_get(2)?,
                count: int(r.try_get(3)?, "stat count")?,
                value: r.try_get(4)?,
            })
        })
    }

    async fn list_messages(
        &self,
        appid: &AppId,
        f: &MessageFilter,
    ) -> Result<Vec<Message>, StoreError> {
        let rows = self
            .read_all(
                concat!(
                    "SELECT ",
                    message_cols!(),
                    " FROM messages m
                     WHERE m.appid = $1 AND ($2::TEXT IS NULL OR m.status = $2)
                       AND ($3::TEXT IS NULL OR m.tmpl_id = $3)
                       AND ($4::TEXT IS NULL OR m.openid = $4)
                       AND ($5::BIGINT IS NULL OR m.msgid < $5)
                     ORDER BY m.msgid DESC LIMIT $6"
                ),
                &[
                    &appid.as_str(),
                    &f.status.map(MessageStatus::as_str),
                    &f.template_id,
                    &f.openid,
                    &f.before.map(|b| b as i64),
                    &(f.limit.clamp(1, 500) as i64),
                ],
            )
            .await?;
        collect(rows, message_from_row)
    }
}
