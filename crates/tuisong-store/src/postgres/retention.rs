//! Retention on PostgreSQL: each sweep is one short transaction of at most `limit` rows
//! (messages: `limit` messages and their rows), found through the version-2 indexes.
//! Rows another node is sweeping or changing are skipped (`SKIP LOCKED`), so nodes
//! sweeping at once neither wait for each other nor delete anything twice. Space comes
//! back through autovacuum; `compact` has nothing to do.

use super::PgStore;
use super::error::lim;
use super::tx::in_tx;
use async_trait::async_trait;
use tuisong_core::clock::Millis;
use tuisong_core::store::{RetentionStore, StoreError, Sweep};

/// The statement that deletes one batch of `what` (`$1` the cutoff, `$2` the limit);
/// None for messages, which take several.
fn batch_delete(what: Sweep) -> Option<&'static str> {
    Some(match what {
        Sweep::LoginCodes => {
            "DELETE FROM login_codes WHERE code IN (SELECT code FROM login_codes
                 WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        }
        Sweep::PushOutbox => {
            "DELETE FROM push_outbox WHERE id IN (SELECT id FROM push_outbox
                 WHERE status <> 'pending' AND created_at < $1
                 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        }
        Sweep::PushAttempts => {
            "DELETE FROM push_attempts WHERE id IN (SELECT id FROM push_attempts
                 WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        }
        Sweep::Counters => {
            "DELETE FROM counters WHERE key IN (SELECT key FROM counters
                 WHERE window_start < $1 ORDER BY window_start LIMIT $2 FOR UPDATE SKIP LOCKED)"
        }
        // The stats key has five columns (with the shard): the rows are named by ctid.
        Sweep::Stats => {
            "DELETE FROM stats WHERE ctid = ANY(ARRAY(SELECT ctid FROM stats
                 WHERE hour < $1 ORDER BY hour LIMIT $2 FOR UPDATE SKIP LOCKED))"
        }
        Sweep::Messages => return None,
    })
}

#[async_trait]
impl RetentionStore for PgStore {
    async fn sweep(&self, what: Sweep, cutoff: Millis, limit: usize) -> Result<u64, StoreError> {
        let limit = lim(limit.max(1));
        if let Some(sql) = batch_delete(what) {
            return in_tx!(self, |tx| tx.exec(sql, &[&cutoff, &limit]).await?);
        }
        in_tx!(self, |tx| {
            // The message rows are locked first (as every change of a message does), and a
            // message being changed right now is left for the next sweep.
            let rows = tx
                .all(
                    "SELECT msgid, user_id FROM messages
                     WHERE status IN ('delivered', 'recalled', 'cancelled', 'expired')
                       AND created_at < $1
                       AND COALESCE(final_at, delivered_at, created_at) < $1
                     ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                    &[&cutoff, &limit],
                )
                .await?;
            let ids: Vec<i64> = rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let users: Vec<String> = rows
                .iter()
                .map(|r| r.try_get(1))
                .collect::<Result<_, _>>()?;
            if !ids.is_empty() {
                // The inbox has no index by msgid (it would cost every send): the pairs
                // go through its (user_id, seq) key, one scan of each user's entries.
                tx.exec(
                    "DELETE FROM inbox i USING unnest($1::text[], $2::bigint[]) AS d(user_id, msgid)
                     WHERE i.user_id = d.user_id AND i.msgid = d.msgid",
                    &[&users, &ids],
                )
                .await?;
                for sql in [
                    "DELETE FROM message_events WHERE msgid = ANY($1)",
                    "DELETE FROM deliveries WHERE msgid = ANY($1)",
                    "DELETE FROM messages WHERE msgid = ANY($1)",
                ] {
                    tx.exec(sql, &[&ids]).await?;
                }
            }
            ids.len() as u64
        })
    }

    async fn compact(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
