//! The consent ledger on PostgreSQL: prompts (rows upserted in one order, so two prompts
//! of one user never lock crosswise), the settings switches, and "stop receiving this".

use super::PgStore;
use super::error::collect;
use super::steps::switch_item;
use super::tx::in_tx;
use crate::flow;
use crate::rows::{self, CONSENT_COLS};
use async_trait::async_trait;
use tuisong_core::clock::Millis;
use tuisong_core::consent::{ConsentState, Decision, PromptEffect};
use tuisong_core::ids::{AppId, MsgId, OpenId, TemplateId, UserId};
use tuisong_core::store::{ConsentStore, StoreError};

#[async_trait]
impl ConsentStore for PgStore {
    async fn consents(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Vec<ConsentState>, StoreError> {
        let sql = format!(
            "SELECT {CONSENT_COLS} FROM consents WHERE appid = $1 AND openid = $2
             ORDER BY updated_at, tmpl_id"
        );
        let rows = self
            .read_all(&sql, &[&appid.as_str(), &openid.as_str()])
            .await?;
        collect(rows, rows::consent)
    }

    async fn apply_prompt(
        &self,
        appid: &AppId,
        openid: &OpenId,
        effects: &[PromptEffect],
        now: Millis,
    ) -> Result<(), StoreError> {
        let effects = flow::effective(effects);
        if effects.is_empty() {
            return Ok(());
        }
        // Rows in one order (stable: one template's effects keep theirs), so two prompts
        // of one user never lock each other's rows crosswise.
        let mut ordered = effects.clone();
        ordered.sort_by(|a, b| a.template_id.as_str().cmp(b.template_id.as_str()));
        in_tx!(self, |tx| {
            for e in &ordered {
                tx.exec(
                    "INSERT INTO consents (appid, openid, tmpl_id, status, remaining, kept, granted_total, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $5, $7)
                     ON CONFLICT (appid, openid, tmpl_id) DO UPDATE SET
                        status = COALESCE(excluded.status, consents.status),
                        remaining = consents.remaining + excluded.remaining,
                        granted_total = consents.granted_total + excluded.remaining,
                        kept = COALESCE(excluded.kept, consents.kept),
                        updated_at = excluded.updated_at",
                    &[
                        &appid.as_str(),
                        &openid.as_str(),
                        &e.template_id.as_str(),
                        &e.set_status.map(Decision::as_str),
                        &i64::from(e.grant),
                        &e.set_kept.map(Decision::as_str),
                        &now,
                    ],
                )
                .await?;
            }
            flow::prompt_counts(&mut tx, appid.as_str(), openid.as_str(), &effects, now).await?
        })
    }

    async fn set_item_switch(
        &self,
        appid: &AppId,
        openid: &OpenId,
        template_id: &TemplateId,
        on: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        let (appid, openid, tmpl) = (appid.as_str(), openid.as_str(), template_id.as_str());
        in_tx!(self, |tx| switch_item(
            &mut tx, appid, openid, tmpl, on, now
        )
        .await?)
    }

    async fn unsubscribe_from_message(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        now: Millis,
    ) -> Result<Option<TemplateId>, StoreError> {
        let id = msgid.0 as i64;
        in_tx!(self, |tx| {
            let row = tx
                .opt(
                    "SELECT appid, openid, tmpl_id FROM messages WHERE msgid = $1 AND user_id = $2",
                    &[&id, &user_id.as_str()],
                )
                .await?;
            match row {
                None => None,
                Some(r) => {
                    let (appid, openid, tmpl): (String, String, String) =
                        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                    switch_item(&mut tx, &appid, &openid, &tmpl, false, now).await?;
                    Some(TemplateId::from_trusted(tmpl))
                }
            }
        })
    }
}
