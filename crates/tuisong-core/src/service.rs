//! The platform's use cases. Every caller — the WeChat dialect, the /v1 dialect, the
//! device API, the admin API — calls these functions; they hold the business rules and
//! talk to the [`Store`] and the [`Clock`], never to HTTP or SQL.
//!
//! Hot-path state (access tokens, templates, policies, openid → user) is cached in memory and read through to the
//! store on a miss, so a send costs one store round trip: the atomic send step.

use crate::clock::{Clock, Millis};
use crate::consent::{
    ConsentState, ConsumeRule, Decision, PromptEffect, PromptError, PromptFail, PromptRequest,
    PromptTemplate, evaluate_prompt,
};
use crate::error::{Error, Result};
use crate::ids::{
    AppId, MsgId, OpenId, Secret, TemplateId, UserId, generate_original_id, generate_secret,
    random_url_safe,
};
use crate::library::{Category, Library, PubTemplate};
use crate::notify::{CacheChange, Notifier};
use crate::policy::{self, Policy, QuietHours};
use crate::push::PushEvent;
use crate::store::{
    AccessToken, AddTemplateOutcome, App, CodeOutcome, InboxEntry, LoginCode, Message,
    MessageStatus, NewMessage, SendOutcome, StopOutcome, Store, Subscriber, TimelineEvent,
    TokenKind, User,
};
use crate::template::{PrivateTemplate, TEMPLATE_CAP};
use base64::Engine;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

const SECOND: Millis = 1000;

/// Tunables of the platform rules; the defaults are WeChat's numbers (spec §1, §2, §10).
#[derive(Debug, Clone)]
pub struct PlatformSettings {
    pub token_ttl_secs: i64,
    /// How long a replaced token keeps working.
    pub token_grace_secs: i64,
    /// `/cgi-bin/token` calls per app per day.
    pub token_daily_limit: u64,
    pub stable_force_daily_limit: u64,
    pub stable_force_min_interval_secs: i64,
    pub login_code_ttl_secs: i64,
    pub template_cap: usize,
}

impl Default for PlatformSettings {
    fn default() -> Self {
        Self {
            token_ttl_secs: 7200,
            token_grace_secs: 300,
            token_daily_limit: 2000,
            stable_force_daily_limit: 20,
            stable_force_min_interval_secs: 30,
            login_code_ttl_secs: 300,
            template_cap: TEMPLATE_CAP,
        }
    }
}

/// A send as every dialect expresses it, values already coerced to strings.
#[derive(Debug, Clone, Default)]
pub struct SendRequest {
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
}

/// The answer to an accepted send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendReceipt {
    pub msgid: MsgId,
    /// Same idempotency key as an earlier send: that message, nothing sent again.
    pub replayed: bool,
    /// `accepted`, or `held`/`scheduled` when it waits for quiet hours or `send_at`.
    pub status: MessageStatus,
}

/// Longest a message may be scheduled ahead or live before it expires.
pub const MAX_AHEAD_SECS: u64 = 30 * 86_400;

/// An issued access token, as `/cgi-bin/token` answers it.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: i64,
}

/// One row of the readable consent ledger.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub state: ConsentState,
    pub template: Option<Arc<PrivateTemplate>>,
}

/// What `jscode2session` returns.
#[derive(Debug, Clone)]
pub struct Session {
    pub openid: OpenId,
    pub session_key: String,
}

/// The user's subscription settings in one app (`wx.getSetting`).
#[derive(Debug, Clone)]
pub struct SubscriptionSettings {
    pub main_switch: bool,
    pub item_settings: BTreeMap<String, Decision>,
    pub quiet_hours: Option<QuietHours>,
}

pub struct Platform {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    library: &'static Library,
    settings: PlatformSettings,
    tokens: RwLock<HashMap<String, AccessToken>>,
    templates: RwLock<HashMap<TemplateId, Arc<PrivateTemplate>>>,
    policies: RwLock<HashMap<AppId, Arc<Policy>>>,
    /// (appid, openid) → user; immutable once made, so never invalidated.
    recipients: RwLock<HashMap<(AppId, OpenId), UserId>>,
    user_quiet: RwLock<HashMap<UserId, Option<QuietHours>>>,
    notifier: OnceLock<Arc<dyn Notifier>>,
}

/// SHA-256 hex of a device token: what the store keeps instead of the token.
pub fn hash_device_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn mint_token() -> String {
    random_url_safe(96)
}

fn is_token_shaped(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Platform {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: PlatformSettings) -> Self {
        Self {
            store,
            clock,
            library: Library::builtin(),
            settings,
            tokens: RwLock::new(HashMap::new()),
            templates: RwLock::new(HashMap::new()),
            policies: RwLock::new(HashMap::new()),
            recipients: RwLock::new(HashMap::new()),
            user_quiet: RwLock::new(HashMap::new()),
            notifier: OnceLock::new(),
        }
    }

    /// Wires the delivery layer in; set once at start.
    pub fn set_notifier(&self, n: Arc<dyn Notifier>) {
        let _ = self.notifier.set(n);
    }

    fn publish(&self, entry: &InboxEntry) {
        if let Some(n) = self.notifier.get() {
            n.publish(entry);
        }
    }

    fn changed(&self, change: CacheChange) {
        if let Some(n) = self.notifier.get() {
            n.cache_changed(&change);
        }
    }

    /// Applies a change made on another node to this node's caches.
    pub fn apply_remote_change(&self, change: &CacheChange) {
        match change {
            CacheChange::TokensSuperseded { appid, kind, until } => {
                self.supersede_cached(appid, *kind, *until);
            }
            CacheChange::TemplateDeleted { id } => {
                self.templates.write().remove(id);
            }
            CacheChange::PolicyChanged { appid } => {
                self.policies.write().remove(appid);
            }
            CacheChange::QuietHoursChanged { user_id } => {
                self.user_quiet.write().remove(user_id);
            }
        }
    }

    fn supersede_cached(&self, appid: &AppId, kind: TokenKind, until: Millis) {
        let mut cache = self.tokens.write();
        for c in cache.values_mut() {
            if c.appid == *appid && c.kind == kind && c.expires_at > until {
                c.expires_at = until;
                c.superseded = true;
            }
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn library(&self) -> &'static Library {
        self.library
    }

    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    // ------------------------------------------------------------------ apps

    pub async fn create_app(&self, name: &str) -> Result<App> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "name must be 1 to 64 characters without control characters".into(),
            ));
        }
        let app = App {
            appid: AppId::generate(),
            name: name.to_owned(),
            secret: Secret::new(generate_secret()),
            original_id: generate_original_id(),
            created_at: self.now(),
        };
        self.store.create_app(&app).await?;
        Ok(app)
    }

    pub async fn list_apps(&self) -> Result<Vec<App>> {
        Ok(self.store.list_apps().await?)
    }

    pub async fn app(&self, appid: &str) -> Result<App> {
        let appid = AppId::parse(appid).ok_or(Error::NotFound("app"))?;
        self.store
            .get_app(&appid)
            .await?
            .ok_or(Error::NotFound("app"))
    }

    /// A new secret; tokens already issued stay valid until they expire, as on WeChat.
    pub async fn reset_secret(&self, appid: &str) -> Result<App> {
        let mut app = self.app(appid).await?;
        app.secret = Secret::new(generate_secret());
        if !self.store.set_app_secret(&app.appid, &app.secret).await? {
            return Err(Error::NotFound("app"));
        }
        Ok(app)
    }

    /// Checks an appid/secret pair as the token and login endpoints do.
    async fn credentials(&self, appid: Option<&str>, secret: Option<&str>) -> Result<App> {
        let appid = appid.filter(|s| !s.is_empty()).ok_or(Error::AppIdMissing)?;
        let appid = AppId::parse(appid).ok_or(Error::AppIdInvalid)?;
        let app = self
            .store
            .get_app(&appid)
            .await?
            .ok_or(Error::AppIdInvalid)?;
        let secret = secret
            .filter(|s| !s.is_empty())
            .ok_or(Error::SecretMissing)?;
        if !constant_time_eq(secret.as_bytes(), app.secret.expose().as_bytes()) {
            return Err(Error::SecretInvalid);
        }
        Ok(app)
    }

    // ------------------------------------------------------------ access tokens

    /// `GET /cgi-bin/token`: a new token on every call; the previous ones keep working
    /// for the grace period (5 minutes).
    pub async fn token(
        &self,
        grant_type: Option<&str>,
        appid: Option<&str>,
        secret: Option<&str>,
    ) -> Result<IssuedToken> {
        if grant_type != Some("client_credential") {
            return Err(Error::GrantTypeInvalid);
        }
        let app = self.credentials(appid, secret).await?;
        let now = self.now();
        let key = format!("token:{}", app.appid);
        if !self
            .store
            .take_quota(
                &key,
                policy::beijing_day_start(now),
                self.settings.token_daily_limit,
            )
            .await?
        {
            return Err(Error::DailyQuota);
        }
        let t = self
            .issue(&app.appid, TokenKind::Normal, now, now + self.grace())
            .await?;
        Ok(IssuedToken {
            token: t.token,
            expires_in: self.settings.token_ttl_secs,
        })
    }

    /// `POST /cgi-bin/stable_token`: the current stable token while it has more than the
    /// grace period left; a new one in its last 5 minutes; `force_refresh` replaces it at
    /// once, at most 20 times a day and not within 30 s of the previous one.
    pub async fn stable_token(
        &self,
        grant_type: Option<&str>,
        appid: Option<&str>,
        secret: Option<&str>,
        force_refresh: bool,
    ) -> Result<IssuedToken> {
        if grant_type != Some("client_credential") {
            return Err(Error::GrantTypeInvalid);
        }
        let app = self.credentials(appid, secret).await?;
        let now = self.now();
        let current = self
            .store
            .latest_token(&app.appid, TokenKind::Stable)
            .await?
            .filter(|t| t.expires_at > now && !t.superseded);
        let answer = |t: &AccessToken| IssuedToken {
            token: t.token.clone(),
            expires_in: (t.expires_at - now).div_euclid(SECOND),
        };
        if force_refresh {
            if let Some(t) = &current
                && now - t.created_at < self.settings.stable_force_min_interval_secs * SECOND
            {
                return Ok(answer(t));
            }
            let key = format!("stable_force:{}", app.appid);
            if !self
                .store
                .take_quota(
                    &key,
                    policy::beijing_day_start(now),
                    self.settings.stable_force_daily_limit,
                )
                .await?
            {
                return Err(Error::DailyQuota);
            }
            let t = self.issue(&app.appid, TokenKind::Stable, now, now).await?;
            return Ok(answer(&t));
        }
        // Whole seconds, so a reused token always reports expires_in > 300 (silenceper
        // caches a stable token for expires_in - 300 s).
        if let Some(t) = &current
            && (t.expires_at - now).div_euclid(SECOND) > self.settings.token_grace_secs
        {
            return Ok(answer(t));
        }
        let t = self
            .issue(&app.appid, TokenKind::Stable, now, now + self.grace())
            .await?;
        Ok(answer(&t))
    }

    /// An access token for the web console (admin API only): its own kind, so the app
    /// server's tokens are untouched; a new one replaces the previous console token.
    pub async fn console_token(&self, appid: &str) -> Result<IssuedToken> {
        let app = self.app(appid).await?;
        let now = self.now();
        let t = self.issue(&app.appid, TokenKind::Console, now, now).await?;
        Ok(IssuedToken {
            token: t.token,
            expires_in: self.settings.token_ttl_secs,
        })
    }

    fn grace(&self) -> Millis {
        self.settings.token_grace_secs * SECOND
    }

    async fn issue(
        &self,
        appid: &AppId,
        kind: TokenKind,
        now: Millis,
        supersede_until: Millis,
    ) -> Result<AccessToken> {
        let t = AccessToken {
            token: mint_token(),
            appid: appid.clone(),
            kind,
            created_at: now,
            expires_at: now + self.settings.token_ttl_secs * SECOND,
            superseded: false,
        };
        self.store.issue_token(&t, supersede_until).await?;
        self.tokens.write().retain(|_, c| c.expires_at > now);
        self.supersede_cached(appid, kind, supersede_until);
        self.tokens.write().insert(t.token.clone(), t.clone());
        self.changed(CacheChange::TokensSuperseded {
            appid: appid.clone(),
            kind,
            until: supersede_until,
        });
        Ok(t)
    }

    /// The app an `access_token` query parameter belongs to.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<AppId> {
        let token = token.filter(|t| !t.is_empty()).ok_or(Error::TokenMissing)?;
        if !is_token_shaped(token) {
            return Err(Error::TokenInvalid);
        }
        let now = self.now();
        let cached = self.tokens.read().get(token).cloned();
        let t = match cached {
            Some(t) => t,
            None => {
                let t = self
                    .store
                    .get_token(token)
                    .await?
                    .ok_or(Error::TokenNotLatest)?;
                if t.expires_at > now {
                    self.tokens.write().insert(t.token.clone(), t.clone());
                }
                t
            }
        };
        if t.expires_at > now {
            Ok(t.appid)
        } else if t.superseded {
            Err(Error::TokenNotLatest)
        } else {
            Err(Error::TokenExpired)
        }
    }

    // ------------------------------------------------------------------ login

    /// `GET /sns/jscode2session`: trades a `wx.login` code (single use, 5 minutes).
    pub async fn code_to_session(
        &self,
        appid: Option<&str>,
        secret: Option<&str>,
        js_code: Option<&str>,
        grant_type: Option<&str>,
    ) -> Result<Session> {
        let app = self.credentials(appid, secret).await?;
        if grant_type.is_some_and(|g| !g.is_empty() && g != "authorization_code") {
            return Err(Error::GrantTypeInvalid);
        }
        let code = js_code
            .filter(|c| !c.is_empty())
            .ok_or(Error::CodeMissing)?;
        if code.len() > 128 {
            return Err(Error::CodeInvalid);
        }
        match self
            .store
            .consume_login_code(code, &app.appid, self.now())
            .await?
        {
            CodeOutcome::Valid {
                openid,
                session_key,
            } => Ok(Session {
                openid,
                session_key,
            }),
            CodeOutcome::Unknown | CodeOutcome::Expired => Err(Error::CodeInvalid),
            CodeOutcome::Used => Err(Error::CodeUsed),
        }
    }

    // --------------------------------------------------------------- devices

    /// Creates a user; returns it with its device token (shown once, stored hashed).
    pub async fn register_user(&self, nickname: &str) -> Result<(User, String)> {
        let nickname = nickname.trim();
        if nickname.is_empty()
            || nickname.chars().count() > 32
            || nickname.chars().any(char::is_control)
        {
            return Err(Error::Invalid(
                "nickname must be 1 to 32 characters without control characters".into(),
            ));
        }
        let token = format!("dt_{}", random_url_safe(48));
        let user = User {
            user_id: UserId::generate(),
            nickname: nickname.to_owned(),
            token_hash: hash_device_token(&token),
            created_at: self.now(),
        };
        self.store.create_user(&user).await?;
        Ok((user, token))
    }

    pub async fn device_user(&self, token: Option<&str>) -> Result<User> {
        let token = token.filter(|t| !t.is_empty()).ok_or(Error::Unauthorized)?;
        self.store
            .user_by_token_hash(&hash_device_token(token))
            .await?
            .ok_or(Error::Unauthorized)
    }

    async fn subscriber_of(&self, user: &User, appid: &str) -> Result<Subscriber> {
        let app = self.app(appid).await?;
        Ok(self
            .store
            .subscriber_for_user(&app.appid, &user.user_id, &OpenId::generate(), self.now())
            .await?)
    }

    /// `wx.login`: a fresh code for this user in this app.
    pub async fn login_code(&self, user: &User, appid: &str) -> Result<(String, Subscriber)> {
        let sub = self.subscriber_of(user, appid).await?;
        let mut key = [0u8; 16];
        rand::Rng::fill(&mut rand::rng(), &mut key);
        let code = LoginCode {
            code: random_url_safe(32),
            appid: sub.appid.clone(),
            openid: sub.openid.clone(),
            session_key: base64::engine::general_purpose::STANDARD.encode(key),
            expires_at: self.now() + self.settings.login_code_ttl_secs * SECOND,
        };
        self.store.insert_login_code(&code).await?;
        Ok((code.code, sub))
    }

    /// `wx.requestSubscribeMessage`, answered by the device on the user's behalf.
    /// The outer error is a request error; the inner one is WeChat's fail shape.
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
            self.user_quiet.write().insert(user.user_id.clone(), q);
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

    // ------------------------------------------------------------- templates

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
            .ok_or(Error::TidInvalid)?;
        self.library.template(tid).ok_or(Error::TidInvalid)
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
                self.templates.write().insert(t.id.clone(), t.clone());
                Ok(t)
            }
            AddTemplateOutcome::CapReached => Err(Error::TemplateCap(self.settings.template_cap)),
            AddTemplateOutcome::Duplicate => Err(Error::TemplateDuplicate),
        }
    }

    /// `deltemplate`.
    pub async fn delete_template(&self, appid: &AppId, pri_tmpl_id: &str) -> Result<()> {
        let id = TemplateId::parse(pri_tmpl_id).ok_or(Error::PriTmplIdInvalid)?;
        self.templates.write().remove(&id);
        if self.store.delete_template(appid, &id).await? {
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
        let cached = self.templates.read().get(&id).cloned();
        let t = match cached {
            Some(t) => t,
            None => match self.store.get_template(&id).await? {
                Some(t) => {
                    let t = Arc::new(t);
                    self.templates.write().insert(id, t.clone());
                    t
                }
                None => return Ok(None),
            },
        };
        Ok((t.appid == *appid).then_some(t))
    }

    // ----------------------------------------------------------------- sends

    /// The user an openid of this app belongs to (cached: the mapping never changes).
    async fn recipient(&self, appid: &AppId, openid: &OpenId) -> Result<Option<UserId>> {
        let key = (appid.clone(), openid.clone());
        if let Some(u) = self.recipients.read().get(&key) {
            return Ok(Some(u.clone()));
        }
        let Some(sub) = self.store.subscriber(appid, openid).await? else {
            return Ok(None);
        };
        self.recipients.write().insert(key, sub.user_id.clone());
        Ok(Some(sub.user_id))
    }

    async fn quiet_hours_of(&self, user: &UserId) -> Result<Option<QuietHours>> {
        if let Some(q) = self.user_quiet.read().get(user) {
            return Ok(q.clone());
        }
        let q = self.store.user_quiet_hours(user).await?;
        self.user_quiet.write().insert(user.clone(), q.clone());
        Ok(q)
    }

    /// One send: validate, apply the push rules, then consume a grant, take the caps and
    /// store the message in one atomic step. Returns the msgid and whether it was a replay.
    pub async fn send(&self, appid: &AppId, req: SendRequest) -> Result<SendReceipt> {
        let now = self.now();
        let openid = OpenId::parse(req.touser.trim()).ok_or(Error::OpenIdInvalid)?;
        let template = self
            .app_template(appid, req.template_id.trim())
            .await?
            .ok_or(Error::TemplateIdInvalid)?;
        let page = match req.page.filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => {
                if p.starts_with('/')
                    || p.len() > 1024
                    || p.chars().any(|c| c.is_control() || c.is_whitespace())
                {
                    return Err(Error::PageInvalid);
                }
                Some(p)
            }
        };
        let state = match req.miniprogram_state.as_deref().filter(|s| !s.is_empty()) {
            None => "formal",
            Some(s @ ("developer" | "trial" | "formal")) => s,
            Some(_) => {
                return Err(Error::BadFormat(
                    "miniprogram_state must be developer, trial or formal".into(),
                ));
            }
        };
        let lang = match req.lang.as_deref().filter(|s| !s.is_empty()) {
            None => "zh_CN",
            Some(s @ ("zh_CN" | "en_US" | "zh_HK" | "zh_TW")) => s,
            Some(_) => {
                return Err(Error::BadFormat(
                    "lang must be zh_CN, en_US, zh_HK or zh_TW".into(),
                ));
            }
        };
        let rows = template.render(&req.data)?;
        let max_ahead = MAX_AHEAD_SECS as i64 * SECOND;
        let send_at = match req.send_at {
            Some(t) if t > now + max_ahead => {
                return Err(Error::Invalid("send_at must be within 30 days".into()));
            }
            Some(t) if t > now => Some(t),
            _ => None,
        };
        let expires_at = match req.ttl_seconds {
            None => None,
            Some(t) if t == 0 || t > MAX_AHEAD_SECS => {
                return Err(Error::Invalid(
                    "ttl_seconds must be between 1 and 2592000 (30 days)".into(),
                ));
            }
            Some(t) => Some(send_at.unwrap_or(now) + t as i64 * SECOND),
        };
        let idempotency = match req.idempotency_key.filter(|k| !k.is_empty()) {
            None => None,
            Some(k) if k.len() > 255 => {
                return Err(Error::Invalid(
                    "idempotency_key is longer than 255 bytes".into(),
                ));
            }
            Some(k) => {
                let canonical = serde_json::json!({
                    "touser": openid.as_str(),
                    "template_id": template.id.as_str(),
                    "page": page,
                    "data": req.data,
                    "lang": lang,
                    "miniprogram_state": state,
                    "urgent": req.urgent,
                    "send_at": req.send_at,
                    "ttl_seconds": req.ttl_seconds,
                });
                let hash = hex::encode(&Sha256::digest(canonical.to_string().as_bytes())[..16]);
                Some((k, hash))
            }
        };
        let user = self
            .recipient(appid, &openid)
            .await?
            .ok_or(Error::OpenIdInvalid)?;
        let policy = self.policy(appid).await?;
        let hold = if req.urgent {
            send_at.map(|t| (MessageStatus::Scheduled, t))
        } else {
            let user_quiet = self.quiet_hours_of(&user).await?;
            let t0 = send_at.unwrap_or(now);
            match policy::hold_until(policy.quiet_hours.as_ref(), user_quiet.as_ref(), t0) {
                Some(end) => Some((MessageStatus::Held, end)),
                None => send_at.map(|t| (MessageStatus::Scheduled, t)),
            }
        };
        let quotas = policy::quota_checks(
            &policy,
            appid.as_str(),
            openid.as_str(),
            template.id.as_str(),
            req.urgent,
            now,
        );
        let msg = NewMessage {
            appid: appid.clone(),
            openid,
            template_id: template.id.clone(),
            title: template.title.clone(),
            page,
            rows,
            data: req.data,
            lang: lang.to_owned(),
            miniprogram_state: state.to_owned(),
            consume: ConsumeRule::from(template.kind),
            idempotency,
            urgent: req.urgent,
            hold,
            expires_at,
            quotas,
            created_at: now,
        };
        match self.store.send(&msg).await? {
            SendOutcome::Accepted { msgid, entry } => {
                if let Some(e) = entry {
                    self.publish(&e);
                }
                Ok(SendReceipt {
                    msgid,
                    replayed: false,
                    status: msg.hold.map_or(MessageStatus::Accepted, |(s, _)| s),
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

    pub async fn message(&self, appid: &AppId, msgid: u64) -> Result<Message> {
        self.store
            .get_message(appid, MsgId(msgid))
            .await?
            .ok_or(Error::NotFound("message"))
    }

    /// A message and its timeline: `accepted` from the message itself, then every
    /// recorded event (held, scheduled, released, delivered per device, opened,
    /// converted, recalled, expired, cancelled) in the order they happened.
    pub async fn message_timeline(
        &self,
        appid: &AppId,
        msgid: u64,
    ) -> Result<(Message, Vec<TimelineEvent>)> {
        let m = self.message(appid, msgid).await?;
        let mut events = vec![TimelineEvent {
            at: m.created_at,
            event: "accepted".into(),
            device: None,
            detail: m.urgent.then(|| "urgent".to_owned()),
        }];
        events.extend(self.store.timeline(m.msgid).await?);
        Ok((m, events))
    }

    /// Cancel (before delivery) or recall (before or after). Pending messages are
    /// cancelled and refunded; delivered ones get a tombstone on every device.
    pub async fn stop_message(
        &self,
        appid: &AppId,
        msgid: u64,
        recall: bool,
    ) -> Result<&'static str> {
        match self
            .store
            .stop_message(appid, MsgId(msgid), recall, self.now())
            .await?
        {
            StopOutcome::Cancelled { tombstone, .. } => {
                if let Some(t) = tombstone {
                    self.publish(&t);
                }
                Ok("cancelled")
            }
            StopOutcome::Recalled { tombstone } => {
                self.publish(&tombstone);
                Ok("recalled")
            }
            StopOutcome::TooLate(s) => Err(Error::TooLate(s.as_str())),
            StopOutcome::NotFound => Err(Error::NotFound("message")),
        }
    }

    /// The app reports a conversion that came from one of its messages.
    pub async fn conversion(
        &self,
        appid: &AppId,
        msgid: u64,
        event: &str,
        value: Option<f64>,
    ) -> Result<()> {
        let event = event.trim();
        if event.is_empty() || event.chars().count() > 64 || event.chars().any(char::is_control) {
            return Err(Error::Invalid("event must be 1 to 64 characters".into()));
        }
        if value.is_some_and(|v| !v.is_finite()) {
            return Err(Error::Invalid("value must be a finite number".into()));
        }
        let detail = serde_json::json!({"event": event, "value": value}).to_string();
        let m = self.message(appid, msgid).await?;
        let mut extra = vec![("ConversionEvent", event.to_owned())];
        if let Some(v) = value {
            extra.push(("ConversionValue", v.to_string()));
        }
        let push = PushEvent::extension(
            "tuisong_msg_converted",
            m.template_id.as_str(),
            msgid,
            &extra,
        );
        if self
            .store
            .add_event(
                appid,
                MsgId(msgid),
                "converted",
                Some(&detail),
                value,
                Some(&push),
                self.now(),
            )
            .await?
        {
            Ok(())
        } else {
            Err(Error::NotFound("message"))
        }
    }

    // ------------------------------------------------------------- delivery

    pub async fn inbox(
        &self,
        user: &User,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>> {
        Ok(self
            .store
            .inbox(&user.user_id, after_seq, limit.clamp(1, 500))
            .await?)
    }

    /// A device acknowledged a message; true when it was the first delivery.
    pub async fn ack(&self, user: &UserId, msgid: u64, device: &str) -> Result<bool> {
        Ok(self
            .store
            .ack(user, MsgId(msgid), device, self.now())
            .await?)
    }

    /// "Stop receiving this" from a received card: the template is switched off for the
    /// user (sends get 43101) and a change event goes to the app's server.
    pub async fn unsubscribe_from_message(&self, user: &UserId, msgid: u64) -> Result<TemplateId> {
        self.store
            .unsubscribe_from_message(user, MsgId(msgid), self.now())
            .await?
            .ok_or(Error::NotFound("message"))
    }

    /// The user tapped a card: counts the click, returns the message (for its page).
    pub async fn open(&self, user: &UserId, msgid: u64, device: &str) -> Result<Message> {
        self.store
            .open(user, MsgId(msgid), device, self.now())
            .await?
            .ok_or(Error::NotFound("message"))
    }

    /// One pass of the time-driven work: expire what is past its TTL, then release what
    /// is due. Returns how many of each.
    pub async fn run_due(&self) -> Result<(usize, usize)> {
        let now = self.now();
        let mut expired = 0;
        loop {
            let n = self.store.expire_due(now, 500).await?.len();
            expired += n;
            if n < 500 {
                break;
            }
        }
        let mut released = 0;
        loop {
            let entries = self.store.release_due(now, 500).await?;
            for e in &entries {
                self.publish(e);
            }
            released += entries.len();
            if entries.len() < 500 {
                break;
            }
        }
        Ok((expired, released))
    }

    // ------------------------------------------------------------- analytics

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
        granularity: crate::analytics::Granularity,
    ) -> Result<crate::analytics::Report> {
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

    pub async fn list_messages(
        &self,
        appid: &AppId,
        filter: &crate::store::MessageFilter,
    ) -> Result<Vec<Message>> {
        Ok(self.store.list_messages(appid, filter).await?)
    }

    // ---------------------------------------------------------------- policy

    pub async fn policy(&self, appid: &AppId) -> Result<Arc<Policy>> {
        if let Some(p) = self.policies.read().get(appid) {
            return Ok(p.clone());
        }
        let p = Arc::new(self.store.get_policy(appid).await?.unwrap_or_default());
        self.policies.write().insert(appid.clone(), p.clone());
        Ok(p)
    }

    pub async fn set_policy(&self, appid: &AppId, p: Policy) -> Result<Arc<Policy>> {
        p.validate()?;
        self.store.set_policy(appid, &p).await?;
        let p = Arc::new(p);
        self.policies.write().insert(appid.clone(), p.clone());
        self.changed(CacheChange::PolicyChanged {
            appid: appid.clone(),
        });
        Ok(p)
    }

    // ---------------------------------------------------------------- ledger

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

/// Compares secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_window_starts_at_beijing_midnight() {
        // 2026-11-24 15:59:59 UTC is 23:59:59 in Beijing; one second later is a new day.
        let before = 1_795_535_999_000;
        let after = before + 1000;
        assert_ne!(
            policy::beijing_day_start(before),
            policy::beijing_day_start(after)
        );
        assert_eq!(policy::beijing_day_start(after), after);
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
