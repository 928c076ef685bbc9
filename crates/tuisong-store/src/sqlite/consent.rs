//! The consent ledger on the embedded store: prompts, the settings switches, and
//! "stop receiving this" from a card.

use super::SqliteStore;
use super::steps::{Sq, switch_item};
use crate::flow::{self, ready};
use crate::rows::{self, CONSENT_COLS};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tuisong_core::clock::Millis;
use tuisong_core::consent::{ConsentState, Decision, PromptEffect};
use tuisong_core::ids::{AppId, MsgId, OpenId, TemplateId, UserId};
use tuisong_core::store::{ConsentStore, StoreError};

#[async_trait]
impl ConsentStore for SqliteStore {
    async fn consents(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Vec<ConsentState>, StoreError> {
        let (appid, openid) = (appid.clone(), openid.clone());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {CONSENT_COLS} FROM consents WHERE appid = ?1 AND openid = ?2
                 ORDER BY updated_at, tmpl_id"
            ))?
            .query_map(params![appid.as_str(), openid.as_str()], |r| {
                rows::consent(r)
            })?
            .collect()
        })
        .await
    }

    async fn apply_prompt(
        &self,
        appid: &AppId,
        openid: &OpenId,
        effects: &[PromptEffect],
        now: Millis,
    ) -> Result<(), StoreError> {
        let (appid, openid) = (appid.clone(), openid.clone());
        let effects: Vec<PromptEffect> = flow::effective(effects).into_iter().cloned().collect();
        if effects.is_empty() {
            return Ok(());
        }
        self.write(move |c| {
            let mut stmt = c.prepare_cached(
                "INSERT INTO consents (appid, openid, tmpl_id, status, remaining, kept, granted_total, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5, ?7)
                 ON CONFLICT (appid, openid, tmpl_id) DO UPDATE SET
                    status = COALESCE(excluded.status, consents.status),
                    remaining = consents.remaining + excluded.remaining,
                    granted_total = consents.granted_total + excluded.remaining,
                    kept = COALESCE(excluded.kept, consents.kept),
                    updated_at = excluded.updated_at",
            )?;
            for e in &effects {
                stmt.execute(params![
                    appid.as_str(),
                    openid.as_str(),
                    e.template_id.as_str(),
                    e.set_status.map(Decision::as_str),
                    i64::from(e.grant),
                    e.set_kept.map(Decision::as_str),
                    now
                ])?;
            }
            let refs: Vec<&PromptEffect> = effects.iter().collect();
            ready(flow::prompt_counts(
                &mut Sq(c),
                appid.as_str(),
                openid.as_str(),
                &refs,
                now,
            ))
        })
        .await
    }

    async fn set_item_switch(
        &self,
        appid: &AppId,
        openid: &OpenId,
        template_id: &TemplateId,
        on: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        let (appid, openid, tid) = (appid.clone(), openid.clone(), template_id.clone());
        self.write(move |c| switch_item(c, appid.as_str(), openid.as_str(), tid.as_str(), on, now))
            .await
    }

    async fn unsubscribe_from_message(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        now: Millis,
    ) -> Result<Option<TemplateId>, StoreError> {
        let user = user_id.clone();
        let id = msgid.0 as i64;
        self.write(move |c| {
            let row: Option<(String, String, String)> = c
                .prepare_cached(
                    "SELECT appid, openid, tmpl_id FROM messages WHERE msgid = ?1 AND user_id = ?2",
                )?
                .query_row(params![id, user.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            let Some((appid, openid, tmpl)) = row else {
                return Ok(None);
            };
            switch_item(c, &appid, &openid, &tmpl, false, now)?;
            Ok(Some(TemplateId::from_trusted(tmpl)))
        })
        .await
    }
}
