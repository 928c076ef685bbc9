//! Several nodes: two real `tuisong serve` processes sharing PostgreSQL and NATS.
//! Needs TUISONG_TEST_PG (a postgres:// URL) and TUISONG_TEST_NATS (a nats:// URL);
//! without them each test prints why it is skipped. `.ci/run` sets both.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as Ws;

const ADMIN: &str = "multinode-admin-token-0123456789";

/// A fresh schema on the test database, so runs never see each other.
async fn services(test: &str) -> Option<(String, String)> {
    let (Ok(pg), Ok(nats)) = (
        std::env::var("TUISONG_TEST_PG"),
        std::env::var("TUISONG_TEST_NATS"),
    ) else {
        println!(
            "skipped {test}: set TUISONG_TEST_PG and TUISONG_TEST_NATS to run the multi-node tests"
        );
        return None;
    };
    let (client, conn) = tokio_postgres::connect(&pg, tokio_postgres::NoTls)
        .await
        .expect("postgres reachable");
    tokio::spawn(conn);
    let schema = format!("mn_{}_{}", std::process::id(), rand_suffix());
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create schema");
    let sep = if pg.contains('?') { '&' } else { '?' };
    Some((format!("{pg}{sep}options=-csearch_path%3D{schema}"), nats))
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{n:x}")
}

struct Nodes {
    a: Server,
    b: Server,
    api_a: Api,
    api_b: Api,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn two_nodes(pg: &str, nats: &str) -> Nodes {
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let flags = ["--store", pg, "--bus", nats];
    let a = Server::start_with(
        da.path(),
        "127.0.0.1:0",
        &flags,
        &[
            ("TUISONG_ADMIN_TOKEN", ADMIN),
            // The push receiver of the test listens on 127.0.0.1.
            ("TUISONG_PUSH_ALLOW_PRIVATE", "true"),
        ],
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
            ("TUISONG_PUSH_ALLOW_PRIVATE", "true"),
        ],
    )
    .await;
    let api_a = Api::new(&a.base, &demo);
    let api_b = Api::new(&b.base, &demo);
    Nodes {
        a,
        b,
        api_a,
        api_b,
        _dirs: (da, db),
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn device(base: &str, token: &str, cursor: u64) -> Socket {
    let url = format!(
        "{}/client/v1/ws?token={token}",
        base.replacen("http", "ws", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connects");
    ws.send(Ws::Text(
        json!({"type": "hello", "cursor": cursor, "device": "phone"})
            .to_string()
            .into(),
    ))
    .await
    .expect("hello");
    ws
}

/// The next message or recall frame within `ms`.
async fn next_card(ws: &mut Socket, ms: u64) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        if let Ws::Text(t) = m {
            let v: Value = serde_json::from_str(&t).expect("json frame");
            if v["type"] == "message" || v["type"] == "recall" {
                return Some(v);
            }
        }
    }
}

async fn send(api: &Api, token: &str, openid: &str, tmpl: &str, data: &Value) -> Value {
    let r = api
        .http
        .post(api.send_url(token))
        .json(&json!({"touser": openid, "template_id": tmpl, "data": data}))
        .send()
        .await
        .expect("send");
    r.json().await.expect("json")
}

#[cfg_attr(
    any(tuisong_no_pg, tuisong_no_nats),
    ignore = "needs PostgreSQL and NATS: set TUISONG_TEST_PG and TUISONG_TEST_NATS"
)]
#[tokio::test]
async fn a_send_on_node_b_reaches_a_device_on_node_a_and_the_device_moves_to_b_when_a_dies() {
    let Some((pg, nats)) = services("multinode send across nodes").await else {
        return;
    };
    let mut n = two_nodes(&pg, &nats).await;
    let (tmpl, _) = n.api_a.demo.of_type(3);
    let (dt, openid) = n.api_a.device_user("跨节点").await;
    n.api_a.accept(&dt, &tmpl).await;
    let token = n.api_b.token().await;
    let data = n.api_b.example_data(&token, &tmpl).await;
    let mut ws = device(&n.a.base, &dt, 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let v = send(&n.api_b, &token, &openid, &tmpl, &data).await;
    assert_eq!(v["errcode"], 0, "{v}");
    let f = next_card(&mut ws, 5_000)
        .await
        .expect("the card reaches node A's device");
    assert_eq!(
        (f["msgid"].clone(), f["seq"].clone()),
        (v["msgid"].clone(), json!(1))
    );
    ws.send(Ws::Text(
        json!({"type": "ack", "msgid": f["msgid"]})
            .to_string()
            .into(),
    ))
    .await
    .expect("ack");

    n.a.proc.kill();
    let mut sent = Vec::new();
    for _ in 0..2 {
        let v = send(&n.api_b, &token, &openid, &tmpl, &data).await;
        assert_eq!(v["errcode"], 0, "{v}");
        sent.push(v["msgid"].clone());
    }
    let mut ws = device(&n.b.base, &dt, 1).await;
    for (i, m) in sent.iter().enumerate() {
        let f = next_card(&mut ws, 5_000)
            .await
            .expect("the inbox from node B");
        assert_eq!(
            (f["msgid"].clone(), f["seq"].clone()),
            (m.clone(), json!(i + 2))
        );
    }
    assert!(next_card(&mut ws, 300).await.is_none(), "nothing twice");
}

#[cfg_attr(
    any(tuisong_no_pg, tuisong_no_nats),
    ignore = "needs PostgreSQL and NATS: set TUISONG_TEST_PG and TUISONG_TEST_NATS"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_sends_over_both_nodes_against_ten_grants_deliver_exactly_ten() {
    let Some((pg, nats)) = services("multinode grants").await else {
        return;
    };
    let n = two_nodes(&pg, &nats).await;
    let (tmpl, _) = n.api_a.demo.of_type(2);
    let (dt, openid) = n.api_a.device_user("抢购").await;
    for _ in 0..10 {
        n.api_a.accept(&dt, &tmpl).await;
    }
    let token = n.api_a.token().await;
    let data = n.api_a.example_data(&token, &tmpl).await;
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let api = if i % 2 == 0 {
            n.api_a.clone()
        } else {
            n.api_b.clone()
        };
        let (token, openid, tmpl, data, sem) = (
            token.clone(),
            openid.clone(),
            tmpl.clone(),
            data.clone(),
            sem.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await.expect("permit");
            send(&api, &token, &openid, &tmpl, &data).await["errcode"]
                .as_i64()
                .expect("errcode")
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            0 => ok += 1,
            43101 => refused += 1,
            other => panic!("unexpected errcode {other}"),
        }
    }
    assert_eq!((ok, refused), (10, 990));
    let mut ws = device(&n.b.base, &dt, 0).await;
    let mut got = std::collections::HashSet::new();
    while let Some(f) = next_card(&mut ws, 1_000).await {
        assert!(got.insert(f["msgid"].to_string()), "each card once");
    }
    assert_eq!(got.len(), 10);
}

#[cfg_attr(
    any(tuisong_no_pg, tuisong_no_nats),
    ignore = "needs PostgreSQL and NATS: set TUISONG_TEST_PG and TUISONG_TEST_NATS"
)]
#[tokio::test]
async fn every_push_event_arrives_once_with_workers_on_both_nodes() {
    let Some((pg, nats)) = services("multinode push events").await else {
        return;
    };
    let n = two_nodes(&pg, &nats).await;
    // A developer server that counts what it gets.
    let got: Arc<parking_lot::Mutex<Vec<String>>> = Arc::default();
    let got2 = got.clone();
    let recv = axum::Router::new().route(
        "/cb",
        axum::routing::any(
            move |q: axum::extract::Query<std::collections::HashMap<String, String>>,
                  body: String| {
                let got = got2.clone();
                async move {
                    if let Some(e) = q.get("echostr") {
                        return e.clone();
                    }
                    got.lock().push(body);
                    "success".to_owned()
                }
            },
        ),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/cb", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, recv).await });
    let token = n.api_a.token().await;
    let (s, v) = n
        .api_a
        .put(
            "/v1/push-config",
            &token,
            json!({"url": url, "token": "mn123", "format": "json", "mode": "plaintext"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (tmpl, _) = n.api_a.demo.of_type(2);
    let mut users = Vec::new();
    for i in 0..20 {
        let api = if i % 2 == 0 { &n.api_a } else { &n.api_b };
        let (dt, openid) = api.device_user(&format!("u{i}")).await;
        api.accept(&dt, &tmpl).await;
        users.push(openid);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while got.lock().len() < 20 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let bodies = got.lock().clone();
    let mut from: Vec<String> = bodies
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).expect("json")["FromUserName"]
                .as_str()
                .expect("from")
                .to_owned()
        })
        .collect();
    from.sort();
    users.sort();
    assert_eq!(from, users, "one popup event per user, none twice");
}
