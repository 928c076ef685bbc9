//! The statements of the PostgreSQL store inside a [`Tx`]: the [`Steps`] the shared
//! flows (`crate::flow`) run, and the writes only this store's aggregates use (counters,
//! the settings switch). Which rows each step locks is said where it does so.

use super::LOCK_IDEMPOTENCY;
use super::error::{TxError, corrupt, json};
use super::tx::Tx;
use crate::flow::{MessageRow, Steps};
use crate::rows::{self, Cells, message_cols};
use tuisong_core::clock::Millis;
use tuisong_core::consent::{ConsumeRule, Decision};
use tuisong_core::push::PushEvent;
use tuisong_core::store::{EntryKind, Message, NewMessage, StoreError};

/// The settings switch of one template. Turning it off queues a change event when it
/// was not off already. The row is locked (or created) before its old state is read, so
/// two nodes switching it off at once queue one event, as the serial store does.
pub(super) async fn switch_item(
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
        tx.enqueue(appid, openid, &crate::flow::switched_off(tmpl), now)
            .await?;
    }
    Ok(())
}

impl Steps for Tx<'_> {
    type Error = TxError;
    fn corrupt(what: &str) -> TxError {
        corrupt(what)
    }
    fn json<T: serde::Serialize>(v: &T) -> Result<String, TxError> {
        json(v)
    }

    async fn batch(&mut self, sql: &str) -> Result<(), TxError> {
        Ok(self.q.batch(sql).await?)
    }

    async fn prior_send(
        &mut self,
        appid: &str,
        key: &str,
    ) -> Result<Option<(i64, Option<String>)>, TxError> {
        // Sends with the same key wait for each other, so the second sees the first.
        self.lock(LOCK_IDEMPOTENCY, &format!("{appid}/{key}"))
            .await?;
        let prior = self
            .opt(
                "SELECT msgid, request_hash FROM messages WHERE appid = $1 AND idempotency_key = $2",
                &[&appid, &key],
            )
            .await?;
        Ok(match prior {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }

    async fn recipient(
        &mut self,
        appid: &str,
        openid: &str,
    ) -> Result<Option<(String, bool)>, TxError> {
        let sub = self
            .opt(
                "SELECT user_id, main_switch FROM subscribers WHERE appid = $1 AND openid = $2",
                &[&appid, &openid],
            )
            .await?;
        Ok(match sub {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }

    async fn take_grant(&mut self, m: &NewMessage) -> Result<bool, TxError> {
        let sql = match m.consume {
            ConsumeRule::OneTime => {
                "UPDATE consents SET remaining = remaining - 1, consumed_total = consumed_total + 1
                 WHERE appid = $1 AND openid = $2 AND tmpl_id = $3 AND remaining > 0 AND NOT switched_off"
            }
            ConsumeRule::LongTerm => {
                "UPDATE consents SET consumed_total = consumed_total + 1
                 WHERE appid = $1 AND openid = $2 AND tmpl_id = $3 AND status = 'accept' AND NOT switched_off"
            }
        };
        let keys = [m.appid.as_str(), m.openid.as_str(), m.template_id.as_str()];
        Ok(self.exec(sql, &[&keys[0], &keys[1], &keys[2]]).await? == 1)
    }

    async fn take_unit(
        &mut self,
        key: &str,
        window_start: Millis,
        limit: u64,
    ) -> Result<bool, TxError> {
        if limit == 0 {
            return Ok(false);
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let n = self
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

    async fn insert_message(&mut self, r: &MessageRow<'_>) -> Result<i64, TxError> {
        let m = r.m;
        let row = self
            .one(
                "INSERT INTO messages (appid, openid, user_id, tmpl_id, title, page, rows, data, lang,
                    miniprogram_state, status, idempotency_key, request_hash, created_at, urgent,
                    consume_rule, release_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
                 RETURNING msgid",
                &[
                    &m.appid.as_str(),
                    &m.openid.as_str(),
                    &r.user_id,
                    &m.template_id.as_str(),
                    &m.title,
                    &m.page.as_ref().map(|p| p.as_str()),
                    &r.rows,
                    &r.data,
                    &m.lang.as_str(),
                    &m.miniprogram_state.as_str(),
                    &r.status.as_str(),
                    &r.key,
                    &r.hash,
                    &m.created_at,
                    &m.urgent,
                    &r.rule,
                    &r.release_at,
                    &m.expires_at,
                ],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn bump(
        &mut self,
        appid: &str,
        tmpl: &str,
        now: Millis,
        metric: &str,
        value: f64,
    ) -> Result<(), TxError> {
        Tx::bump(self, appid, tmpl, now, metric, value);
        Ok(())
    }

    async fn event(
        &mut self,
        msgid: i64,
        now: Millis,
        name: &str,
        device: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), TxError> {
        self.exec(
            "INSERT INTO message_events (msgid, at, event, device, detail) VALUES ($1, $2, $3, $4, $5)",
            &[&msgid, &now, &name, &device, &detail],
        )
        .await?;
        Ok(())
    }

    /// The increment locks the user's row until commit, so appends of one user are
    /// serial and their seqs have no gaps.
    async fn push_entry(
        &mut self,
        user_id: &str,
        kind: EntryKind,
        msgid: i64,
        now: Millis,
    ) -> Result<u64, TxError> {
        let seq: i64 = self
            .one(
                "UPDATE users SET inbox_seq = inbox_seq + 1 WHERE user_id = $1 RETURNING inbox_seq",
                &[&user_id],
            )
            .await?
            .try_get(0)?;
        self.exec(
            "INSERT INTO inbox (user_id, seq, kind, msgid, at) VALUES ($1, $2, $3, $4, $5)",
            &[&user_id, &seq, &kind.as_str(), &msgid, &now],
        )
        .await?;
        u64::try_from(seq).map_err(|_| corrupt("inbox seq"))
    }

    async fn load_message(&mut self, msgid: i64) -> Result<Message, TxError> {
        let sql = concat!(
            "SELECT ",
            message_cols!(),
            " FROM messages m WHERE m.msgid = $1"
        );
        rows::message(&self.one(sql, &[&msgid]).await?)
    }

    async fn message_keys(&mut self, msgid: i64) -> Result<(String, String, String), TxError> {
        let r = self
            .one(
                "SELECT appid, openid, tmpl_id FROM messages WHERE msgid = $1",
                &[&msgid],
            )
            .await?;
        Ok((r.text(0)?, r.text(1)?, r.text(2)?))
    }

    /// Buffered: written at commit, in (app, openid) order under the user's outbox lock.
    async fn enqueue(
        &mut self,
        appid: &str,
        openid: &str,
        ev: &PushEvent,
        now: Millis,
    ) -> Result<(), TxError> {
        let ext = self
            .opt(
                "SELECT extension_events FROM push_configs WHERE appid = $1",
                &[&appid],
            )
            .await?;
        let ext: Option<bool> = ext.map(|r| r.flag(0)).transpose()?;
        match ext {
            None => return Ok(()),
            Some(false) if ev.is_extension() => return Ok(()),
            _ => {}
        }
        self.outbox
            .push((appid.to_owned(), openid.to_owned(), json(ev)?, now));
        Ok(())
    }

    async fn refund(&mut self, msgid: i64) -> Result<bool, TxError> {
        let n = self
            .exec(
                "UPDATE consents SET remaining = remaining + 1, consumed_total = consumed_total - 1
                 WHERE (appid, openid, tmpl_id) = (SELECT appid, openid, tmpl_id FROM messages WHERE msgid = $1)
                   AND (SELECT consume_rule FROM messages WHERE msgid = $1) = 'one_time'",
                &[&msgid],
            )
            .await?;
        Ok(n == 1)
    }

    /// Locks the message row first, so its state cannot change between the read and the
    /// transition (a concurrent ack, expiry or release waits, or went first).
    async fn stop_target(
        &mut self,
        appid: &str,
        msgid: i64,
    ) -> Result<Option<(String, String)>, TxError> {
        let row = self
            .opt(
                "SELECT status, user_id FROM messages WHERE msgid = $1 AND appid = $2 FOR UPDATE",
                &[&msgid, &appid],
            )
            .await?;
        row.map(|r| Ok((r.text(0)?, r.text(1)?))).transpose()
    }

    async fn set_final(&mut self, msgid: i64, status: &str, now: Millis) -> Result<(), TxError> {
        self.exec(
            "UPDATE messages SET status = $3, final_at = $2 WHERE msgid = $1",
            &[&msgid, &now, &status],
        )
        .await?;
        Ok(())
    }

    async fn owns(&mut self, owner: &str, by_user: bool, msgid: i64) -> Result<bool, TxError> {
        let sql = if by_user {
            "SELECT msgid FROM messages WHERE msgid = $1 AND user_id = $2"
        } else {
            "SELECT msgid FROM messages WHERE msgid = $1 AND appid = $2"
        };
        Ok(self.opt(sql, &[&msgid, &owner]).await?.is_some())
    }

    async fn record_delivery(
        &mut self,
        msgid: i64,
        device: &str,
        now: Millis,
    ) -> Result<bool, TxError> {
        let n = self
            .exec(
                "INSERT INTO deliveries (msgid, device, at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&msgid, &device, &now],
            )
            .await?;
        Ok(n == 1)
    }

    async fn mark_delivered(&mut self, msgid: i64, now: Millis) -> Result<bool, TxError> {
        let n = self
            .exec(
                "UPDATE messages SET status = 'delivered', delivered_at = $2
                 WHERE msgid = $1 AND status = 'accepted'",
                &[&msgid, &now],
            )
            .await?;
        Ok(n == 1)
    }

    async fn user_message(
        &mut self,
        user_id: &str,
        msgid: i64,
    ) -> Result<Option<Message>, TxError> {
        let sql = concat!(
            "SELECT ",
            message_cols!(),
            " FROM messages m WHERE m.msgid = $1 AND m.user_id = $2"
        );
        let row = self.opt(sql, &[&msgid, &user_id]).await?;
        row.as_ref().map(rows::message).transpose()
    }

    async fn mark_opened(&mut self, msgid: i64, now: Millis) -> Result<(), TxError> {
        self.exec(
            "UPDATE messages SET opened_at = COALESCE(opened_at, $2) WHERE msgid = $1",
            &[&msgid, &now],
        )
        .await?;
        Ok(())
    }
}
