//! The device gateway: WebSocket sessions at `/client/v1/ws` and the in-memory hub that
//! routes new inbox entries to the sessions of their user.
//!
//! Delivery is driven by the durable inbox, not by the hub: each user's entries carry a
//! gap-free `seq`, a session remembers the next seq it owes its device, and whenever a
//! pushed entry is not that one (a gap, a full channel, a restart, another node's send)
//! the session reads the missing range from the store. The hub is only the fast path,
//! so losing a hint never loses a message. One connection is one task with one
//! `select!` over device frames, pushed entries, a ping timer and shutdown.

use crate::state::AppState;
use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tuisong_core::Error;
use tuisong_core::ids::UserId;
use tuisong_core::notify::Notifier;
use tuisong_core::store::{EntryKind, InboxEntry, User};
use tuisong_core::template::Row;

/// Entries buffered per session before the session falls back to reading the store.
const SESSION_BUFFER: usize = 256;
/// Entries read from the store per catch-up round.
const CATCH_UP_PAGE: usize = 200;
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer per session. Tungstenite zero-fills its whole read buffer before the first
/// read, so its 128 KiB default was 128 KiB of RSS per idle device; device frames are tens
/// of bytes, and a larger frame grows the buffer as needed.
const WS_READ_BUFFER: usize = 1024;

struct Session {
    id: u64,
    tx: mpsc::Sender<Arc<InboxEntry>>,
    lagged: Arc<Notify>,
}

/// Who is connected, by user.
#[derive(Default)]
pub struct Hub {
    sessions: RwLock<HashMap<UserId, Vec<Session>>>,
    next_id: AtomicU64,
    connected: AtomicUsize,
}

impl Hub {
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    fn register(&self, user: &UserId) -> (u64, mpsc::Receiver<Arc<InboxEntry>>, Arc<Notify>) {
        let (tx, rx) = mpsc::channel(SESSION_BUFFER);
        let lagged = Arc::new(Notify::new());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.sessions
            .write()
            .entry(user.clone())
            .or_default()
            .push(Session {
                id,
                tx,
                lagged: lagged.clone(),
            });
        self.connected.fetch_add(1, Ordering::Relaxed);
        (id, rx, lagged)
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

    fn unregister(&self, user: &UserId, id: u64) {
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

/// A card row as the device shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CardRow {
    pub name: String,
    pub value: String,
}

/// Frames the server sends (JSON, tagged by `type`).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome {
        user_id: String,
        cursor: u64,
    },
    Message {
        seq: u64,
        msgid: u64,
        appid: String,
        template_id: String,
        title: String,
        rows: Vec<CardRow>,
        page: Option<String>,
        urgent: bool,
        sent_at: i64,
        expires_at: Option<i64>,
    },
    Recall {
        seq: u64,
        msgid: u64,
    },
    Opened {
        msgid: u64,
        appid: String,
        page: Option<String>,
    },
    Ping,
    Error {
        message: String,
    },
}

/// Frames a device sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Hello {
        #[serde(default)]
        cursor: u64,
        #[serde(default)]
        device: Option<String>,
    },
    Ack {
        msgid: u64,
    },
    Open {
        msgid: u64,
    },
    /// "Stop receiving this": turns the card's template off for this user.
    Unsubscribe {
        msgid: u64,
    },
    Pong,
    Ping,
}

fn rows(rows: &[Row]) -> Vec<CardRow> {
    rows.iter()
        .map(|r| CardRow {
            name: r.name.clone(),
            value: r.value.clone(),
        })
        .collect()
}

/// The frame an inbox entry becomes; None for a card that is gone (cancelled, expired,
/// recalled before this device saw it — its tombstone follows).
pub fn entry_frame(e: &InboxEntry, now: i64) -> Option<ServerFrame> {
    let m = &e.message;
    match e.kind {
        EntryKind::Recall => Some(ServerFrame::Recall {
            seq: e.seq,
            msgid: m.msgid.0,
        }),
        EntryKind::Message => {
            if m.status.is_gone() || m.expires_at.is_some_and(|t| t <= now) {
                return None;
            }
            Some(ServerFrame::Message {
                seq: e.seq,
                msgid: m.msgid.0,
                appid: m.appid.to_string(),
                template_id: m.template_id.to_string(),
                title: m.title.clone(),
                rows: rows(&m.rows),
                page: m.page.clone(),
                urgent: m.urgent,
                sent_at: m.release_at.max(m.created_at),
                expires_at: m.expires_at,
            })
        }
    }
}

#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

/// `GET /client/v1/ws`: authenticated by the device token (`Authorization: Bearer` or,
/// for browsers that cannot set headers on a WebSocket, `?token=`).
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let token = crate::http::bearer(&headers).map(str::to_owned).or(q.token);
    let user = match state.platform.device_user(token.as_deref()).await {
        Ok(u) => u,
        Err(e) => return crate::http::ApiError(e).into_response(),
    };
    if state.hub.connected() >= state.limits.max_connections {
        return crate::http::ApiError(Error::Invalid("too many connections".into()))
            .into_response();
    }
    ws.read_buffer_size(WS_READ_BUFFER)
        .on_upgrade(move |socket| async move {
            let user_id = user.user_id.clone();
            if let Err(e) = run_session(state, user, socket).await {
                tracing::debug!(user = %user_id, error = %e, "device session ended with an error");
            }
        })
}

async fn send(socket: &mut WebSocket, frame: &ServerFrame) -> Result<(), axum::Error> {
    let text = serde_json::to_string(frame).unwrap_or_else(|_| "{\"type\":\"error\"}".into());
    socket.send(WsMessage::Text(Utf8Bytes::from(text))).await
}

/// Sends every entry from `next` on, reading the store; returns the new `next`.
async fn catch_up(
    state: &AppState,
    user: &User,
    socket: &mut WebSocket,
    mut next: u64,
) -> anyhow::Result<u64> {
    loop {
        let page = state.platform.inbox(user, next - 1, CATCH_UP_PAGE).await?;
        let now = state.platform.now();
        for e in &page {
            if let Some(f) = entry_frame(e, now) {
                send(socket, &f).await?;
            }
            next = e.seq + 1;
        }
        if page.len() < CATCH_UP_PAGE {
            return Ok(next);
        }
    }
}

async fn hello(socket: &mut WebSocket) -> anyhow::Result<(u64, String)> {
    let frame = tokio::time::timeout(HELLO_TIMEOUT, async {
        while let Some(msg) = socket.next().await {
            match msg? {
                WsMessage::Text(t) => return Ok::<_, anyhow::Error>(Some(t)),
                WsMessage::Close(_) => return Ok(None),
                _ => {}
            }
        }
        Ok(None)
    })
    .await
    .map_err(|_| anyhow::anyhow!("no hello within {HELLO_TIMEOUT:?}"))??;
    let Some(text) = frame else {
        anyhow::bail!("closed before hello");
    };
    match serde_json::from_str::<ClientFrame>(&text) {
        Ok(ClientFrame::Hello { cursor, device }) => {
            let device = device
                .map(|d| {
                    d.chars()
                        .filter(|c| !c.is_control())
                        .take(64)
                        .collect::<String>()
                })
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "device".to_owned());
            Ok((cursor, device))
        }
        _ => {
            let _ = send(
                socket,
                &ServerFrame::Error {
                    message: "the first frame must be hello".into(),
                },
            )
            .await;
            anyhow::bail!("first frame was not hello")
        }
    }
}

async fn run_session(state: AppState, user: User, mut socket: WebSocket) -> anyhow::Result<()> {
    let (cursor, device) = hello(&mut socket).await?;
    let (id, mut rx, lagged) = state.hub.register(&user.user_id);
    let result = session_loop(
        &state,
        &user,
        &mut socket,
        cursor,
        &device,
        &mut rx,
        &lagged,
    )
    .await;
    state.hub.unregister(&user.user_id, id);
    let _ = socket.send(WsMessage::Close(None)).await;
    result
}

async fn session_loop(
    state: &AppState,
    user: &User,
    socket: &mut WebSocket,
    cursor: u64,
    device: &str,
    rx: &mut mpsc::Receiver<Arc<InboxEntry>>,
    lagged: &Notify,
) -> anyhow::Result<()> {
    send(
        socket,
        &ServerFrame::Welcome {
            user_id: user.user_id.to_string(),
            cursor,
        },
    )
    .await?;
    // Registered before reading the backlog, so nothing published meanwhile is missed:
    // it is either in the backlog or in the channel (and then skipped as already sent).
    let mut next = catch_up(state, user, socket, cursor + 1).await?;
    let mut shutdown: watch::Receiver<bool> = state.shutdown.clone();
    let ping_every = state.limits.ping_interval;
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            Some(entry) = rx.recv() => {
                if entry.seq < next {
                    continue;
                }
                if entry.seq > next {
                    next = catch_up(state, user, socket, next).await?;
                } else {
                    if let Some(f) = entry_frame(&entry, state.platform.now()) {
                        send(socket, &f).await?;
                    }
                    next += 1;
                }
            }
            () = lagged.notified() => {
                while rx.try_recv().is_ok() {}
                next = catch_up(state, user, socket, next).await?;
            }
            msg = socket.next() => {
                let Some(msg) = msg else { return Ok(()) };
                last_heard = tokio::time::Instant::now();
                match msg? {
                    WsMessage::Text(t) => handle_frame(state, user, socket, device, &t).await?,
                    WsMessage::Close(_) => return Ok(()),
                    _ => {}
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_every * 2 + Duration::from_secs(1) {
                    anyhow::bail!("no frame from the device for {:?}", last_heard.elapsed());
                }
                send(socket, &ServerFrame::Ping).await?;
            }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

async fn handle_frame(
    state: &AppState,
    user: &User,
    socket: &mut WebSocket,
    device: &str,
    text: &str,
) -> anyhow::Result<()> {
    let frame = match serde_json::from_str::<ClientFrame>(text) {
        Ok(f) => f,
        Err(e) => {
            send(
                socket,
                &ServerFrame::Error {
                    message: format!("bad frame: {e}"),
                },
            )
            .await?;
            return Ok(());
        }
    };
    match frame {
        ClientFrame::Ack { msgid } => {
            state.platform.ack(&user.user_id, msgid, device).await?;
        }
        ClientFrame::Open { msgid } => {
            match state.platform.open(&user.user_id, msgid, device).await {
                Ok(m) => {
                    send(
                        socket,
                        &ServerFrame::Opened {
                            msgid,
                            appid: m.appid.to_string(),
                            page: m.page,
                        },
                    )
                    .await?;
                }
                Err(Error::NotFound(_)) => {
                    send(
                        socket,
                        &ServerFrame::Error {
                            message: format!("no message {msgid}"),
                        },
                    )
                    .await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        ClientFrame::Unsubscribe { msgid } => {
            if let Err(Error::NotFound(_)) = state
                .platform
                .unsubscribe_from_message(&user.user_id, msgid)
                .await
            {
                send(
                    socket,
                    &ServerFrame::Error {
                        message: format!("no message {msgid}"),
                    },
                )
                .await?;
            }
        }
        ClientFrame::Ping => send(socket, &ServerFrame::Ping).await?,
        ClientFrame::Pong => {}
        ClientFrame::Hello { .. } => {
            send(
                socket,
                &ServerFrame::Error {
                    message: "hello was already received".into(),
                },
            )
            .await?;
        }
    }
    Ok(())
}
