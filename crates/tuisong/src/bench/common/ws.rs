//! Devices on WebSockets: connected from chosen loopback source addresses (past hello
//! and welcome), and run as tasks that answer pings, ack cards and record what arrived.
//! Frames are `tuisong_wire::device`, the same types the server writes.

use super::app::{User, stamp_of_page};
use super::progress::Progress;
use super::stats::{Recorder, now_us};
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tuisong_wire::device::{ClientFrame, FrameHead, ServerFrame};

pub type Ws = WebSocketStream<TcpStream>;

/// Small client buffers: the bench holds as many sockets as the server does.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Source addresses 127.0.0.2, .3, … — each gives its own ~28k ephemeral ports.
pub fn source_ip(i: usize, per_address: usize) -> IpAddr {
    let k = 2 + (i / per_address.max(1)) as u8;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, k))
}

/// A device's WebSocket from `src`, past hello and welcome.
pub async fn connect_device(
    addr: SocketAddr,
    src: Option<IpAddr>,
    token: &str,
) -> anyhow::Result<Ws> {
    let sock = TcpSocket::new_v4()?;
    if let Some(ip) = src {
        sock.bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("binding {ip}"))?;
    }
    let stream = sock
        .connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{addr}/client/v1/ws?token={token}");
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))
        .await
        .context("WebSocket handshake")?;
    ws.send(frame(&ClientFrame::hello(0, "bench"))).await?;
    let welcome = tokio::time::timeout(Duration::from_secs(30), ws.next())
        .await
        .context("no welcome within 30 s")?;
    match welcome {
        Some(Ok(WsMessage::Text(t)))
            if matches!(
                serde_json::from_str::<ServerFrame>(&t),
                Ok(ServerFrame::Welcome { .. })
            ) =>
        {
            Ok(ws)
        }
        other => bail!("expected welcome, got {other:?}"),
    }
}

/// A device frame as a WebSocket message.
pub fn frame(f: &ClientFrame) -> WsMessage {
    WsMessage::text(f.to_text())
}

/// `{"type":"ack","msgid":N}`
pub fn ack(msgid: u64) -> WsMessage {
    frame(&ClientFrame::Ack { msgid })
}

pub fn pong() -> WsMessage {
    frame(&ClientFrame::Pong)
}

/// Connects `users` as devices, `concurrency` handshakes at a time, each from a
/// 127.0.0.x source address chosen by index.
pub async fn connect_all(
    addr: SocketAddr,
    users: &[User],
    offset: usize,
    label: &str,
) -> anyhow::Result<Vec<Ws>> {
    let n = users.len();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let d = done.clone();
    let progress = Progress::start(label, move || {
        let k = d.load(Ordering::Relaxed);
        (k as f64 / n.max(1) as f64, format!("{k}/{n} devices"))
    });
    let results: Vec<anyhow::Result<Ws>> = futures_util::stream::iter(users.iter().enumerate())
        .map(|(i, u)| {
            let done = done.clone();
            let token = u.token.clone();
            async move {
                let src = source_ip(offset + i, PER_SOURCE_ADDRESS);
                let ws = connect_device(addr, Some(src), &token).await;
                done.fetch_add(1, Ordering::Relaxed);
                ws
            }
        })
        .buffered(128)
        .collect()
        .await;
    progress.finish().await;
    results.into_iter().collect()
}

/// Connections per 127.0.0.x source address (well under the ~28k ephemeral ports).
pub const PER_SOURCE_ADDRESS: usize = 20_000;

/// A device: answers pings, records each card (by its page stamp) and acks it, records
/// each tombstone (by msgid). Ends when the socket does.
pub fn spawn_device(
    ws: Ws,
    cards: Arc<Recorder>,
    recalls: Arc<Recorder>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (mut tx, mut rx) = ws.split();
        while let Some(Ok(msg)) = rx.next().await {
            let WsMessage::Text(t) = msg else { continue };
            let now = now_us();
            let Ok(f) = serde_json::from_str::<FrameHead>(&t) else {
                continue;
            };
            let reply = match f.kind {
                "message" => {
                    if let Some(stamp) = f.page.as_deref().and_then(stamp_of_page) {
                        cards.frame_bytes.store(t.len(), Ordering::Relaxed);
                        cards.record(stamp, now);
                    }
                    ack(f.msgid)
                }
                "recall" => {
                    recalls.frame_bytes.store(t.len(), Ordering::Relaxed);
                    recalls.record(f.msgid, now);
                    continue;
                }
                "ping" => pong(),
                _ => continue,
            };
            if tx.send(reply).await.is_err() {
                break;
            }
        }
    })
}
