//! The platform's use cases, one file per aggregate. Every caller — the WeChat dialect,
//! the /v1 dialect, the device API, the admin API, the workers — calls these functions;
//! they hold the business rules and talk to the [`Store`] and the [`Clock`], never to
//! HTTP or SQL. There is no way around them to the store.
//!
//! | file | owns |
//! |---|---|
//! | `apps.rs` | apps, secrets, the appid/secret check, login codes, device users |
//! | `tokens.rs` | access tokens (normal, stable, console); the token cache |
//! | `templates.rs` | the public library and private templates; the template cache |
//! | `consent.rs` | the subscribe prompt, the settings page, the readable ledger |
//! | `rules.rs` | push rules and users' quiet hours; their caches |
//! | `send.rs` | a send: parse ([`RawSend`]), plan ([`plan_send`], pure), store; the recipient cache |
//! | `messages.rs` | a stored message: timeline, cancel, recall, conversions, expiry, release |
//! | `delivery.rs` | inboxes, acks, opens |
//! | `push.rs` | message push config (checked by the edge's [`ReceiverCheck`]) and its outbox |
//! | `stats.rs` | refusal counting and the stats report |
//! | `retention.rs` | how long records are kept; the bounded sweep batches |
//!
//! `Platform` is one façade over these files so that a handler is one call; each cache
//! sits in the file of its aggregate and is changed only there. Hot-path state (access
//! tokens, templates, policies, openid → user) is read through to the store on a miss, so
//! a send costs one store round trip: the atomic send step.

mod apps;
mod consent;
mod delivery;
mod messages;
mod push;
mod retention;
mod rules;
mod send;
mod stats;
mod templates;
mod tokens;

pub use apps::Session;
pub use consent::{LedgerEntry, SubscriptionSettings};
pub use push::ReceiverCheck;
pub use retention::Retention;
pub use send::{ExtraKeys, RawSend, SendPlan, SendReceipt, SendRequest, plan_send};
pub use tokens::IssuedToken;

use crate::clock::{Clock, Millis};
use crate::error::Error;
use crate::library::Library;
use crate::notify::{CacheChange, Notifier};
use crate::store::{InboxEntry, Store};
use crate::template::TEMPLATE_CAP;
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};

pub use crate::values::MAX_AHEAD_SECS;

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
    /// The key a refused send is counted under in the analytics. The server gives the
    /// WeChat errcode table (a wire fact), so both dialects count a refusal alike; a
    /// refusal WeChat has no code for gets a name of its own.
    pub refusal_code: fn(&Error) -> String,
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
            refusal_code: |_| "-1".to_owned(),
        }
    }
}

pub struct Platform {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    library: &'static Library,
    settings: PlatformSettings,
    tokens: tokens::TokenCache,
    templates: templates::TemplateCache,
    policies: rules::PolicyCache,
    quiet: rules::QuietCache,
    recipients: send::RecipientCache,
    notifier: OnceLock<Arc<dyn Notifier>>,
}

/// SHA-256 hex of a device token: what the store keeps instead of the token.
pub fn hash_device_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Platform {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: PlatformSettings) -> Self {
        Self {
            store,
            clock,
            library: Library::builtin(),
            settings,
            tokens: Default::default(),
            templates: Default::default(),
            policies: Default::default(),
            quiet: Default::default(),
            recipients: Default::default(),
            notifier: OnceLock::new(),
        }
    }

    /// Wires the delivery layer in; set once at start.
    pub fn set_notifier(&self, n: Arc<dyn Notifier>) {
        let _ = self.notifier.set(n);
    }

    /// The store's group-commit figures, for the node's metrics.
    pub fn commit_stats(&self) -> Option<crate::store::CommitSnapshot> {
        self.store.commit_stats().map(|s| s.snapshot())
    }

    /// Whether the store answers now (a node's readiness).
    pub async fn store_ready(&self) -> Result<(), crate::store::StoreError> {
        self.store.ping().await
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
                self.tokens.supersede(appid, *kind, *until);
            }
            CacheChange::TemplateDeleted { id } => self.templates.forget(id),
            CacheChange::PolicyChanged { appid } => self.policies.forget(appid),
            CacheChange::QuietHoursChanged { user_id } => self.quiet.forget(user_id),
        }
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
}

#[cfg(test)]
mod tests {
    use crate::policy;

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
}
