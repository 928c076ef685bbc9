//! The PostgreSQL connection pool, and [`Session`]: the query helpers written once over
//! `tokio_postgres::GenericClient`, so the pooled connection (`Session<Client>`, for
//! reads) and a transaction on it (`Session<Transaction>`, inside [`super::tx::Tx`]) share
//! them and the connection's cache of prepared statements.
//!
//! A connection that saw a connection-level error is dropped, never pooled again, and
//! during an outage reconnects are paced: at most one attempt per backoff window (100 ms
//! doubling to 5 s) is in flight, and every other request fails fast with
//! `StoreError::Unavailable` instead of opening a connection attempt of its own.

use super::error::{be, is_connection_error};
use std::borrow::BorrowMut;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, NoTls, Row, Statement};
use tuisong_core::store::StoreError;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];
type PgResult<T> = Result<T, tokio_postgres::Error>;

/// Statements prepared once per connection.
pub(crate) type Cache = HashMap<String, Statement>;

/// A client (the connection or a transaction on it) with the connection's statements.
pub(crate) struct Session<C, S = Cache> {
    pub(super) client: C,
    pub(super) stmts: S,
}

impl<C: GenericClient + Sync, S: BorrowMut<Cache> + Send> Session<C, S> {
    async fn prepared(&mut self, sql: &str) -> PgResult<Statement> {
        if let Some(s) = self.stmts.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await?;
        self.stmts.borrow_mut().insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    pub(super) async fn exec(&mut self, sql: &str, params: Params<'_>) -> PgResult<u64> {
        let s = self.prepared(sql).await?;
        self.client.execute(&s, params).await
    }

    pub(super) async fn one(&mut self, sql: &str, params: Params<'_>) -> PgResult<Row> {
        let s = self.prepared(sql).await?;
        self.client.query_one(&s, params).await
    }

    pub(super) async fn opt(&mut self, sql: &str, params: Params<'_>) -> PgResult<Option<Row>> {
        let s = self.prepared(sql).await?;
        self.client.query_opt(&s, params).await
    }

    pub(super) async fn all(&mut self, sql: &str, params: Params<'_>) -> PgResult<Vec<Row>> {
        let s = self.prepared(sql).await?;
        self.client.query(&s, params).await
    }

    pub(super) async fn batch(&mut self, sql: &str) -> PgResult<()> {
        self.client.batch_execute(sql).await
    }
}

/// One pooled connection with its prepared statements.
pub(super) type PgConn = Session<Client>;

/// The first pause after a failed connect, doubled after each further failure.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between two connect attempts during an outage.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Pacing of connect attempts. While connects succeed, any number may run (the pool
/// fills as it needs). After one fails, only one probe at a time may run, and not
/// before its window opens; everyone else is told the store is unavailable.
#[derive(Debug, Default)]
pub(super) struct Reconnect {
    /// Connect failures in a row; 0 when healthy.
    failures: u32,
    /// No probe before this.
    not_before: Option<Instant>,
    probing: bool,
}

/// What a caller that needs a new connection may do.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Attempt {
    /// Connect; the store is healthy.
    Free,
    /// Connect as the one probe of this window.
    Probe,
    /// Do not connect; the next probe may start in this long.
    Wait(Duration),
}

impl Reconnect {
    pub(super) fn attempt(&mut self, now: Instant) -> Attempt {
        if self.failures == 0 {
            return Attempt::Free;
        }
        let at = self.not_before.unwrap_or(now);
        if self.probing || now < at {
            return Attempt::Wait(at.saturating_duration_since(now));
        }
        self.probing = true;
        Attempt::Probe
    }

    pub(super) fn connected(&mut self) {
        *self = Reconnect::default();
    }

    /// A connect failed. A free attempt that fails once the outage is already known
    /// (several started together while healthy) does not lengthen the window again.
    pub(super) fn failed(&mut self, how: &Attempt, now: Instant) {
        match how {
            Attempt::Probe => self.probing = false,
            Attempt::Free if self.failures == 0 => {}
            _ => return,
        }
        self.failures = self.failures.saturating_add(1);
        let doubled = BACKOFF_FIRST.saturating_mul(1 << (self.failures - 1).min(16));
        self.not_before = Some(now + doubled.min(BACKOFF_MAX));
    }
}

/// At most `size` connections, opened when first needed and kept while healthy. A
/// connection goes back only after its transaction ended (a dropped `Transaction` queues
/// its ROLLBACK ahead of anything the next user sends), and never once it was broken.
pub(super) struct Pool {
    pub(super) config: tokio_postgres::Config,
    pub(super) idle: Mutex<Vec<PgConn>>,
    pub(super) permits: Semaphore,
    pub(super) reconnect: Mutex<Reconnect>,
    /// Connect attempts made, for tests and the log.
    pub(super) connects: AtomicU64,
}

pub(super) struct Pooled<'p> {
    conn: Option<PgConn>,
    pool: &'p Pool,
    broken: bool,
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

impl Pooled<'_> {
    /// Marks the connection broken: it is closed when dropped, not pooled. The idle
    /// connections go too: a lost connection mostly means the server restarted, failed
    /// over or had its backends terminated, and they would each fail a request in turn.
    pub(super) fn discard(&mut self) {
        self.broken = true;
        if let Ok(mut idle) = self.pool.idle.lock() {
            idle.clear();
        }
    }

    /// After a failed statement: a connection error breaks the connection, and says
    /// whether a read may be tried again on a fresh one.
    pub(super) fn failed(&mut self, e: &tokio_postgres::Error) -> bool {
        let lost = is_connection_error(e);
        if lost {
            self.discard();
        }
        lost
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take()
            && !self.broken
            && !c.client.is_closed()
            && let Ok(mut idle) = self.pool.idle.lock()
        {
            idle.push(c);
        }
    }
}

impl Pool {
    pub(super) fn new(config: tokio_postgres::Config, size: usize) -> Pool {
        Pool {
            config,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
            reconnect: Mutex::new(Reconnect::default()),
            connects: AtomicU64::new(0),
        }
    }

    pub(super) async fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let idle = loop {
            let c = self.idle.lock().map_err(|_| StoreError::Closed)?.pop();
            match c {
                Some(c) if c.client.is_closed() => continue,
                other => break other,
            }
        };
        let conn = match idle {
            Some(c) => c,
            None => self.open().await?,
        };
        Ok(Pooled {
            conn: Some(conn),
            pool: self,
            broken: false,
            _permit: permit,
        })
    }

    /// A new connection, unless reconnects are backing off.
    async fn open(&self) -> Result<PgConn, StoreError> {
        let lock = || self.reconnect.lock().map_err(|_| StoreError::Closed);
        let how = lock()?.attempt(Instant::now());
        if let Attempt::Wait(d) = how {
            return Err(StoreError::Unavailable(format!(
                "PostgreSQL is unreachable; the next reconnect attempt is in {} ms",
                d.as_millis()
            )));
        }
        self.connects.fetch_add(1, Ordering::Relaxed);
        match self.config.connect(NoTls).await {
            Ok((client, connection)) => {
                lock()?.connected();
                if how == Attempt::Probe {
                    tracing::warn!("reconnected to PostgreSQL");
                }
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "postgres connection ended");
                    }
                });
                Ok(Session {
                    client,
                    stmts: HashMap::new(),
                })
            }
            Err(e) => {
                lock()?.failed(&how, Instant::now());
                let e = be(e);
                tracing::warn!(error = %e, "connecting to PostgreSQL failed");
                // Whatever the reason (refused, timed out, the server starting up or out
                // of connection slots), the store cannot be used until a connect works.
                Err(match e {
                    StoreError::Backend(m) => StoreError::Unavailable(m),
                    other => other,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_failed_connect_one_probe_per_window_doubling_to_five_seconds() {
        let t0 = Instant::now();
        let mut r = Reconnect::default();
        assert_eq!(r.attempt(t0), Attempt::Free);
        assert_eq!(r.attempt(t0), Attempt::Free, "healthy: connect freely");
        r.failed(&Attempt::Free, t0);
        // The second free attempt of the same moment fails too: the window stays.
        r.failed(&Attempt::Free, t0);
        assert_eq!(r.attempt(t0), Attempt::Wait(Duration::from_millis(100)));
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(r.attempt(t1), Attempt::Probe);
        assert!(
            matches!(r.attempt(t1), Attempt::Wait(_)),
            "one probe in flight"
        );
        r.failed(&Attempt::Probe, t1);
        assert_eq!(r.attempt(t1), Attempt::Wait(Duration::from_millis(200)));
        let mut t = t1;
        for _ in 0..10 {
            t += BACKOFF_MAX;
            assert_eq!(r.attempt(t), Attempt::Probe);
            r.failed(&Attempt::Probe, t);
        }
        assert_eq!(r.attempt(t), Attempt::Wait(BACKOFF_MAX), "capped");
        assert_eq!(r.attempt(t + BACKOFF_MAX), Attempt::Probe);
        r.connected();
        assert_eq!(r.attempt(t + BACKOFF_MAX), Attempt::Free);
    }

    fn unreachable_pool() -> Pool {
        // Port 1 on loopback: nothing listens, the connect is refused at once.
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(1)
            .user("nobody")
            .connect_timeout(Duration::from_secs(2));
        Pool::new(config, 8)
    }

    #[tokio::test]
    async fn during_an_outage_requests_fail_fast_as_unavailable_without_connecting() {
        let pool = unreachable_pool();
        let first = pool.get().await.err().expect("nothing listens");
        assert!(
            matches!(first, StoreError::Unavailable(_)),
            "a refused connect is Unavailable: {first}"
        );
        assert_eq!(pool.connects.load(Ordering::Relaxed), 1);
        let burst = futures_join_all((0..20).map(|_| pool.get())).await;
        assert!(
            burst
                .iter()
                .all(|r| matches!(r, Err(StoreError::Unavailable(_))))
        );
        assert_eq!(
            pool.connects.load(Ordering::Relaxed),
            1,
            "inside the backoff window nobody connects"
        );
        tokio::time::sleep(BACKOFF_FIRST + Duration::from_millis(20)).await;
        let burst = futures_join_all((0..20).map(|_| pool.get())).await;
        assert!(burst.iter().all(|r| r.is_err()));
        assert_eq!(
            pool.connects.load(Ordering::Relaxed),
            2,
            "one probe when the window opens"
        );
    }

    /// Polls every future to completion on this task, so they race for the pacing.
    async fn futures_join_all<F: std::future::Future>(
        fs: impl Iterator<Item = F>,
    ) -> Vec<F::Output> {
        let mut pending: Vec<_> = fs.map(Box::pin).collect();
        let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut done = true;
            for (f, r) in pending.iter_mut().zip(results.iter_mut()) {
                if r.is_none() {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => *r = Some(v),
                        std::task::Poll::Pending => done = false,
                    }
                }
            }
            if done {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        results.into_iter().map(|r| r.expect("ready")).collect()
    }
}
