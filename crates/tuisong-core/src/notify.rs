//! How the platform tells the rest of the system what changed. The server's gateway
//! implements it for one node; on several nodes a bus also fans each notice out to the
//! other nodes. Both kinds of notice are hints for speed or freshness: the inbox is
//! durable (devices catch up from it) and every cache reads through to the store.

use crate::clock::Millis;
use crate::ids::{AppId, TemplateId, UserId};
use crate::store::{InboxEntry, TokenKind};
use serde::{Deserialize, Serialize};

/// A change that makes other nodes' in-memory caches stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum CacheChange {
    /// Tokens of this app and kind expiring after `until` now expire at `until`.
    TokensSuperseded {
        appid: AppId,
        kind: TokenKind,
        until: Millis,
    },
    TemplateDeleted {
        id: TemplateId,
    },
    PolicyChanged {
        appid: AppId,
    },
    QuietHoursChanged {
        user_id: UserId,
    },
}

pub trait Notifier: Send + Sync + 'static {
    /// A user's inbox grew by `entry`.
    fn publish(&self, entry: &InboxEntry);
    /// A cached value changed on this node; other nodes should forget theirs.
    fn cache_changed(&self, _change: &CacheChange) {}
}
