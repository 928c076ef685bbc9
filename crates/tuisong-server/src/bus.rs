//! The bus between nodes. One node needs none: the gateway hub is the notifier. With
//! `--bus nats://…` every notice also goes to NATS, and every node applies the notices
//! of the others: an inbox hint nudges that user's sessions on this node to read their
//! inbox from the store (so a send on node B reaches a device on node A), and a cache
//! change drops this node's stale entry (tokens, templates, policy, quiet hours).
//!
//! Only hints travel on the bus, never messages: delivery is driven by the durable
//! inbox, so plain NATS (no JetStream) is enough, and a lost hint costs latency (the
//! next hint, reconnect or poll fills the gap), never a message.
//!
//! While NATS is unreachable no hint arrives, so the node falls back to the store: a
//! watcher sees the client leave the `Connected` state and nudges every session on this
//! node to read its inbox, in paced sweeps (each user about once a second, at most 2 000
//! users a second, so a node with many devices trades latency for store load). When the
//! client is back (async-nats reconnects and resubscribes by itself) the sweeps go on a
//! little longer, for hints the other nodes sent before their own subscriptions came
//! back, then stop: delivery is immediate again.

use crate::gateway::Hub;
use crate::settings::redact_url;
use async_nats::connection::State;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tuisong_core::ids::{UserId, random_hex};
use tuisong_core::notify::{CacheChange, Notifier};
use tuisong_core::service::Platform;
use tuisong_core::store::InboxEntry;

const INBOX_SUBJECT: &str = "tuisong.v1.inbox";
const CACHE_SUBJECT: &str = "tuisong.v1.cache";

/// How often the watcher looks at the connection.
const WATCH_TICK: Duration = Duration::from_millis(100);
/// While the bus is down, a connected user's inbox is read about this often…
const SWEEP_PERIOD: Duration = Duration::from_secs(1);
/// …but at most this many users are nudged per tick (2 000 a second).
const NUDGES_PER_TICK: usize = 200;
/// How long the sweeps go on after the bus is back.
const GRACE_AFTER_RECONNECT: Duration = Duration::from_secs(2);
/// Publishes waiting for the connection (async-nats queues them while it reconnects);
/// beyond this, hints are dropped rather than piling up tasks for a long outage.
const MAX_QUEUED_PUBLISHES: usize = 10_000;

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
    queued: Arc<Semaphore>,
}

/// The client, reconnecting quickly (0, 50, 100 … ms, then every second) so a restarted
/// NATS is found within a second. The error names the server without its password or
/// token: it ends up in the log and on the terminal.
async fn connect_client(url: &str) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .reconnect_delay_callback(reconnect_delay)
        .connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to NATS at {}: {e}", redact_url(url)))
}

fn reconnect_delay(attempts: usize) -> Duration {
    match attempts {
        0 | 1 => Duration::ZERO,
        n => Duration::from_millis(50u64.saturating_mul(1 << (n - 2).min(10)))
            .min(Duration::from_secs(1)),
    }
}

impl NatsBus {
    /// Connects and starts applying the other nodes' notices to `hub` and `platform`.
    pub async fn connect(
        url: &str,
        hub: Arc<Hub>,
        platform: Arc<Platform>,
    ) -> anyhow::Result<Arc<NatsBus>> {
        let client = connect_client(url).await?;
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
        tokio::spawn(watch(client.clone(), Arc::downgrade(&hub)));
        Ok(Arc::new(NatsBus {
            hub,
            client,
            node,
            queued: Arc::new(Semaphore::new(MAX_QUEUED_PUBLISHES)),
        }))
    }

    /// Whether the NATS client is connected now (`/readyz`).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// This node's name on the bus.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn send(&self, subject: &'static str, payload: Vec<u8>) {
        let Ok(permit) = self.queued.clone().try_acquire_owned() else {
            tracing::debug!(subject, "the NATS publish queue is full; notice dropped");
            return;
        };
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(e) = client.publish(subject, payload.into()).await {
                tracing::warn!(error = %e, "publishing to NATS failed");
            }
            drop(permit);
        });
    }
}

/// Watches the connection and, while the bus is down (and for a grace period after),
/// sweeps this node's sessions so they read their inboxes from the store. Ends when the
/// hub is gone.
async fn watch(client: async_nats::Client, hub: Weak<Hub>) {
    let mut tick = tokio::time::interval(WATCH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sweeper = Sweeper::new(Instant::now());
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        let now = Instant::now();
        match sweeper.observe(client.connection_state() == State::Connected, now) {
            Some(false) => tracing::warn!(
                "the NATS bus is down; the devices on this node read their inboxes from \
                 the store until it is back"
            ),
            Some(true) => tracing::info!("the NATS bus is back; cross-node hints flow again"),
            None => {}
        }
        for user in sweeper.due(now, || hub.users()) {
            hub.nudge(&user);
        }
    }
}

/// When to nudge whom while the bus is down: sweeps over the connected users, each
/// started at most once per `SWEEP_PERIOD` and spread over ticks of `NUDGES_PER_TICK`.
struct Sweeper {
    /// The client's state as last seen.
    connected: bool,
    /// After the bus came back: sweep until then.
    grace_until: Option<Instant>,
    next_sweep: Instant,
    /// Users of the current sweep not yet nudged.
    pending: Vec<UserId>,
}

impl Sweeper {
    fn new(now: Instant) -> Sweeper {
        Sweeper {
            connected: true,
            grace_until: None,
            next_sweep: now,
            pending: Vec::new(),
        }
    }

    /// The connection's state now; `Some(up)` when it changed.
    fn observe(&mut self, up: bool, now: Instant) -> Option<bool> {
        if up == self.connected {
            return None;
        }
        self.connected = up;
        // A change starts a sweep at once: on the way down for what the last hints
        // missed, on the way up for what was sent while this node was away.
        self.next_sweep = now;
        self.pending.clear();
        self.grace_until = up.then(|| now + GRACE_AFTER_RECONNECT);
        Some(up)
    }

    /// Who to nudge on this tick; `users` is asked only when a sweep starts.
    fn due(&mut self, now: Instant, users: impl FnOnce() -> Vec<UserId>) -> Vec<UserId> {
        let sweeping = !self.connected || self.grace_until.is_some_and(|t| now < t);
        if !sweeping {
            self.grace_until = None;
            self.pending.clear();
            return Vec::new();
        }
        if self.pending.is_empty() && now >= self.next_sweep {
            self.pending = users();
            self.next_sweep = now + SWEEP_PERIOD;
        }
        let n = self.pending.len().min(NUDGES_PER_TICK);
        self.pending.drain(..n).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn users(n: usize) -> Vec<UserId> {
        (0..n).map(|_| UserId::generate()).collect()
    }

    #[test]
    fn while_the_bus_is_down_every_connected_user_is_swept_at_a_bounded_pace() {
        let t0 = Instant::now();
        let mut s = Sweeper::new(t0);
        assert_eq!(s.observe(true, t0), None, "starts connected");
        assert!(s.due(t0, || panic!("no sweep while up")).is_empty());

        assert_eq!(s.observe(false, t0), Some(false));
        let all = users(450);
        let mut swept = s.due(t0, || all.clone());
        assert_eq!(swept.len(), NUDGES_PER_TICK, "paced");
        let mut t = t0;
        while swept.len() < all.len() {
            t += WATCH_TICK;
            swept.extend(s.due(t, || panic!("the sweep is not over")));
        }
        assert_eq!(swept, all, "everyone once per sweep");
        t += WATCH_TICK;
        assert!(s.due(t, || panic!("too early")).is_empty());
        let again = s.due(t0 + SWEEP_PERIOD, || users(3));
        assert_eq!(again.len(), 3, "the next sweep a period later");
    }

    #[test]
    fn after_the_bus_is_back_the_sweeps_go_on_for_the_grace_period_then_stop() {
        let t0 = Instant::now();
        let mut s = Sweeper::new(t0);
        s.observe(false, t0);
        assert_eq!(s.due(t0, || users(2)).len(), 2);
        let back = t0 + Duration::from_millis(300);
        assert_eq!(s.observe(true, back), Some(true));
        assert_eq!(s.due(back, || users(2)).len(), 2, "a sweep at once");
        let later = back + SWEEP_PERIOD;
        assert_eq!(s.due(later, || users(2)).len(), 2, "within the grace");
        let after = back + GRACE_AFTER_RECONNECT;
        assert!(
            s.due(after, || panic!("no sweep after the grace"))
                .is_empty()
        );
        assert!(s.due(after + SWEEP_PERIOD, || panic!("none")).is_empty());
    }

    #[test]
    fn reconnects_are_quick_and_capped_at_a_second() {
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(50));
        assert_eq!(reconnect_delay(4), Duration::from_millis(200));
        assert_eq!(reconnect_delay(50), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_failed_connect_names_the_server_but_not_its_password_or_token() {
        // Port 1 on loopback: the connect is refused at once.
        for (url, secret) in [
            ("nats://alice:hunter2@127.0.0.1:1", "hunter2"),
            ("nats://s3cr3t-t0ken@127.0.0.1:1", "s3cr3t-t0ken"),
            ("nats://127.0.0.1:1?token=s3cr3t-t0ken", "s3cr3t-t0ken"),
        ] {
            let e = connect_client(url).await.expect_err("nothing listens");
            for text in [format!("{e}"), format!("{e:#}"), format!("{e:?}")] {
                assert!(text.contains("127.0.0.1:1"), "names the server: {text}");
                assert!(text.contains("[redacted]"), "{text}");
                assert!(!text.contains(secret), "leaks the secret: {text}");
            }
        }
    }
}
