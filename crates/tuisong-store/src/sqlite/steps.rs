//! The statements of the embedded store inside the writer's transaction: the
//! [`Steps`] the shared flows (`crate::flow`) run, and the writes only this store's
//! aggregates use (counters, the settings switch). Every statement is `prepare_cached`.

use crate::flow::{MessageRow, Steps};
use crate::rows::{self, Cells, message_cols};
use rusqlite::{Connection, OptionalExtension, params};
use tuisong_core::clock::Millis;
use tuisong_core::consent::{ConsumeRule, Decision};
use tuisong_core::push::PushEvent;
use tuisong_core::store::{EntryKind, Message, NewMessage};

pub(super) fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text)
}

pub(super) fn json<T: serde::Serialize>(v: &T) -> rusqlite::Result<String> {
    serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

impl Cells for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
    fn flag(&self, i: usize) -> rusqlite::Result<bool> {
        self.get(i)
    }
    fn real(&self, i: usize) -> rusqlite::Result<f64> {
        self.get(i)
    }
    fn corrupt(what: &str) -> rusqlite::Error {
        corrupt(what)
    }
}

/// The settings switch of one template. Turning it off queues a change event when it
/// was not off already.
pub(super) fn switch_item(
    c: &Connection,
    appid: &str,
    openid: &str,
    tmpl: &str,
    on: bool,
    now: Millis,
) -> rusqlite::Result<()> {
    let was_off: Option<bool> = c
        .prepare_cached(
            "SELECT switched_off FROM consents WHERE appid = ?1 AND openid = ?2 AND tmpl_id = ?3",
        )?
        .query_row(params![appid, openid, tmpl], |r| r.get(0))
        .optional()?;
    if on {
        // Only a template the user was asked about can be switched back on; the settings
        // page lists nothing else, and it must not subscribe anyone without a prompt.
        c.prepare_cached(
            "UPDATE consents SET status = 'accept', switched_off = 0, kept = 'accept', updated_at = ?4
             WHERE appid = ?1 AND openid = ?2 AND tmpl_id = ?3",
        )?
        .execute(params![appid, openid, tmpl, now])?;
        return Ok(());
    }
    c.prepare_cached(
        "INSERT INTO consents (appid, openid, tmpl_id, status, switched_off, kept, updated_at)
         VALUES (?1, ?2, ?3, ?4, 1, ?4, ?5)
         ON CONFLICT (appid, openid, tmpl_id) DO UPDATE SET
            status = excluded.status, switched_off = excluded.switched_off,
            kept = excluded.kept, updated_at = excluded.updated_at",
    )?
    .execute(params![appid, openid, tmpl, Decision::Reject.as_str(), now])?;
    if was_off != Some(true) {
        let mut s = Sq(c);
        crate::flow::ready(s.enqueue(appid, openid, &crate::flow::switched_off(tmpl), now))?;
    }
    Ok(())
}

/// The writer's connection, as the shared flows see it.
pub(super) struct Sq<'c>(pub(super) &'c Connection);

impl Steps for Sq<'_> {
    type Error = rusqlite::Error;
    fn corrupt(what: &str) -> rusqlite::Error {
        corrupt(what)
    }
    fn json<T: serde::Serialize>(v: &T) -> rusqlite::Result<String> {
        json(v)
    }

    async fn batch(&mut self, sql: &str) -> rusqlite::Result<()> {
        self.0.execute_batch(sql)
    }

    async fn prior_send(
        &mut self,
        appid: &str,
        key: &str,
    ) -> rusqlite::Result<Option<(i64, Option<String>)>> {
        self.0
            .prepare_cached(
                "SELECT msgid, request_hash FROM messages WHERE appid = ?1 AND idempotency_key = ?2",
            )?
            .query_row(params![appid, key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
    }

    async fn recipient(
        &mut self,
        appid: &str,
        openid: &str,
    ) -> rusqlite::Result<Option<(String, bool)>> {
        self.0
            .prepare_cached(
                "SELECT user_id, main_switch FROM subscribers WHERE appid = ?1 AND openid = ?2",
            )?
            .query_row(params![appid, openid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
    }

    async fn take_grant(&mut self, m: &NewMessage) -> rusqlite::Result<bool> {
        let sql = match m.consume {
            ConsumeRule::OneTime => {
                "UPDATE consents SET remaining = remaining - 1, consumed_total = consumed_total + 1
                 WHERE appid = ?1 AND openid = ?2 AND tmpl_id = ?3 AND remaining > 0 AND switched_off = 0"
            }
            ConsumeRule::LongTerm => {
                "UPDATE consents SET consumed_total = consumed_total + 1
                 WHERE appid = ?1 AND openid = ?2 AND tmpl_id = ?3 AND status = 'accept' AND switched_off = 0"
            }
        };
        let keys = params![m.appid.as_str(), m.openid.as_str(), m.template_id.as_str()];
        Ok(self.0.prepare_cached(sql)?.execute(keys)? == 1)
    }

    async fn take_unit(
        &mut self,
        key: &str,
        window_start: Millis,
        limit: u64,
    ) -> rusqlite::Result<bool> {
        if limit == 0 {
            return Ok(false);
        }
        let n = self
            .0
            .prepare_cached(
                "INSERT INTO counters (key, window_start, count) VALUES (?1, ?2, 1)
                 ON CONFLICT (key) DO UPDATE SET
                    count = CASE WHEN counters.window_start = excluded.window_start
                                 THEN counters.count + 1 ELSE 1 END,
                    window_start = excluded.window_start
                 WHERE counters.window_start <> excluded.window_start OR counters.count < ?3",
            )?
            .execute(params![key, window_start, limit as i64])?;
        Ok(n == 1)
    }

    async fn insert_message(&mut self, r: &MessageRow<'_>) -> rusqlite::Result<i64> {
        let m = r.m;
        self.0
            .prepare_cached(
                "INSERT INTO messages (appid, openid, user_id, tmpl_id, title, page, rows, data, lang,
                    miniprogram_state, status, idempotency_key, request_hash, created_at, urgent,
                    consume_rule, release_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            )?
            .execute(params![
                m.appid.as_str(),
                m.openid.as_str(),
                r.user_id,
                m.template_id.as_str(),
                m.title,
                m.page.as_ref().map(|p| p.as_str()),
                r.rows,
                r.data,
                m.lang.as_str(),
                m.miniprogram_state.as_str(),
                r.status.as_str(),
                r.key,
                r.hash,
                m.created_at,
                m.urgent,
                r.rule,
                r.release_at,
                m.expires_at
            ])?;
        Ok(self.0.last_insert_rowid())
    }

    async fn bump(
        &mut self,
        appid: &str,
        tmpl: &str,
        now: Millis,
        metric: &str,
        value: f64,
    ) -> rusqlite::Result<()> {
        self.0.prepare_cached(
            "INSERT INTO stats (appid, tmpl_id, hour, metric, count, value) VALUES (?1, ?2, ?3, ?4, 1, ?5)
             ON CONFLICT (appid, hour, tmpl_id, metric) DO UPDATE SET
                count = stats.count + 1, value = stats.value + excluded.value",
        )?
        .execute(params![appid, tmpl, rows::hour_of(now), metric, value])?;
        Ok(())
    }

    async fn event(
        &mut self,
        msgid: i64,
        now: Millis,
        name: &str,
        device: Option<&str>,
        detail: Option<&str>,
    ) -> rusqlite::Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO message_events (msgid, at, event, device, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![msgid, now, name, device, detail])?;
        Ok(())
    }

    async fn push_entry(
        &mut self,
        user_id: &str,
        kind: EntryKind,
        msgid: i64,
        now: Millis,
    ) -> rusqlite::Result<u64> {
        let seq: i64 = self
            .0
            .prepare_cached(
                "UPDATE users SET inbox_seq = inbox_seq + 1 WHERE user_id = ?1 RETURNING inbox_seq",
            )?
            .query_row([user_id], |r| r.get(0))?;
        self.0
            .prepare_cached(
                "INSERT INTO inbox (user_id, seq, kind, msgid, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![user_id, seq, kind.as_str(), msgid, now])?;
        Ok(seq as u64)
    }

    async fn load_message(&mut self, msgid: i64) -> rusqlite::Result<Message> {
        self.0
            .prepare_cached(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m WHERE m.msgid = ?1"
            ))?
            .query_row([msgid], |r| rows::message(r))
    }

    async fn message_keys(&mut self, msgid: i64) -> rusqlite::Result<(String, String, String)> {
        self.0
            .prepare_cached("SELECT appid, openid, tmpl_id FROM messages WHERE msgid = ?1")?
            .query_row([msgid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    }

    async fn enqueue(
        &mut self,
        appid: &str,
        openid: &str,
        ev: &PushEvent,
        now: Millis,
    ) -> rusqlite::Result<()> {
        let ext: Option<bool> = self
            .0
            .prepare_cached("SELECT extension_events FROM push_configs WHERE appid = ?1")?
            .query_row([appid], |r| r.get(0))
            .optional()?;
        match ext {
            None => return Ok(()),
            Some(false) if ev.is_extension() => return Ok(()),
            _ => {}
        }
        self.0
            .prepare_cached(
                "INSERT INTO push_outbox (appid, openid, event, next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![appid, openid, json(ev)?, now])?;
        Ok(())
    }

    async fn refund(&mut self, msgid: i64) -> rusqlite::Result<bool> {
        let n = self
            .0
            .prepare_cached(
                "UPDATE consents SET remaining = remaining + 1, consumed_total = consumed_total - 1
                 WHERE (appid, openid, tmpl_id) = (SELECT appid, openid, tmpl_id FROM messages WHERE msgid = ?1)
                   AND (SELECT consume_rule FROM messages WHERE msgid = ?1) = 'one_time'",
            )?
            .execute([msgid])?;
        Ok(n == 1)
    }

    async fn stop_target(
        &mut self,
        appid: &str,
        msgid: i64,
    ) -> rusqlite::Result<Option<(String, String)>> {
        self.0
            .prepare_cached("SELECT status, user_id FROM messages WHERE msgid = ?1 AND appid = ?2")?
            .query_row(params![msgid, appid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
    }

    async fn set_final(&mut self, msgid: i64, status: &str, now: Millis) -> rusqlite::Result<()> {
        self.0
            .prepare_cached("UPDATE messages SET status = ?3, final_at = ?2 WHERE msgid = ?1")?
            .execute(params![msgid, now, status])?;
        Ok(())
    }

    async fn owns(&mut self, owner: &str, by_user: bool, msgid: i64) -> rusqlite::Result<bool> {
        let sql = if by_user {
            "SELECT 1 FROM messages WHERE msgid = ?1 AND user_id = ?2"
        } else {
            "SELECT 1 FROM messages WHERE msgid = ?1 AND appid = ?2"
        };
        let found: Option<i64> = self
            .0
            .prepare_cached(sql)?
            .query_row(params![msgid, owner], |r| r.get(0))
            .optional()?;
        Ok(found.is_some())
    }

    async fn record_delivery(
        &mut self,
        msgid: i64,
        device: &str,
        now: Millis,
    ) -> rusqlite::Result<bool> {
        Ok(self
            .0
            .prepare_cached(
                "INSERT OR IGNORE INTO deliveries (msgid, device, at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![msgid, device, now])?
            == 1)
    }

    async fn mark_delivered(&mut self, msgid: i64, now: Millis) -> rusqlite::Result<bool> {
        Ok(self
            .0
            .prepare_cached(
                "UPDATE messages SET status = 'delivered', delivered_at = ?2 WHERE msgid = ?1 AND status = 'accepted'",
            )?
            .execute(params![msgid, now])?
            == 1)
    }

    async fn user_message(
        &mut self,
        user_id: &str,
        msgid: i64,
    ) -> rusqlite::Result<Option<Message>> {
        self.0
            .prepare_cached(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m WHERE m.msgid = ?1 AND m.user_id = ?2"
            ))?
            .query_row(params![msgid, user_id], |r| rows::message(r))
            .optional()
    }

    async fn mark_opened(&mut self, msgid: i64, now: Millis) -> rusqlite::Result<()> {
        self.0
            .prepare_cached(
                "UPDATE messages SET opened_at = COALESCE(opened_at, ?2) WHERE msgid = ?1",
            )?
            .execute(params![msgid, now])?;
        Ok(())
    }
}
