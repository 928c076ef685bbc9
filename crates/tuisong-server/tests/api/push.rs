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
use std::sync::atomic::{AtomicU32, Ordering};
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
}

pub struct Fake {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    fail: Arc<AtomicU32>,
}

impl Fake {
    pub fn events(&self) -> Vec<Received> {
        self.got.lock().clone()
    }
    pub fn fail_next(&self, n: u32) {
        self.fail.store(n, Ordering::SeqCst);
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
    (StatusCode::OK, "success".into())
}

pub async fn fake_receiver(appid: &str, token: &str) -> Fake {
    let r = Receiver {
        appid: appid.to_owned(),
        got: Arc::new(Mutex::new(Vec::new())),
        fail: Arc::new(AtomicU32::new(0)),
        token: token.to_owned(),
    };
    let (got, fail) = (r.got.clone(), r.fail.clone());
    let router = axum::Router::new()
        .route("/wx", axum::routing::any(receive))
        .with_state(r);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/wx", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, router).await });
    Fake { url, got, fail }
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
    let app = spawn_app().await;
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
    let app = spawn_app().await;
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
    let app = spawn_app().await;
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
    let app = spawn_app().await;
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
    let app2 = spawn_app().await;
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
    let app = spawn_app().await;
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
    let app = spawn_app().await;
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
    let app = spawn_app_with(|s| s.push.retry_horizon = std::time::Duration::from_secs(60)).await;
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
