//! The bus between nodes. One node needs none: the gateway hub is the notifier. With
//! `--bus nats://…` every notice also goes to NATS, and every node applies the notices
//! of the others: an inbox hint nudges that user's sessions on this node to read their
//! inbox from the store (so a send on node B reaches a device on node A), and a cache
//! change drops this node's stale entry (tokens, templates, policy, quiet hours).
//!
//! Only hints travel on the bus, never messages: delivery is driven by the durable
//! inbox, so plain NATS (no JetStream) is enough, and a lost hint costs latency (the
//! next hint, reconnect or poll fills the gap), never a message.

use crate::gateway::Hub;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tuisong_core::ids::{UserId, random_hex};
use tuisong_core::notify::{CacheChange, Notifier};
use tuisong_core::service::Platform;
use tuisong_core::store::InboxEntry;

const INBOX_SUBJECT: &str = "tuisong.v1.inbox";
const CACHE_SUBJECT: &str = "tuisong.v1.cache";

#[derive(Debug, Serialize, Deserialize)]
struct InboxHint {
    node: String,
    user_id: UserId,
    seq: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheNotice {
    node: String,
    #[serde(flatten)]
    change: CacheChange,
}

/// The notifier of a node that shares a NATS bus with others.
pub struct NatsBus {
    hub: Arc<Hub>,
    client: async_nats::Client,
    node: String,
}

impl NatsBus {
    /// Connects and starts applying the other nodes' notices to `hub` and `platform`.
    pub async fn connect(
        url: &str,
        hub: Arc<Hub>,
        platform: Arc<Platform>,
    ) -> anyhow::Result<Arc<NatsBus>> {
        let client = async_nats::connect(url)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to NATS at {url}: {e}"))?;
        let node = format!("node-{}", random_hex(12));
        let mut inbox = client.subscribe(INBOX_SUBJECT).await?;
        let mut cache = client.subscribe(CACHE_SUBJECT).await?;
        client.flush().await?;
        let me = node.clone();
        let hub2 = hub.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(m) = inbox.next() => {
                        match serde_json::from_slice::<InboxHint>(&m.payload) {
                            Ok(h) if h.node != me => { hub2.nudge(&h.user_id); }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "unreadable inbox hint on the bus"),
                        }
                    }
                    Some(m) = cache.next() => {
                        match serde_json::from_slice::<CacheNotice>(&m.payload) {
                            Ok(n) if n.node != me => platform.apply_remote_change(&n.change),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "unreadable cache notice on the bus"),
                        }
                    }
                    else => break,
                }
            }
            tracing::warn!("the NATS subscriptions ended");
        });
        Ok(Arc::new(NatsBus { hub, client, node }))
    }

    fn send(&self, subject: &'static str, payload: Vec<u8>) {
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(e) = client.publish(subject, payload.into()).await {
                tracing::warn!(error = %e, "publishing to NATS failed");
            }
        });
    }
}

impl Notifier for NatsBus {
    fn publish(&self, entry: &InboxEntry) {
        self.hub.publish(entry);
        let hint = InboxHint {
            node: self.node.clone(),
            user_id: entry.user_id.clone(),
            seq: entry.seq,
        };
        if let Ok(p) = serde_json::to_vec(&hint) {
            self.send(INBOX_SUBJECT, p);
        }
    }

    fn cache_changed(&self, change: &CacheChange) {
        let notice = CacheNotice {
            node: self.node.clone(),
            change: change.clone(),
        };
        if let Ok(p) = serde_json::to_vec(&notice) {
            self.send(CACHE_SUBJECT, p);
        }
    }
}
