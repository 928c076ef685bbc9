//! An app's private templates on the embedded store: the cap and the duplicate check
//! are read in the same writer transaction as the insert.

use super::SqliteStore;
use super::steps::json;
use crate::rows::{self, TEMPLATE_COLS};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tuisong_core::ids::{AppId, TemplateId};
use tuisong_core::store::{AddTemplateOutcome, StoreError, TemplateStore};
use tuisong_core::template::PrivateTemplate;

#[async_trait]
impl TemplateStore for SqliteStore {
    async fn add_template(
        &self,
        t: &PrivateTemplate,
        cap: usize,
    ) -> Result<AddTemplateOutcome, StoreError> {
        let t = t.clone();
        self.write(move |c| {
            let count: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM templates WHERE appid = ?1")?
                .query_row([t.appid.as_str()], |r| r.get(0))?;
            if count as usize >= cap {
                return Ok(AddTemplateOutcome::CapReached);
            }
            let kid_set = t.keyword_set();
            let dup: Option<i64> = c
                .prepare_cached("SELECT 1 FROM templates WHERE appid = ?1 AND tid = ?2 AND kid_set = ?3")?
                .query_row(params![t.appid.as_str(), t.tid, kid_set], |r| r.get(0))
                .optional()?;
            if dup.is_some() {
                return Ok(AddTemplateOutcome::Duplicate);
            }
            c.prepare_cached(&format!(
                "INSERT INTO templates ({TEMPLATE_COLS}, kid_set) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?
            .execute(params![
                t.id.as_str(),
                t.appid.as_str(),
                t.tid,
                t.title,
                t.kind.code(),
                json(&t.keywords)?,
                t.scene_desc,
                t.created_at,
                kid_set
            ])?;
            Ok(AddTemplateOutcome::Added)
        })
        .await
    }

    async fn delete_template(&self, appid: &AppId, id: &TemplateId) -> Result<bool, StoreError> {
        let (appid, id) = (appid.clone(), id.clone());
        self.write(move |c| {
            Ok(
                c.prepare_cached("DELETE FROM templates WHERE appid = ?1 AND pri_tmpl_id = ?2")?
                    .execute(params![appid.as_str(), id.as_str()])?
                    == 1,
            )
        })
        .await
    }

    async fn list_templates(&self, appid: &AppId) -> Result<Vec<PrivateTemplate>, StoreError> {
        let appid = appid.clone();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {TEMPLATE_COLS} FROM templates WHERE appid = ?1 ORDER BY created_at, rowid"
            ))?
            .query_map([appid.as_str()], |r| rows::template(r))?
            .collect()
        })
        .await
    }

    async fn get_template(&self, id: &TemplateId) -> Result<Option<PrivateTemplate>, StoreError> {
        let id = id.clone();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {TEMPLATE_COLS} FROM templates WHERE pri_tmpl_id = ?1"
            ))?
            .query_row([id.as_str()], |r| rows::template(r))
            .optional()
        })
        .await
    }
}
