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

//!
//! Here: the arguments and the HTTP device API (sign-in, login code, consent). The
//! WebSocket is `connection`, the frame handling `screen`, the drawing `render`; the
//! frames are `tuisong_wire::device`, the same types the server writes.

mod connection;
mod render;
mod screen;

use anyhow::{Context, bail};
use clap::Args;
use connection::listen;
use screen::Screen;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::watch;

const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

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
                .post(
                    "/client/v1/users",
                    None,
                    json!({"nickname": args.nickname, "appid": args.appid}),
                )
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
        let line = subscribe_line(id, &v);
        // A sheet that failed (unknown template 20001, main switch off 20004, …) is the
        // end of the run: staying connected would wait for cards that cannot come.
        if v.get("errCode").is_some() || v.get(id).and_then(Value::as_str) != Some("accept") {
            bail!("{line}");
        }
        info(line);
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

#[cfg(test)]
mod tests {
    use super::*;

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
