//! The async side of a session: reads the hello, then one `select!` over device frames,
//! pushed entries, the overflow signal, the ping timer and shutdown, feeding each event
//! to the `Session` state machine and carrying out its `Action`s — writing frames,
//! reading the inbox, and calling the platform for ack, open and unsubscribe.

use super::GatewayState;
use super::frame::entry_frame;
use super::hub::Link;
use super::session::{self, Action, Session};
use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::time::Instant;
use tuisong_core::store::User;
use tuisong_wire::device::ServerFrame;

/// Entries read from the store per catch-up round.
const CATCH_UP_PAGE: usize = 200;
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

struct Driver<'a> {
    gw: &'a GatewayState,
    user: &'a User,
    socket: WebSocket,
    session: Session,
    /// Set once the session has joined the hub.
    link: Option<Link>,
}

/// Runs one connection to its end. A session that joined the hub leaves it and gets a
/// close frame; one that failed its hello is only dropped.
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
    };
    let result = d.serve().await;
    if let Some(link) = d.link.take() {
        gw.hub.unregister(&user.user_id, link.id);
        let _ = d.socket.send(WsMessage::Close(None)).await;
    }
    result
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
                    match msg? {
                        WsMessage::Text(t) => self.session.on_client_text(&t),
                        WsMessage::Close(_) => return Ok(()),
                        _ => vec![],
                    }
                }
                _ = ping.tick() => self.session.on_tick(Instant::now()),
                _ = shutdown.changed() => return Ok(()),
            };
            self.perform(actions).await?;
        }
    }

    /// The first text frame, within `HELLO_TIMEOUT`.
    async fn first_text(&mut self) -> anyhow::Result<Utf8Bytes> {
        let socket = &mut self.socket;
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
        frame.ok_or_else(|| anyhow::anyhow!("closed before hello"))
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
                platform.ack(user_id, msgid, self.session.device()).await?;
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
            Action::Fail(why) => anyhow::bail!(why),
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

    async fn send(&mut self, frame: &ServerFrame) -> Result<(), axum::Error> {
        let text = Utf8Bytes::from(frame.to_text());
        self.socket.send(WsMessage::Text(text)).await
    }
}
