//! The device socket's limits (issue 16, findings 3 and 8): the message-size cap, the
//! connection count from the upgrade on, the hello timeout, the cursor range, and acks
//! and opens of another user's message.

use crate::helpers::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};

type Raw =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `tuisong_server::gateway::MAX_MESSAGE`, as docs/PROTOCOL.md states it.
const MAX_MESSAGE: usize = 8 * 1024;

fn ws_url(app: &TestApp, token: &str) -> String {
    format!(
        "{}/client/v1/ws?token={token}",
        app.base.replacen("http", "ws", 1)
    )
}

async fn connect(app: &TestApp, token: &str) -> Raw {
    tokio_tungstenite::connect_async(ws_url(app, token))
        .await
        .expect("ws connects")
        .0
}

async fn send_text(s: &mut Raw, text: String) {
    s.send(WsMessage::Text(text.into())).await.expect("ws send");
}

/// The next text frame as JSON (pings skipped), within 5 s.
async fn next_json(s: &mut Raw) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("a frame within 5 s")
            .expect("the socket is open")
            .expect("a frame");
        if let WsMessage::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] != "ping" {
                return v;
            }
        }
    }
}

/// The close frame the server ends the socket with, within `ms` (text frames skipped).
async fn close_within(s: &mut Raw, ms: u64) -> Option<CloseFrame> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    loop {
        let msg = tokio::time::timeout_at(deadline, s.next())
            .await
            .unwrap_or_else(|_| panic!("the socket is not closed within {ms} ms"));
        match msg {
            Some(Ok(WsMessage::Close(frame))) => return frame,
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return None,
        }
    }
}

async fn hello(s: &mut Raw, cursor: u64) {
    send_text(s, json!({"type": "hello", "cursor": cursor}).to_string()).await;
    let w = next_json(s).await;
    assert_eq!(w["type"], "welcome", "{w}");
}

/// A pong frame padded to exactly `len` bytes.
fn padded_pong(len: usize) -> String {
    let head = r#"{"type":"pong","pad":""#;
    let tail = r#""}"#;
    format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
}

#[tokio::test]
async fn a_message_over_the_cap_closes_the_socket_with_1009() {
    let app = spawn_app().await;
    let dt = app.new_user("big").await;

    // At the cap, a frame is read (an unknown field of a pong is ignored).
    let mut s = connect(&app, &dt).await;
    hello(&mut s, 0).await;
    send_text(&mut s, padded_pong(MAX_MESSAGE)).await;
    send_text(&mut s, json!({"type": "ping"}).to_string()).await;
    let mut answered = false;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), s.next()).await {
        if matches!(&msg, WsMessage::Text(t) if t.contains("\"ping\"")) {
            answered = true;
            break;
        }
    }
    assert!(answered, "a frame of exactly the cap is taken");

    // One byte over, in one frame: refused from its header, before it is buffered.
    send_text(&mut s, padded_pong(MAX_MESSAGE + 1)).await;
    let close = close_within(&mut s, 5_000).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009, "{close:?}");

    // Before hello too, and in fragments each under the cap but over it together.
    let mut s = connect(&app, &dt).await;
    let part = "x".repeat(MAX_MESSAGE / 2 + 1);
    let first = Frame::message(part.clone(), OpCode::Data(Data::Text), false);
    s.send(WsMessage::Frame(first))
        .await
        .expect("first fragment");
    let rest = Frame::message(part, OpCode::Data(Data::Continue), true);
    let _ = s.send(WsMessage::Frame(rest)).await;
    let close = close_within(&mut s, 5_000).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009, "{close:?}");

    // The node is unharmed: a new device session works.
    let _phone = app.ws(&dt, 0, "phone").await;
    let (status, _) = app
        .call(reqwest::Method::GET, "/client/v1/inbox", Some(&dt), None)
        .await;
    assert_eq!(status, 200);
}

/// Opens `n` sockets at once, none of which says hello: the open ones, and the number
/// refused with a 503 that carries `Retry-After` and the /client/v1 error body.
async fn open_many(app: &TestApp, token: &str, n: usize) -> (Vec<Raw>, usize) {
    let attempts: Vec<_> = (0..n)
        .map(|_| tokio::spawn(tokio_tungstenite::connect_async(ws_url(app, token))))
        .collect();
    let (mut open, mut refused) = (Vec::new(), 0);
    for a in attempts {
        match a.await.expect("task") {
            Ok((s, _)) => open.push(s),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 503);
                assert_eq!(
                    resp.headers().get("retry-after").map(|v| v.as_bytes()),
                    Some(&b"5"[..])
                );
                let body: Value =
                    serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
                        .expect("json body");
                assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
                assert!(body["error"]["message"].is_string(), "{body}");
                refused += 1;
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    (open, refused)
}

#[tokio::test]
async fn connections_count_from_the_upgrade_and_a_full_node_answers_503() {
    let app = spawn_app_with(|s| {
        s.max_connections = 5;
        s.hello_timeout = Duration::from_secs(30);
    })
    .await;
    let dt = app.new_user("many").await;
    let (open, refused) = open_many(&app, &dt, 50).await;
    assert_eq!((open.len(), refused), (5, 45));

    // Closing them gives their places back.
    for mut s in open {
        let _ = s.close(None).await;
    }
    let mut back = None;
    for _ in 0..100 {
        let (open, refused) = open_many(&app, &dt, 5).await;
        if refused == 0 {
            back = Some(open);
            break;
        }
        drop(open);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut back = back.expect("the five places are given back");
    let (extra, refused) = open_many(&app, &dt, 1).await;
    assert_eq!((extra.len(), refused), (0, 1), "and only five");

    // A session past hello holds its place the same way.
    hello(&mut back[0], 0).await;
    let (_, refused) = open_many(&app, &dt, 1).await;
    assert_eq!(refused, 1);
}

#[tokio::test]
async fn a_socket_that_never_says_hello_is_closed_after_the_hello_timeout() {
    let app = spawn_app_with(|s| {
        s.max_connections = 1;
        s.hello_timeout = Duration::from_millis(300);
    })
    .await;
    let dt = app.new_user("quiet").await;
    let started = tokio::time::Instant::now();
    let mut s = connect(&app, &dt).await;
    let close = close_within(&mut s, 5_000).await.expect("a close frame");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(u16::from(close.code), 1008, "{close:?}");
    assert!(close.reason.as_str().contains("hello"), "{close:?}");
    // Its place is free again.
    for attempt in 0.. {
        match tokio_tungstenite::connect_async(ws_url(&app, &dt)).await {
            Ok((mut s, _)) => {
                hello(&mut s, 0).await;
                break;
            }
            Err(_) if attempt < 100 => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("the place was not given back: {e}"),
        }
    }
}

#[tokio::test]
async fn a_cursor_beyond_the_stores_range_is_refused_on_the_socket_and_over_http() {
    let app = spawn_app().await;
    let dt = app.new_user("far").await;
    for cursor in [u64::MAX, i64::MAX as u64 + 1] {
        let mut s = connect(&app, &dt).await;
        send_text(
            &mut s,
            json!({"type": "hello", "cursor": cursor}).to_string(),
        )
        .await;
        let f = next_json(&mut s).await;
        assert_eq!(f["type"], "error", "{f}");
        assert_eq!(f["message"], "cursor must be at most 9223372036854775807");
        let close = close_within(&mut s, 5_000).await.expect("a close frame");
        assert_eq!(u16::from(close.code), 1008, "{close:?}");

        let (status, v) = app
            .call(
                reqwest::Method::GET,
                &format!("/client/v1/inbox?cursor={cursor}"),
                Some(&dt),
                None,
            )
            .await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("cursor")),
            "{v}"
        );
    }
    // The largest cursor the store can hold is fine: nothing after it.
    let (status, v) = app
        .call(
            reqwest::Method::GET,
            &format!("/client/v1/inbox?cursor={}", i64::MAX),
            Some(&dt),
            None,
        )
        .await;
    assert_eq!((status, v["entries"].clone()), (200, json!([])), "{v}");
    let mut s = connect(&app, &dt).await;
    hello(&mut s, i64::MAX as u64).await;
}

#[tokio::test]
async fn acking_or_opening_another_users_message_is_not_found_and_changes_nothing() {
    let app = spawn_app().await;
    let (t, a, id, data) = app.subscribed(1).await;
    let v = app
        .send(
            &t,
            json!({"touser": a.openid, "template_id": id, "page": "pages/a", "data": data}),
        )
        .await;
    let m = v["msgid"].as_u64().expect("msgid");
    let b = app.new_user("someone else").await;

    for (path, what) in [("ack", "ack"), ("open", "open")] {
        for msgid in [m, 424_242, u64::MAX] {
            let (status, v) = app
                .call(
                    reqwest::Method::POST,
                    &format!("/client/v1/messages/{msgid}/{path}"),
                    Some(&b),
                    None,
                )
                .await;
            assert_eq!(
                (status, v["error"]["code"].clone()),
                (404, json!("not_found")),
                "{what} {msgid}: {v}"
            );
        }
    }
    let mut ws = app.ws(&b, 0, "b-phone").await;
    for kind in ["ack", "open"] {
        ws.send(json!({"type": kind, "msgid": m})).await;
        let f = ws.next().await;
        assert_eq!(
            (f["type"].clone(), f["message"].clone()),
            (json!("error"), json!(format!("no message {m}"))),
            "{kind}: {f}"
        );
    }

    let (_, msg) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/messages/{m}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(msg["status"], "accepted", "{msg}");
    let events: Vec<&str> = msg["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(
        !events.contains(&"delivered") && !events.contains(&"opened"),
        "{events:?}"
    );
    // A's own ack is still the first delivery.
    let (status, v) = app
        .call(
            reqwest::Method::POST,
            &format!("/client/v1/messages/{m}/ack"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(
        (status, v["first_delivery"].clone()),
        (200, json!(true)),
        "{v}"
    );
    let (status, v) = app
        .call(
            reqwest::Method::POST,
            &format!("/client/v1/messages/{m}/open"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!((status, v["page"].clone()), (200, json!("pages/a")), "{v}");
}
