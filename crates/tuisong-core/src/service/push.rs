//! Message push (消息推送) as a use case: saving a receiver's config only after the
//! receiver passed WeChat's check, and the outbox the push worker drains. The check
//! itself speaks HTTP and WeChat's crypto, so the edge supplies it as a [`ReceiverCheck`];
//! the rule — validate, check, then save — lives here.

use super::Platform;
use crate::error::{Error, Result};
use crate::ids::AppId;
use crate::push::{ClaimLimits, OutboxItem, PushAttempt, PushConfig};
use crate::store::App;
use async_trait::async_trait;

/// Proves a receiver is the app's: the AES key decodes for this appid and the server
/// answers WeChat's GET handshake (spec §7.2). Implemented by the server over HTTP.
#[async_trait]
pub trait ReceiverCheck: Send + Sync {
    async fn check(&self, appid: &AppId, cfg: &PushConfig, now_secs: i64) -> Result<()>;
}

impl Platform {
    /// Validates the config, has the receiver checked, then stores it.
    #[tracing::instrument(level = "debug", name = "save_push_config", skip_all, fields(%appid))]
    pub async fn save_push_config(
        &self,
        appid: &AppId,
        mut cfg: PushConfig,
        check: &dyn ReceiverCheck,
    ) -> Result<PushConfig> {
        cfg.url = cfg.url.trim().to_owned();
        cfg.validate()?;
        check.check(appid, &cfg, self.clock.now_secs()).await?;
        cfg.updated_at = self.now();
        self.store.set_push_config(appid, Some(&cfg)).await?;
        Ok(cfg)
    }

    pub async fn push_config(&self, appid: &AppId) -> Result<PushConfig> {
        self.store
            .get_push_config(appid)
            .await?
            .ok_or(Error::NotFound("push config"))
    }

    /// Runs the receiver check again on the saved config (the console's "test" button).
    pub async fn test_push_config(
        &self,
        appid: &AppId,
        check: &dyn ReceiverCheck,
    ) -> Result<PushConfig> {
        let cfg = self.push_config(appid).await?;
        check.check(appid, &cfg, self.clock.now_secs()).await?;
        Ok(cfg)
    }

    /// Removes the config; the worker then drops the app's queued events.
    pub async fn remove_push_config(&self, appid: &AppId) -> Result<()> {
        Ok(self.store.set_push_config(appid, None).await?)
    }

    /// The latest delivery attempts, newest first (1 to 500).
    pub async fn push_attempts(&self, appid: &AppId, limit: usize) -> Result<Vec<PushAttempt>> {
        Ok(self.store.push_attempts(appid, limit.clamp(1, 500)).await?)
    }

    /// Claims due outbox events (the oldest pending one per user), leased for `lease_ms`,
    /// shared fairly between apps within `limits`.
    pub async fn claim_push(&self, lease_ms: i64, limits: &ClaimLimits) -> Result<Vec<OutboxItem>> {
        let now = self.now();
        Ok(self.store.claim_push(now, now + lease_ms, limits).await?)
    }

    /// Where an app's events go: its config (None once removed) and the app itself.
    pub async fn push_target(&self, appid: &AppId) -> Result<(Option<PushConfig>, Option<App>)> {
        let cfg = self.store.get_push_config(appid).await?;
        let app = self.store.get_app(appid).await?;
        Ok((cfg, app))
    }

    /// Records an attempt: delivered, given up (`next` None) or retried at `next`.
    pub async fn finish_push(
        &self,
        appid: &AppId,
        attempt: &PushAttempt,
        next: Option<i64>,
    ) -> Result<()> {
        Ok(self.store.finish_push(appid, attempt, next).await?)
    }
}
