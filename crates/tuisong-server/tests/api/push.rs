//! Message push against a fake developer server: a tiny axum receiver that checks the
//! handshake and every signature, decrypts safe/compatible bodies and records events.

use crate::helpers::*;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use tokio::sync::oneshot;
use tuisong_wire::crypto::{MsgCrypt, signature};

const TOKEN: &str = "Tk2026push";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

#[derive(Debug, Clone)]
pub struct Received {
    pub event: String,
    /// The decrypted (or plaintext) event, parsed into field → value (List items flattened
    /// into `items`).
    pub fields: Value,
    pub content_type: String,
    pub query: HashMap<String, String>,
}

#[derive(Clone)]
struct Receiver {
    appid: String,
    got: Arc<Mutex<Vec<Received>>>,
    /// Answer HTTP 500 to this many POSTs before succeeding.
    fail: Arc<AtomicU32>,
    token: String,
    /// Every request, GET or POST.
    hits: Arc<AtomicU32>,
    /// POSTs are read and never answered.
    hang: Arc<AtomicBool>,
    /// Answer POSTs with this body (after recording them) instead of `success`.
    reply: Arc<Mutex<Option<String>>>,
}

pub struct Fake {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    fail: Arc<AtomicU32>,
    hits: Arc<AtomicU32>,
    hang: Arc<AtomicBool>,
    reply: Arc<Mutex<Option<String>>>,
    addr: std::net::SocketAddr,
    router: axum::Router,
    running: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

impl Fake {
    pub fn events(&self) -> Vec<Received> {
        self.got.lock().clone()
    }
    pub fn fail_next(&self, n: u32) {
        self.fail.store(n, Ordering::SeqCst);
    }
    pub fn hits(&self) -> u32 {
        self.hits.load(Ordering::SeqCst)
    }
    pub fn hang(&self, on: bool) {
        self.hang.store(on, Ordering::SeqCst);
    }
    pub fn reply_with(&self, body: &str) {
        *self.reply.lock() = Some(body.to_owned());
    }
    /// The receiver goes away: its port refuses connections until [`Fake::start`].
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            task.await.expect("receiver stops");
        }
    }
    /// The receiver listens again on the same port.
    pub async fn start(&mut self) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket.bind(self.addr).expect("bind the same port again");
        let l = socket.listen(64).expect("listen");
        self.running = Some(serve(l, self.router.clone()));
    }
    /// Waits until `n` events arrived (at most 5 s).
    pub async fn wait(&self, n: usize) -> Vec<Received> {
        for _ in 0..250 {
            let got = self.events();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!(
            "expected {n} events, got {:?}",
            self.events()
                .iter()
                .map(|e| e.event.clone())
                .collect::<Vec<_>>()
        );
    }
}

fn xml_value(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    let inner = &xml[start..end];
    Some(
        inner
            .strip_prefix("<![CDATA[")
            .and_then(|s| s.strip_suffix("]]>"))
            .unwrap_or(inner)
            .to_owned(),
    )
}

/// Parses a plaintext event, XML or JSON, into one JSON shape for assertions.
fn parse_event(text: &str) -> Value {
    if text.trim_start().starts_with('<') {
        let mut v = serde_json::Map::new();
        for f in [
            "ToUserName",
            "FromUserName",
            "CreateTime",
            "MsgType",
            "Event",
            "TemplateId",
            "MsgID",
            "Device",
        ] {
            if let Some(x) = xml_value(text, f) {
                v.insert(f.into(), json!(x));
            }
        }
        let items: Vec<Value> = text
            .split("<List>")
            .skip(1)
            .map(|chunk| {
                let chunk = chunk.split("</List>").next().unwrap_or("");
                let mut item = serde_json::Map::new();
                for f in [
                    "TemplateId",
                    "SubscribeStatusString",
                    "PopupScene",
                    "MsgID",
                    "ErrorCode",
                    "ErrorStatus",
                ] {
                    if let Some(x) = xml_value(chunk, f) {
                        item.insert(f.into(), json!(x));
                    }
                }
                Value::Object(item)
            })
            .collect();
        v.insert("items".into(), json!(items));
        Value::Object(v)
    } else {
        let mut v: Value = serde_json::from_str(text).expect("json event");
        let items = match v.get("List") {
            Some(Value::Array(a)) => a.clone(),
            Some(o @ Value::Object(_)) => vec![o.clone()],
            _ => vec![],
        };
        // Normalize scalars to strings, as the XML view does.
        let norm = |x: &Value| -> Value {
            match x {
                Value::Object(m) => Value::Object(
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                match v {
                                    Value::String(s) => json!(s),
                                    other => json!(other.to_string()),
                                },
                            )
                        })
                        .collect(),
                ),
                o => o.clone(),
            }
        };
        v["items"] = json!(items.iter().map(norm).collect::<Vec<_>>());
        v["list_is_array"] = json!(matches!(v.get("List"), Some(Value::Array(_))));
        v
    }
}

async fn receive(
    State(r): State<Receiver>,
    method: axum::http::Method,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> (axum::http::StatusCode, String) {
    use axum::http::StatusCode;
    r.hits.fetch_add(1, Ordering::SeqCst);
    let sig = signature(&[
        &r.token,
        q.get("timestamp").map_or("", |s| s),
        q.get("nonce").map_or("", |s| s),
    ]);
    if q.get("signature") != Some(&sig) {
        return (StatusCode::FORBIDDEN, "bad signature".into());
    }
    if method == axum::http::Method::GET {
        return (
            StatusCode::OK,
            q.get("echostr").cloned().unwrap_or_default(),
        );
    }
    if r.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    if r.fail.load(Ordering::SeqCst) > 0 {
        r.fail.fetch_sub(1, Ordering::SeqCst);
        return (StatusCode::INTERNAL_SERVER_ERROR, "down".into());
    }
    let text = String::from_utf8(body.to_vec()).expect("utf-8 body");
    let plaintext = if q.get("encrypt_type").map(String::as_str) == Some("aes") {
        let encrypt = if text.trim_start().starts_with('<') {
            xml_value(&text, "Encrypt").expect("Encrypt element")
        } else {
            serde_json::from_str::<Value>(&text).expect("json")["Encrypt"]
                .as_str()
                .expect("Encrypt")
                .to_owned()
        };
        let msig = signature(&[&r.token, &q["timestamp"], &q["nonce"], &encrypt]);
        assert_eq!(
            q.get("msg_signature"),
            Some(&msig),
            "msg_signature checks out"
        );
        MsgCrypt::new(AES_KEY, &r.appid)
            .expect("key")
            .decrypt(&encrypt)
            .expect("decrypts with our appid")
    } else {
        text
    };
    let fields = parse_event(&plaintext);
    r.got.lock().push(Received {
        event: fields["Event"].as_str().unwrap_or("").to_owned(),
        fields,
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        query: q,
    });
    let reply = r.reply.lock().clone();
    (StatusCode::OK, reply.unwrap_or_else(|| "success".into()))
}

fn serve(
    l: tokio::net::TcpListener,
    router: axum::Router,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(l, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    (stop, task)
}

pub async fn fake_receiver(appid: &str, token: &str) -> Fake {
    let r = Receiver {
        appid: appid.to_owned(),
        got: Arc::new(Mutex::new(Vec::new())),
        fail: Arc::new(AtomicU32::new(0)),
        token: token.to_owned(),
        hits: Arc::new(AtomicU32::new(0)),
        hang: Arc::new(AtomicBool::new(false)),
        reply: Arc::new(Mutex::new(None)),
    };
    let (got, fail, hits, hang, reply) = (
        r.got.clone(),
        r.fail.clone(),
        r.hits.clone(),
        r.hang.clone(),
        r.reply.clone(),
    );
    let router = axum::Router::new()
        .route("/wx", axum::routing::any(receive))
        .with_state(r);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let url = format!("http://{addr}/wx");
    let running = Some(serve(l, router.clone()));
    Fake {
        url,
        got,
        fail,
        hits,
        hang,
        reply,
        addr,
        router,
        running,
    }
}

/// A server whose receivers may be on 127.0.0.1, as the fakes here are.
async fn spawn_push_app() -> TestApp {
    spawn_app_with(|s| s.push.allow_private = true).await
}

async fn configure(app: &TestApp, t: &str, fake: &Fake, format: &str, mode: &str, ext: bool) {
    let (s, v) = app
        .call(
            reqwest::Method::PUT,
            "/v1/push-config",
            Some(t),
            Some(json!({"url": fake.url, "token": TOKEN, "encoding_aes_key": AES_KEY, "format": format, "mode": mode, "extension_events": ext})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn saving_a_config_needs_a_receiver_that_echoes_and_masks_the_secrets() {
    let app = spawn_push_app().await;
    let t = app.token().await;
    let good = fake_receiver(&app.appid, TOKEN).await;
    let wrong_token = fake_receiver(&app.appid, "SomethingElse").await;
    let body = |url: &str| json!({"url": url, "token": TOKEN, "encoding_aes_key": AES_KEY, "format": "xml", "mode": "safe"});
    let (s, v) = app
        .call(
            reqwest::Method::PUT,
            "/v1/push-config",
            Some(&t),
            Some(body(&wrong_token.url)),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains("handshake failed"),
        "{v}"
    );
    let (s, v) = app
        .call(
            reqwest::Method::PUT,
            "/v1/push-config",
            Some(&t),
            Some(body("http://127.0.0.1:1/none")),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = app
        .call(reqwest::Method::GET, "/v1/push-config", Some(&t), None)
        .await;
    assert_eq!(s, 404, "nothing was saved");
    for bad in [
        json!({"url": good.url, "token": TOKEN, "format": "xml", "mode": "safe"}),
        json!({"url": good.url, "token": TOKEN, "encoding_aes_key": "short", "format": "xml", "mode": "safe"}),
        json!({"url": "ftp://x", "token": TOKEN, "format": "xml", "mode": "plaintext"}),
        json!({"url": good.url, "token": TOKEN, "format": "yaml", "mode": "plaintext"}),
        json!({"url": good.url, "token": "a b", "format": "xml", "mode": "plaintext"}),
    ] {
        let (s, v) = app
            .call(
                reqwest::Method::PUT,
                "/v1/push-config",
                Some(&t),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(s, 400, "{bad} → {v}");
    }
    let (s, v) = app
        .call(
            reqwest::Method::PUT,
            "/v1/push-config",
            Some(&t),
            Some(body(&good.url)),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, shown) = app
        .call(reqwest::Method::GET, "/v1/push-config", Some(&t), None)
        .await;
    assert_eq!(shown["url"], good.url.as_str());
    assert_ne!(shown["token"], TOKEN);
    assert!(
        !shown.to_string().contains(AES_KEY),
        "the key is never returned in full: {shown}"
    );
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            "/v1/push-config/test",
            Some(&t),
            None,
        )
        .await;
    assert_eq!((s, v["ok"].clone()), (200, json!(true)));
    // The operator can read and change it too.
    let (s, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/admin/apps/{}/push-config", app.appid),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .call(reqwest::Method::DELETE, "/v1/push-config", Some(&t), None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .call(reqwest::Method::GET, "/v1/push-config", Some(&t), None)
        .await;
    assert_eq!(s, 404);
}

/// Runs the WeChat events through one format and mode and checks what arrives.
async fn every_event_in(format: &str, mode: &str) {
    let app = spawn_push_app().await;
    let t = app.token().await;
    let fake = fake_receiver(&app.appid, TOKEN).await;
    configure(&app, &t, &fake, format, mode, false).await;
    let d = app.device("u").await;
    let ids: Vec<String> = app
        .templates
        .iter()
        .filter(|x| x.1 == 2)
        .map(|x| x.0.clone())
        .collect();
    // 1. popup with two templates (List of two).
    let v = app
        .subscribe(&d, &[&ids[0], &ids[1]], "accept", false)
        .await;
    assert_eq!(v[&ids[0]], "accept");
    // 2. a delivered message → sent 0.
    let data = app.example_data(&t, &ids[0]).await;
    let mut ws = app.ws(&d.token, 0, "phone").await;
    let m = app
        .send(
            &t,
            json!({"touser": d.openid, "template_id": ids[0], "data": data}),
        )
        .await["msgid"]
        .as_u64()
        .expect("id");
    ws.next().await;
    ws.ack(m).await;
    // 3. turning a template off → change.
    let _ = app
        .call(
            reqwest::Method::PUT,
            "/client/v1/settings",
            Some(&d.token),
            Some(json!({"appid": app.appid, "itemSettings": {ids[1].clone(): "reject"}})),
        )
        .await;
    let got = fake.wait(3).await;
    let popup = &got[0];
    assert_eq!(popup.event, "subscribe_msg_popup_event");
    assert_eq!(popup.fields["FromUserName"], d.openid.as_str());
    assert!(
        popup.fields["ToUserName"]
            .as_str()
            .expect("to")
            .starts_with("gh_")
    );
    let items = popup.fields["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["SubscribeStatusString"], "accept");
    assert_eq!(items[0]["PopupScene"], "0");
    if format == "json" {
        assert_eq!(
            popup.fields["list_is_array"], true,
            "several items: an array"
        );
        assert!(
            popup.fields["CreateTime"].is_i64(),
            "CreateTime is an integer"
        );
    }
    let sent = &got[1];
    assert_eq!(sent.event, "subscribe_msg_sent_event");
    let item = &sent.fields["items"][0];
    assert_eq!(
        (
            item["MsgID"].clone(),
            item["ErrorCode"].clone(),
            item["ErrorStatus"].clone()
        ),
        (json!(m.to_string()), json!("0"), json!("success"))
    );
    if format == "json" {
        assert_eq!(sent.fields["list_is_array"], false, "one item: an object");
        assert!(
            sent.fields["List"]["ErrorCode"].is_i64() && sent.fields["List"]["MsgID"].is_string()
        );
    }
    let change = &got[2];
    assert_eq!(change.event, "subscribe_msg_change_event");
    assert_eq!(change.fields["items"][0]["SubscribeStatusString"], "reject");
    assert_eq!(change.fields["items"][0]["TemplateId"], ids[1].as_str());
    for r in &got {
        let want = if format == "xml" {
            "text/xml"
        } else {
            "application/json"
        };
        assert_eq!(r.content_type, want);
        assert_eq!(r.query.contains_key("msg_signature"), mode != "plaintext");
        assert_eq!(r.query.contains_key("openid"), mode != "plaintext");
    }
}

#[tokio::test]
async fn events_arrive_as_xml_in_plaintext_mode() {
    every_event_in("xml", "plaintext").await;
}
#[tokio::test]
async fn events_arrive_as_xml_in_compatible_mode() {
    every_event_in("xml", "compatible").await;
}
#[tokio::test]
async fn events_arrive_as_xml_in_safe_mode() {
    every_event_in("xml", "safe").await;
}
#[tokio::test]
async fn events_arrive_as_json_in_plaintext_mode() {
    every_event_in("json", "plaintext").await;
}
#[tokio::test]
async fn events_arrive_as_json_in_compatible_mode() {
    every_event_in("json", "compatible").await;
}
#[tokio::test]
async fn events_arrive_as_json_in_safe_mode() {
    every_event_in("json", "safe").await;
}

#[tokio::test]
async fn the_final_outcome_of_undelivered_messages_has_its_own_code() {
    let app = spawn_push_app().await;
    let t = app.token().await;
    let fake = fake_receiver(&app.appid, TOKEN).await;
    configure(&app, &t, &fake, "json", "safe", false).await;
    let d = app.device("u").await;
    let id = app.one_time();
    for _ in 0..3 {
        app.accept(&d, &id).await;
    }
    let data = app.example_data(&t, &id).await;
    let body = json!({"touser": d.openid, "template_id": id, "data": data, "ttl_seconds": 60});
    let a = app.v1_send(&t, body.clone()).await.1["msgid"]
        .as_u64()
        .expect("a");
    let b = app.v1_send(&t, body.clone()).await.1["msgid"]
        .as_u64()
        .expect("b");
    let c = app.v1_send(&t, body).await.1["msgid"].as_u64().expect("c");
    app.call(
        reqwest::Method::POST,
        &format!("/v1/messages/{a}/cancel"),
        Some(&t),
        None,
    )
    .await;
    app.call(
        reqwest::Method::POST,
        &format!("/v1/messages/{b}/recall"),
        Some(&t),
        None,
    )
    .await;
    app.clock.advance_ms(61_000);
    app.wait_status(&t, c, "expired").await;
    let got = fake.wait(6).await;
    let sent: Vec<(String, String)> = got
        .iter()
        .filter(|r| r.event == "subscribe_msg_sent_event")
        .map(|r| {
            (
                r.fields["items"][0]["MsgID"]
                    .as_str()
                    .expect("id")
                    .to_owned(),
                r.fields["items"][0]["ErrorCode"]
                    .as_str()
                    .expect("code")
                    .to_owned(),
            )
        })
        .collect();
    assert!(sent.contains(&(a.to_string(), "1002".into())), "{sent:?}");
    assert!(sent.contains(&(b.to_string(), "1003".into())), "{sent:?}");
    assert!(sent.contains(&(c.to_string(), "1001".into())), "{sent:?}");
}

#[tokio::test]
async fn extension_events_come_only_when_asked_for() {
    let app = spawn_push_app().await;
    let t = app.token().await;
    let fake = fake_receiver(&app.appid, TOKEN).await;
    configure(&app, &t, &fake, "xml", "plaintext", true).await;
    let d = app.device("u").await;
    let id = app.one_time();
    app.accept(&d, &id).await;
    let data = app.example_data(&t, &id).await;
    let mut ws = app.ws(&d.token, 0, "phone").await;
    let m = app
        .send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await["msgid"]
        .as_u64()
        .expect("m");
    ws.next().await;
    ws.ack(m).await;
    ws.send(json!({"type": "open", "msgid": m})).await;
    ws.next().await;
    app.call(
        reqwest::Method::POST,
        &format!("/v1/messages/{m}/conversions"),
        Some(&t),
        Some(json!({"event": "buy", "value": 12.5})),
    )
    .await;
    app.call(
        reqwest::Method::POST,
        &format!("/v1/messages/{m}/recall"),
        Some(&t),
        None,
    )
    .await;
    // The card's "stop receiving this": a change event.
    ws.send(json!({"type": "unsubscribe", "msgid": m})).await;
    let got = fake.wait(7).await;
    let names: Vec<&str> = got.iter().map(|r| r.event.as_str()).collect();
    for want in [
        "subscribe_msg_popup_event",
        "subscribe_msg_sent_event",
        "tuisong_msg_delivered",
        "tuisong_msg_opened",
        "tuisong_msg_converted",
        "tuisong_msg_recalled",
        "subscribe_msg_change_event",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let delivered = got
        .iter()
        .find(|r| r.event == "tuisong_msg_delivered")
        .expect("delivered");
    assert_eq!(delivered.fields["MsgID"], m.to_string());
    assert_eq!(delivered.fields["Device"], "phone");
    // Without the opt-in, none of ours.
    let app2 = spawn_push_app().await;
    let t2 = app2.token().await;
    let fake2 = fake_receiver(&app2.appid, TOKEN).await;
    configure(&app2, &t2, &fake2, "xml", "plaintext", false).await;
    let d2 = app2.device("u").await;
    let id2 = app2.one_time();
    app2.accept(&d2, &id2).await;
    let data2 = app2.example_data(&t2, &id2).await;
    let mut ws2 = app2.ws(&d2.token, 0, "phone").await;
    let m2 = app2
        .send(
            &t2,
            json!({"touser": d2.openid, "template_id": id2, "data": data2}),
        )
        .await["msgid"]
        .as_u64()
        .expect("m");
    ws2.next().await;
    ws2.ack(m2).await;
    let got2 = fake2.wait(2).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        fake2
            .events()
            .iter()
            .all(|r| !r.event.starts_with("tuisong_")),
        "{:?}",
        got2.iter().map(|r| &r.event).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_every_event_later_in_order() {
    let app = spawn_push_app().await;
    let t = app.token().await;
    let fake = fake_receiver(&app.appid, TOKEN).await;
    configure(&app, &t, &fake, "json", "plaintext", false).await;
    fake.fail_next(3);
    let d = app.device("u").await;
    let ids: Vec<String> = app
        .templates
        .iter()
        .filter(|x| x.1 == 2)
        .map(|x| x.0.clone())
        .collect();
    app.accept(&d, &ids[0]).await;
    app.accept(&d, &ids[1]).await;
    app.accept(&d, &ids[0]).await;
    // Attempt 1 at once, then retries after ~5 s, ~15 s and ~60 s; the fourth succeeds.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(fake.events().is_empty());
    for _ in 0..4 {
        app.clock.advance_ms(80_000);
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    let got = fake.wait(3).await;
    let order: Vec<&str> = got
        .iter()
        .map(|r| r.fields["items"][0]["TemplateId"].as_str().expect("t"))
        .collect();
    assert_eq!(
        order,
        vec![ids[0].as_str(), ids[1].as_str(), ids[0].as_str()],
        "per-user order kept"
    );
    let (s, v) = app
        .call(
            reqwest::Method::GET,
            "/v1/push-config/deliveries",
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let attempts = v["attempts"].as_array().expect("attempts");
    assert!(
        attempts.iter().any(|a| a["ok"] == false
            && a["http_status"] == 500
            && a["outcome"].as_str().unwrap_or("").starts_with("retry")),
        "{v}"
    );
    assert!(
        attempts.iter().filter(|a| a["ok"] == true).count() >= 3,
        "{v}"
    );
}

#[tokio::test]
async fn queued_events_survive_a_restart() {
    let app = spawn_push_app().await;
    let t = app.token().await;
    let fake = fake_receiver(&app.appid, TOKEN).await;
    configure(&app, &t, &fake, "xml", "safe", false).await;
    fake.fail_next(1000);
    let d = app.device("u").await;
    let id = app.one_time();
    for _ in 0..4 {
        app.accept(&d, &id).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let app = app.restart().await;
    fake.fail_next(0);
    for _ in 0..4 {
        app.clock.advance_ms(60_000);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let got = fake.wait(4).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(fake.events().len(), 4, "each event once: {:?}", got.len());
}

#[tokio::test]
async fn an_event_is_given_up_after_the_retry_horizon() {
    let app = spawn_app_with(|s| {
        s.push.allow_private = true;
        s.push.retry_horizon = std::time::Duration::from_secs(60);
    })
    .await;
    let t = app.token().await;
    let fake = fake_receiver(&app.appid, TOKEN).await;
    configure(&app, &t, &fake, "json", "plaintext", false).await;
    fake.fail_next(1000);
    let d = app.device("u").await;
    app.accept(&d, &app.one_time()).await;
    for _ in 0..6 {
        app.clock.advance_ms(20_000);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, v) = app
        .call(
            reqwest::Method::GET,
            "/v1/push-config/deliveries",
            Some(&t),
            None,
        )
        .await;
    let attempts = v["attempts"].as_array().expect("attempts");
    assert!(attempts.iter().any(|a| a["outcome"] == "gave up"), "{v}");
    let n = attempts.len();
    app.clock.advance_ms(3_600_000);
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let (_, v) = app
        .call(
            reqwest::Method::GET,
            "/v1/push-config/deliveries",
            Some(&t),
            None,
        )
        .await;
    assert_eq!(
        v["attempts"].as_array().expect("a").len(),
        n,
        "no attempt after giving up"
    );
}

async fn put_config(app: &TestApp, t: &str, url: &str) -> (u16, Value) {
    app.call(
        reqwest::Method::PUT,
        "/v1/push-config",
        Some(t),
        Some(json!({"url": url, "token": TOKEN, "format": "json", "mode": "plaintext"})),
    )
    .await
}

fn message_of(v: &Value) -> String {
    v["error"]["message"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn receivers_on_internal_addresses_are_refused_in_every_spelling() {
    let app = spawn_app().await;
    let t = app.token().await;
    // A live receiver on loopback: any spelling that got through would pass the handshake.
    let fake = fake_receiver(&app.appid, TOKEN).await;
    let port = fake
        .url
        .rsplit(':')
        .next()
        .expect("port")
        .trim_end_matches("/wx");
    let urls: Vec<String> = [
        "127.0.0.1",
        "localhost",
        "LocalHost",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "0.0.0.0",
        "0",
        "2130706433",
        "0x7f.1",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "169.254.169.254",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "[fc00::1]",
        "[fe80::1]",
        "[::]",
        "224.0.0.1",
        "255.255.255.255",
    ]
    .iter()
    .map(|h| format!("http://{h}:{port}/wx"))
    .collect();
    for url in &urls {
        let (s, v) = put_config(&app, &t, url).await;
        assert_eq!(s, 400, "{url} → {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{url} → {v}");
        assert!(message_of(&v).contains("not allowed"), "{url} → {v}");
    }
    // A name that does not resolve here at all fails the check, and reaches nothing.
    let (s, v) = put_config(&app, &t, &format!("http://localhost.:{port}/wx")).await;
    assert_eq!(s, 400, "{v}");
    // The operator's door refuses the same.
    let (s, v) = app
        .call(
            reqwest::Method::PUT,
            &format!("/admin/apps/{}/push-config", app.appid),
            Some(ADMIN_TOKEN),
            Some(json!({"url": format!("http://2130706433:{port}/wx"), "token": TOKEN, "format": "json", "mode": "plaintext"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(fake.hits(), 0, "no request reached the receiver");
    let (s, _) = app
        .call(reqwest::Method::GET, "/v1/push-config", Some(&t), None)
        .await;
    assert_eq!(s, 404, "nothing was saved");
    // Other schemes and credentials in the URL are refused too, without echoing them.
    for url in [
        format!("ftp://127.0.0.1:{port}/wx"),
        format!("http://user:hunter2@example.com:{port}/wx"),
        "https://token-hunter2@example.com/wx".to_owned(),
    ] {
        let (s, v) = put_config(&app, &t, &url).await;
        assert_eq!(s, 400, "{url} → {v}");
        assert!(!v.to_string().contains("hunter2"), "{v}");
    }
}

#[tokio::test]
async fn with_private_receivers_allowed_a_local_receiver_works_but_credentials_do_not() {
    let app = spawn_push_app().await;
    let t = app.token().await;
    let fake = fake_receiver(&app.appid, TOKEN).await;
    let port = fake
        .url
        .rsplit(':')
        .next()
        .expect("port")
        .trim_end_matches("/wx");
    let (s, v) = put_config(&app, &t, &format!("http://localhost:{port}/wx")).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = put_config(&app, &t, &format!("http://127.1:{port}/wx")).await;
    assert_eq!(s, 200, "numeric spellings are the same host: {v}");
    // Never hosts stay refused.
    let (s, v) = put_config(&app, &t, &format!("http://0.0.0.0:{port}/wx")).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = put_config(&app, &t, &format!("http://u:hunter2@127.0.0.1:{port}/wx")).await;
    assert_eq!(s, 400, "{v}");
    assert!(message_of(&v).contains("user name or password"), "{v}");
    assert!(!v.to_string().contains("hunter2"), "{v}");
    let (_, shown) = app
        .call(reqwest::Method::GET, "/v1/push-config", Some(&t), None)
        .await;
    assert_eq!(shown["url"], format!("http://127.1:{port}/wx"), "{shown}");
    // Events flow to it.
    let d = app.device("u").await;
    app.accept(&d, &app.one_time()).await;
    fake.wait(1).await;
}

#[tokio::test]
async fn a_failed_handshake_says_the_same_whatever_went_wrong() {
    let app = spawn_app_with(|s| {
        s.push.allow_private = true;
        s.push.timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let t = app.token().await;
    let wrong_token = fake_receiver(&app.appid, "SomethingElse").await; // HTTP 403
    let hung = fake_receiver(&app.appid, TOKEN).await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_url = format!("http://{}/wx", silent.local_addr().expect("addr"));
    // Accepts and never answers.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let wrong_echo = {
        let router = axum::Router::new().route("/wx", axum::routing::get(|| async { "nope" }));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/wx", l.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(l, router).await });
        url
    };
    let not_found = format!("{}/elsewhere", wrong_token.url.trim_end_matches("/wx"));
    hung.hang(true);
    let mut messages = std::collections::BTreeSet::new();
    for url in [
        wrong_token.url.clone(),
        "http://127.0.0.1:1/wx".to_owned(), // connection refused
        silent_url,                         // timeout
        wrong_echo,
        not_found, // HTTP 404
    ] {
        let (s, v) = put_config(&app, &t, &url).await;
        assert_eq!(s, 400, "{url} → {v}");
        messages.insert(message_of(&v));
    }
    assert_eq!(messages.len(), 1, "one message for all: {messages:?}");
    let m = messages.pop_first().expect("a message");
    assert!(
        m.contains("handshake failed") && m.contains("echostr"),
        "{m}"
    );
    assert!(!m.contains("127.0.0.1") && !m.contains("HTTP"), "{m}");
}

#[tokio::test]
async fn the_delivery_log_never_shows_the_receivers_reply() {
    let app = spawn_push_app().await;
    let t = app.token().await;
    let fake = fake_receiver(&app.appid, TOKEN).await;
    configure(&app, &t, &fake, "json", "plaintext", false).await;
    fake.reply_with("internal: db password=hunter2 at 10.1.2.3");
    let d = app.device("u").await;
    app.accept(&d, &app.one_time()).await;
    fake.wait(1).await;
    let mut attempts = Vec::new();
    for _ in 0..100 {
        let (_, v) = app
            .call(
                reqwest::Method::GET,
                "/v1/push-config/deliveries",
                Some(&t),
                None,
            )
            .await;
        attempts = v["attempts"].as_array().cloned().unwrap_or_default();
        if !attempts.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!attempts.is_empty());
    let shown = json!(attempts).to_string();
    assert!(
        !shown.contains("hunter2") && !shown.contains("10.1.2.3"),
        "{shown}"
    );
    assert_eq!(attempts[0]["ok"], false, "{shown}");
    assert_eq!(attempts[0]["http_status"], 200, "{shown}");
}

#[tokio::test]
async fn push_allow_private_is_read_from_the_file_and_the_environment() {
    use tuisong_server::{Overrides, Settings};
    let s = Settings::load(None, vec![], &Overrides::default()).expect("defaults");
    assert!(!s.push.allow_private, "off by default");
    let env = vec![("TUISONG_PUSH_ALLOW_PRIVATE".to_owned(), "true".to_owned())];
    let s = Settings::load(None, env, &Overrides::default()).expect("env");
    assert!(s.push.allow_private);
    let f = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(f.path(), "push_allow_private = true\n").expect("write");
    let s = Settings::load(Some(f.path()), vec![], &Overrides::default()).expect("file");
    assert!(s.push.allow_private);
    let env = vec![("TUISONG_PUSH_ALLOW_PRIVATE".to_owned(), "maybe".to_owned())];
    let e = Settings::load(None, env, &Overrides::default()).expect_err("refused");
    assert!(
        e.to_string().starts_with("TUISONG_PUSH_ALLOW_PRIVATE"),
        "{e}"
    );
}

/// A second app on the same server, with one template of its own: (appid, secret, token,
/// template id).
async fn second_app(app: &TestApp) -> (String, String, String, String) {
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            "/admin/apps",
            Some(ADMIN_TOKEN),
            Some(json!({"name": "第二个"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let appid = v["appid"].as_str().expect("appid").to_owned();
    let secret = v["secret"].as_str().expect("secret").to_owned();
    let t = app.token_for(&appid, &secret).await;
    let cats = app
        .get(&format!("/wxaapi/newtmpl/getcategory?access_token={t}"))
        .await;
    let cat = cats["data"][0]["id"].to_string();
    let titles = app
        .get(&format!(
            "/wxaapi/newtmpl/getpubtemplatetitles?access_token={t}&ids={cat}&start=0&limit=30"
        ))
        .await;
    let title = titles["data"]
        .as_array()
        .expect("titles")
        .iter()
        .find(|x| x["type"] == 2)
        .expect("a one-time title")
        .clone();
    let tid = title["tid"].to_string();
    let kw = app
        .get(&format!(
            "/wxaapi/newtmpl/getpubtemplatekeywords?access_token={t}&tid={tid}"
        ))
        .await;
    let kids: Vec<u64> = kw["data"]
        .as_array()
        .expect("keywords")
        .iter()
        .take(2)
        .map(|k| k["kid"].as_u64().expect("kid"))
        .collect();
    let v = app
        .post(
            &format!("/wxaapi/newtmpl/addtemplate?access_token={t}"),
            json!({"tid": tid, "kidList": kids, "sceneDesc": "test"}),
        )
        .await;
    let id = v["priTmplId"]
        .as_str()
        .unwrap_or_else(|| panic!("added: {v}"))
        .to_owned();
    (appid, secret, t, id)
}

/// A new device user who accepts template `id` of `appid` (queueing one popup event).
async fn accept_as_new_user(app: &TestApp, appid: &str, secret: &str, id: &str) {
    let dt = app.new_user("u").await;
    let code = app.login_code(&dt, appid).await;
    let s = app
        .get(&format!(
            "/sns/jscode2session?appid={appid}&secret={secret}&js_code={code}&grant_type=authorization_code"
        ))
        .await;
    assert!(s["openid"].is_string(), "{s}");
    let (status, v) = app
        .call(
            reqwest::Method::POST,
            "/client/v1/subscribe",
            Some(&dt),
            Some(json!({"appid": appid, "tmplIds": [id], "decisions": {id: "accept"}, "keep": false})),
        )
        .await;
    assert_eq!((status, v[id].clone()), (200, json!("accept")), "{v}");
}

#[tokio::test]
async fn a_receiver_that_hangs_does_not_hold_up_another_apps_events() {
    let app = spawn_app_with(|s| {
        s.push.allow_private = true;
        s.push.timeout = std::time::Duration::from_secs(5);
    })
    .await;
    let t = app.token().await;
    let slow = fake_receiver(&app.appid, TOKEN).await;
    configure(&app, &t, &slow, "json", "plaintext", false).await;
    slow.hang(true);
    // Many users of the demo app, each with an event for the receiver that hangs.
    let id = app.one_time();
    for _ in 0..60 {
        accept_as_new_user(&app, &app.appid, &app.secret, &id).await;
    }
    let (appid2, secret2, t2, id2) = second_app(&app).await;
    let fast = fake_receiver(&appid2, TOKEN).await;
    configure(&app, &t2, &fast, "json", "plaintext", false).await;
    // Let the hanging receiver take all it can.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let began = std::time::Instant::now();
    accept_as_new_user(&app, &appid2, &secret2, &id2).await;
    let got = fast.wait(1).await;
    let took = began.elapsed();
    assert_eq!(got[0].event, "subscribe_msg_popup_event");
    assert!(
        took < std::time::Duration::from_secs(2),
        "the other app's event took {took:?}"
    );
    assert!(slow.events().is_empty(), "the slow receiver never answered");
}

#[tokio::test]
async fn after_an_outage_every_event_arrives_once_and_in_order() {
    let app = spawn_push_app().await;
    let t = app.token().await;
    let mut fake = fake_receiver(&app.appid, TOKEN).await;
    configure(&app, &t, &fake, "json", "plaintext", false).await;
    fake.stop().await;
    let ids: Vec<String> = app
        .templates
        .iter()
        .filter(|x| x.1 == 2)
        .map(|x| x.0.clone())
        .collect();
    let mut users = Vec::new();
    for n in 0..4 {
        let d = app.device("u").await;
        app.accept(&d, &ids[0]).await;
        if n < 3 {
            app.accept(&d, &ids[1]).await;
        }
        users.push(d.openid);
    }
    let expected = 7;
    // While it is down: attempts fail and are retried (5 s, 15 s, 1 min, … ±20 %).
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        app.clock.advance_ms(20_000);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (_, v) = app
        .call(
            reqwest::Method::GET,
            "/v1/push-config/deliveries",
            Some(&t),
            None,
        )
        .await;
    let failed = v["attempts"].as_array().expect("attempts");
    assert!(
        failed.len() >= 8
            && failed.iter().all(|a| a["ok"] == false
                && a["http_status"].is_null()
                && a["error"] == "no answer from the receiver"),
        "{v}"
    );
    assert!(fake.events().is_empty());
    fake.start().await;
    // Past the longest retry delay that can be pending, a few times over.
    for _ in 0..30 {
        if fake.events().len() >= expected {
            break;
        }
        app.clock.advance_ms(400_000);
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    fake.wait(expected).await;
    // Nothing comes twice, however long we wait.
    for _ in 0..5 {
        app.clock.advance_ms(3_600_000);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let got = fake.events();
    assert_eq!(got.len(), expected, "each event exactly once");
    for (n, openid) in users.iter().enumerate() {
        let mine: Vec<&str> = got
            .iter()
            .filter(|r| r.fields["FromUserName"] == openid.as_str())
            .map(|r| r.fields["items"][0]["TemplateId"].as_str().expect("t"))
            .collect();
        let want: Vec<&str> = if n < 3 {
            vec![ids[0].as_str(), ids[1].as_str()]
        } else {
            vec![ids[0].as_str()]
        };
        assert_eq!(mine, want, "user {n}: every event, in order");
    }
}
