//! The records the store takes and gives back: apps, tokens, users, messages, inbox
//! entries, counters, and the outcomes of the conditional writes.

use crate::clock::Millis;
use crate::consent::ConsumeRule;
use crate::ids::{AppId, MsgId, OpenId, Secret, TemplateId, UserId};
use crate::policy::{CapRule, QuotaCheck};
use crate::template::Row;
use crate::values::{IdempotencyKey, Lang, MiniprogramState, Page};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    pub page: Option<Page>,
    pub rows: Vec<Row>,
    pub data: BTreeMap<String, String>,
    pub lang: Lang,
    pub miniprogram_state: MiniprogramState,
    pub consume: ConsumeRule,
    /// (key, hash of the request) when the caller gave an idempotency key.
    pub idempotency: Option<(IdempotencyKey, String)>,
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
    pub lang: Lang,
    pub miniprogram_state: MiniprogramState,
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
