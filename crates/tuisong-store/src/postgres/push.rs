//! Message push (消息推送) on PostgreSQL: the receiver config, claiming outbox rows for
//! the worker (the oldest pending row of each user, skipping rows another node holds),
//! and the attempt log.

use super::PgStore;
use super::error::{be, collect, lim};
use super::tx::in_tx;
use crate::rows::{self, ATTEMPT_COLS, Cells, OUTBOX_COLS};
use async_trait::async_trait;
use tuisong_core::clock::Millis;
use tuisong_core::ids::AppId;
use tuisong_core::push::{ClaimLimits, OutboxItem, PushAttempt, PushConfig};
use tuisong_core::store::{PushStore, StoreError};

#[async_trait]
impl PushStore for PgStore {
    async fn get_push_config(&self, appid: &AppId) -> Result<Option<PushConfig>, StoreError> {
        let text: Option<String> = self
            .read_opt(
                "SELECT config FROM push_configs WHERE appid = $1",
                &[&appid.as_str()],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(be)?;
        rows::parse_doc(text, "push config")
    }

    async fn set_push_config(
        &self,
        appid: &AppId,
        config: Option<&PushConfig>,
    ) -> Result<(), StoreError> {
        let row = config
            .map(|cfg| rows::doc(cfg).map(|t| (t, cfg.extension_events)))
            .transpose()?;
        in_tx!(self, |tx| {
            match &row {
                Some((text, ext)) => {
                    tx.exec(
                        "INSERT INTO push_configs (appid, config, extension_events) VALUES ($1, $2, $3)
                         ON CONFLICT (appid) DO UPDATE SET config = excluded.config,
                            extension_events = excluded.extension_events",
                        &[&appid.as_str(), text, ext],
                    )
                    .await?
                }
                None => {
                    tx.exec(
                        "DELETE FROM push_configs WHERE appid = $1",
                        &[&appid.as_str()],
                    )
                    .await?
                }
            };
        })
    }

    async fn claim_push(
        &self,
        now: Millis,
        lease_until: Millis,
        limits: &ClaimLimits,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let returning: String = OUTBOX_COLS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let busy_apps: Vec<String> = limits.in_flight.keys().cloned().collect();
        let busy_counts: Vec<i64> = limits.in_flight.values().map(|n| lim(*n)).collect();
        // `heads`: the oldest pending row of each user, if due; `rn` numbers each app's
        // heads oldest first, so ordering by it makes the apps take turns, and `rn` plus
        // what the app has in flight bounds its share. A row another node is claiming is
        // skipped, not waited for: while it is locked (and after, when its lease is in the
        // future) the user's later rows do not qualify either. The state is re-checked on
        // the locked row itself, so a row claimed by a node that committed meanwhile is
        // not taken again.
        let claim = format!(
            "WITH heads AS (
                SELECT o.id, o.appid, o.next_attempt_at AS due,
                       ROW_NUMBER() OVER (PARTITION BY o.appid
                                          ORDER BY o.next_attempt_at, o.id) AS rn
                FROM push_outbox o
                WHERE o.status = 'pending' AND o.next_attempt_at <= $1
                  AND o.id = (SELECT MIN(p.id) FROM push_outbox p
                              WHERE p.appid = o.appid AND p.openid = o.openid
                                AND p.status = 'pending')),
             busy AS (SELECT * FROM unnest($5::text[], $6::bigint[]) AS b(appid, n)),
             picked AS (
                SELECT o.id, h.due, h.rn FROM heads h JOIN push_outbox o ON o.id = h.id
                WHERE o.status = 'pending' AND o.next_attempt_at <= $1
                  AND h.rn + COALESCE((SELECT b.n FROM busy b WHERE b.appid = h.appid), 0) <= $4
                ORDER BY h.rn, h.due, h.id LIMIT $3
                FOR UPDATE OF o SKIP LOCKED)
             UPDATE push_outbox u SET next_attempt_at = $2 FROM picked
             WHERE u.id = picked.id
             RETURNING {returning}, picked.due, picked.rn"
        );
        let (total, per_app) = (lim(limits.total), lim(limits.per_app));
        in_tx!(self, |tx| {
            let rows = tx
                .all(
                    &claim,
                    &[
                        &now,
                        &lease_until,
                        &total,
                        &per_app,
                        &busy_apps,
                        &busy_counts,
                    ],
                )
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push((r.int(7)?, r.int(6)?, rows::outbox_item(r)?));
            }
            out.sort_by_key(|(rn, due, item)| (*rn, *due, item.id));
            out.into_iter().map(|(_, _, i)| i).collect::<Vec<_>>()
        })
    }

    async fn finish_push(
        &self,
        appid: &AppId,
        a: &PushAttempt,
        next: Option<Millis>,
    ) -> Result<(), StoreError> {
        let insert = format!(
            "INSERT INTO push_attempts (appid, {ATTEMPT_COLS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        in_tx!(self, |tx| {
            match (a.ok, next) {
                (true, _) => {
                    tx.exec(
                        "UPDATE push_outbox SET status = 'delivered', attempts = attempts + 1 WHERE id = $1 AND status = 'pending'",
                        &[&a.outbox_id],
                    )
                    .await?
                }
                (false, None) => {
                    tx.exec(
                        "UPDATE push_outbox SET status = 'dead', attempts = attempts + 1 WHERE id = $1 AND status = 'pending'",
                        &[&a.outbox_id],
                    )
                    .await?
                }
                (false, Some(t)) => {
                    tx.exec(
                        "UPDATE push_outbox SET next_attempt_at = $2, attempts = attempts + 1 WHERE id = $1 AND status = 'pending'",
                        &[&a.outbox_id, &t],
                    )
                    .await?
                }
            };
            tx.exec(
                &insert,
                &[
                    &appid.as_str(),
                    &a.at,
                    &a.outbox_id,
                    &a.event,
                    &a.openid,
                    &i64::from(a.attempt),
                    &a.ok,
                    &a.http_status.map(i64::from),
                    &a.error,
                    &(a.duration_ms as i64),
                    &a.outcome,
                ],
            )
            .await?;
            // Keep the last 1000 attempts per app.
            tx.exec(
                "DELETE FROM push_attempts WHERE appid = $1 AND id < (
                    SELECT id FROM push_attempts WHERE appid = $1 ORDER BY id DESC LIMIT 1 OFFSET 999)",
                &[&appid.as_str()],
            )
            .await?;
        })
    }

    async fn push_attempts(
        &self,
        appid: &AppId,
        limit: usize,
    ) -> Result<Vec<PushAttempt>, StoreError> {
        let sql = format!(
            "SELECT {ATTEMPT_COLS} FROM push_attempts WHERE appid = $1 ORDER BY id DESC LIMIT $2"
        );
        let rows = self.read_all(&sql, &[&appid.as_str(), &lim(limit)]).await?;
        collect(rows, rows::attempt)
    }
}
