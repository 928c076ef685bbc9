//! The hub: which sessions are connected on this node, by user, and the fast path that
//! hands each new inbox entry to them (`Notifier::publish`). It is only a hint: a session
//! whose buffer is full, or that is nudged from another node, reads the store instead.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::{Notify, mpsc};
use tuisong_core::ids::UserId;
use tuisong_core::notify::Notifier;
use tuisong_core::store::InboxEntry;

/// Entries buffered per session before the session falls back to reading the store.
const SESSION_BUFFER: usize = 256;

/// One session as the hub sees it.
struct Entry {
    id: u64,
    tx: mpsc::Sender<Arc<InboxEntry>>,
    lagged: Arc<Notify>,
}

/// A session's end of the hub: its pushed entries and the signal to read the store.
pub(crate) struct Link {
    pub id: u64,
    pub rx: mpsc::Receiver<Arc<InboxEntry>>,
    pub lagged: Arc<Notify>,
}

/// Who is connected, by user.
#[derive(Default)]
pub struct Hub {
    sessions: RwLock<HashMap<UserId, Vec<Entry>>>,
    next_id: AtomicU64,
    /// Sessions past their hello (in the hub).
    connected: AtomicUsize,
    /// Sockets admitted, from before the upgrade to the end of the socket (`Admission`).
    sockets: AtomicUsize,
}

/// One admitted socket's place in the node's connection limit, taken before the upgrade
/// and given back when dropped: when the upgrade fails, or when the socket ends, however
/// (before hello too).
pub(crate) struct Admission {
    hub: Arc<Hub>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.hub.sockets.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hub {
    /// Sessions past their hello.
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Sockets open or being upgraded, hello or not: what `max_connections` limits.
    pub fn sockets(&self) -> usize {
        self.sockets.load(Ordering::Acquire)
    }

    /// A place for one more socket, or None when `max` are already taken. Conditional, so
    /// of any number of upgrades racing for the last place exactly one gets it.
    pub(crate) fn admit(self: &Arc<Self>, max: usize) -> Option<Admission> {
        self.sockets
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Admission { hub: self.clone() })
    }

    pub(crate) fn register(&self, user: &UserId) -> Link {
        let (tx, rx) = mpsc::channel(SESSION_BUFFER);
        let lagged = Arc::new(Notify::new());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.sessions
            .write()
            .entry(user.clone())
            .or_default()
            .push(Entry {
                id,
                tx,
                lagged: lagged.clone(),
            });
        self.connected.fetch_add(1, Ordering::Relaxed);
        Link { id, rx, lagged }
    }

    /// Tells the user's sessions on this node to read their inbox (a send made on another
    /// node). Returns whether any session was there.
    pub fn nudge(&self, user: &UserId) -> bool {
        let map = self.sessions.read();
        match map.get(user) {
            Some(list) => {
                for s in list {
                    s.lagged.notify_one();
                }
                true
            }
            None => false,
        }
    }

    /// The users with a session on this node now; the bus's fallback sweeps them while
    /// NATS is down.
    pub fn users(&self) -> Vec<UserId> {
        self.sessions.read().keys().cloned().collect()
    }

    pub(crate) fn unregister(&self, user: &UserId, id: u64) {
        let mut map = self.sessions.write();
        if let Some(list) = map.get_mut(user) {
            list.retain(|s| s.id != id);
            if list.is_empty() {
                map.remove(user);
            }
        }
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Notifier for Hub {
    fn publish(&self, entry: &InboxEntry) {
        let map = self.sessions.read();
        let Some(list) = map.get(&entry.user_id) else {
            return;
        };
        let entry = Arc::new(entry.clone());
        for s in list {
            // A full buffer means a slow device: it reads the store instead.
            if s.tx.try_send(entry.clone()).is_err() {
                s.lagged.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admissions_stop_at_the_limit_and_come_back_when_dropped() {
        let hub = Arc::new(Hub::default());
        let taken: Vec<Admission> = (0..3).map_while(|_| hub.admit(3)).collect();
        assert_eq!((taken.len(), hub.sockets()), (3, 3));
        assert!(hub.admit(3).is_none(), "full");
        drop(taken);
        assert_eq!(hub.sockets(), 0);
        assert!(hub.admit(3).is_some());
        assert!(hub.admit(0).is_none(), "a limit of 0 admits nothing");
    }

    #[test]
    fn racing_admissions_take_exactly_the_limit() {
        let hub = Arc::new(Hub::default());
        let got: Vec<Option<Admission>> = std::thread::scope(|s| {
            let tasks: Vec<_> = (0..16).map(|_| s.spawn(|| hub.admit(5))).collect();
            tasks
                .into_iter()
                .map(|t| t.join().expect("thread"))
                .collect()
        });
        assert_eq!(got.iter().flatten().count(), 5);
        assert_eq!(hub.sockets(), 5);
    }
}
