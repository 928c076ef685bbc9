//! The consent ledger as users and apps see it: the subscribe prompt, the settings page
//! (main switch, per-template switches, the user's quiet hours), "stop receiving this"
//! from a card, and the readable ledger.

use super::Platform;
use crate::consent::{
    ConsentState, Decision, PromptEffect, PromptError, PromptFail, PromptRequest, PromptTemplate,
    evaluate_prompt,
};
use crate::error::{Error, Result};
use crate::ids::{AppId, MsgId, OpenId, TemplateId, UserId};
use crate::notify::CacheChange;
use crate::policy::QuietHours;
use crate::store::{Subscriber, User};
use crate::template::PrivateTemplate;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One row of the readable consent ledger.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub state: ConsentState,
    pub template: Option<Arc<PrivateTemplate>>,
}

/// The user's subscription settings in one app (`wx.getSetting`).
#[derive(Debug, Clone)]
pub struct SubscriptionSettings {
    pub main_switch: bool,
    pub item_settings: BTreeMap<String, Decision>,
    pub quiet_hours: Option<QuietHours>,
}

impl Platform {
    /// `wx.requestSubscribeMessage`, answered by the device on the user's behalf.
    /// The outer error is a request error; the inner one is WeChat's fail shape.
    #[tracing::instrument(level = "debug", name = "prompt", skip_all, fields(user = %user.user_id))]
    pub async fn prompt(
        &self,
        user: &User,
        appid: &str,
        req: &PromptRequest,
    ) -> Result<std::result::Result<(Subscriber, Vec<PromptEffect>), PromptFail>> {
        let sub = self.subscriber_of(user, appid).await?;
        let mut resolved: HashMap<String, PromptTemplate> = HashMap::new();
        for id in req.ids.iter().flatten() {
            if let Some(t) = self.app_template(&sub.appid, id).await? {
                resolved.insert(
                    id.clone(),
                    PromptTemplate {
                        id: t.id.clone(),
                        title: t.title.clone(),
                        kind: t.kind,
                    },
                );
            }
        }
        let states: HashMap<TemplateId, ConsentState> = self
            .store
            .consents(&sub.appid, &sub.openid)
            .await?
            .into_iter()
            .map(|s| (s.template_id.clone(), s))
            .collect();
        match evaluate_prompt(
            req,
            |id| resolved.get(id).cloned(),
            sub.main_switch,
            &states,
        ) {
            Ok(effects) => {
                self.store
                    .apply_prompt(&sub.appid, &sub.openid, &effects, self.now())
                    .await?;
                Ok(Ok((sub, effects)))
            }
            Err(PromptError::Fail(f)) => Ok(Err(f)),
            Err(PromptError::DecisionMissing(id)) => Err(Error::Invalid(format!(
                "decisions must say accept or reject for template {id}"
            ))),
        }
    }

    /// `wx.getSetting({withSubscriptions: true})`: the main switch and the kept choices.
    pub async fn subscription_settings(
        &self,
        user: &User,
        appid: &str,
    ) -> Result<SubscriptionSettings> {
        let sub = self.subscriber_of(user, appid).await?;
        let consents = self.store.consents(&sub.appid, &sub.openid).await?;
        Ok(SubscriptionSettings {
            main_switch: sub.main_switch,
            item_settings: consents
                .into_iter()
                .filter_map(|c| c.kept.map(|k| (c.template_id.to_string(), k)))
                .collect(),
            quiet_hours: self.quiet_hours_of(&user.user_id).await?,
        })
    }

    /// The settings page: main switch and per-template switches.
    pub async fn update_settings(
        &self,
        user: &User,
        appid: &str,
        main_switch: Option<bool>,
        items: &BTreeMap<String, Decision>,
        quiet_hours: Option<Option<QuietHours>>,
    ) -> Result<SubscriptionSettings> {
        let sub = self.subscriber_of(user, appid).await?;
        if let Some(Some(q)) = &quiet_hours {
            q.validate("quietHours")?;
        }
        let mut resolved = Vec::with_capacity(items.len());
        for (id, d) in items {
            let t = self
                .app_template(&sub.appid, id)
                .await?
                .ok_or(Error::NotFound("template"))?;
            resolved.push((t.id.clone(), *d));
        }
        if let Some(on) = main_switch {
            self.store
                .set_main_switch(&sub.appid, &sub.openid, on)
                .await?;
        }
        if let Some(q) = quiet_hours {
            self.store
                .set_user_quiet_hours(&user.user_id, q.as_ref())
                .await?;
            self.quiet.map.write().insert(user.user_id.clone(), q);
            self.changed(CacheChange::QuietHoursChanged {
                user_id: user.user_id.clone(),
            });
        }
        let now = self.now();
        for (id, d) in resolved {
            self.store
                .set_item_switch(&sub.appid, &sub.openid, &id, d == Decision::Accept, now)
                .await?;
        }
        self.subscription_settings(user, appid).await
    }

    /// "Stop receiving this" from a received card: the template is switched off for the
    /// user (sends get 43101) and a change event goes to the app's server.
    pub async fn unsubscribe_from_message(&self, user: &UserId, msgid: u64) -> Result<TemplateId> {
        self.store
            .unsubscribe_from_message(user, MsgId(msgid), self.now())
            .await?
            .ok_or(Error::NotFound("message"))
    }

    /// The readable consent ledger of one user in one app.
    pub async fn ledger(
        &self,
        appid: &AppId,
        openid: &str,
    ) -> Result<(Subscriber, Vec<LedgerEntry>)> {
        let openid = OpenId::parse(openid).ok_or(Error::OpenIdInvalid)?;
        let sub = self
            .store
            .subscriber(appid, &openid)
            .await?
            .ok_or(Error::OpenIdInvalid)?;
        let mut out = Vec::new();
        for state in self.store.consents(appid, &openid).await? {
            let template = self.app_template(appid, state.template_id.as_str()).await?;
            out.push(LedgerEntry { state, template });
        }
        Ok((sub, out))
    }
}
