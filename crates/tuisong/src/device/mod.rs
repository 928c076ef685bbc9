//! `tuisong device`: a terminal stand-in for the WeChat app on a phone. It signs a user in,
//! prints a login code for the app server to trade (`wx.login`), accepts templates
//! (`wx.requestSubscribeMessage`), then holds a WebSocket to the device gateway and shows
//! each notification as a card.
//!
//! A client of the public device API only (docs/PROTOCOL.md), like any phone would be.
//! Delivery is at-least-once, so the screen dedups by msgid; the cursor (the last seq
//! seen) lives in memory and is what a reconnect resumes from, so a dropped connection or
//! a restarted server costs nothing but the backoff.
//!
//! Standard output carries what a script or a person reads (user id, token, code,
//! subscribe results, cards, recalls); connection events go to standard error.

use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The server pings every 30 s by default; a connection silent this long is half-open
/// (the server's host vanished without a FIN) and is dropped to reconnect.
const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// Cards are drawn this many terminal columns wide (CJK characters count two).
const CARD_WIDTH: usize = 60;

#[derive(Args)]
pub struct DeviceArgs {
    /// Server base URL (http:// or https://)
    #[arg(long, env = "TUISONG_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Nickname of the user to create (ignored with --user-token)
    #[arg(long, default_value = "终端用户")]
    nickname: String,
    /// The mini program the user opens (its login code and consents are for this app)
    #[arg(long)]
    appid: String,
    /// Accept this template in the consent sheet; repeat it to accept several, or the
    /// same one-time template again for one more grant
    // Template ids are base64url and may start with '-'.
    #[arg(long = "accept", value_name = "TMPL_ID", allow_hyphen_values = true)]
    accept: Vec<String>,
    /// The last seq this device saw: messages after it are delivered
    #[arg(long, default_value_t = 0)]
    cursor: u64,
    /// Device name on the message timeline
    #[arg(long, default_value = "terminal")]
    device: String,
    /// Reuse an existing device token instead of creating a user
    #[arg(long, env = "TUISONG_USER_TOKEN", hide_env_values = true)]
    user_token: Option<String>,
    /// Print only the login code on stdout (after any --accept), then exit
    #[arg(long)]
    login_only: bool,
    /// Time zone the cards' times are shown in, as a fixed offset
    #[arg(long, default_value = "+08:00", value_parser = parse_offset)]
    utc_offset: i64,
}

/// `+HH:MM` / `-HH:MM` → minutes east of UTC.
fn parse_offset(s: &str) -> Result<i64, String> {
    let err = || format!("{s:?} is not an offset like +08:00");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(err()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(err)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(err());
    }
    let (h, m): (i64, i64) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
    if h > 14 || m > 59 {
        return Err(err());
    }
    Ok(sign * (h * 60 + m))
}

// ------------------------------------------------------------------ HTTP device API

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// POSTs JSON; a non-2xx answer becomes an error naming the status and the server's
    /// message (the native dialect's `{"error":{"message":…}}`).
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.post(&url).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("calling POST {url}"))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .with_context(|| format!("reading the answer of POST {url}"))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let msg = v["error"]["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string());
            bail!("POST {path} answered {status}: {msg}");
        }
        Ok(v)
    }
}

/// What `POST /client/v1/subscribe` answered for one template, as a line to print.
fn subscribe_line(id: &str, v: &Value) -> String {
    if let Some(code) = v.get("errCode") {
        return format!(
            "subscribe {id}: failed — errCode {code}, errMsg {}",
            v.get("errMsg").unwrap_or(&Value::Null)
        );
    }
    match v.get(id).and_then(Value::as_str) {
        Some(result) => format!("subscribe {id}: {result}"),
        None => format!("subscribe {id}: no result in the answer {v}"),
    }
}

pub async fn run(args: DeviceArgs) -> anyhow::Result<()> {
    let base = args.server.trim_end_matches('/').to_owned();
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .context("building the HTTP client")?,
        base: base.clone(),
    };
    // In --login-only mode stdout is the code alone, so a script can capture it.
    let info = |line: String| {
        if args.login_only {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };

    let token = match &args.user_token {
        Some(t) => t.clone(),
        None => {
            let v = api
                .post("/client/v1/users", None, json!({"nickname": args.nickname}))
                .await
                .context("signing a user in")?;
            let token = v["device_token"]
                .as_str()
                .with_context(|| format!("no device_token in {v}"))?
                .to_owned();
            info(format!(
                "user_id:      {}",
                v["user_id"].as_str().unwrap_or("?")
            ));
            info(format!(
                "device_token: {token}  (reuse it with --user-token; keep it private)"
            ));
            token
        }
    };

    let v = api
        .post(
            "/client/v1/login",
            Some(&token),
            json!({"appid": args.appid}),
        )
        .await
        .context("getting a login code (wx.login)")?;
    let code = v["code"]
        .as_str()
        .with_context(|| format!("no code in {v}"))?
        .to_owned();

    if args.login_only {
        accept_all(&api, &token, &args, &info).await?;
        println!("{code}");
        return Ok(());
    }
    info(format!(
        "login code:   {code}  (the app server trades it at /sns/jscode2session)"
    ));
    accept_all(&api, &token, &args, &info).await?;

    let ws_url = ws_url(&base)?;
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        stopped().await;
        let _ = stop_tx.send(true);
    });
    let mut screen = Screen::new(args.cursor, args.utc_offset);
    listen(&ws_url, &token, &args.device, &mut screen, stop).await
}

/// Ctrl-C, or SIGTERM where there is one (a terminal closing, a supervisor stopping it).
async fn stopped() {
    // A signal that cannot be listened for never comes; it must not read as one.
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                () = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    ctrl_c.await;
}

/// One consent sheet per `--accept`, so one-time and long-term ids never share a call
/// (WeChat refuses that mix) and a repeated id earns one grant per repetition.
async fn accept_all(
    api: &Api,
    token: &str,
    args: &DeviceArgs,
    info: &impl Fn(String),
) -> anyhow::Result<()> {
    for id in &args.accept {
        let v = api
            .post(
                "/client/v1/subscribe",
                Some(token),
                json!({"appid": args.appid, "tmplIds": [id], "decisions": {id: "accept"}}),
            )
            .await
            .with_context(|| format!("accepting template {id}"))?;
        info(subscribe_line(id, &v));
    }
    Ok(())
}

fn ws_url(base: &str) -> anyhow::Result<String> {
    let mut url =
        reqwest::Url::parse(base).with_context(|| format!("--server {base:?} is not a URL"))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => bail!("--server must be http:// or https://, not {other}://"),
    };
    url.set_scheme(scheme)
        .map_err(|()| anyhow::anyhow!("cannot make a WebSocket URL of {base}"))?;
    let path = format!("{}/client/v1/ws", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url.to_string())
}

// ------------------------------------------------------------------ the protocol

/// Frames this device sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame<'a> {
    Hello { cursor: u64, device: &'a str },
    Ack { msgid: u64 },
    Pong,
}

#[derive(Debug, Clone, Deserialize)]
struct CardRow {
    name: String,
    value: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Card {
    seq: u64,
    msgid: u64,
    title: String,
    #[serde(default)]
    rows: Vec<CardRow>,
    #[serde(default)]
    page: Option<String>,
    #[serde(default)]
    urgent: bool,
    /// Unix milliseconds.
    #[serde(default)]
    sent_at: i64,
}

/// Frames the server sends; unknown ones are ignored so newer servers stay usable.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerFrame {
    Welcome {
        user_id: String,
        cursor: u64,
    },
    Message(Card),
    Recall {
        seq: u64,
        msgid: u64,
    },
    Opened {
        msgid: u64,
        #[serde(default)]
        page: Option<String>,
    },
    Ping,
    Error {
        message: String,
    },
    #[serde(other)]
    Unknown,
}

/// What handling one frame produced.
#[derive(Debug, Default, PartialEq)]
struct Effects {
    /// For stdout.
    show: Option<String>,
    /// For stderr.
    note: Option<String>,
    reply: Option<String>,
    /// The server accepted the hello.
    welcomed: bool,
}

/// What the device remembers across connections: the cursor and what is on screen.
struct Screen {
    cursor: u64,
    shown: HashSet<u64>,
    recalled: HashSet<u64>,
    utc_offset_min: i64,
}

impl Screen {
    fn new(cursor: u64, utc_offset_min: i64) -> Self {
        Self {
            cursor,
            shown: HashSet::new(),
            recalled: HashSet::new(),
            utc_offset_min,
        }
    }

    fn hello(&self, device: &str) -> String {
        frame_text(&ClientFrame::Hello {
            cursor: self.cursor,
            device,
        })
    }

    fn on_text(&mut self, text: &str) -> Effects {
        match serde_json::from_str::<ServerFrame>(text) {
            Ok(f) => self.on_frame(f),
            Err(e) => Effects {
                note: Some(format!("ignoring a frame I cannot read ({e}): {text}")),
                ..Effects::default()
            },
        }
    }

    fn on_frame(&mut self, frame: ServerFrame) -> Effects {
        let mut fx = Effects::default();
        match frame {
            ServerFrame::Welcome { user_id, cursor } => {
                fx.note = Some(format!("connected as {user_id}, from seq {cursor}"));
                fx.welcomed = true;
            }
            ServerFrame::Message(card) => {
                self.cursor = self.cursor.max(card.seq);
                // Shown once however often it arrives; acked every time, since an ack
                // the server never got is why it came again.
                if self.shown.insert(card.msgid) && !self.recalled.contains(&card.msgid) {
                    fx.show = Some(render_card(&card, self.utc_offset_min));
                }
                fx.reply = Some(frame_text(&ClientFrame::Ack { msgid: card.msgid }));
            }
            ServerFrame::Recall { seq, msgid } => {
                self.cursor = self.cursor.max(seq);
                if self.recalled.insert(msgid) {
                    fx.show = Some(format!("msgid {msgid}: 此消息已撤回"));
                }
            }
            ServerFrame::Opened { msgid, page } => {
                fx.show = Some(format!(
                    "msgid {msgid}: opened → {}",
                    page.as_deref().unwrap_or("(home page)")
                ));
            }
            ServerFrame::Ping => fx.reply = Some(frame_text(&ClientFrame::Pong)),
            ServerFrame::Error { message } => fx.note = Some(format!("server says: {message}")),
            ServerFrame::Unknown => {}
        }
        fx
    }
}

fn frame_text(f: &ClientFrame<'_>) -> String {
    // Serializing these plain structs cannot fail.
    serde_json::to_string(f).unwrap_or_default()
}

// ------------------------------------------------------------------ the connection

enum End {
    /// Ctrl-C: leave.
    Stopped,
    /// The connection ended; try again.
    Dropped(String),
}

/// Connects, and reconnects with backoff from the cursor, until Ctrl-C. Only a refused
/// token ends it with an error: no retry can fix that.
async fn listen(
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

// ------------------------------------------------------------------ drawing

/// Terminal columns of a character: CJK and full-width forms take two.
fn char_width(c: char) -> usize {
    let c = c as u32;
    let wide = matches!(c,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD);
    if wide { 2 } else { 1 }
}

fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// Text from the server, made safe for a terminal: control characters (escape
/// sequences, line breaks) would let a sender redraw the screen.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Unix milliseconds → `YYYY-MM-DD HH:MM` at a fixed offset (civil-from-days, H. Hinnant).
fn format_time(ms: i64, offset_min: i64) -> String {
    let secs = ms.div_euclid(1000) + offset_min * 60;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60
    )
}

fn render_card(c: &Card, offset_min: i64) -> String {
    let title = if c.urgent {
        format!("【紧急】{}", clean(&c.title))
    } else {
        clean(&c.title)
    };
    let head = format!("┌─ {title} ");
    let meta = format!(
        " msgid {} · {}",
        c.msgid,
        format_time(c.sent_at, offset_min)
    );
    let fill = CARD_WIDTH
        .saturating_sub(width(&head) + width(&meta))
        .max(3);
    let mut out = format!("{head}{}{meta}\n", "─".repeat(fill));
    let name_w = c.rows.iter().map(|r| width(&clean(&r.name))).max();
    for r in &c.rows {
        let name = clean(&r.name);
        let pad = name_w.unwrap_or(0) - width(&name) + 3;
        out.push_str(&format!("│ {name}{}{}\n", " ".repeat(pad), clean(&r.value)));
    }
    if let Some(page) = c.page.as_deref().filter(|p| !p.is_empty()) {
        out.push_str(&format!("│ 进入小程序查看 → {}\n", clean(page)));
    }
    out.push('└');
    out.push_str(&"─".repeat(30));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(msgid: u64, seq: u64) -> String {
        json!({
            "type": "message", "seq": seq, "msgid": msgid, "appid": "wx1", "template_id": "t",
            "title": "订单发货通知",
            "rows": [{"name": "订单编号", "value": "DD202611240042"}, {"name": "商品名称", "value": "手机壳"}],
            "page": "pages/order/detail?id=42", "urgent": false,
            "sent_at": 1_795_509_900_000_i64, "expires_at": null
        })
        .to_string()
    }

    #[test]
    fn a_card_shows_title_aligned_rows_page_and_local_time() {
        let mut s = Screen::new(0, 480);
        let fx = s.on_text(&card(12, 1));
        let shown = fx.show.expect("a card");
        let lines: Vec<&str> = shown.lines().collect();
        assert!(lines[0].starts_with("┌─ 订单发货通知 ─"), "{shown}");
        assert!(lines[0].ends_with("msgid 12 · 2026-11-24 16:45"), "{shown}");
        assert_eq!(lines[1], "│ 订单编号   DD202611240042");
        assert_eq!(lines[2], "│ 商品名称   手机壳");
        assert_eq!(lines[3], "│ 进入小程序查看 → pages/order/detail?id=42");
        assert!(lines[4].starts_with("└──"));
        assert_eq!(fx.reply.as_deref(), Some(r#"{"type":"ack","msgid":12}"#));
        assert_eq!(s.cursor, 1);
    }

    #[test]
    fn a_card_delivered_twice_is_shown_once_and_acked_twice() {
        let mut s = Screen::new(0, 480);
        assert!(s.on_text(&card(7, 1)).show.is_some());
        let again = s.on_text(&card(7, 1));
        assert_eq!(again.show, None);
        assert!(again.reply.is_some(), "acked again");
    }

    #[test]
    fn a_recall_is_printed_once_and_moves_the_cursor() {
        let mut s = Screen::new(0, 0);
        s.on_text(&card(7, 1));
        let r = json!({"type": "recall", "seq": 2, "msgid": 7}).to_string();
        assert_eq!(s.on_text(&r).show.as_deref(), Some("msgid 7: 此消息已撤回"));
        assert_eq!(s.on_text(&r).show, None);
        assert_eq!(s.cursor, 2);
        assert_eq!(s.hello("d"), r#"{"type":"hello","cursor":2,"device":"d"}"#);
    }

    #[test]
    fn ping_gets_pong_and_unknown_frames_are_ignored() {
        let mut s = Screen::new(0, 0);
        assert_eq!(
            s.on_text(r#"{"type":"ping"}"#).reply.as_deref(),
            Some(r#"{"type":"pong"}"#)
        );
        assert_eq!(s.on_text(r#"{"type":"future"}"#), Effects::default());
    }

    #[test]
    fn an_urgent_card_is_marked_and_control_characters_are_blanked() {
        let c: Card = serde_json::from_value(json!({
            "seq": 1, "msgid": 1, "title": "告警\u{1b}[2J", "urgent": true, "sent_at": 0,
            "rows": [{"name": "a", "value": "x\ny"}]
        }))
        .expect("card");
        let shown = render_card(&c, 0);
        assert!(shown.starts_with("┌─ 【紧急】告警 [2J"), "{shown}");
        assert!(shown.contains("│ a   x y"), "{shown}");
        assert!(!shown.contains('\u{1b}'));
        assert!(shown.contains("1970-01-01 00:00"));
    }

    #[test]
    fn offsets_and_urls_parse() {
        assert_eq!(parse_offset("+08:00"), Ok(480));
        assert_eq!(parse_offset("-05:30"), Ok(-330));
        assert!(parse_offset("8").is_err());
        assert_eq!(
            ws_url("http://127.0.0.1:8080/").expect("url"),
            "ws://127.0.0.1:8080/client/v1/ws"
        );
        assert_eq!(
            ws_url("https://push.example.com/t").expect("url"),
            "wss://push.example.com/t/client/v1/ws"
        );
        assert!(ws_url("ftp://x").is_err());
    }

    #[test]
    fn a_template_id_starting_with_a_hyphen_is_a_value_not_a_flag() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            args: DeviceArgs,
        }
        let c = Cmd::try_parse_from([
            "device", "--appid", "wx1", "--accept", "-iXy_z", "--accept", "Ab",
        ])
        .expect("parses");
        assert_eq!(c.args.accept, ["-iXy_z", "Ab"]);
    }

    #[test]
    fn subscribe_answers_print_results_and_fail_shapes() {
        let ok = json!({"errMsg": "requestSubscribeMessage:ok", "T": "accept"});
        assert_eq!(subscribe_line("T", &ok), "subscribe T: accept");
        let fail = json!({"errMsg": "requestSubscribeMessage:fail ...", "errCode": 20004});
        assert_eq!(
            subscribe_line("T", &fail),
            "subscribe T: failed — errCode 20004, errMsg \"requestSubscribeMessage:fail ...\""
        );
    }
}
