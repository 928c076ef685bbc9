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
//!
//! This module holds the store type, connecting and migrating; `pool` the connections
//! and the query helpers, `tx` the transaction and its retries, `error` the errors,
//! `steps` the statements the shared flows run, and one file per aggregate implements
//! its part of the `Store` contract.

mod apps;
mod consent;
mod delivery;
pub(crate) mod error;
mod messages;
mod policy;
pub(crate) mod pool;
mod push;
mod retention;
mod steps;
mod templates;
pub(crate) mod tx;

use error::be;
use pool::Pool;
use std::time::Duration;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use tuisong_core::store::StoreError;

const SCHEMA_V1: &str = include_str!("../schema_postgres.sql");
const SCHEMA_V2: &str = include_str!("../schema_postgres_v2.sql");
/// Schema version N is `MIGRATIONS[N - 1]` applied on top of version N - 1.
const MIGRATIONS: [&str; 2] = [SCHEMA_V1, SCHEMA_V2];
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Namespaces of the two-key advisory locks (`pg_advisory_xact_lock(ns, hashtext(key))`).
/// A hash collision only serializes two unrelated keys; it never breaks a rule.
const LOCK_MIGRATE: i32 = 1;
const LOCK_TEMPLATES: i32 = 2;
const LOCK_IDEMPOTENCY: i32 = 3;
const LOCK_OUTBOX: i32 = 4;
const LOCK_TOKENS: i32 = 5;
const LOCK_LOGIN: i32 = 6;

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
            pool: Pool::new(config, pool_size),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Brings the schema (the first one on the connection's `search_path`) to
    /// `SCHEMA_VERSION` in one transaction, under an advisory lock so concurrent starters
    /// wait for the first and then find nothing to do. A fresh schema runs version 1 then
    /// 2; one made by an older release runs only what it lacks.
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
        if version < SCHEMA_VERSION {
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
                tx.batch_execute(sql).await.map_err(|e| {
                    StoreError::Backend(format!("migrating the schema to version {}: {e}", i + 1))
                })?;
            }
            // One row: the version the schema is at.
            tx.batch_execute("DELETE FROM schema_version")
                .await
                .map_err(be)?;
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
        match conn.all(sql, params).await {
            Err(e) if conn.failed(&e) => {
                // A read changes nothing: once more on a fresh connection.
                drop(conn);
                let mut conn = self.pool.get().await?;
                conn.all(sql, params).await.map_err(|e| {
                    conn.failed(&e);
                    be(e)
                })
            }
            r => r.map_err(be),
        }
    }

    async fn read_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let mut conn = self.pool.get().await?;
        match conn.opt(sql, params).await {
            Err(e) if conn.failed(&e) => {
                drop(conn);
                let mut conn = self.pool.get().await?;
                conn.opt(sql, params).await.map_err(|e| {
                    conn.failed(&e);
                    be(e)
                })
            }
            r => r.map_err(be),
        }
    }
}

#[async_trait::async_trait]
impl tuisong_core::store::HealthStore for PgStore {
    /// `SELECT 1` on a pooled connection (a lost one is replaced once, like any read).
    async fn ping(&self) -> Result<(), StoreError> {
        self.read_opt("SELECT 1", &[]).await.map(|_| ())
    }

    fn commit_stats(&self) -> Option<&tuisong_core::store::CommitStats> {
        Some(&tx::COMMITS)
    }
}
