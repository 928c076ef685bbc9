//! An app's private templates on PostgreSQL: additions to one app take turns under an
//! advisory lock, so the cap holds across nodes.

use super::error::{TxError, collect, json, one};
use super::tx::in_tx;
use super::{LOCK_TEMPLATES, PgStore};
use crate::rows::{self, TEMPLATE_COLS};
use async_trait::async_trait;
use tuisong_core::ids::{AppId, TemplateId};
use tuisong_core::store::{AddTemplateOutcome, StoreError, TemplateStore};
use tuisong_core::template::PrivateTemplate;

#[async_trait]
impl TemplateStore for PgStore {
    async fn add_template(
        &self,
        t: &PrivateTemplate,
        cap: usize,
    ) -> Result<AddTemplateOutcome, StoreError> {
        let kid_set = t.keyword_set();
        let keywords = json(&t.keywords).map_err(TxError::into_store)?;
        let insert = format!(
            "INSERT INTO templates ({TEMPLATE_COLS}, kid_set) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        );
        in_tx!(self, |tx| {
            // Additions to one app take turns (there may be no app row to lock), so the
            // count and the insert cannot interleave with another node's.
            tx.lock(LOCK_TEMPLATES, t.appid.as_str()).await?;
            let count: i64 = tx
                .one(
                    "SELECT COUNT(*) FROM templates WHERE appid = $1",
                    &[&t.appid.as_str()],
                )
                .await?
                .try_get(0)?;
            if count as usize >= cap {
                AddTemplateOutcome::CapReached
            } else if tx
                .opt(
                    "SELECT pri_tmpl_id FROM templates WHERE appid = $1 AND tid = $2 AND kid_set = $3",
                    &[&t.appid.as_str(), &i64::from(t.tid), &kid_set],
                )
                .await?
                .is_some()
            {
                AddTemplateOutcome::Duplicate
            } else {
                tx.exec(
                    &insert,
                    &[
                        &t.id.as_str(),
                        &t.appid.as_str(),
                        &i64::from(t.tid),
                        &t.title,
                        &i64::from(t.kind.code()),
                        &keywords,
                        &t.scene_desc,
                        &t.created_at,
                        &kid_set,
                    ],
                )
                .await?;
                AddTemplateOutcome::Added
            }
        })
    }

    async fn delete_template(&self, appid: &AppId, id: &TemplateId) -> Result<bool, StoreError> {
        in_tx!(self, |tx| {
            tx.exec(
                "DELETE FROM templates WHERE appid = $1 AND pri_tmpl_id = $2",
                &[&appid.as_str(), &id.as_str()],
            )
            .await?
                == 1
        })
    }

    async fn list_templates(&self, appid: &AppId) -> Result<Vec<PrivateTemplate>, StoreError> {
        let sql = format!(
            "SELECT {TEMPLATE_COLS} FROM templates WHERE appid = $1 ORDER BY created_at, n"
        );
        collect(
            self.read_all(&sql, &[&appid.as_str()]).await?,
            rows::template,
        )
    }

    async fn get_template(&self, id: &TemplateId) -> Result<Option<PrivateTemplate>, StoreError> {
        let sql = format!("SELECT {TEMPLATE_COLS} FROM templates WHERE pri_tmpl_id = $1");
        one(self.read_opt(&sql, &[&id.as_str()]).await?, rows::template)
    }
}
