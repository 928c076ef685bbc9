//! Templates: the public library (`getcategory`, `getpubtemplatetitles`,
//! `getpubtemplatekeywords`) and the app's private templates. Owns the template cache.

use super::Platform;
use crate::error::{Error, Result};
use crate::ids::{AppId, TemplateId};
use crate::library::{Category, PubTemplate};
use crate::notify::CacheChange;
use crate::store::AddTemplateOutcome;
use crate::template::PrivateTemplate;
use crate::template::TemplateError;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// Private templates by id, read through to the store; a deletion anywhere evicts.
#[derive(Default)]
pub(super) struct TemplateCache {
    map: RwLock<HashMap<TemplateId, Arc<PrivateTemplate>>>,
}

impl TemplateCache {
    pub(super) fn forget(&self, id: &TemplateId) {
        self.map.write().remove(id);
    }
}

impl Platform {
    pub fn categories(&self) -> &'static [Category] {
        &self.library.categories
    }

    /// `getpubtemplatetitles`: titles in the given categories, paged.
    pub fn pub_titles(
        &self,
        ids: Option<&str>,
        start: Option<&str>,
        limit: Option<&str>,
    ) -> Result<(usize, Vec<&'static PubTemplate>)> {
        let ids = ids
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(Error::IdsMissing)?;
        let mut cats = Vec::new();
        for part in ids.split(',') {
            let id: u32 = part.trim().parse().map_err(|_| Error::IdsInvalid)?;
            self.library.category(id).ok_or(Error::IdsInvalid)?;
            cats.push(id);
        }
        let start: usize = match start.filter(|s| !s.is_empty()) {
            None => 0,
            Some(s) => s.parse().map_err(|_| Error::StartInvalid)?,
        };
        let limit: usize = match limit.filter(|s| !s.is_empty()) {
            None => 30,
            Some(s) => s.parse().map_err(|_| Error::LimitInvalid)?,
        };
        if !(1..=30).contains(&limit) {
            return Err(Error::LimitInvalid);
        }
        let all: Vec<&PubTemplate> = self
            .library
            .templates
            .iter()
            .filter(|t| cats.contains(&t.category_id))
            .collect();
        let count = all.len();
        Ok((count, all.into_iter().skip(start).take(limit).collect()))
    }

    /// `getpubtemplatekeywords`.
    pub fn pub_keywords(&self, tid: Option<&str>) -> Result<&'static PubTemplate> {
        let tid: u32 = tid
            .and_then(|t| t.trim().parse().ok())
            .ok_or(Error::Template(TemplateError::TidInvalid))?;
        self.library
            .template(tid)
            .ok_or(Error::Template(TemplateError::TidInvalid))
    }

    /// `addtemplate`.
    pub async fn add_template(
        &self,
        appid: &AppId,
        tid: u32,
        kid_list: &[u32],
        scene_desc: &str,
    ) -> Result<Arc<PrivateTemplate>> {
        let t = PrivateTemplate::build(self.library, appid, tid, kid_list, scene_desc, self.now())?;
        match self
            .store
            .add_template(&t, self.settings.template_cap)
            .await?
        {
            AddTemplateOutcome::Added => {
                let t = Arc::new(t);
                self.templates.map.write().insert(t.id.clone(), t.clone());
                Ok(t)
            }
            AddTemplateOutcome::CapReached => Err(Error::TemplateCap(self.settings.template_cap)),
            AddTemplateOutcome::Duplicate => Err(Error::TemplateDuplicate),
        }
    }

    /// `deltemplate`.
    pub async fn delete_template(&self, appid: &AppId, pri_tmpl_id: &str) -> Result<()> {
        let id = TemplateId::parse(pri_tmpl_id).ok_or(Error::PriTmplIdInvalid)?;
        // Evicted only once the store has said the template was this app's: another app's
        // call must not touch the cache of a template it does not own.
        if self.store.delete_template(appid, &id).await? {
            self.templates.map.write().remove(&id);
            self.changed(CacheChange::TemplateDeleted { id });
            Ok(())
        } else {
            Err(Error::PriTmplIdInvalid)
        }
    }

    /// `gettemplate`.
    pub async fn list_templates(&self, appid: &AppId) -> Result<Vec<PrivateTemplate>> {
        Ok(self.store.list_templates(appid).await?)
    }

    /// One of the app's templates, by id string; None when it is not the app's.
    pub async fn app_template(
        &self,
        appid: &AppId,
        id: &str,
    ) -> Result<Option<Arc<PrivateTemplate>>> {
        let Some(id) = TemplateId::parse(id) else {
            return Ok(None);
        };
        let cached = self.templates.map.read().get(&id).cloned();
        let t = match cached {
            Some(t) => t,
            None => match self.store.get_template(&id).await? {
                Some(t) => {
                    let t = Arc::new(t);
                    self.templates.map.write().insert(id, t.clone());
                    t
                }
                None => return Ok(None),
            },
        };
        Ok((t.appid == *appid).then_some(t))
    }
}
