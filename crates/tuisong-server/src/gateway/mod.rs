//! The device gateway: WebSocket sessions at `/client/v1/ws` and the in-memory hub that
//! routes new inbox entries to the sessions of their user. The frames themselves are
//! `tuisong_wire::device`.
//!
//! Delivery is driven by the durable inbox, not by the hub: each user's entries carry a
//! gap-free `seq`, a session remembers the next seq it owes its device, and whenever a
//! pushed entry is not that one (a gap, a full channel, a restart, another node's send)
//! the session reads the missing range from the store. The hub is only the fast path,
//! so losing a hint never loses a message. One connection is one task with one
//! `select!` over device frames, pushed entries, a ping timer and shutdown.
//!
//! - `hub`: who is connected, and publishing to them;
//! - `session`: the protocol of one connection as a state machine, tested without sockets;
//! - `driver`: the async loop that feeds the state machine and carries out its actions;
//! - `frame`: core's inbox entries as frames.
//!
//! The gateway needs only `GatewayState`, not the server's whole `AppState` (which
//! contains it), so it depends on no handler module.

mod driver;
mod frame;
pub mod hub;
pub mod session;

pub use frame::entry_frame;
pub use hub::Hub;

use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tuisong_core::Error;
use tuisong_core::service::Platform;

/// Read buffer per session. Tungstenite zero-fills its whole read buffer before the first
/// read, so its 128 KiB default was 128 KiB of RSS per idle device; device frames are tens
/// of bytes, and a larger frame grows the buffer as needed (up to `MAX_MESSAGE`).
const WS_READ_BUFFER: usize = 1024;

/// The largest message a device may send, in bytes (docs/PROTOCOL.md). The largest
/// legitimate device frame is a `hello` with a 64-character device name, a few hundred
/// bytes even with every character `\u`-escaped; tungstenite's default, 64 MiB, let a
/// few hundred sockets that never finish a message take a node's memory. A larger message
/// (or a frame of one) ends the session with close code 1009 before it is buffered.
pub const MAX_MESSAGE: usize = 8 * 1024;

/// Bytes of outgoing frames gathered before they are written. Every frame is flushed
/// when sent, so this is never more than one frame; a server frame is at most a card
/// (a title, up to five rows and a page) — a few KiB.
const WS_WRITE_BUFFER: usize = 8 * 1024;

/// The most the write buffer may hold when writes to the device fail (tungstenite's
/// default is unbounded): one buffer and a frame of the largest kind, with room to spare.
const WS_MAX_WRITE_BUFFER: usize = 64 * 1024;

/// Limits of the device gateway.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Sockets open at once on this node, counted from before the upgrade to the end of
    /// the socket (a socket waiting for its hello counts).
    pub max_connections: usize,
    pub ping_interval: Duration,
    /// A socket that sends no `hello` within this long is closed (close code 1008).
    pub hello_timeout: Duration,
}

/// What the gateway needs of the server.
#[derive(Clone)]
pub struct GatewayState {
    pub platform: Arc<Platform>,
    pub hub: Arc<Hub>,
    pub limits: Limits,
    /// Turns true when the server stops; sessions end.
    pub shutdown: watch::Receiver<bool>,
}

/// Why a socket was not taken.
#[derive(Debug)]
pub enum Refusal {
    /// The device token was missing or wrong (`Unauthorized`), or the lookup failed.
    Denied(Error),
    /// The node has `max_connections` sockets open: try again later (HTTP 503).
    Full,
}

/// Takes a device socket for `token`: refused before the upgrade when the token is not a
/// user's or the node is full, else one session task, which holds its place in
/// `max_connections` from here to its end. Needs nothing of the HTTP edge, so a caller
/// maps the refusal in its own dialect.
pub async fn accept(
    gw: GatewayState,
    token: Option<&str>,
    ws: WebSocketUpgrade,
) -> Result<Response, Refusal> {
    let user = gw
        .platform
        .device_user(token)
        .await
        .map_err(Refusal::Denied)?;
    let admission = gw
        .hub
        .admit(gw.limits.max_connections)
        .ok_or(Refusal::Full)?;
    Ok(ws
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_write_buffer_size(WS_MAX_WRITE_BUFFER)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        // An upgrade that fails drops the callback, and with it the admission.
        .on_upgrade(move |socket| async move {
            let _admission = admission;
            let user_id = user.user_id.clone();
            if let Err(e) = driver::run(gw, user, socket).await {
                tracing::debug!(user = %user_id, error = %e, "device session ended with an error");
            }
        }))
}
