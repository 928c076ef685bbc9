//! Per-user inboxes on PostgreSQL: reading, acks and opens (the shared flows), and the
//! scheduler's releases and expiries, claimed with `FOR UPDATE SKIP LOCKED` so two nodes
//! never take the same message.

use super::PgStore;
use super::error::{collect, lim};
use super::tx::in_tx;
use crate::flow;
use crate::rows::{self, Cells, PENDING, message_cols};
use async_trait::async_trait;
use tuisong_core::clock::Millis;
use tuisong_core::ids::{MsgId, UserId};
use tuisong_core::push::SENT_EXPIRED;
use tuisong_core::store::{DeliveryStore, InboxEntry, Message, StoreError};

#[async_trait]
impl DeliveryStore for PgStore {
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
        collect(rows, |r| rows::inbox_entry(r, user_id))
    }

    async fn ack(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        device: &str,
        now: Millis,
    ) -> Result<Option<bool>, StoreError> {
        let id = msgid.0 as i64;
        in_tx!(self, |tx| flow::ack(
            &mut tx,
            user_id.as_str(),
            id,
            device,
            now
        )
        .await?)
    }

    async fn open(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        device: &str,
        now: Millis,
    ) -> Result<Option<Message>, StoreError> {
        let id = msgid.0 as i64;
        in_tx!(self, |tx| flow::open(
            &mut tx,
            user_id.as_str(),
            id,
            device,
            now
        )
        .await?)
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
                due.push((r.text(1)?, r.int(2)?, r.int(0)?));
            }
            // Inbox appends lock each user's row: take them in user order so two nodes
            // releasing at once cannot lock two users crosswise. Within a user the order
            // is release order, as in the serial store.
            due.sort();
            let mut out = Vec::with_capacity(due.len());
            for (user_id, release_at, msgid) in due {
                let entry = flow::released(&mut tx, msgid, user_id, now).await?;
                out.push((release_at, msgid, entry));
            }
            out.sort_by_key(|(at, id, _)| (*at, *id));
            out.into_iter().map(|(_, _, e)| e).collect::<Vec<_>>()
        })
    }

    async fn expire_due(&self, now: Millis, limit: usize) -> Result<Vec<MsgId>, StoreError> {
        let claim = format!(
            "WITH due AS (
                SELECT msgid FROM messages
                WHERE expires_at IS NOT NULL AND expires_at <= $1 AND status IN {PENDING}
                ORDER BY expires_at, msgid LIMIT $2
                FOR UPDATE SKIP LOCKED)
             UPDATE messages m SET status = 'expired', final_at = $1 FROM due
             WHERE m.msgid = due.msgid AND m.status IN {PENDING}
             RETURNING m.appid, m.openid, m.msgid, m.expires_at"
        );
        in_tx!(self, |tx| {
            let rows = tx.all(&claim, &[&now, &lim(limit)]).await?;
            let mut due: Vec<(String, String, Millis, i64)> = Vec::with_capacity(rows.len());
            for r in &rows {
                due.push((
                    r.text(0)?,
                    r.text(1)?,
                    r.opt_int(3)?.unwrap_or(now),
                    r.int(2)?,
                ));
            }
            // Refunds lock consent rows: take them user by user so two nodes expiring at
            // once rarely lock crosswise; within a user in expiry order, so the user's
            // events are queued in the order the serial store queues them.
            due.sort();
            let mut out = Vec::with_capacity(due.len());
            for (_, _, expires_at, msgid) in due {
                flow::after_pending(&mut tx, msgid, now, "expired", SENT_EXPIRED, "expired")
                    .await?;
                out.push((expires_at, msgid));
            }
            out.sort_unstable();
            out.into_iter()
                .map(|(_, m)| MsgId(m as u64))
                .collect::<Vec<_>>()
        })
    }
}
