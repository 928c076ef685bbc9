//! The async side of a session: reads the hello, then one `select!` over device frames,
//! pushed entries, the overflow signal, the ping timer and shutdown, feeding each event
//! to the `Session` state machine and carrying out its `Action`s — writing frames,
//! reading the inbox, and calling the platform for ack, open and unsubscribe.
//!
//! How a session ends, as the device sees it: a close frame with 1009 for a message over
//! `MAX_MESSAGE`, 1008 and the reason for a broken rule (no hello in time, a first frame
//! that is not a usable hello, a device silent too long), 1001 (going away) when the
//! server stops, so the device reconnects (elsewhere), a plain close otherwise.

use super::frame::entry_frame;
use super::hub::Link;
use super::session::{self, Action, Session};
use super::{GatewayState, MAX_MESSAGE};
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, close_code};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::time::Instant;
use tuisong_core::store::User;
use tuisong_wire::device::ServerFrame;

/// Entries read from the store per catch-up round.
const CATCH_UP_PAGE: usize = 200;
/// How long the closing frame may take to go out to a device that does not read.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

struct Driver<'a> {
    gw: &'a GatewayState,
    user: &'a User,
    socket: WebSocket,
    session: Session,
    /// Set once the session has joined the hub.
    link: Option<Link>,
    /// The close frame to end with, when the device should hear why.
    close: Option<CloseFrame>,
}

/// Runs one connection to its end. A session that joined the hub leaves it; it, and one
/// that ended for a reason the device should hear, gets a close frame. Otherwise a
/// session that never joined is only dropped.
pub(super) async fn run(gw: GatewayState, user: User, socket: WebSocket) -> anyhow::Result<()> {
    let session = Session::new(
        user.user_id.to_string(),
        gw.limits.ping_interval,
        Instant::now(),
    );
    let mut d = Driver {
        gw: &gw,
        user: &user,
        socket,
        session,
        link: None,
        close: None,
    };
    let result = d.serve().await;
    let joined = d.link.take();
    if let Some(link) = &joined {
        gw.hub.unregister(&user.user_id, link.id);
    }
    if joined.is_some() || d.close.is_some() {
        let close = WsMessage::Close(d.close.take());
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, d.socket.send(close)).await;
    }
    result
}

/// Whether a read failed because the device's message (or one frame of it) was over
/// `MAX_MESSAGE`. axum does not expose tungstenite's error type, only its text, which is
/// tungstenite's `CapacityError::MessageTooLong` ("Message too long: N > M"); the
/// integration test `a_message_over_the_cap_closes_the_socket_with_1009` pins it.
fn too_big(e: &axum::Error) -> bool {
    e.to_string().contains("Message too long")
}

/// A message read from the device, or why the read failed (noting in `close` the close
/// frame for one over the size cap).
fn read(
    close: &mut Option<CloseFrame>,
    msg: Result<WsMessage, axum::Error>,
) -> anyhow::Result<WsMessage> {
    msg.map_err(|e| {
        if too_big(&e) {
            let why = format!("message over {MAX_MESSAGE} bytes");
            *close = Some(close_frame(close_code::SIZE, &why));
        }
        anyhow::Error::new(e)
    })
}

/// A close frame; the reason is cut to the 123 bytes a close frame can carry.
fn close_frame(code: u16, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code,
        reason: Utf8Bytes::from(&reason[..end]),
    }
}

impl Driver<'_> {
    async fn serve(&mut self) -> anyhow::Result<()> {
        let hello = self.first_text().await?;
        let actions = self.session.on_client_text(&hello);
        self.perform(actions).await?;
        // The device's silence is counted from the end of the catch-up, however long.
        self.session.heard(Instant::now());
        let mut shutdown = self.gw.shutdown.clone();
        let mut ping = tokio::time::interval(self.gw.limits.ping_interval);
        ping.tick().await;
        loop {
            let Some(link) = self.link.as_mut() else {
                anyhow::bail!("the session never joined the hub");
            };
            let actions = tokio::select! {
                Some(entry) = link.rx.recv() => {
                    let now = self.gw.platform.now();
                    self.session.on_push(entry.seq, || entry_frame(&entry, now))
                }
                () = link.lagged.notified() => {
                    while link.rx.try_recv().is_ok() {}
                    self.session.on_lagged()
                }
                msg = self.socket.next() => {
                    let Some(msg) = msg else { return Ok(()) };
                    self.session.heard(Instant::now());
                    match read(&mut self.close, msg)? {
                        WsMessage::Text(t) => self.session.on_client_text(&t),
                        WsMessage::Close(_) => return Ok(()),
                        _ => vec![],
                    }
                }
                _ = ping.tick() => self.session.on_tick(Instant::now()),
                _ = shutdown.changed() => {
                    self.close = Some(close_frame(close_code::AWAY, "server shutting down"));
                    return Ok(());
                }
            };
            self.perform(actions).await?;
        }
    }

    /// The first text frame, within the hello timeout.
    async fn first_text(&mut self) -> anyhow::Result<Utf8Bytes> {
        let limit = self.gw.limits.hello_timeout;
        let deadline = Instant::now() + limit;
        loop {
            let Ok(msg) = tokio::time::timeout_at(deadline, self.socket.next()).await else {
                let why = format!("no hello within {limit:?}");
                self.close = Some(close_frame(close_code::POLICY, &why));
                anyhow::bail!(why);
            };
            let Some(msg) = msg else {
                anyhow::bail!("closed before hello");
            };
            match read(&mut self.close, msg)? {
                WsMessage::Text(t) => return Ok(t),
                WsMessage::Close(_) => anyhow::bail!("closed before hello"),
                _ => {}
            }
        }
    }

    async fn perform(&mut self, actions: Vec<Action>) -> anyhow::Result<()> {
        for action in actions {
            self.perform_one(action).await?;
        }
        Ok(())
    }

    async fn perform_one(&mut self, action: Action) -> anyhow::Result<()> {
        let platform = &self.gw.platform;
        let user_id = &self.user.user_id;
        match action {
            Action::Register => self.link = Some(self.gw.hub.register(user_id)),
            Action::Send(frame) => self.send(&frame).await?,
            Action::CatchUp => self.catch_up().await?,
            Action::Ack(msgid) => {
                let result = platform.ack(user_id, msgid, self.session.device()).await;
                if result.is_ok() {
                    crate::metrics::process().acks.inc();
                }
                if let Some(frame) = session::acked(msgid, result)? {
                    self.send(&frame).await?;
                }
            }
            Action::Open(msgid) => {
                let result = platform
                    .open(user_id, msgid, self.session.device())
                    .await
                    .map(|m| (m.appid.to_string(), m.page));
                let frame = session::opened(msgid, result)?;
                self.send(&frame).await?;
            }
            Action::Unsubscribe(msgid) => {
                let result = platform.unsubscribe_from_message(user_id, msgid).await;
                if let Err(e) = &result {
                    tracing::warn!(
                        user = %user_id,
                        device = self.session.device(),
                        msgid,
                        error = %e,
                        "unsubscribe from a device frame failed"
                    );
                }
                if let Some(frame) = session::unsubscribed(msgid, result.as_ref().map(|_| ())) {
                    self.send(&frame).await?;
                }
            }
            Action::Fail(why) => {
                self.close = Some(close_frame(close_code::POLICY, &why));
                anyhow::bail!(why)
            }
        }
        Ok(())
    }

    /// Sends every entry from `next` on, reading the store a page at a time.
    async fn catch_up(&mut self) -> anyhow::Result<()> {
        loop {
            let page = self
                .gw
                .platform
                .inbox(self.user, self.session.next() - 1, CATCH_UP_PAGE)
                .await?;
            let now = self.gw.platform.now();
            let frames = self
                .session
                .on_backlog(page.iter().map(|e| (e.seq, entry_frame(e, now))));
            for f in &frames {
                self.send(f).await?;
            }
            if page.len() < CATCH_UP_PAGE {
                return Ok(());
            }
        }
    }

    /// Writes one frame. A device that does not take it within the silence limit (two
    /// ping intervals) is gone: the session ends rather than wait on it.
    async fn send(&mut self, frame: &ServerFrame) -> anyhow::Result<()> {
        let text = Utf8Bytes::from(frame.to_text());
        let limit = self.gw.limits.ping_interval * 2 + Duration::from_secs(1);
        tokio::time::timeout(limit, self.socket.send(WsMessage::Text(text)))
            .await
            .map_err(|_| anyhow::anyhow!("the device took no frame for {limit:?}"))??;
        crate::metrics::process().frames_out.inc();
        Ok(())
    }
}
