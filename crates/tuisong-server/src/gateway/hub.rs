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
    connected: AtomicUsize,
}

impl Hub {
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
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
