//! Faults under the real binary, which must ride them out without a restart:
//! - PostgreSQL terminating the server's connections again and again while sends and
//!   device deliveries run (needs `TUISONG_TEST_PG`);
//! - the NATS bus stopped and started under two nodes (needs `TUISONG_TEST_PG` and the
//!   `nats-server` binary; the test runs a private one on a free port).
//!
//! After each, the grants are conserved (`common/grants.rs`). Without what a test needs
//! it prints why it is skipped.

mod common;
#[path = "common/grants.rs"]
mod grants;

use common::{Api, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Ws;

const ADMIN: &str = "faults-admin-token-0123456789abcdef";
const NATS_SERVER: &str = "/usr/sbin/nats-server";

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos:x}", std::process::id())
}

/// The test database with a schema of this test's own, and the store URL that uses it
/// under an `application_name` of its own: the fault injector terminates only the
/// backends of this test's server, whatever else shares the database.
struct Pg {
    url: String,
    app_name: String,
    admin: tokio_postgres::Client,
}

async fn postgres(test: &str) -> Option<Pg> {
    let Ok(base) = std::env::var("TUISONG_TEST_PG") else {
        println!("skipped {test}: set TUISONG_TEST_PG to run the fault tests");
        return None;
    };
    let (admin, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("postgres reachable");
    tokio::spawn(conn);
    let schema = unique("faults");
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create schema");
    let app_name = format!("{schema}_server");
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(Pg {
        url: format!("{base}{sep}options=-csearch_path%3D{schema}&application_name={app_name}"),
        app_name,
        admin,
    })
}

impl Pg {
    /// Terminates every backend of the server under test; returns how many.
    async fn terminate_ours(&self) -> usize {
        self.admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()
                   AND application_name = $1",
                &[&self.app_name],
            )
            .await
            .map(|rows| rows.len())
            .unwrap_or(0)
    }
}

/// A phone on a node: reads cards, acks each, and reconnects (from the last seq it has)
/// whenever its socket ends — a node whose store is down ends sessions it cannot serve.
struct Device {
    /// msgid → when it arrived.
    got: Arc<parking_lot::Mutex<HashMap<u64, Instant>>>,
    stop: Arc<AtomicBool>,
    sessions: Arc<AtomicUsize>,
}

impl Device {
    fn start(base: &str, token: &str) -> Device {
        let d = Device {
            got: Arc::default(),
            stop: Arc::default(),
            sessions: Arc::default(),
        };
        let url = format!(
            "{}/client/v1/ws?token={token}",
            base.replacen("http", "ws", 1)
        );
        let (got, stop, sessions) = (d.got.clone(), d.stop.clone(), d.sessions.clone());
        tokio::spawn(async move {
            let mut cursor = 0u64;
            while !stop.load(Ordering::SeqCst) {
                if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await {
                    sessions.fetch_add(1, Ordering::SeqCst);
                    let hello = json!({"type": "hello", "cursor": cursor, "device": "phone"});
                    if ws.send(Ws::Text(hello.to_string().into())).await.is_ok() {
                        cursor = read_cards(&mut ws, cursor, &got, &stop).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        d
    }

    /// Waits until the card arrived; how long after `since` it was there.
    async fn wait_for(&self, msgid: u64, since: Instant, within: Duration) -> Option<Duration> {
        let deadline = since + within;
        loop {
            if let Some(at) = self.got.lock().get(&msgid) {
                return Some(at.saturating_duration_since(since));
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads one session to its end; returns the last seq seen.
async fn read_cards(
    ws: &mut Socket,
    mut cursor: u64,
    got: &parking_lot::Mutex<HashMap<u64, Instant>>,
    stop: &AtomicBool,
) -> u64 {
    loop {
        let m = match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Err(_) if stop.load(Ordering::SeqCst) => return cursor,
            Err(_) => continue,
            Ok(Some(Ok(m))) => m,
            Ok(_) => return cursor,
        };
        let Ws::Text(t) = m else { continue };
        let v: Value = serde_json::from_str(&t).expect("json frame");
        if v["type"] != "message" && v["type"] != "recall" {
            continue;
        }
        cursor = cursor.max(v["seq"].as_u64().expect("seq"));
        if v["type"] == "message" {
            let msgid = v["msgid"].as_u64().expect("msgid");
            got.lock().entry(msgid).or_insert_with(Instant::now);
            let ack = json!({"type": "ack", "msgid": msgid});
            if ws.send(Ws::Text(ack.to_string().into())).await.is_err() {
                return cursor;
            }
        }
    }
}

/// How one send was answered.
#[derive(Debug)]
enum Answer {
    Sent(u64),
    /// 503 `store_unavailable` (/v1) or errcode -1 `system error` (WeChat).
    Unavailable,
}

/// One send in either dialect; any answer but success or "unavailable" fails the test.
async fn send(api: &Api, token: &str, body: &Value, native_key: Option<String>) -> Answer {
    if let Some(key) = native_key {
        let mut body = body.clone();
        body["idempotency_key"] = json!(key);
        let (status, v) = api.post("/v1/messages", Some(token), body).await;
        return match status {
            200 => Answer::Sent(v["msgid"].as_u64().expect("msgid")),
            503 => {
                assert_eq!(
                    v,
                    json!({"error": {"code": "store_unavailable", "message": "the store is unavailable; retry"}})
                );
                Answer::Unavailable
            }
            other => panic!("/v1 send answered {other}: {v}"),
        };
    }
    let r = api
        .http
        .post(api.send_url(token))
        .json(body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "the WeChat dialect always answers 200");
    let v: Value = r.json().await.expect("json");
    match v["errcode"].as_i64() {
        Some(0) => Answer::Sent(v["msgid"].as_u64().expect("msgid")),
        Some(-1) => {
            let msg = v["errmsg"].as_str().expect("errmsg");
            assert!(msg.starts_with("system error rid: "), "{v}");
            Answer::Unavailable
        }
        _ => panic!("WeChat send answered {v}"),
    }
}

/// A user with `grants` one-time grants of the demo's type-2 template, caps off, and
/// the send body.
async fn subscribed(api: &Api, grants: u64) -> (String, String, String, Value) {
    let (tmpl, _) = api.demo.of_type(2);
    let (dt, openid) = api.device_user("故障").await;
    for _ in 0..grants {
        api.accept(&dt, &tmpl).await;
    }
    let token = api.token().await;
    let (s, v) = api
        .put(
            "/v1/policy",
            &token,
            json!({"per_user": null, "per_user_template": null}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let data = api.example_data(&token, &tmpl).await;
    let body = json!({"touser": openid, "template_id": tmpl, "data": data});
    (dt, token, tmpl, body)
}

#[cfg_attr(
    tuisong_no_pg,
    ignore = "needs PostgreSQL: set TUISONG_TEST_PG=postgres://…"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_terminating_our_connections_mid_run_loses_no_acknowledged_send() {
    let Some(pg) = postgres("faults postgres terminate").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start_with(
        dir.path(),
        "127.0.0.1:0",
        &["--store", &pg.url],
        &[("TUISONG_ADMIN_TOKEN", ADMIN)],
    )
    .await;
    let api = Api::new(&server.base, &server.demo().await);
    // Sends for as long as the fault lasts, at most this many.
    const MAX_SENDS: usize = 300;
    const AFTER: usize = 10;
    const FAULT: Duration = Duration::from_secs(3);
    let grants = (MAX_SENDS + AFTER) as u64;
    let (dt, token, tmpl, body) = subscribed(&api, grants).await;
    let openid = body["touser"].as_str().expect("openid").to_owned();
    let device = Device::start(&server.base, &dt);

    // The fault: every backend of the server terminated every 100 ms.
    let faulting = Arc::new(AtomicBool::new(true));
    let pg = Arc::new(pg);
    let killer = tokio::spawn({
        let (pg, faulting) = (pg.clone(), faulting.clone());
        async move {
            let mut killed = 0;
            while faulting.load(Ordering::SeqCst) {
                killed += pg.terminate_ours().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            killed
        }
    });
    // Eight senders in both dialects; the native sends carry an idempotency key.
    let started = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (api, token, body) = (api.clone(), token.clone(), body.clone());
            let (faulting, started) = (faulting.clone(), started.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while faulting.load(Ordering::SeqCst) {
                    let i = started.fetch_add(1, Ordering::SeqCst);
                    if i >= MAX_SENDS {
                        break;
                    }
                    let key = (i % 2 == 1).then(|| format!("fault-{i}"));
                    answers.push(send(&api, &token, &body, key).await);
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(FAULT).await;
    faulting.store(false, Ordering::SeqCst);
    let mut sent = Vec::new();
    let mut unavailable = 0;
    for t in senders {
        for a in t.await.expect("sender") {
            match a {
                Answer::Sent(id) => sent.push(id),
                Answer::Unavailable => unavailable += 1,
            }
        }
    }
    let killed = killer.await.expect("killer");
    println!(
        "{killed} backends terminated; {} sends answered ok, {unavailable} unavailable",
        sent.len()
    );
    assert!(killed > 0, "the fault was real");
    assert!(!sent.is_empty(), "sends succeed during the fault");
    // Recovered without a restart: every send succeeds again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..AFTER {
        let key = (i % 2 == 1).then(|| format!("after-{i}"));
        match send(&api, &token, &body, key).await {
            Answer::Sent(id) => sent.push(id),
            Answer::Unavailable => panic!("send {i} after the fault: still unavailable"),
        }
    }

    // Every acknowledged send is in the store, and reaches the device.
    let c = grants::check_grant_conservation(&api.http, &api.base, &token, &openid, &tmpl, grants)
        .await;
    for id in &sent {
        assert!(
            c.msgids.contains(id),
            "msgid {id} was answered ok but is not stored"
        );
    }
    let since = Instant::now();
    for id in &c.msgids {
        assert!(
            device
                .wait_for(*id, since, Duration::from_secs(20))
                .await
                .is_some(),
            "stored message {id} never reached the device ({} sessions)",
            device.sessions.load(Ordering::SeqCst)
        );
    }
    assert!(c.consumed >= sent.len() as u64);
}

/// A private `nats-server` on a port of its own, killed when dropped.
struct Nats {
    child: std::process::Child,
    port: u16,
}

impl Nats {
    async fn start(port: u16) -> Nats {
        let child = std::process::Command::new(NATS_SERVER)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "nats-server never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Nats { child, port }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[cfg_attr(
    tuisong_no_pg,
    ignore = "needs PostgreSQL: set TUISONG_TEST_PG=postgres://…"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_nats_stopped_cards_still_cross_nodes_and_after_it_restarts_hints_are_immediate() {
    let Some(pg) = postgres("faults nats stop/start").await else {
        return;
    };
    if !std::path::Path::new(NATS_SERVER).exists() {
        println!("skipped faults nats stop/start: no {NATS_SERVER}");
        return;
    }
    let mut nats = Nats::start(free_port()).await;
    let bus = format!("nats://127.0.0.1:{}", nats.port);
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let flags = ["--store", pg.url.as_str(), "--bus", bus.as_str()];
    let log = ("TUISONG_LOG", "warn,tuisong_server::bus=info");
    let a = Server::start_with(
        da.path(),
        "127.0.0.1:0",
        &flags,
        &[("TUISONG_ADMIN_TOKEN", ADMIN), log],
    )
    .await;
    let demo = a.demo().await;
    let b = Server::start_with(
        db.path(),
        "127.0.0.1:0",
        &flags,
        &[
            ("TUISONG_ADMIN_TOKEN", ADMIN),
            ("TUISONG_DEMO_APP", "false"),
            log,
        ],
    )
    .await;
    let (api_a, api_b) = (Api::new(&a.base, &demo), Api::new(&b.base, &demo));
    let grants = 12;
    let (dt, token, tmpl, body) = subscribed(&api_a, grants).await;
    let openid = body["touser"].as_str().expect("openid").to_owned();
    let device = Device::start(&b.base, &dt);
    let deadline = Instant::now() + Duration::from_secs(5);
    while device.sessions.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the device never connected to B");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let send_on_a = || async {
        match send(&api_a, &token, &body, None).await {
            Answer::Sent(id) => (id, Instant::now()),
            Answer::Unavailable => panic!("the store is up"),
        }
    };
    let (id, at) = send_on_a().await;
    assert!(
        device
            .wait_for(id, at, Duration::from_secs(5))
            .await
            .is_some(),
        "the hint crosses from A to B"
    );

    nats.kill();
    for node in [&a, &b] {
        node.proc
            .stderr
            .wait_contains("the NATS bus is down", Duration::from_secs(10))
            .await;
    }
    for _ in 0..3 {
        let (id, at) = send_on_a().await;
        let took = device.wait_for(id, at, Duration::from_secs(5)).await;
        assert!(
            took.is_some(),
            "with the bus down the card reaches B from the store"
        );
    }

    let nats = Nats::start(nats.port).await;
    for node in [&a, &b] {
        node.proc
            .stderr
            .wait_contains("the NATS bus is back", Duration::from_secs(15))
            .await;
    }
    // Past the grace period the store sweeps have stopped: only a hint brings a card.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    for _ in 0..3 {
        let (id, at) = send_on_a().await;
        let took = device
            .wait_for(id, at, Duration::from_secs(1))
            .await
            .expect("after the restart the hint crosses at once");
        println!("a card crossed the restarted bus in {took:?}");
    }
    drop(nats);

    let c =
        grants::check_grant_conservation(&api_b.http, &api_b.base, &token, &openid, &tmpl, grants)
            .await;
    assert_eq!((c.consumed, c.remaining), (7, grants - 7), "{c:?}");
}
