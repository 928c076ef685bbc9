//! `spawn_app()` and a typed client per endpoint. Every test gets its own data dir
//! (SQLite in a temp dir), a real socket on 127.0.0.1:0 and a clock it can move.

use serde_json::{Value, json};
use std::sync::Arc;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
pub use tuisong_core::clock::Clock;
use tuisong_core::clock::OffsetClock;
use tuisong_core::ids::Secret;
use tuisong_server::{Application, BuildOptions, Settings};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub appid: String,
    pub secret: String,
    /// The demo app's templates: (priTmplId, type).
    pub templates: Vec<(String, u8)>,
    pub clock: OffsetClock,
    pub dir: Arc<TempDir>,
    settings: Settings,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut settings = Settings {
        data_dir: dir.path().to_owned(),
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        // The scheduler looks often, so a test that moves the clock sees the effect soon.
        worker_tick: std::time::Duration::from_millis(20),
        ..Settings::default()
    };
    tweak(&mut settings);
    start(settings, dir, OffsetClock::new()).await
}

async fn start(settings: Settings, dir: Arc<TempDir>, clock: OffsetClock) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let app = Application::build_with(
        settings.clone(),
        BuildOptions {
            listener: Some(listener),
            clock: Arc::new(clock.clone()),
        },
    )
    .await
    .expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (appid, secret, templates) = match &app.demo {
        Some(d) => (
            d.app.appid.to_string(),
            d.app.secret.expose().to_owned(),
            d.templates
                .iter()
                .map(|t| (t.id.to_string(), t.kind.code()))
                .collect(),
        ),
        None => (String::new(), String::new(), Vec::new()),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        client: reqwest::Client::new(),
        appid,
        secret,
        templates,
        clock,
        dir,
        settings,
        stop: Some(tx),
        task: Some(task),
    }
}

/// A signed-in device user and the openid the app knows them by.
pub struct Device {
    pub token: String,
    pub openid: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the server and starts a new one on the same data dir (new port).
    pub async fn restart(mut self) -> TestApp {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task").expect("server ran");
        }
        let mut app = start(self.settings.clone(), self.dir.clone(), self.clock.clone()).await;
        app.appid = self.appid.clone();
        app.secret = self.secret.clone();
        app.templates = self.templates.clone();
        app
    }

    pub fn one_time(&self) -> String {
        self.templates
            .iter()
            .find(|t| t.1 == 2)
            .expect("one-time template")
            .0
            .clone()
    }

    pub fn long_term(&self) -> String {
        self.templates
            .iter()
            .find(|t| t.1 == 3)
            .expect("long-term template")
            .0
            .clone()
    }

    pub async fn get(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    /// POST a raw body; asserts the WeChat dialect's HTTP 200.
    pub async fn post_raw(&self, path: &str, body: &str) -> Value {
        let r = self
            .client
            .post(self.url(path))
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "WeChat dialect answers HTTP 200");
        r.json().await.expect("json")
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.post_raw(path, &body.to_string()).await
    }

    /// A native-dialect call: (status, body).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.client.request(method, self.url(path));
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn token(&self) -> String {
        self.token_for(&self.appid, &self.secret).await
    }

    pub async fn token_for(&self, appid: &str, secret: &str) -> String {
        let v = self
            .get(&format!(
                "/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}"
            ))
            .await;
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("token: {v}"))
            .to_owned()
    }

    pub async fn new_user(&self, nickname: &str) -> String {
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                "/client/v1/users",
                None,
                Some(json!({"nickname": nickname})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["device_token"].as_str().expect("device token").to_owned()
    }

    pub async fn login_code(&self, device_token: &str, appid: &str) -> String {
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                "/client/v1/login",
                Some(device_token),
                Some(json!({"appid": appid})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["code"].as_str().expect("code").to_owned()
    }

    pub async fn code2session(&self, code: &str) -> Value {
        self.get(&format!(
            "/sns/jscode2session?appid={}&secret={}&js_code={code}&grant_type=authorization_code",
            self.appid, self.secret
        ))
        .await
    }

    /// A new user of the demo app, with its openid learnt the WeChat way.
    pub async fn device(&self, nickname: &str) -> Device {
        let token = self.new_user(nickname).await;
        let code = self.login_code(&token, &self.appid).await;
        let s = self.code2session(&code).await;
        Device {
            token,
            openid: s["openid"]
                .as_str()
                .unwrap_or_else(|| panic!("session: {s}"))
                .to_owned(),
        }
    }

    pub async fn subscribe(&self, d: &Device, ids: &[&str], decision: &str, keep: bool) -> Value {
        let decisions: serde_json::Map<String, Value> = ids
            .iter()
            .map(|i| (i.to_string(), json!(decision)))
            .collect();
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                "/client/v1/subscribe",
                Some(&d.token),
                Some(json!({"appid": self.appid, "tmplIds": ids, "decisions": decisions, "keep": keep})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    pub async fn accept(&self, d: &Device, id: &str) {
        let v = self.subscribe(d, &[id], "accept", false).await;
        assert_eq!(v[id], "accept", "{v}");
    }

    /// Valid `data` for a template, built from its gettemplate content and example.
    pub async fn example_data(&self, token: &str, id: &str) -> Value {
        let v = self
            .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={token}"))
            .await;
        let t = v["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|t| t["priTmplId"] == id)
            .unwrap_or_else(|| panic!("template {id} listed"))
            .clone();
        example_data_of(&t)
    }

    pub async fn send(&self, token: &str, body: Value) -> Value {
        self.post(
            &format!("/cgi-bin/message/subscribe/send?access_token={token}"),
            body,
        )
        .await
    }

    pub async fn ledger(&self, token: &str, openid: &str) -> Value {
        let (s, v) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/consents/{openid}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    pub async fn remaining(&self, token: &str, openid: &str, id: &str) -> u64 {
        let v = self.ledger(token, openid).await;
        v["templates"]
            .as_array()
            .expect("templates")
            .iter()
            .find(|t| t["template_id"] == id)
            .map(|t| t["remaining"].as_u64().expect("remaining"))
            .unwrap_or(0)
    }
}

impl TestApp {
    /// A token, a new user of the demo app with `grants` accepts of its one-time
    /// template, that template's id and valid data for it.
    pub async fn subscribed(&self, grants: usize) -> (String, Device, String, Value) {
        let t = self.token().await;
        let d = self.device("手机用户").await;
        let id = self.one_time();
        for _ in 0..grants {
            self.accept(&d, &id).await;
        }
        let data = self.example_data(&t, &id).await;
        (t, d, id, data)
    }
}

/// `{key: {"value": example}}` from a gettemplate entry.
pub fn example_data_of(t: &Value) -> Value {
    let content = t["content"].as_str().expect("content");
    let example = t["example"].as_str().expect("example");
    let mut data = serde_json::Map::new();
    for (c, e) in content.lines().zip(example.lines()) {
        let key = c
            .split("{{")
            .nth(1)
            .and_then(|s| s.split(".DATA").next())
            .expect("placeholder");
        let value = e.split_once(':').map(|(_, v)| v).expect("example value");
        data.insert(key.to_owned(), json!({"value": value}));
    }
    Value::Object(data)
}

pub fn errcode(v: &Value) -> i64 {
    v["errcode"]
        .as_i64()
        .unwrap_or_else(|| panic!("no errcode in {v}"))
}

/// Asserts a WeChat error: the code, and an errmsg ending in ` rid: …`.
pub fn assert_wx_err(v: &Value, code: i64) {
    assert_eq!(errcode(v), code, "{v}");
    let msg = v["errmsg"].as_str().expect("errmsg");
    let rid = msg.rsplit(" rid: ").next().expect("rid");
    assert!(
        msg.contains(" rid: ") && rid.len() == 26,
        "errmsg has a rid suffix: {msg}"
    );
}

/// A device on a real WebSocket.
pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl TestApp {
    /// Connects with `?token=` (as a browser would), says hello with `cursor`, and reads
    /// the welcome frame.
    pub async fn ws(&self, device_token: &str, cursor: u64, device: &str) -> Ws {
        let url = format!(
            "{}/client/v1/ws?token={device_token}",
            self.base.replacen("http", "ws", 1)
        );
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connects");
        let mut ws = Ws { stream };
        ws.send(json!({"type": "hello", "cursor": cursor, "device": device}))
            .await;
        let w = ws.next().await;
        assert_eq!(w["type"], "welcome", "{w}");
        ws
    }
}

impl Ws {
    pub async fn send(&mut self, v: Value) {
        use futures_util::SinkExt;
        self.stream
            .send(tokio_tungstenite::tungstenite::Message::Text(
                v.to_string().into(),
            ))
            .await
            .expect("ws send");
    }

    /// The next frame other than ping, within 5 s.
    pub async fn next(&mut self) -> Value {
        self.next_within(5_000).await.expect("a frame within 5 s")
    }

    /// The next frame other than ping within `ms`, or None.
    pub async fn next_within(&mut self, ms: u64) -> Option<Value> {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(ms);
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            match msg.expect("ws frame") {
                tokio_tungstenite::tungstenite::Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).expect("json frame");
                    if v["type"] != "ping" {
                        return Some(v);
                    }
                }
                tokio_tungstenite::tungstenite::Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    pub async fn ack(&mut self, msgid: u64) {
        self.send(json!({"type": "ack", "msgid": msgid})).await;
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

impl TestApp {
    /// Waits (polling, at most 5 s) until a message reaches `status`; returns it.
    pub async fn wait_status(&self, token: &str, msgid: u64, status: &str) -> Value {
        for _ in 0..250 {
            let (_, m) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/messages/{msgid}"),
                    Some(token),
                    None,
                )
                .await;
            if m["status"] == status {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let (_, m) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/messages/{msgid}"),
                Some(token),
                None,
            )
            .await;
        panic!("message {msgid} never reached {status}: {m}");
    }

    pub async fn v1_send(&self, token: &str, body: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            "/v1/messages",
            Some(token),
            Some(body),
        )
        .await
    }

    pub async fn put_policy(&self, token: &str, policy: Value) {
        let (s, v) = self
            .call(
                reqwest::Method::PUT,
                "/v1/policy",
                Some(token),
                Some(policy),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
}

/// Quiet hours that contain the given instant (UTC clock, ±1 hour around it).
pub fn quiet_around(now_ms: i64) -> Value {
    let minute = (now_ms / 60_000).rem_euclid(1440);
    let hhmm = |m: i64| format!("{:02}:{:02}", m.rem_euclid(1440) / 60, m.rem_euclid(60));
    json!({"start": hhmm(minute - 60), "end": hhmm(minute + 60), "utc_offset": "+00:00"})
}
