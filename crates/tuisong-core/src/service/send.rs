//! One send, in three steps that a reader can find by name:
//!
//! 1. **parse** — [`RawSend::parse`]: the strings a dialect received become typed values
//!    (`OpenId`, `TemplateId`, `Page`, `Lang`, `MiniprogramState`, `Ttl`,
//!    `IdempotencyKey`), or the error WeChat gives for that field. Both dialects call it.
//! 2. **plan** — [`plan_send`]: a pure function of the request, the template, the app's
//!    policy, the user's quiet hours and the clock. It renders the data (keyword rules),
//!    decides hold or schedule, the expiry, the idempotency hash and the quota checks,
//!    and returns the [`NewMessage`] to store — or a refusal. No store, no I/O.
//! 3. **store** — `MessageStore::send`: consumes the grant, takes the caps and inserts the
//!    message in one atomic step; only then is the send answered.
//!
//! A refused send is counted under its WeChat errcode whichever dialect sent it. Owns the
//! recipient cache (openid → user; the mapping never changes, so it is never evicted).

use super::{Platform, SECOND};
use crate::clock::Millis;
use crate::consent::ConsumeRule;
use crate::error::{Error, Result};
use crate::ids::{AppId, MsgId, OpenId, TemplateId, UserId};
use crate::policy::{self, Policy, QuietHours};
use crate::store::{MessageStatus, NewMessage, SendOutcome};
use crate::template::PrivateTemplate;
use crate::values::{IdempotencyKey, Lang, MAX_AHEAD_SECS, MiniprogramState, Page, Ttl};
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// A send as a dialect received it, values coerced to strings but not yet checked.
#[derive(Debug, Clone, Default)]
pub struct RawSend {
    pub touser: String,
    pub template_id: String,
    pub page: Option<String>,
    pub data: BTreeMap<String, String>,
    pub miniprogram_state: Option<String>,
    pub lang: Option<String>,
    pub idempotency_key: Option<String>,
    /// Skips quiet hours and caps; draws from the urgent budget (native API only).
    pub urgent: bool,
    /// Deliver not before this time (Unix ms; native API only).
    pub send_at: Option<Millis>,
    /// Undelivered this long after its send time → expired, grant refunded.
    pub ttl_seconds: Option<u64>,
    /// What happens to `data` keys the template lacks (see [`ExtraKeys`]).
    pub extra_keys: ExtraKeys,
}

/// `data` keys the template does not have. WeChat ignores them, so its dialect does too
/// (and stores only the template's keys); the native API refuses them, naming the key —
/// a misspelt `thing01` is a bug the caller wants to hear about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExtraKeys {
    #[default]
    Ignore,
    Refuse,
}

/// A send whose every value is parsed. `data` stays a map of strings: its rules depend
/// on the template and are applied by [`plan_send`].
#[derive(Debug, Clone, PartialEq)]
pub struct SendRequest {
    pub touser: OpenId,
    pub template_id: TemplateId,
    pub page: Option<Page>,
    pub data: BTreeMap<String, String>,
    pub miniprogram_state: MiniprogramState,
    pub lang: Lang,
    pub idempotency_key: Option<IdempotencyKey>,
    pub urgent: bool,
    pub send_at: Option<Millis>,
    pub ttl: Option<Ttl>,
    pub extra_keys: ExtraKeys,
}

/// What a send stores: the plan is the message with its holds, expiry and caps.
pub type SendPlan = NewMessage;

/// The answer to an accepted send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendReceipt {
    pub msgid: MsgId,
    /// Same idempotency key as an earlier send: that message, nothing sent again.
    pub replayed: bool,
    /// `accepted`, or `held`/`scheduled` when it waits for quiet hours or `send_at`.
    pub status: MessageStatus,
}

/// An empty string is an absent value in both dialects (spec: UNCONFIRMED, tolerant).
fn present(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty())
}

impl RawSend {
    /// Checks every value that does not need the template, in WeChat's order of errors.
    pub fn parse(self) -> Result<SendRequest> {
        let touser = OpenId::parse(self.touser.trim()).ok_or(Error::OpenIdInvalid)?;
        let template_id =
            TemplateId::parse(self.template_id.trim()).ok_or(Error::TemplateIdInvalid)?;
        let page = match present(self.page.as_deref()) {
            None => None,
            Some(p) => Some(Page::parse(p).ok_or(Error::PageInvalid)?),
        };
        let miniprogram_state = match present(self.miniprogram_state.as_deref()) {
            None => MiniprogramState::default(),
            Some(s) => MiniprogramState::parse(s).ok_or_else(|| {
                Error::BadFormat("miniprogram_state must be developer, trial or formal".into())
            })?,
        };
        let lang = match present(self.lang.as_deref()) {
            None => Lang::default(),
            Some(s) => Lang::parse(s).ok_or_else(|| {
                Error::BadFormat("lang must be zh_CN, en_US, zh_HK or zh_TW".into())
            })?,
        };
        let ttl = match self.ttl_seconds {
            None => None,
            Some(t) => Some(Ttl::from_secs(t).ok_or_else(|| {
                Error::Invalid("ttl_seconds must be between 1 and 2592000 (30 days)".into())
            })?),
        };
        let idempotency_key = match present(self.idempotency_key.as_deref()) {
            None => None,
            Some(k) => Some(IdempotencyKey::parse(k).ok_or_else(|| {
                Error::Invalid("idempotency_key is longer than 255 bytes".into())
            })?),
        };
        Ok(SendRequest {
            touser,
            template_id,
            page,
            data: self.data,
            miniprogram_state,
            lang,
            idempotency_key,
            urgent: self.urgent,
            send_at: self.send_at,
            ttl,
            extra_keys: self.extra_keys,
        })
    }
}

/// The send step's decisions, without the store: render the data by the template's
/// keyword rules, place the message in time (schedule, quiet-hours hold, expiry), hash
/// the request for idempotency and list the caps the store must take atomically.
pub fn plan_send(
    appid: &AppId,
    req: SendRequest,
    template: &PrivateTemplate,
    policy: &Policy,
    user_quiet: Option<&QuietHours>,
    now: Millis,
) -> Result<SendPlan> {
    let mut req = req;
    let known = |key: &str| template.keywords.iter().any(|k| k.key() == key);
    if req.extra_keys == ExtraKeys::Refuse {
        if let Some(extra) = req.data.keys().find(|key| !known(key)) {
            let keys: Vec<String> = template.keywords.iter().map(|k| k.key()).collect();
            return Err(Error::Invalid(format!(
                "data.{extra}: the template has no such keyword (its keywords: {})",
                keys.join(", ")
            )));
        }
    }
    // Only the template's keys are kept: a send cannot store thousands of unused keys.
    req.data.retain(|key, _| known(key));
    let rows = template.render(&req.data)?;
    let send_at = match req.send_at {
        Some(t) if t > now + MAX_AHEAD_SECS as i64 * SECOND => {
            return Err(Error::Invalid("send_at must be within 30 days".into()));
        }
        Some(t) if t > now => Some(t),
        _ => None,
    };
    let expires_at = req.ttl.map(|t| send_at.unwrap_or(now) + t.millis());
    let idempotency = req.idempotency_key.map(|k| {
        let canonical = serde_json::json!({
            "touser": req.touser.as_str(),
            "template_id": template.id.as_str(),
            "page": req.page,
            "data": req.data,
            "lang": req.lang,
            "miniprogram_state": req.miniprogram_state,
            "urgent": req.urgent,
            "send_at": req.send_at,
            "ttl_seconds": req.ttl.map(Ttl::secs),
        });
        let hash = hex::encode(&Sha256::digest(canonical.to_string().as_bytes())[..16]);
        (k, hash)
    });
    let hold = if req.urgent {
        send_at.map(|t| (MessageStatus::Scheduled, t))
    } else {
        match policy::hold_until(
            policy.quiet_hours.as_ref(),
            user_quiet,
            send_at.unwrap_or(now),
        ) {
            Some(end) => Some((MessageStatus::Held, end)),
            None => send_at.map(|t| (MessageStatus::Scheduled, t)),
        }
    };
    let quotas = policy::quota_checks(
        policy,
        appid.as_str(),
        req.touser.as_str(),
        template.id.as_str(),
        req.urgent,
        now,
    );
    Ok(NewMessage {
        appid: appid.clone(),
        openid: req.touser,
        template_id: template.id.clone(),
        title: template.title.clone(),
        page: req.page,
        rows,
        data: req.data,
        lang: req.lang,
        miniprogram_state: req.miniprogram_state,
        consume: ConsumeRule::from(template.kind),
        idempotency,
        urgent: req.urgent,
        hold,
        expires_at,
        quotas,
        created_at: now,
    })
}

/// (appid, openid) → user, read through to the store.
#[derive(Default)]
pub(super) struct RecipientCache {
    map: RwLock<HashMap<(AppId, OpenId), UserId>>,
}

impl Platform {
    /// The user an openid of this app belongs to (cached: the mapping never changes).
    async fn recipient(&self, appid: &AppId, openid: &OpenId) -> Result<Option<UserId>> {
        let key = (appid.clone(), openid.clone());
        if let Some(u) = self.recipients.map.read().get(&key) {
            return Ok(Some(u.clone()));
        }
        let Some(sub) = self.store.subscriber(appid, openid).await? else {
            return Ok(None);
        };
        self.recipients.map.write().insert(key, sub.user_id.clone());
        Ok(Some(sub.user_id))
    }

    /// One send from either dialect: parse, plan, then consume a grant, take the caps and
    /// store the message in one atomic step. A refusal is counted under its errcode.
    #[tracing::instrument(level = "debug", name = "send", skip_all, fields(%appid, urgent = raw.urgent))]
    pub async fn send(&self, appid: &AppId, raw: RawSend) -> Result<SendReceipt> {
        let template_hint: String = raw.template_id.trim().chars().take(64).collect();
        let result = self.send_parsed(appid, raw).await;
        if let Err(e) = &result
            && !matches!(e, Error::Store(_))
        {
            let code = (self.settings.refusal_code)(e);
            self.record_refusal(appid, &template_hint, &code).await;
        }
        result
    }

    async fn send_parsed(&self, appid: &AppId, raw: RawSend) -> Result<SendReceipt> {
        let now = self.now();
        let req = raw.parse()?;
        let template = self
            .app_template(appid, req.template_id.as_str())
            .await?
            .ok_or(Error::TemplateIdInvalid)?;
        let user = self
            .recipient(appid, &req.touser)
            .await?
            .ok_or(Error::OpenIdInvalid)?;
        let policy = self.policy(appid).await?;
        let user_quiet = if req.urgent {
            None
        } else {
            self.quiet_hours_of(&user).await?
        };
        let plan = plan_send(appid, req, &template, &policy, user_quiet.as_ref(), now)?;
        match self.store.send(&plan).await? {
            SendOutcome::Accepted { msgid, entry } => {
                if let Some(e) = entry {
                    self.publish(&e);
                }
                Ok(SendReceipt {
                    msgid,
                    replayed: false,
                    status: plan.hold.map_or(MessageStatus::Accepted, |(s, _)| s),
                })
            }
            // A replay says where the first message is now: read it (the rare path).
            SendOutcome::Replayed(id) => Ok(SendReceipt {
                msgid: id,
                replayed: true,
                status: self.message(appid, id.0).await?.status,
            }),
            SendOutcome::IdempotencyConflict => Err(Error::IdempotencyConflict),
            SendOutcome::UnknownOpenId => Err(Error::OpenIdInvalid),
            SendOutcome::NoConsent => Err(Error::NoConsent),
            SendOutcome::Capped(rule) => Err(Error::Capped(rule)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::Library;
    use crate::template::{TemplateError, example_data};

    const NOW: Millis = 1_795_495_200_000; // 2026-11-24 04:40 UTC = 12:40 in Beijing

    fn template() -> PrivateTemplate {
        let lib = Library::builtin();
        let t = &lib.templates[0];
        let kids: Vec<u32> = t.keywords.iter().take(3).map(|k| k.kid).collect();
        PrivateTemplate::build(lib, &AppId::generate(), t.tid, &kids, "", 0).expect("template")
    }

    fn raw(t: &PrivateTemplate) -> RawSend {
        RawSend {
            touser: OpenId::generate().to_string(),
            template_id: t.id.to_string(),
            data: example_data(t),
            ..RawSend::default()
        }
    }

    fn plan(
        t: &PrivateTemplate,
        r: RawSend,
        p: &Policy,
        q: Option<&QuietHours>,
    ) -> Result<SendPlan> {
        plan_send(&t.appid, r.parse()?, t, p, q, NOW)
    }

    #[test]
    fn parsing_gives_wechats_defaults_and_errors_per_field() {
        let t = template();
        let req = raw(&t).parse().expect("parses");
        assert_eq!(req.lang, Lang::ZhCn);
        assert_eq!(req.miniprogram_state, MiniprogramState::Formal);
        assert_eq!(req.page, None);
        let bad = |f: fn(&mut RawSend)| {
            let mut r = raw(&t);
            f(&mut r);
            r.parse().expect_err("refused")
        };
        assert!(matches!(
            bad(|r| r.touser = "nobody".into()),
            Error::OpenIdInvalid
        ));
        assert!(matches!(
            bad(|r| r.template_id = "x".into()),
            Error::TemplateIdInvalid
        ));
        assert!(matches!(
            bad(|r| r.page = Some("/abs".into())),
            Error::PageInvalid
        ));
        assert!(matches!(
            bad(|r| r.lang = Some("fr".into())),
            Error::BadFormat(_)
        ));
        assert!(matches!(
            bad(|r| r.miniprogram_state = Some("beta".into())),
            Error::BadFormat(_)
        ));
        assert!(matches!(
            bad(|r| r.ttl_seconds = Some(0)),
            Error::Invalid(_)
        ));
        assert!(matches!(
            bad(|r| r.idempotency_key = Some("k".repeat(256))),
            Error::Invalid(_)
        ));
        // Empty strings are absent values.
        let mut r = raw(&t);
        r.page = Some(String::new());
        r.lang = Some(String::new());
        assert_eq!(r.parse().expect("parses").page, None);
    }

    #[test]
    fn a_plain_send_is_deliverable_now_and_consumes_by_the_templates_kind() {
        let t = template();
        let p = plan(&t, raw(&t), &Policy::default(), None).expect("plan");
        assert_eq!(p.hold, None);
        assert_eq!(p.expires_at, None);
        assert_eq!(p.rows.len(), 3);
        assert_eq!(p.consume, ConsumeRule::from(t.kind));
        assert_eq!(p.created_at, NOW);
    }

    #[test]
    fn bad_data_is_refused_by_the_keyword_rules() {
        let t = template();
        let mut r = raw(&t);
        r.data.clear();
        assert!(matches!(
            plan(&t, r, &Policy::default(), None),
            Err(Error::Template(TemplateError::DataInvalid { .. }))
        ));
    }

    #[test]
    fn keys_the_template_lacks_are_dropped_in_wechats_dialect_and_refused_in_the_native_one() {
        let t = template();
        let mut r = raw(&t);
        for i in 0..1000 {
            r.data.insert(format!("thing{}", 100 + i), "x".repeat(20));
        }
        let plan_ = plan(&t, r.clone(), &Policy::default(), None).expect("WeChat ignores them");
        assert_eq!(
            plan_.data,
            example_data(&t),
            "only the template's keys are stored"
        );
        r.extra_keys = ExtraKeys::Refuse;
        match plan(&t, r, &Policy::default(), None) {
            Err(Error::Invalid(m)) => {
                assert!(m.starts_with("data.thing100: "), "{m}");
                assert!(
                    m.contains(&t.keywords[0].key()),
                    "names the template's keys: {m}"
                );
            }
            other => panic!("refused in /v1, got {other:?}"),
        }
    }

    #[test]
    fn send_at_schedules_and_ttl_counts_from_it() {
        let t = template();
        let mut r = raw(&t);
        r.send_at = Some(NOW + 60_000);
        r.ttl_seconds = Some(30);
        let p = plan(&t, r, &Policy::default(), None).expect("plan");
        assert_eq!(p.hold, Some((MessageStatus::Scheduled, NOW + 60_000)));
        assert_eq!(p.expires_at, Some(NOW + 90_000));
        let mut r = raw(&t);
        r.send_at = Some(NOW + MAX_AHEAD_SECS as i64 * SECOND + 1);
        assert!(matches!(
            plan(&t, r, &Policy::default(), None),
            Err(Error::Invalid(_))
        ));
        // A time in the past is now.
        let mut r = raw(&t);
        r.send_at = Some(NOW - 1);
        assert_eq!(
            plan(&t, r, &Policy::default(), None).expect("plan").hold,
            None
        );
    }

    #[test]
    fn quiet_hours_hold_a_send_unless_it_is_urgent() {
        let t = template();
        // 12:00–14:00 Beijing time covers NOW (12:40).
        let q = QuietHours {
            start: "12:00".into(),
            end: "14:00".into(),
            utc_offset: "+08:00".into(),
        };
        let p = plan(&t, raw(&t), &Policy::default(), Some(&q)).expect("plan");
        let (status, until) = p.hold.expect("held");
        assert_eq!(status, MessageStatus::Held);
        assert_eq!(until, NOW + 80 * 60_000);
        let policy = Policy {
            quiet_hours: Some(q),
            urgent_daily_budget: 5,
            ..Policy::default()
        };
        let mut r = raw(&t);
        r.urgent = true;
        let p = plan(&t, r, &policy, None).expect("plan");
        assert_eq!(p.hold, None);
        assert!(p.quotas.iter().all(|c| c.key.starts_with("urgent:")));
    }

    #[test]
    fn the_idempotency_hash_follows_the_request() {
        let t = template();
        let mut a = raw(&t);
        a.idempotency_key = Some("k1".into());
        let mut b = a.clone();
        let ha = plan(&t, a.clone(), &Policy::default(), None)
            .expect("a")
            .idempotency;
        let hb = plan(&t, b.clone(), &Policy::default(), None)
            .expect("b")
            .idempotency;
        assert_eq!(ha, hb);
        b.lang = Some("en_US".into());
        let hc = plan(&t, b, &Policy::default(), None)
            .expect("c")
            .idempotency;
        assert_ne!(ha.map(|x| x.1), hc.map(|x| x.1));
        a.idempotency_key = None;
        assert_eq!(
            plan(&t, a, &Policy::default(), None)
                .expect("d")
                .idempotency,
            None
        );
    }
}
