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
use crate::policy::{CapRule, Policy, QuietHours, QuotaCheck};
use crate::push::{OutboxItem, PushAttempt, PushConfig, PushEvent};
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
    /// Minted by the admin API for the web console; isolated from both, so opening the
    /// console never replaces the app server's token.
    Console,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Normal => "normal",
            TokenKind::Stable => "stable",
            TokenKind::Console => "console",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "normal" => Some(TokenKind::Normal),
            "stable" => Some(TokenKind::Stable),
            "console" => Some(TokenKind::Console),
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
    pub urgent: bool,
    /// Not deliverable before this time: `Scheduled` (send_at) or `Held` (quiet hours).
    pub hold: Option<(MessageStatus, Millis)>,
    pub expires_at: Option<Millis>,
    /// Counters that must all admit the send, in the same atomic step.
    pub quotas: Vec<QuotaCheck>,
    pub created_at: Millis,
}

// `Accepted` carries the inbox entry for the fast path; outcomes are short-lived values,
// so the size difference costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Stored; `entry` is its inbox entry when it is deliverable at once.
    Accepted {
        msgid: MsgId,
        entry: Option<InboxEntry>,
    },
    /// Same idempotency key, same request: the first message, nothing consumed again.
    Replayed(MsgId),
    IdempotencyConflict,
    UnknownOpenId,
    NoConsent,
    Capped(CapRule),
}

/// Where a message is in its life. Final: delivered may still become recalled;
/// recalled, expired and cancelled are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Waiting for its `send_at`.
    Scheduled,
    /// Waiting for quiet hours to end.
    Held,
    /// In the user's inbox, not yet acknowledged by any device.
    Accepted,
    /// Acknowledged by at least one device.
    Delivered,
    Recalled,
    Expired,
    Cancelled,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 7] = [
        MessageStatus::Scheduled,
        MessageStatus::Held,
        MessageStatus::Accepted,
        MessageStatus::Delivered,
        MessageStatus::Recalled,
        MessageStatus::Expired,
        MessageStatus::Cancelled,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Scheduled => "scheduled",
            MessageStatus::Held => "held",
            MessageStatus::Accepted => "accepted",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Recalled => "recalled",
            MessageStatus::Expired => "expired",
            MessageStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
    /// Not yet delivered and not final: cancel refunds, TTL expires it.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            MessageStatus::Scheduled | MessageStatus::Held | MessageStatus::Accepted
        )
    }
    /// A message entry in this state is not shown on a device.
    pub fn is_gone(self) -> bool {
        matches!(
            self,
            MessageStatus::Recalled | MessageStatus::Expired | MessageStatus::Cancelled
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub urgent: bool,
    /// When it becomes (or became) deliverable.
    pub release_at: Millis,
    pub expires_at: Option<Millis>,
    pub created_at: Millis,
    pub delivered_at: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A notification card.
    Message,
    /// A tombstone: the card with this msgid was recalled.
    Recall,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Message => "message",
            EntryKind::Recall => "recall",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "message" => Some(EntryKind::Message),
            "recall" => Some(EntryKind::Recall),
            _ => None,
        }
    }
}

/// One entry of a user's inbox. `seq` counts 1, 2, 3 … per user without gaps, so a
/// device's cursor (the last seq it saw) says exactly what it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    pub user_id: UserId,
    pub seq: u64,
    pub kind: EntryKind,
    pub message: Message,
}

/// One analytics counter: `metric` counted `count` times (and summing `value`) for a
/// template in the hour starting at `hour`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatRow {
    pub hour: Millis,
    pub template_id: String,
    pub metric: String,
    pub count: u64,
    pub value: f64,
}

/// Which messages `list_messages` returns.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub status: Option<MessageStatus>,
    pub template_id: Option<String>,
    pub openid: Option<String>,
    /// Only messages with a smaller msgid (paging backwards).
    pub before: Option<u64>,
    pub limit: usize,
}

/// One line of a message's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub at: Millis,
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// It had not been delivered: cancelled, the grant given back (one-time templates).
    /// A tombstone is written when the card may already be on a device.
    Cancelled {
        refunded: bool,
        tombstone: Option<InboxEntry>,
    },
    /// It had been delivered: recalled, with a tombstone for the devices.
    Recalled {
        tombstone: InboxEntry,
    },
    /// Nothing changed: the message is in this state.
    TooLate(MessageStatus),
    NotFound,
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
    /// Marks the code used if it is valid and was made for `appid`; says why not
    /// otherwise (a code of another app is `Unknown` and stays usable by its own app).
    async fn consume_login_code(
        &self,
        code: &str,
        appid: &AppId,
        now: Millis,
    ) -> Result<CodeOutcome, StoreError>;

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
    async fn timeline(&self, msgid: MsgId) -> Result<Vec<TimelineEvent>, StoreError>;
    /// Cancel (`recall = false`: only before delivery) or recall (`recall = true`: also
    /// after delivery). Pending messages are cancelled and their one-time grant refunded.
    async fn stop_message(
        &self,
        appid: &AppId,
        msgid: MsgId,
        recall: bool,
        now: Millis,
    ) -> Result<StopOutcome, StoreError>;
    #[allow(clippy::too_many_arguments)] // one write: the event, its counter and its push
    /// Records an event on the timeline of one of the app's messages and counts it (with
    /// `value`) in the analytics under the same name; false if the message is unknown.
    async fn add_event(
        &self,
        appid: &AppId,
        msgid: MsgId,
        event: &str,
        detail: Option<&str>,
        value: Option<f64>,
        push: Option<&PushEvent>,
        now: Millis,
    ) -> Result<bool, StoreError>;

    // ---- delivery
    /// Inbox entries of a user after `after_seq`, in order, at most `limit`.
    async fn inbox(
        &self,
        user_id: &UserId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, StoreError>;
    /// A device acknowledged a message of its user. True when this made it `delivered`.
    async fn ack(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        device: &str,
        now: Millis,
    ) -> Result<bool, StoreError>;
    /// The user tapped a card; returns the message (for its page) if it is the user's.
    async fn open(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        device: &str,
        now: Millis,
    ) -> Result<Option<Message>, StoreError>;
    /// Makes scheduled and held messages whose time has come deliverable.
    async fn release_due(&self, now: Millis, limit: usize) -> Result<Vec<InboxEntry>, StoreError>;
    /// Expires undelivered messages past their TTL and refunds their grants.
    async fn expire_due(&self, now: Millis, limit: usize) -> Result<Vec<MsgId>, StoreError>;

    // ---- policy
    async fn get_policy(&self, appid: &AppId) -> Result<Option<Policy>, StoreError>;
    async fn set_policy(&self, appid: &AppId, policy: &Policy) -> Result<(), StoreError>;
    async fn user_quiet_hours(&self, user_id: &UserId) -> Result<Option<QuietHours>, StoreError>;
    async fn set_user_quiet_hours(
        &self,
        user_id: &UserId,
        q: Option<&QuietHours>,
    ) -> Result<(), StoreError>;

    // ---- message push
    async fn get_push_config(&self, appid: &AppId) -> Result<Option<PushConfig>, StoreError>;
    /// None removes the config; queued events of the app are then dropped by the worker.
    async fn set_push_config(
        &self,
        appid: &AppId,
        config: Option<&PushConfig>,
    ) -> Result<(), StoreError>;
    /// Claims due outbox rows, at most one per (app, openid) and only the oldest pending
    /// one of each (per-user order), leasing them until `lease_until`.
    async fn claim_push(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError>;
    /// Records an attempt; `next` None with `attempt.ok` ends the row delivered, None
    /// without ok ends it given up, Some schedules the retry.
    async fn finish_push(
        &self,
        appid: &AppId,
        attempt: &PushAttempt,
        next: Option<Millis>,
    ) -> Result<(), StoreError>;
    async fn push_attempts(
        &self,
        appid: &AppId,
        limit: usize,
    ) -> Result<Vec<PushAttempt>, StoreError>;
    /// Turns a template off for the user from a received card ("stop receiving this"),
    /// as the settings switch does. Returns the message's template, None if not the user's.
    /// Counts a refused send (by WeChat errcode or rule name) for analytics.
    async fn record_refusal(
        &self,
        appid: &AppId,
        template_id: &str,
        reason: &str,
        now: Millis,
    ) -> Result<(), StoreError>;
    /// Counter rows of an app between two times, optionally for one template.
    async fn stats(
        &self,
        appid: &AppId,
        template_id: Option<&str>,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<StatRow>, StoreError>;
    /// The app's messages, newest first, filtered.
    async fn list_messages(
        &self,
        appid: &AppId,
        filter: &MessageFilter,
    ) -> Result<Vec<Message>, StoreError>;
    async fn unsubscribe_from_message(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        now: Millis,
    ) -> Result<Option<TemplateId>, StoreError>;
}
