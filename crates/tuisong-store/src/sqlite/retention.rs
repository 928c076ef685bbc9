//! Retention on the embedded store: each sweep is one writer job of at most `limit` rows
//! (messages: `limit` messages and their rows), found through the version-2 indexes, so
//! other writes run between two batches; `compact` truncates the WAL afterwards.

use super::{SqliteStore, writer};
use async_trait::async_trait;
use rusqlite::{Connection, params};
use tuisong_core::clock::Millis;
use tuisong_core::store::{RetentionStore, StoreError, Sweep};

/// The finished states; the same text as the partial index `messages_finished`, so the
/// planner can use it.
const FINISHED: &str = "status IN ('delivered', 'recalled', 'cancelled', 'expired')";

/// Deletes the first `limit` rows of `table` matching `cond` (over `?1`, the cutoff) in
/// the order of `order`.
fn delete_rows(
    c: &Connection,
    table: &str,
    cond: &str,
    order: &str,
    cutoff: Millis,
    limit: i64,
) -> rusqlite::Result<u64> {
    let n = c
        .prepare_cached(&format!(
            "DELETE FROM {table} WHERE rowid IN
                 (SELECT rowid FROM {table} WHERE {cond} ORDER BY {order} LIMIT ?2)"
        ))?
        .execute(params![cutoff, limit])?;
    Ok(n as u64)
}

/// Finished messages last changed before `cutoff`, with their timeline, deliveries and
/// inbox entries (cards and tombstones).
fn delete_messages(c: &Connection, cutoff: Millis, limit: i64) -> rusqlite::Result<u64> {
    let rows: Vec<(i64, String)> = c
        .prepare_cached(&format!(
            "SELECT msgid, user_id FROM messages
             WHERE {FINISHED} AND created_at < ?1
               AND COALESCE(final_at, delivered_at, created_at) < ?1
             ORDER BY created_at LIMIT ?2"
        ))?
        .query_map(params![cutoff, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, _) in &rows {
        for sql in [
            "DELETE FROM message_events WHERE msgid = ?1",
            "DELETE FROM deliveries WHERE msgid = ?1",
            "DELETE FROM messages WHERE msgid = ?1",
        ] {
            c.prepare_cached(sql)?.execute([id])?;
        }
    }
    // The inbox is keyed by (user, seq) and has no index by msgid (it would cost every
    // send): each user's entries are read once through the key, for all of its messages.
    let mut by_user: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
    for (id, user) in &rows {
        by_user.entry(user.as_str()).or_default().push(*id);
    }
    for (user, ids) in by_user {
        let list = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        c.prepare_cached(
            "DELETE FROM inbox WHERE user_id = ?1
               AND msgid IN (SELECT value FROM json_each(?2))",
        )?
        .execute(params![user, list])?;
    }
    Ok(rows.len() as u64)
}

fn sweep(c: &Connection, what: Sweep, cutoff: Millis, limit: i64) -> rusqlite::Result<u64> {
    match what {
        Sweep::LoginCodes => delete_rows(
            c,
            "login_codes",
            "expires_at <= ?1",
            "expires_at",
            cutoff,
            limit,
        ),
        Sweep::Messages => delete_messages(c, cutoff, limit),
        Sweep::PushOutbox => delete_rows(
            c,
            "push_outbox",
            "status <> 'pending' AND created_at < ?1",
            "created_at",
            cutoff,
            limit,
        ),
        Sweep::PushAttempts => delete_rows(c, "push_attempts", "at < ?1", "at", cutoff, limit),
        Sweep::Counters => delete_rows(
            c,
            "counters",
            "window_start < ?1",
            "window_start",
            cutoff,
            limit,
        ),
        // `stats` has no rowid: its rows are named by their key.
        Sweep::Stats => Ok(c
            .prepare_cached(
                "DELETE FROM stats WHERE (appid, hour, tmpl_id, metric) IN
                     (SELECT appid, hour, tmpl_id, metric FROM stats
                      WHERE hour < ?1 ORDER BY hour LIMIT ?2)",
            )?
            .execute(params![cutoff, limit])? as u64),
    }
}

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn sweep(&self, what: Sweep, cutoff: Millis, limit: usize) -> Result<u64, StoreError> {
        let limit = limit.clamp(1, i64::MAX as usize) as i64;
        self.write(move |c| sweep(c, what, cutoff, limit)).await
    }

    async fn compact(&self) -> Result<(), StoreError> {
        let conn = self.checkpointer.clone();
        let truncated = tokio::task::spawn_blocking(move || writer::truncate_wal(&conn))
            .await
            .map_err(|e| StoreError::Backend(format!("checkpoint task failed: {e}")))??;
        if !truncated {
            tracing::debug!("a reader kept the WAL from being truncated; next sweep retries");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sweep finds its rows through an index, never by scanning its table.
    #[test]
    fn every_sweep_uses_an_index() {
        let c = Connection::open_in_memory().expect("db");
        for sql in super::super::MIGRATIONS {
            c.execute_batch(sql).expect("schema");
        }
        let plan = |sql: &str| -> String {
            let mut stmt = c
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("plan");
            let rows: Vec<String> = stmt
                .query_map([], |r| r.get::<_, String>(3))
                .expect("rows")
                .collect::<rusqlite::Result<_>>()
                .expect("rows");
            rows.join("; ")
        };
        let cases = [
            (
                format!(
                    "SELECT msgid FROM messages WHERE {FINISHED} AND created_at < 1
                     AND COALESCE(final_at, delivered_at, created_at) < 1
                     ORDER BY created_at LIMIT 5"
                ),
                "messages_finished",
            ),
            (
                "SELECT rowid FROM login_codes WHERE expires_at <= 1 ORDER BY expires_at LIMIT 5"
                    .into(),
                "login_codes_expiry",
            ),
            (
                "SELECT rowid FROM login_codes WHERE appid = 'a' AND openid = 'o'
                 AND used_at IS NULL AND code <> 'c' ORDER BY expires_at DESC, rowid DESC
                 LIMIT -1 OFFSET 4"
                    .into(),
                "login_codes_user",
            ),
            (
                "DELETE FROM inbox WHERE user_id = 'u' AND msgid IN (SELECT value FROM json_each('[1]'))"
                    .into(),
                "PRIMARY KEY",
            ),
            (
                "SELECT rowid FROM push_outbox WHERE status <> 'pending' AND created_at < 1
                 ORDER BY created_at LIMIT 5"
                    .into(),
                "push_outbox_done",
            ),
            (
                "SELECT rowid FROM push_attempts WHERE at < 1 ORDER BY at LIMIT 5".into(),
                "push_attempts_at",
            ),
            (
                "SELECT appid FROM stats WHERE hour < 1 ORDER BY hour LIMIT 5".into(),
                "stats_hour",
            ),
            (
                "SELECT rowid FROM counters WHERE window_start < 1 ORDER BY window_start LIMIT 5"
                    .into(),
                "counters_window",
            ),
        ];
        for (sql, index) in cases {
            let p = plan(&sql);
            assert!(p.contains(index), "{sql}\n→ {p}");
        }
    }
}
