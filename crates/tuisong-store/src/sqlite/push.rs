//! Message push (消息推送) on the embedded store: the receiver config, claiming outbox
//! rows for the worker, and the attempt log.

use super::SqliteStore;
use crate::rows::{self, ATTEMPT_COLS, OUTBOX_COLS};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tuisong_core::clock::Millis;
use tuisong_core::ids::AppId;
use tuisong_core::push::{ClaimLimits, OutboxItem, PushAttempt, PushConfig};
use tuisong_core::store::{PushStore, StoreError};

#[async_trait]
impl PushStore for SqliteStore {
    async fn get_push_config(&self, appid: &AppId) -> Result<Option<PushConfig>, StoreError> {
        let appid = appid.clone();
        let text: Option<String> = self
            .read(move |c| {
                c.prepare_cached("SELECT config FROM push_configs WHERE appid = ?1")?
                    .query_row([appid.as_str()], |r| r.get(0))
                    .optional()
            })
            .await?;
        rows::parse_doc(text, "push config")
    }

    async fn set_push_config(
        &self,
        appid: &AppId,
        config: Option<&PushConfig>,
    ) -> Result<(), StoreError> {
        let appid = appid.clone();
        let row = config
            .map(|cfg| rows::doc(cfg).map(|t| (t, cfg.extension_events)))
            .transpose()?;
        self.write(move |c| {
            match &row {
                Some((text, ext)) => c
                    .prepare_cached(
                        "INSERT INTO push_configs (appid, config, extension_events) VALUES (?1, ?2, ?3)
                         ON CONFLICT (appid) DO UPDATE SET config = excluded.config,
                            extension_events = excluded.extension_events",
                    )?
                    .execute(params![appid.as_str(), text, ext])?,
                None => c
                    .prepare_cached("DELETE FROM push_configs WHERE appid = ?1")?
                    .execute([appid.as_str()])?,
            };
            Ok(())
        })
        .await
    }

    async fn claim_push(
        &self,
        now: Millis,
        lease_until: Millis,
        limits: &ClaimLimits,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let (total, per_app) = (limits.total as i64, limits.per_app as i64);
        let in_flight = serde_json::to_string(&limits.in_flight)
            .map_err(|e| StoreError::Backend(format!("encoding the claim limits: {e}")))?;
        let cols: String = OUTBOX_COLS
            .split(", ")
            .map(|c| format!("o.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.write(move |c| {
            // `heads`: the oldest pending row of each user, if due; `rn` numbers each
            // app's heads oldest first. Ordering by `rn` first makes the apps take turns,
            // and `rn` plus what the app has in flight bounds its share.
            let items: Vec<OutboxItem> = c
                .prepare_cached(&format!(
                    "WITH heads AS (
                        SELECT o.id, o.appid, o.next_attempt_at AS due,
                               ROW_NUMBER() OVER (PARTITION BY o.appid
                                                  ORDER BY o.next_attempt_at, o.id) AS rn
                        FROM push_outbox o
                        WHERE o.status = 'pending' AND o.next_attempt_at <= ?1
                          AND o.id = (SELECT MIN(p.id) FROM push_outbox p
                                      WHERE p.appid = o.appid AND p.openid = o.openid
                                        AND p.status = 'pending'))
                     SELECT {cols} FROM heads h JOIN push_outbox o ON o.id = h.id
                     WHERE h.rn + COALESCE((SELECT CAST(b.value AS INTEGER)
                                            FROM json_each(?4) b WHERE b.key = h.appid), 0) <= ?3
                     ORDER BY h.rn, h.due, h.id LIMIT ?2"
                ))?
                .query_map(params![now, total, per_app, in_flight], |r| {
                    rows::outbox_item(r)
                })?
                .collect::<rusqlite::Result<_>>()?;
            for item in &items {
                c.prepare_cached("UPDATE push_outbox SET next_attempt_at = ?2 WHERE id = ?1")?
                    .execute(params![item.id, lease_until])?;
            }
            Ok(items)
        })
        .await
    }

    async fn finish_push(
        &self,
        appid: &AppId,
        a: &PushAttempt,
        next: Option<Millis>,
    ) -> Result<(), StoreError> {
        let (appid, a) = (appid.clone(), a.clone());
        self.write(move |c| {
            match (a.ok, next) {
                (true, _) => c
                    .prepare_cached("UPDATE push_outbox SET status = 'delivered', attempts = attempts + 1 WHERE id = ?1 AND status = 'pending'")?
                    .execute([a.outbox_id])?,
                (false, None) => c
                    .prepare_cached("UPDATE push_outbox SET status = 'dead', attempts = attempts + 1 WHERE id = ?1 AND status = 'pending'")?
                    .execute([a.outbox_id])?,
                (false, Some(t)) => c
                    .prepare_cached("UPDATE push_outbox SET next_attempt_at = ?2, attempts = attempts + 1 WHERE id = ?1 AND status = 'pending'")?
                    .execute(params![a.outbox_id, t])?,
            };
            c.prepare_cached(&format!(
                "INSERT INTO push_attempts (appid, {ATTEMPT_COLS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                appid.as_str(),
                a.at,
                a.outbox_id,
                a.event,
                a.openid,
                a.attempt,
                a.ok,
                a.http_status,
                a.error,
                a.duration_ms as i64,
                a.outcome
            ])?;
            // Keep the last 1000 attempts per app.
            c.prepare_cached(
                "DELETE FROM push_attempts WHERE appid = ?1 AND id < (
                    SELECT id FROM push_attempts WHERE appid = ?1 ORDER BY id DESC LIMIT 1 OFFSET 999)",
            )?
            .execute([appid.as_str()])?;
            Ok(())
        })
        .await
    }

    async fn push_attempts(
        &self,
        appid: &AppId,
        limit: usize,
    ) -> Result<Vec<PushAttempt>, StoreError> {
        let appid = appid.clone();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {ATTEMPT_COLS} FROM push_attempts WHERE appid = ?1 ORDER BY id DESC LIMIT ?2"
            ))?
            .query_map(params![appid.as_str(), limit as i64], |r| rows::attempt(r))?
            .collect()
        })
        .await
    }
}
