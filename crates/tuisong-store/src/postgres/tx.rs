//! A PostgreSQL transaction as the store runs it: [`Tx`] buffers analytics bumps and
//! outbox events and writes them, sorted, just before `COMMIT` (so a hot row is held for
//! microseconds); [`in_tx!`] runs a body in one on a pooled connection and runs it again
//! after a deadlock or serialization failure, and once on a fresh connection when the
//! connection died before `COMMIT` was sent.

use super::LOCK_OUTBOX;
use super::error::TxError;
use super::pool::{Cache, PgConn, Session};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_postgres::Transaction;
use tuisong_core::clock::Millis;

/// How often a transaction that hit a deadlock or serialization failure is tried again.
pub(super) const RETRIES: u32 = 10;

type StatKey = (String, Millis, String, String);

/// A transaction plus what it writes at the end: analytics bumps (summed per row) and
/// outbox events, both written by `commit` in a fixed order just before `COMMIT`.
pub(crate) struct Tx<'c> {
    pub(super) q: Session<Transaction<'c>, &'c mut Cache>,
    pub(super) bumps: BTreeMap<StatKey, (i64, f64)>,
    /// (appid, openid, event JSON, at) in the order they were caused.
    pub(super) outbox: Vec<(String, String, String, Millis)>,
}

impl<'c> std::ops::Deref for Tx<'c> {
    type Target = Session<Transaction<'c>, &'c mut Cache>;
    fn deref(&self) -> &Self::Target {
        &self.q
    }
}

impl std::ops::DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.q
    }
}

impl Tx<'_> {
    /// Holds the advisory lock (`ns`, hash of `key`) until this transaction ends.
    pub(super) async fn lock(&mut self, ns: i32, key: &str) -> Result<(), tokio_postgres::Error> {
        self.exec(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&ns, &key],
        )
        .await?;
        Ok(())
    }

    /// Counts one occurrence of `metric` (with `value`) for a template in the current
    /// hour; written at commit.
    pub(super) fn bump(&mut self, appid: &str, tmpl: &str, now: Millis, metric: &str, value: f64) {
        let hour = crate::rows::hour_of(now);
        let e = self
            .bumps
            .entry((appid.to_owned(), hour, tmpl.to_owned(), metric.to_owned()))
            .or_insert((0, 0.0));
        e.0 += 1;
        e.1 += value;
    }

    /// Writes the buffered rows and commits. A failure of the `COMMIT` itself is
    /// [`TxError::Commit`]: if the connection was lost there, the outcome is unknown.
    pub(super) async fn commit(mut self) -> Result<(), TxError> {
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
        let started = std::time::Instant::now();
        let r = self.q.client.commit().await.map_err(TxError::Commit);
        COMMITS.record(1, started.elapsed());
        r
    }
}

/// Every PostgreSQL store's commits in this process (one transaction is one job: the
/// sends are not group-committed on PostgreSQL).
pub(super) static COMMITS: tuisong_core::store::CommitStats =
    tuisong_core::store::CommitStats::new();

/// Which of the 16 counter rows a transaction adds to.
fn stat_shard() -> i16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos % 16) as i16
}

impl PgConn {
    /// A transaction on this connection, sharing its prepared statements.
    pub(super) async fn begin(&mut self) -> Result<Tx<'_>, tokio_postgres::Error> {
        let tx = self.client.transaction().await?;
        Ok(Tx {
            q: Session {
                client: tx,
                stmts: &mut self.stmts,
            },
            bumps: BTreeMap::new(),
            outbox: Vec::new(),
        })
    }
}

/// Runs `$body` (which uses `$tx: Tx` and `?`) in a transaction on a pooled connection,
/// commits, and runs it again from the start after a deadlock or serialization failure.
/// The body is an expression inside an async block: it must not `return` (that would
/// leave the block without committing).
///
/// A lost connection (closed, an I/O error, `pg_terminate_backend`, a server shutting
/// down) drops that connection and runs the body once more on a fresh one — but only
/// when that cannot do the work twice:
/// - before `COMMIT` was sent the transaction is certainly rolled back (PostgreSQL never
///   commits the open transaction of a session that ended), so running it again is safe;
/// - during or after `COMMIT` the server may have committed and the answer was lost.
///   Running a send again would then consume a second grant and store a second message,
///   so it is done only where the caller says the body is idempotent
///   (`rerun_after_commit = true`: a send with an idempotency key, whose re-run finds the
///   first message and answers it as a replay). Otherwise the caller gets
///   `StoreError::Unavailable` (503 / -1): "unknown, retry with a key" is the honest answer.
///
/// A second lost connection, or a failed reconnect, is `Unavailable` as well.
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:expr) => {
        $crate::postgres::tx::in_tx!($store, rerun_after_commit = false, |$tx| $body)
    };
    ($store:expr, rerun_after_commit = $again:expr, |$tx:ident| $body:expr) => {{
        use $crate::postgres::error::TxError;
        let mut attempt: u32 = 0;
        let mut reconnected = false;
        loop {
            let mut conn = $store.pool.get().await?;
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
                Err(e) if e.lost_connection() => {
                    conn.discard();
                    drop(conn);
                    if !reconnected && (e.before_commit() || $again) {
                        reconnected = true;
                        continue;
                    }
                    break Err(e.into_store());
                }
                Err(e) if attempt < $crate::postgres::tx::RETRIES && e.retryable() => {
                    attempt += 1;
                    drop(conn);
                    $crate::postgres::tx::backoff(attempt).await;
                }
                Err(e) => break Err(e.into_store()),
            }
        }
    }};
}
pub(super) use in_tx;

/// A short, growing, jittered pause before a retry, so the transactions that collided do
/// not collide again in lockstep.
pub(super) async fn backoff(attempt: u32) {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos() % 5_000))
        .unwrap_or(0);
    let micros = u64::from(attempt.min(8)) * 2_000 + jitter;
    tokio::time::sleep(Duration::from_micros(micros)).await;
}
