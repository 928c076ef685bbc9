//! The `Store`: everything tuisong keeps, behind one trait so the embedded SQLite store
//! and the PostgreSQL store are interchangeable. The trait speaks domain types only.
//!
//! Contract for implementations (checked by the contract suite in `tuisong-store`):
//! - Every method that changes state returns only after the change is durable.
//! - `send` is one atomic step: idempotency check, recipient check, consent consumption
//!   (a conditional update — never read-then-write) and the message insert commit
//!   together or not at all.
//! - `take_quota` and `add_template`'s cap are conditional writes as well, so they hold
//!   under concurrency from many nodes.

use crate::clock::Millis;
use crate::consent::{ConsentState, ConsumeRule, PromptEffect};
use crate::ids::{AppId, MsgId, OpenId, Secret, TemplateId, UserId};
use crate::template::{PrivateTemplate, Row};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store backend error: {0}")]
    Backend(String),
    #[error("store is shut down")]
    Closed,
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub appid: AppId,
    pub name: String,
    pub secret: Secret,
    pub original_id: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// From `/cgi-bin/token`: every call issues a new one.
    Normal,
    /// From `/cgi-bin/stable_token`: reused while valid. Isolated from normal tokens.
    Stable,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Normal => "normal",
            TokenKind::Stable => "stable",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "normal" => Some(TokenKind::Normal),
            "stable" => Some(TokenKind::Stable),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub appid: AppId,
    pub kind: TokenKind,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// A newer token replaced this one; its `expires_at` was cut to the grace period.
    pub superseded: bool,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[redacted]")
            .field("appid", &self.appid)
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at)
            .field("superseded", &self.superseded)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub user_id: UserId,
    pub nickname: String,
    /// SHA-256 of the device token; the token itself is never stored.
    pub token_hash: String,
    pub created_at: Millis,
}

/// A user as one app knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub appid: AppId,
    pub openid: OpenId,
    pub user_id: UserId,
    pub main_switch: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginCode {
    pub code: String,
    pub appid: AppId,
    pub openid: OpenId,
    pub session_key: String,
    pub expires_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeOutcome {
    Valid { openid: OpenId, session_key: String },
    Unknown,
    Used,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddTemplateOutcome {
    Added,
    CapReached,
    Duplicate,
}

/// A message ready to be stored, with everything the send step needs.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub appid: AppId,
    pub openid: OpenId,
    pub template_id: TemplateId,
    pub title: String,
    pub page: Option<String>,
    pub rows: Vec<Row>,
    pub data: BTreeMap<String, String>,
    pub lang: String,
    pub miniprogram_state: String,
    pub consume: ConsumeRule,
    /// (key, hash of the request) when the caller gave an idempotency key.
    pub idempotency: Option<(String, String)>,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    Accepted(MsgId),
    /// Same idempotency key, same request: the first message, nothing consumed again.
    Replayed(MsgId),
    IdempotencyConflict,
    UnknownOpenId,
    NoConsent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Stored, consent consumed, waiting for delivery.
    Accepted,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Accepted => "accepted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accepted" => Some(MessageStatus::Accepted),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub msgid: MsgId,
    pub appid: AppId,
    pub openid: OpenId,
    pub user_id: UserId,
    pub template_id: TemplateId,
    pub title: String,
    pub page: Option<String>,
    pub rows: Vec<Row>,
    pub lang: String,
    pub miniprogram_state: String,
    pub status: MessageStatus,
    pub created_at: Millis,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- apps
    async fn create_app(&self, app: &App) -> Result<(), StoreError>;
    async fn list_apps(&self) -> Result<Vec<App>, StoreError>;
    async fn get_app(&self, appid: &AppId) -> Result<Option<App>, StoreError>;
    /// Returns false when the app does not exist.
    async fn set_app_secret(&self, appid: &AppId, secret: &Secret) -> Result<bool, StoreError>;

    // ---- access tokens
    /// Inserts `token`; every other unexpired token of the same app and kind gets
    /// `expires_at = min(expires_at, supersede_until)` and is marked superseded.
    async fn issue_token(
        &self,
        token: &AccessToken,
        supersede_until: Millis,
    ) -> Result<(), StoreError>;
    async fn get_token(&self, token: &str) -> Result<Option<AccessToken>, StoreError>;
    async fn latest_token(
        &self,
        appid: &AppId,
        kind: TokenKind,
    ) -> Result<Option<AccessToken>, StoreError>;

    // ---- counters
    /// Takes one unit from the counter `key` for the window starting at `window_start`
    /// (a new window resets it). False when `limit` units are already taken.
    async fn take_quota(
        &self,
        key: &str,
        window_start: Millis,
        limit: u64,
    ) -> Result<bool, StoreError>;

    // ---- users and their per-app identities
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>, StoreError>;
    /// The user's subscriber record in `appid`, created with `new_openid` if absent.
    async fn subscriber_for_user(
        &self,
        appid: &AppId,
        user_id: &UserId,
        new_openid: &OpenId,
        now: Millis,
    ) -> Result<Subscriber, StoreError>;
    async fn subscriber(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Option<Subscriber>, StoreError>;
    async fn set_main_switch(
        &self,
        appid: &AppId,
        openid: &OpenId,
        on: bool,
    ) -> Result<(), StoreError>;

    // ---- login codes (wx.login → jscode2session)
    async fn insert_login_code(&self, code: &LoginCode) -> Result<(), StoreError>;
    /// Marks the code used if it is valid; says why not otherwise.
    async fn consume_login_code(&self, code: &str, now: Millis) -> Result<CodeOutcome, StoreError>;

    // ---- private templates
    async fn add_template(
        &self,
        t: &PrivateTemplate,
        cap: usize,
    ) -> Result<AddTemplateOutcome, StoreError>;
    async fn delete_template(&self, appid: &AppId, id: &TemplateId) -> Result<bool, StoreError>;
    async fn list_templates(&self, appid: &AppId) -> Result<Vec<PrivateTemplate>, StoreError>;
    async fn get_template(&self, id: &TemplateId) -> Result<Option<PrivateTemplate>, StoreError>;

    // ---- consent ledger
    async fn consents(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Vec<ConsentState>, StoreError>;
    async fn apply_prompt(
        &self,
        appid: &AppId,
        openid: &OpenId,
        effects: &[PromptEffect],
        now: Millis,
    ) -> Result<(), StoreError>;
    /// Settings page switch for one template: off blocks sends and keeps "reject";
    /// on unblocks and keeps "accept".
    async fn set_item_switch(
        &self,
        appid: &AppId,
        openid: &OpenId,
        template_id: &TemplateId,
        on: bool,
        now: Millis,
    ) -> Result<(), StoreError>;

    // ---- messages
    async fn send(&self, msg: &NewMessage) -> Result<SendOutcome, StoreError>;
    async fn get_message(&self, appid: &AppId, msgid: MsgId)
    -> Result<Option<Message>, StoreError>;
}
