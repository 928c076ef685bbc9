//! Push rules (the app's policy, users' own quiet hours) and the analytics counters, on
//! the embedded store.

use super::SqliteStore;
use super::steps::Sq;
use crate::flow::{Steps, ready};
use crate::rows;
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tuisong_core::clock::Millis;
use tuisong_core::ids::{AppId, UserId};
use tuisong_core::policy::{Policy, QuietHours};
use tuisong_core::store::{PolicyStore, StatRow, StatsStore, StoreError};

#[async_trait]
impl PolicyStore for SqliteStore {
    async fn get_policy(&self, appid: &AppId) -> Result<Option<Policy>, StoreError> {
        let appid = appid.clone();
        let text: Option<String> = self
            .read(move |c| {
                c.prepare_cached("SELECT policy FROM policies WHERE appid = ?1")?
                    .query_row([appid.as_str()], |r| r.get(0))
                    .optional()
            })
            .await?;
        rows::parse_doc(text, "policy")
    }

    async fn set_policy(&self, appid: &AppId, policy: &Policy) -> Result<(), StoreError> {
        let appid = appid.clone();
        let text = rows::doc(policy)?;
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO policies (appid, policy) VALUES (?1, ?2)
                 ON CONFLICT (appid) DO UPDATE SET policy = excluded.policy",
            )?
            .execute(params![appid.as_str(), text])?;
            Ok(())
        })
        .await
    }

    async fn user_quiet_hours(&self, user_id: &UserId) -> Result<Option<QuietHours>, StoreError> {
        let user = user_id.clone();
        let text: Option<String> = self
            .read(move |c| {
                Ok(
                    c.prepare_cached("SELECT quiet_hours FROM users WHERE user_id = ?1")?
                        .query_row([user.as_str()], |r| r.get::<_, Option<String>>(0))
                        .optional()?
                        .flatten(),
                )
            })
            .await?;
        rows::parse_doc(text, "quiet hours")
    }

    async fn set_user_quiet_hours(
        &self,
        user_id: &UserId,
        q: Option<&QuietHours>,
    ) -> Result<(), StoreError> {
        let user = user_id.clone();
        let text = q.map(rows::doc).transpose()?;
        self.write(move |c| {
            c.prepare_cached("UPDATE users SET quiet_hours = ?2 WHERE user_id = ?1")?
                .execute(params![user.as_str(), text])?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl StatsStore for SqliteStore {
    async fn record_refusal(
        &self,
        appid: &AppId,
        template_id: &str,
        reason: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let (appid, tmpl, metric) = (
            appid.clone(),
            template_id.to_owned(),
            format!("refused:{reason}"),
        );
        self.write(move |c| ready(Sq(c).bump(appid.as_str(), &tmpl, now, &metric, 0.0)))
            .await
    }

    async fn stats(
        &self,
        appid: &AppId,
        template_id: Option<&str>,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<StatRow>, StoreError> {
        let (appid, tmpl) = (appid.clone(), template_id.map(str::to_owned));
        self.read(move |c| {
            c.prepare_cached(
                "SELECT hour, tmpl_id, metric, count, value FROM stats
                 WHERE appid = ?1 AND hour >= ?2 AND hour < ?3 AND (?4 IS NULL OR tmpl_id = ?4)
                 ORDER BY hour, tmpl_id, metric",
            )?
            .query_map(params![appid.as_str(), from, to, tmpl], |r| rows::stat(r))?
            .collect()
        })
        .await
    }
}
