//! How the platform tells the delivery layer that a user's inbox grew. The server's
//! gateway implements it (and, on several nodes, a bus that fans out to every node).
//! Publishing is a hint for speed: the inbox is durable and devices catch up from it.

use crate::store::InboxEntry;

pub trait Notifier: Send + Sync + 'static {
    fn publish(&self, entry: &InboxEntry);
}
