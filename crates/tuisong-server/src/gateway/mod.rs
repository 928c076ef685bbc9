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
/// of bytes, and a larger frame grows the buffer as needed.
const WS_READ_BUFFER: usize = 1024;

/// Limits of the device gateway.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub ping_interval: Duration,
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

/// Takes a device socket for `token`: refused (`Unauthorized`, or `Invalid` when the
/// node is at `max_connections`) before the upgrade, else one session task. Needs
/// nothing of the HTTP edge, so a caller maps the refusal in its own dialect.
pub async fn accept(
    gw: GatewayState,
    token: Option<&str>,
    ws: WebSocketUpgrade,
) -> Result<Response, Error> {
    let user = gw.platform.device_user(token).await?;
    if gw.hub.connected() >= gw.limits.max_connections {
        return Err(Error::Invalid("too many connections".into()));
    }
    Ok(ws
        .read_buffer_size(WS_READ_BUFFER)
        .on_upgrade(move |socket| async move {
            let user_id = user.user_id.clone();
            if let Err(e) = driver::run(gw, user, socket).await {
                tracing::debug!(user = %user_id, error = %e, "device session ended with an error");
            }
        }))
}
