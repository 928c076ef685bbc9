//! A graceful stop of the real binary: with a device connected and a stream of sends in
//! flight, SIGTERM makes the process exit 0 within its drain timeout, the device's
//! socket is closed with 1001 (going away, so it reconnects elsewhere), and every send
//! that was answered errcode 0 is in the store after a restart, read back through the
//! inbox from cursor 0.

mod common;

use common::{Api, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const DRAIN_SECS: u64 = 5;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A device socket past its hello (cursor 0).
async fn device(base: &str, device_token: &str) -> Ws {
    let url = format!(
        "{}/client/v1/ws?token={device_token}",
        base.replacen("http", "ws", 1)
    );
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("connects within 10 s")
    .expect("ws connects");
    let hello = json!({"type": "hello", "cursor": 0, "device": "drain-test"});
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .expect("hello");
    ws
}

/// Reads frames until the socket ends; returns the close code the server sent, if any.
async fn close_code(mut ws: Ws) -> Option<u16> {
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// Every (seq, msgid) in the user's inbox, read from cursor 0 until `at_least` have
/// come and then nothing more for half a second.
async fn read_inbox(base: &str, device_token: &str, at_least: usize) -> Vec<(u64, u64)> {
    let mut ws = device(base, device_token).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut got = Vec::new();
    loop {
        let wait = if got.len() >= at_least {
            Duration::from_millis(500)
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        let msg = match tokio::time::timeout(wait, ws.next()).await {
            Err(_) if got.len() >= at_least => break,
            Err(_) => panic!("only {} of at least {at_least} messages", got.len()),
            Ok(None) => panic!("the server closed the socket"),
            Ok(Some(m)) => m.expect("ws frame"),
        };
        let Message::Text(t) = msg else { continue };
        let f: Value = serde_json::from_str(&t).expect("json frame");
        if f["type"] == "message" {
            got.push((
                f["seq"].as_u64().expect("seq"),
                f["msgid"].as_u64().expect("msgid"),
            ));
        }
    }
    let _ = ws.close(None).await;
    got
}

/// `workers` clients sending one after another until the server stops answering;
/// returns the msgids answered errcode 0. `answered` counts them as they come.
fn send_stream(
    http: reqwest::Client,
    url: String,
    body: Value,
    workers: usize,
    answered: Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<Vec<u64>>> {
    (0..workers)
        .map(|_| {
            let (http, url, body, answered) =
                (http.clone(), url.clone(), body.clone(), answered.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                // Bounded, so a server that never stops cannot keep the test running.
                for _ in 0..20_000 {
                    let Ok(resp) = http.post(&url).json(&body).send().await else {
                        break;
                    };
                    let Ok(v) = resp.json::<Value>().await else {
                        break;
                    };
                    assert_eq!(v["errcode"], 0, "every send has consent: {v}");
                    acked.push(v["msgid"].as_u64().expect("msgid"));
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                acked
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_sends_closes_devices_with_1001_and_exits_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let drain = DRAIN_SECS.to_string();
    let env = [("TUISONG_DRAIN_TIMEOUT_SECS", drain.as_str())];
    let mut server = Server::start_with(dir.path(), "127.0.0.1:0", &[], &env).await;
    let demo = server.demo().await;
    let api = Api::new(&server.base, &demo);
    let (id, _) = demo.of_type(3);
    let (device_token, openid) = api.device_user("u").await;
    api.accept(&device_token, &id).await;
    let token = api.token().await;
    let (status, v) = api
        .put(
            "/v1/policy",
            &token,
            json!({"per_user": null, "per_user_template": null}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let data = api.example_data(&token, &id).await;
    let body = json!({"touser": openid, "template_id": id, "data": data});

    let ws = device(&server.base, &device_token).await;
    let closed = tokio::spawn(close_code(ws));
    let answered = Arc::new(AtomicUsize::new(0));
    let senders = send_stream(
        api.http.clone(),
        api.send_url(&token),
        body,
        8,
        answered.clone(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < 50 {
        assert!(tokio::time::Instant::now() < deadline, "sends are answered");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let pid = server.proc.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success(), "SIGTERM sent");
    let began = std::time::Instant::now();
    let status = server
        .proc
        .wait_exit(Duration::from_secs(DRAIN_SECS + 5))
        .await;
    let took = began.elapsed();
    assert!(
        status.success(),
        "exit 0 after SIGTERM: {status:?}; stderr:\n{}",
        server.proc.stderr.text()
    );
    assert!(
        took < Duration::from_secs(DRAIN_SECS + 1),
        "exited within the drain bound: {took:?}"
    );
    let code = tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the device socket ends")
        .expect("reader");
    assert_eq!(
        code,
        Some(1001),
        "the device was told the server is going away"
    );
    let mut acked = Vec::new();
    for s in senders {
        acked.extend(
            tokio::time::timeout(Duration::from_secs(30), s)
                .await
                .expect("a sender stops once the server is gone")
                .expect("sender"),
        );
    }
    eprintln!(
        "{} sends answered errcode 0 before the stop; took {took:?}",
        acked.len()
    );

    let server = Server::start(dir.path(), "127.0.0.1:0").await;
    let got = read_inbox(&server.base, &device_token, acked.len()).await;
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(seqs, (1..=got.len() as u64).collect::<Vec<_>>(), "gap-free");
    let delivered: HashSet<u64> = got.iter().map(|g| g.1).collect();
    let missing: Vec<&u64> = acked.iter().filter(|m| !delivered.contains(m)).collect();
    assert!(missing.is_empty(), "answered 0 but not stored: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_stuck_before_its_hello_cannot_hold_the_stop_past_the_drain_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The socket would stay open for its 60 s hello timeout; the drain gives up at 2 s.
    let env = [("TUISONG_DRAIN_TIMEOUT_SECS", "2")];
    let cfg = dir.path().join("tuisong.toml");
    std::fs::write(&cfg, "hello_timeout_secs = 60\n").expect("config");
    let cfg = cfg.to_str().expect("utf-8 path");
    let data = dir.path().join("data");
    let mut server = Server::start_with(&data, "127.0.0.1:0", &["--config", cfg], &env).await;
    let api = Api::new(&server.base, &server.demo().await);
    let (device_token, _) = api.device_user("u").await;
    let url = format!(
        "{}/client/v1/ws?token={device_token}",
        server.base.replacen("http", "ws", 1)
    );
    let (_silent, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connects");

    let pid = server.proc.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success(), "SIGTERM sent");
    let began = std::time::Instant::now();
    let status = server.proc.wait_exit(Duration::from_secs(10)).await;
    let took = began.elapsed();
    assert!(status.success(), "exit 0: {status:?}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "the drain waited for the socket, but only up to its timeout: {took:?}"
    );
}
