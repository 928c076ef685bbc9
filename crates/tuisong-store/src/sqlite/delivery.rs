//! Per-user inboxes on the embedded store: reading, acks and opens (the shared flows,
//! which change nothing for a message that is not the caller's), and the scheduler's
//! releases and expiries.

use super::SqliteStore;
use super::steps::Sq;
use crate::flow::{self, Steps, ready};
use crate::rows::{self, PENDING, message_cols};
use async_trait::async_trait;
use rusqlite::params;
use tuisong_core::clock::Millis;
use tuisong_core::ids::{MsgId, UserId};
use tuisong_core::push::SENT_EXPIRED;
use tuisong_core::store::{DeliveryStore, InboxEntry, Message, StoreError};

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn inbox(
        &self,
        user_id: &UserId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let user = user_id.clone();
        self.read(move |c| {
            c.prepare_cached(concat!(
                "SELECT i.seq, i.kind, ",
                message_cols!(),
                " FROM inbox i JOIN messages m ON m.msgid = i.msgid
                 WHERE i.user_id = ?1 AND i.seq > ?2 ORDER BY i.seq LIMIT ?3"
            ))?
            .query_map(
                params![user.as_str(), after_seq as i64, limit as i64],
                |r| rows::inbox_entry(r, &user),
            )?
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
    ) -> Result<Option<bool>, StoreError> {
        let (user, device) = (user_id.clone(), device.to_owned());
        let id = msgid.0 as i64;
        self.write(move |c| ready(flow::ack(&mut Sq(c), user.as_str(), id, &device, now)))
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
        self.write(move |c| ready(flow::open(&mut Sq(c), user.as_str(), id, &device, now)))
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
            let mut s = Sq(c);
            let mut out = Vec::with_capacity(due.len());
            for (msgid, user_id) in due {
                c.prepare_cached("UPDATE messages SET status = 'accepted' WHERE msgid = ?1")?
                    .execute([msgid])?;
                out.push(ready(flow::released(&mut s, msgid, user_id, now))?);
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
            let mut s = Sq(c);
            for &msgid in &due {
                ready(async {
                    s.set_final(msgid, "expired", now).await?;
                    flow::after_pending(&mut s, msgid, now, "expired", SENT_EXPIRED, "expired")
                        .await
                })?;
            }
            Ok(due.into_iter().map(|m| MsgId(m as u64)).collect())
        })
        .await
    }
}
