//! The PostgreSQL connection pool, and [`Session`]: the query helpers written once over
//! `tokio_postgres::GenericClient`, so the pooled connection (`Session<Client>`, for
//! reads) and a transaction on it (`Session<Transaction>`, inside [`super::tx::Tx`]) share
//! them and the connection's cache of prepared statements.

use super::error::be;
use std::borrow::BorrowMut;
use std::collections::HashMap;
use std::sync::Mutex;
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

/// At most `size` connections, opened when first needed and kept while healthy. A
/// connection goes back only after its transaction ended (a dropped `Transaction` queues
/// its ROLLBACK ahead of anything the next user sends).
pub(super) struct Pool {
    pub(super) config: tokio_postgres::Config,
    pub(super) idle: Mutex<Vec<PgConn>>,
    pub(super) permits: Semaphore,
}

pub(super) struct Pooled<'p> {
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
            None => {
                let (client, connection) = self.config.connect(NoTls).await.map_err(be)?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "postgres connection ended");
                    }
                });
                Session {
                    client,
                    stmts: HashMap::new(),
                }
            }
        };
        Ok(Pooled {
            conn: Some(conn),
            pool: self,
            _permit: permit,
        })
    }
}
