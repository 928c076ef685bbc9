//! Analytics: counting refused sends and the `/v1/stats` report.

use super::Platform;
use crate::analytics::{Granularity, Report};
use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::ids::{AppId, TemplateId};

impl Platform {
    /// Counts a refused send under its reason (the WeChat errcode, so both dialects
    /// count alike). Best effort: a refusal has no other durable step to join.
    pub async fn record_refusal(&self, appid: &AppId, template_id: &str, reason: &str) {
        let t: String = template_id.chars().take(64).collect();
        if let Err(e) = self
            .store
            .record_refusal(appid, &t, reason, self.now())
            .await
        {
            tracing::warn!(error = %e, "could not count a refused send");
        }
    }

    /// `GET /v1/stats`: the series and the funnel between `from` and `to` (default: the
    /// last 7 days), for one template or all.
    pub async fn stats(
        &self,
        appid: &AppId,
        template_id: Option<&str>,
        from: Option<Millis>,
        to: Option<Millis>,
        granularity: Granularity,
    ) -> Result<Report> {
        let to = to.unwrap_or_else(|| self.now() + 3_600_000);
        let from = from.unwrap_or(to - 7 * 86_400_000);
        if from >= to {
            return Err(Error::Invalid("from must be before to".into()));
        }
        if to - from > 400 * 86_400_000 {
            return Err(Error::Invalid("at most 400 days at a time".into()));
        }
        if let Some(t) = template_id
            && TemplateId::parse(t).is_none()
        {
            return Err(Error::Invalid("template_id is not a template id".into()));
        }
        let start = from.div_euclid(3_600_000) * 3_600_000;
        let rows = self.store.stats(appid, template_id, start, to).await?;
        Ok(crate::analytics::report(&rows, granularity, from, to))
    }
}
