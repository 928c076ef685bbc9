//! The push rules of an app (caps, quiet hours, urgent budget) and users' own quiet
//! hours. Owns both caches; the send step reads them on every send.

use super::Platform;
use crate::error::Result;
use crate::ids::{AppId, UserId};
use crate::notify::CacheChange;
use crate::policy::{Policy, QuietHours};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// Policies by app, read through to the store; a change anywhere evicts.
#[derive(Default)]
pub(super) struct PolicyCache {
    map: RwLock<HashMap<AppId, Arc<Policy>>>,
}

impl PolicyCache {
    pub(super) fn forget(&self, appid: &AppId) {
        self.map.write().remove(appid);
    }
}

/// Users' own quiet hours (None cached too: most users set none).
#[derive(Default)]
pub(super) struct QuietCache {
    pub(super) map: RwLock<HashMap<UserId, Option<QuietHours>>>,
}

impl QuietCache {
    pub(super) fn forget(&self, user: &UserId) {
        self.map.write().remove(user);
    }
}

impl Platform {
    pub async fn policy(&self, appid: &AppId) -> Result<Arc<Policy>> {
        if let Some(p) = self.policies.map.read().get(appid) {
            return Ok(p.clone());
        }
        let p = Arc::new(self.store.get_policy(appid).await?.unwrap_or_default());
        self.policies.map.write().insert(appid.clone(), p.clone());
        Ok(p)
    }

    pub async fn set_policy(&self, appid: &AppId, p: Policy) -> Result<Arc<Policy>> {
        p.validate()?;
        self.store.set_policy(appid, &p).await?;
        let p = Arc::new(p);
        self.policies.map.write().insert(appid.clone(), p.clone());
        self.changed(CacheChange::PolicyChanged {
            appid: appid.clone(),
        });
        Ok(p)
    }

    pub(super) async fn quiet_hours_of(&self, user: &UserId) -> Result<Option<QuietHours>> {
        if let Some(q) = self.quiet.map.read().get(user) {
            return Ok(q.clone());
        }
        let q = self.store.user_quiet_hours(user).await?;
        self.quiet.map.write().insert(user.clone(), q.clone());
        Ok(q)
    }
}
