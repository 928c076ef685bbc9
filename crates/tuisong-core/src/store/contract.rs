//! The store contract, one trait per aggregate. A service file names only the part of
//! the store it uses; `Store` is all of them, so `Arc<dyn Store>` is what the platform holds.

use super::StoreError;
use super::records::*;
use crate::clock::Millis;
use crate::consent::{ConsentState, PromptEffect};
use crate::ids::{AppId, MsgId, OpenId, Secret, TemplateId, UserId};
use crate::policy::{Policy, QuietHours};
use crate::push::{ClaimLimits, OutboxItem, PushAttempt, PushConfig, PushEvent};
use crate::template::PrivateTemplate;
use async_trait::async_trait;

/// Apps: their names and secrets.
#[async_trait]
pub trait AppStore: Send + Sync + 'static {
    async fn create_app(&self, app: &App) -> Result<(), StoreError>;
    async fn list_apps(&self) -> Result<Vec<App>, StoreError>;
    async fn get_app(&self, appid: &AppId) -> Result<Option<App>, StoreError>;

    /// Returns false when the app does not exist.
    async fn set_app_secret(&self, appid: &AppId, secret: &Secret) -> Result<bool, StoreError>;
}

/// Access tokens and the counters that rate-limit issuing them.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
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

    /// Takes one unit from the counter `key` for the window starting at `window_start`
    /// (a new window resets it). False when `limit` units are already taken.
    async fn take_quota(
        &self,
        key: &str,
        window_start: Millis,
        limit: u64,
    ) -> Result<bool, StoreError>;
}

/// Users, their per-app identities (openids) and login codes.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
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
    /// Inserts a new code. A user keeps at most [`MAX_OPEN_LOGIN_CODES`] unused codes per
    /// app: inserting one more deletes the oldest unused ones of that (app, openid). Expired
    /// codes of other users are not touched here; `RetentionStore::sweep` removes them.
    async fn insert_login_code(&self, code: &LoginCode) -> Result<(), StoreError>;

    /// Marks the code used if it is valid and was made for `appid`; says why not
    /// otherwise (a code of another app is `Unknown` and stays usable by its own app).
    async fn consume_login_code(
        &self,
        code: &str,
        appid: &AppId,
        now: Millis,
    ) -> Result<CodeOutcome, StoreError>;
}

/// An app's private templates.
#[async_trait]
pub trait TemplateStore: Send + Sync + 'static {
    async fn add_template(
        &self,
        t: &PrivateTemplate,
        cap: usize,
    ) -> Result<AddTemplateOutcome, StoreError>;
    async fn delete_template(&self, appid: &AppId, id: &TemplateId) -> Result<bool, StoreError>;
    async fn list_templates(&self, appid: &AppId) -> Result<Vec<PrivateTemplate>, StoreError>;
    async fn get_template(&self, id: &TemplateId) -> Result<Option<PrivateTemplate>, StoreError>;
}

/// The consent ledger: prompts, switches, grants.
#[async_trait]
pub trait ConsentStore: Send + Sync + 'static {
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
    /// Turns a template off for the user from a received card ("stop receiving this"),
    /// as the settings switch does. Returns the message's template, None if not the user's.
    async fn unsubscribe_from_message(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        now: Millis,
    ) -> Result<Option<TemplateId>, StoreError>;
}

/// Messages: the atomic send step, their lifecycle and timeline.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
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

    /// The app's messages, newest first, filtered.
    async fn list_messages(
        &self,
        appid: &AppId,
        filter: &MessageFilter,
    ) -> Result<Vec<Message>, StoreError>;
}

/// Per-user inboxes: reading, acks, opens and the time-driven releases and expiries.
#[async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    /// Inbox entries of a user after `after_seq`, in order, at most `limit`.
    async fn inbox(
        &self,
        user_id: &UserId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, StoreError>;

    /// A device acknowledged a message of its user: `Some(true)` when this made it
    /// `delivered`, `Some(false)` when it already was, None (nothing changed) when the
    /// message is unknown or another user's.
    async fn ack(
        &self,
        user_id: &UserId,
        msgid: MsgId,
        device: &str,
        now: Millis,
    ) -> Result<Option<bool>, StoreError>;

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
}

/// Push rules: the app's policy and users' own quiet hours.
#[async_trait]
pub trait PolicyStore: Send + Sync + 'static {
    async fn get_policy(&self, appid: &AppId) -> Result<Option<Policy>, StoreError>;
    async fn set_policy(&self, appid: &AppId, policy: &Policy) -> Result<(), StoreError>;
    async fn user_quiet_hours(&self, user_id: &UserId) -> Result<Option<QuietHours>, StoreError>;
    async fn set_user_quiet_hours(
        &self,
        user_id: &UserId,
        q: Option<&QuietHours>,
    ) -> Result<(), StoreError>;
}

/// Message push (消息推送): the receiver config and the durable outbox.
#[async_trait]
pub trait PushStore: Send + Sync + 'static {
    async fn get_push_config(&self, appid: &AppId) -> Result<Option<PushConfig>, StoreError>;

    /// None removes the config; queued events of the app are then dropped by the worker.
    async fn set_push_config(
        &self,
        appid: &AppId,
        config: Option<&PushConfig>,
    ) -> Result<(), StoreError>;

    /// Claims due outbox rows, at most one per (app, openid) and only the oldest pending
    /// one of each (per-user order), leasing them until `lease_until`. Within `limits`:
    /// apps take turns (each app's oldest due row, then each app's second, …), and no app
    /// gets more than its `per_app` share less what it has in flight. The rows come back
    /// in that order.
    async fn claim_push(
        &self,
        now: Millis,
        lease_until: Millis,
        limits: &ClaimLimits,
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
}

/// Analytics counters.
#[async_trait]
pub trait StatsStore: Send + Sync + 'static {
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
}

/// Unused login codes one user may hold in one app; a new `wx.login` beyond this replaces
/// the oldest (a device that logs in again and again never locks itself out, and a
/// flooder's codes cannot pile up).
pub const MAX_OPEN_LOGIN_CODES: usize = 5;

/// What one retention sweep removes; each is swept by its own age rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sweep {
    /// Login codes that expired at or before the cutoff.
    LoginCodes,
    /// Finished messages (delivered, recalled, cancelled, expired) created and last changed
    /// before the cutoff, with their timeline, deliveries and inbox entries. A message
    /// that is still scheduled, held or accepted (deliverable) is never removed.
    Messages,
    /// Message-push outbox rows that were delivered or given up, queued before the cutoff.
    PushOutbox,
    /// Message-push attempt log rows made before the cutoff.
    PushAttempts,
    /// Analytics counters of hours that began before the cutoff.
    Stats,
    /// Quota counters whose window began before the cutoff (a new window resets them).
    Counters,
}

impl Sweep {
    pub const ALL: [Sweep; 6] = [
        Sweep::LoginCodes,
        Sweep::Messages,
        Sweep::PushOutbox,
        Sweep::PushAttempts,
        Sweep::Stats,
        Sweep::Counters,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Sweep::LoginCodes => "login_codes",
            Sweep::Messages => "messages",
            Sweep::PushOutbox => "push_outbox",
            Sweep::PushAttempts => "push_attempts",
            Sweep::Stats => "stats",
            Sweep::Counters => "counters",
        }
    }
}

/// Retention: bounded deletes of what has outlived its use. Never the consent ledger,
/// users, subscribers, apps, templates or a message that may still be delivered.
#[async_trait]
pub trait RetentionStore: Send + Sync + 'static {
    /// Deletes at most `limit` rows of `what` older than `cutoff` (for `Messages`: at most
    /// `limit` messages, each with its dependent rows), in one short write, and returns
    /// how many it deleted (messages for `Messages`). Fewer than `limit`: nothing is left.
    async fn sweep(&self, what: Sweep, cutoff: Millis, limit: usize) -> Result<u64, StoreError>;

    /// Gives the space of swept rows back where the backend needs it: on SQLite a
    /// checkpoint that truncates the WAL; on PostgreSQL nothing (autovacuum does it).
    async fn compact(&self) -> Result<(), StoreError>;
}

/// Readiness: whether the store answers now.
#[async_trait]
pub trait HealthStore: Send + Sync + 'static {
    /// A cheap round trip that proves writes can commit: on SQLite an empty job through
    /// the writer thread and its commit; on PostgreSQL `SELECT 1` on a pooled connection.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The store's commits (jobs per commit, commit time), if it records them.
    fn commit_stats(&self) -> Option<&super::CommitStats> {
        None
    }
}

/// Declares `Store` as the sum of the sub-traits, with the blanket impl, from one list.
macro_rules! store_is {
    ($($part:ident),+) => {
        /// Everything tuisong keeps: one sub-trait per aggregate, so a service file names
        /// only the part of the store it uses. Any type with all of them is a `Store`.
        pub trait Store: $($part +)+ {}

        impl<T> Store for T where T: $($part +)+ {}
    };
}

store_is!(
    AppStore,
    TokenStore,
    UserStore,
    TemplateStore,
    ConsentStore,
    MessageStore,
    DeliveryStore,
    PolicyStore,
    PushStore,
    StatsStore,
    RetentionStore,
    HealthStore
);
