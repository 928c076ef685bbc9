//! Push rules (the app's policy, users' own quiet hours) and the analytics counters, on
//! PostgreSQL. Counters are summed over their shards when read.

use super::PgStore;
use super::error::{be, collect};
use super::tx::in_tx;
use crate::rows;
use async_trait::async_trait;
use tuisong_core::clock::Millis;
use tuisong_core::ids::{AppId, UserId};
use tuisong_core::policy::{Policy, QuietHours};
use tuisong_core::store::{PolicyStore, StatRow, StatsStore, StoreError};

#[async_trait]
impl PolicyStore for PgStore {
    async fn get_policy(&self, appid: &AppId) -> Result<Option<Policy>, StoreError> {
        let text: Option<String> = self
            .read_opt(
                "SELECT policy FROM policies WHERE appid = $1",
                &[&appid.as_str()],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(be)?;
        rows::parse_doc(text, "policy")
    }

    async fn set_policy(&self, appid: &AppId, policy: &Policy) -> Result<(), StoreError> {
        let text = rows::doc(policy)?;
        in_tx!(self, |tx| {
            tx.exec(
                "INSERT INTO policies (appid, policy) VALUES ($1, $2)
                 ON CONFLICT (appid) DO UPDATE SET policy = excluded.policy",
                &[&appid.as_str(), &text],
            )
            .await?;
        })
    }

    async fn user_quiet_hours(&self, user_id: &UserId) -> Result<Option<QuietHours>, StoreError> {
        let text: Option<String> = self
            .read_opt(
                "SELECT quiet_hours FROM users WHERE user_id = $1",
                &[&user_id.as_str()],
            )
            .await?
            .map(|r| r.try_get::<_, Option<String>>(0))
            .transpose()
            .map_err(be)?
            .flatten();
        rows::parse_doc(text, "quiet hours")
    }

    async fn set_user_quiet_hours(
        &self,
        user_id: &UserId,
        q: Option<&QuietHours>,
    ) -> Result<(), StoreError> {
        let text = q.map(rows::doc).transpose()?;
        in_tx!(self, |tx| {
            tx.exec(
                "UPDATE users SET quiet_hours = $2 WHERE user_id = $1",
                &[&user_id.as_str(), &text],
            )
            .await?;
        })
    }
}

#[async_trait]
impl StatsStore for PgStore {
    async fn record_refusal(
        &self,
        appid: &AppId,
        template_id: &str,
        reason: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let metric = format!("refused:{reason}");
        in_tx!(self, |tx| {
            tx.bump(appid.as_str(), template_id, now, &metric, 0.0);
        })
    }

    async fn stats(
        &self,
        appid: &AppId,
        template_id: Option<&str>,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<StatRow>, StoreError> {
        let rows = self
            .read_all(
                "SELECT hour, tmpl_id, metric, SUM(count)::BIGINT, SUM(value) FROM stats
                 WHERE appid = $1 AND hour >= $2 AND hour < $3 AND ($4::TEXT IS NULL OR tmpl_id = $4)
                 GROUP BY hour, tmpl_id, metric
                 ORDER BY hour, tmpl_id, metric",
                &[&appid.as_str(), &from, &to, &template_id],
            )
            .await?;
        collect(rows, rows::stat)
    }
}
