//! The connection: the WebSocket to the device gateway, held until Ctrl-C and
//! reconnected with backoff from the screen's cursor when it drops.

use super::screen::Screen;
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The server pings every 30 s by default; a connection silent this long is half-open
/// (the server's host vanished without a FIN) and is dropped to reconnect.
const IDLE_TIMEOUT: Duration = Duration::from_secs(75);

enum End {
    /// Ctrl-C: leave.
    Stopped,
    /// The connection ended; try again.
    Dropped(String),
}

/// Connects, and reconnects with backoff from the cursor, until Ctrl-C. Only a refused
/// token ends it with an error: no retry can fix that.
pub(super) async fn listen(
    url: &str,
    token: &str,
    device: &str,
    screen: &mut Screen,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut delay = BACKOFF_MIN;
    loop {
        let mut welcomed = false;
        match session(url, token, device, screen, &mut stop, &mut welcomed).await? {
            End::Stopped => return Ok(()),
            End::Dropped(why) => {
                if welcomed {
                    delay = BACKOFF_MIN;
                }
                eprintln!(
                    "connection lost: {why}; reconnecting in {:.1} s from seq {}",
                    delay.as_secs_f64(),
                    screen.cursor
                );
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return Ok(()),
        }
        delay = (delay * 2).min(BACKOFF_MAX);
    }
}

async fn session(
    url: &str,
    token: &str,
    device: &str,
    screen: &mut Screen,
    stop: &mut watch::Receiver<bool>,
    welcomed: &mut bool,
) -> anyhow::Result<End> {
    let mut req = url
        .into_client_request()
        .with_context(|| format!("bad WebSocket URL {url}"))?;
    // The header rather than `?token=`: URLs end up in proxies' logs.
    req.headers_mut().insert(
        tungstenite::http::header::AUTHORIZATION,
        format!("Bearer {token}")
            .parse()
            .context("the device token is not a valid header value")?,
    );
    let connect = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(req)) => r,
        _ = stop.changed() => return Ok(End::Stopped),
    };
    let mut ws = match connect {
        Err(_) => {
            return Ok(End::Dropped(format!(
                "no connection within {CONNECT_TIMEOUT:?}"
            )));
        }
        Ok(Err(tungstenite::Error::Http(resp))) if matches!(resp.status().as_u16(), 401 | 403) => {
            bail!(
                "the server refused the device token ({}); sign in again without --user-token",
                resp.status()
            )
        }
        // wss:// without TLS compiled in, or a URL it cannot use: no retry helps.
        Ok(Err(tungstenite::Error::Url(e))) => bail!("cannot connect to {url}: {e}"),
        Ok(Err(e)) => return Ok(End::Dropped(format!("connecting: {e}"))),
        Ok(Ok((ws, _))) => ws,
    };
    if let Err(e) = ws.send(screen.hello(device).into()).await {
        return Ok(End::Dropped(format!("saying hello: {e}")));
    }
    loop {
        let msg = tokio::select! {
            m = tokio::time::timeout(IDLE_TIMEOUT, ws.next()) => m,
            _ = stop.changed() => {
                let _ = ws.close(None).await;
                return Ok(End::Stopped);
            }
        };
        let text = match msg {
            Err(_) => return Ok(End::Dropped(format!("nothing heard for {IDLE_TIMEOUT:?}"))),
            Ok(None) => return Ok(End::Dropped("the server closed the connection".into())),
            Ok(Some(Err(e))) => return Ok(End::Dropped(e.to_string())),
            Ok(Some(Ok(tungstenite::Message::Text(t)))) => t,
            Ok(Some(Ok(tungstenite::Message::Close(_)))) => {
                return Ok(End::Dropped("the server closed the connection".into()));
            }
            Ok(Some(Ok(_))) => continue,
        };
        let fx = screen.on_text(&text);
        *welcomed |= fx.welcomed;
        if let Some(s) = fx.show {
            println!("{s}");
        }
        if let Some(n) = fx.note {
            eprintln!("{n}");
        }
        let answered = match fx.reply {
            Some(r) => ws.send(r.into()).await,
            None => Ok(()),
        };
        if let Err(e) = answered {
            return Ok(End::Dropped(format!("answering: {e}")));
        }
    }
}
