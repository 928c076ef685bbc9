//! Nothing acknowledged is lost when the server is killed (SIGKILL) between send and
//! delivery: the real binary takes sends while no device is connected, dies without
//! running any shutdown code, restarts on the same data dir, and a device reading from
//! cursor 0 gets every message whose send was answered errcode 0, each once, in seq order.

mod common;

use common::{Api, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// A user subscribed to the demo's long-term template (one accept, any number of sends)
/// of an app without per-user caps, and a valid send body.
struct Setup {
    server: Server,
    device_token: String,
    target: SendTarget,
}

/// Where and what to send.
#[derive(Clone)]
struct SendTarget {
    api: Api,
    url: String,
    body: Value,
}

async fn setup(dir: &std::path::Path) -> Setup {
    let server = Server::start(dir, "127.0.0.1:0").await;
    let demo = server.demo().await;
    let api = Api::new(&server.base, &demo);
    let (id, _) = demo.of_type(3);
    let (device_token, openid) = api.device_user("u").await;
    api.accept(&device_token, &id).await;
    let token = api.token().await;
    // The default caps (30 a template, 60 a user per hour) would refuse most of the
    // burst; they are not what this test is about.
    let (status, v) = api
        .put(
            "/v1/policy",
            &token,
            json!({"per_user": null, "per_user_template": null}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let data = api.example_data(&token, &id).await;
    Setup {
        target: SendTarget {
            url: api.send_url(&token),
            body: json!({"touser": openid, "template_id": id, "data": data}),
            api,
        },
        server,
        device_token,
    }
}

/// Starts `n` concurrent sends. Each task ends with the msgid of a send answered
/// errcode 0; any other answer fails the test.
fn start_sends(s: &SendTarget, n: usize) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..n)
        .map(|_| {
            let (http, url, body) = (s.api.http.clone(), s.url.clone(), s.body.clone());
            tokio::spawn(async move {
                let v: Value = http
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .expect("send")
                    .json()
                    .await
                    .expect("json");
                assert_eq!(v["errcode"], 0, "every send has consent: {v}");
                v["msgid"].as_u64().expect("msgid")
            })
        })
        .collect()
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<u64>>) -> Vec<u64> {
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("a send is answered within 30 s")
                .expect("send task"),
        );
    }
    acked
}

/// Connects a device with cursor 0 and reads `message` frames until `at_least` have come
/// and then nothing more for `quiet`; returns (seq, msgid) in arrival order.
async fn read_inbox(base: &str, device_token: &str, at_least: usize) -> Vec<(u64, u64)> {
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
    ws.send(Message::Text(
        json!({"type": "hello", "cursor": 0, "device": "crash-test"})
            .to_string()
            .into(),
    ))
    .await
    .expect("hello");
    let quiet = Duration::from_millis(500);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut got = Vec::new();
    let mut welcomed = false;
    loop {
        let wait = if got.len() >= at_least {
            quiet
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        let msg = match tokio::time::timeout(wait, ws.next()).await {
            Err(_) if got.len() >= at_least => break,
            Err(_) => panic!(
                "only {} of at least {at_least} messages within 15 s",
                got.len()
            ),
            Ok(None) => panic!("the server closed the socket"),
            Ok(Some(m)) => m.expect("ws frame"),
        };
        let Message::Text(t) = msg else { continue };
        let f: Value = serde_json::from_str(&t).expect("json frame");
        match f["type"].as_str() {
            Some("welcome") => welcomed = true,
            Some("message") => got.push((
                f["seq"].as_u64().expect("seq"),
                f["msgid"].as_u64().expect("msgid"),
            )),
            Some("ping") => {}
            _ => panic!("unexpected frame {f}"),
        }
    }
    assert!(welcomed, "the session started with welcome");
    let _ = ws.close(None).await;
    got
}

/// Seqs are 1..=len in order and no msgid comes twice.
fn assert_gap_free_and_once(got: &[(u64, u64)]) {
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    let expected: Vec<u64> = (1..=got.len() as u64).collect();
    assert_eq!(seqs, expected, "seq order 1..=N without gaps");
    let distinct: HashSet<u64> = got.iter().map(|g| g.1).collect();
    assert_eq!(distinct.len(), got.len(), "no msgid twice: {got:?}");
}

const N: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_send_survives_a_sigkill_and_is_delivered_once_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut s = setup(dir.path()).await;
    let acked = collect(start_sends(&s.target, N)).await;
    assert_eq!(acked.len(), N, "all sends answered 0 while the server ran");

    s.server.proc.kill();
    let server = Server::start(dir.path(), "127.0.0.1:0").await;
    let got = read_inbox(&server.base, &s.device_token, N).await;

    assert_gap_free_and_once(&got);
    assert_eq!(got.len(), N, "exactly the acknowledged messages: {got:?}");
    let delivered: HashSet<u64> = got.iter().map(|g| g.1).collect();
    assert_eq!(delivered, acked.into_iter().collect::<HashSet<u64>>());
}

/// `workers` clients sending one after another until `budget` sends have started or the
/// server stops answering. Returns the msgids answered errcode 0 and how many sends were
/// started; `answered` counts answers as they come.
async fn send_stream(
    s: SendTarget,
    workers: usize,
    budget: usize,
    answered: Arc<AtomicUsize>,
) -> (Vec<u64>, usize) {
    let started = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (http, url, body) = (s.api.http.clone(), s.url.clone(), s.body.clone());
            let (answered, started) = (answered.clone(), started.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                while started.fetch_add(1, Ordering::SeqCst) < budget {
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
        .collect();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("a worker stops within 30 s")
                .expect("send worker"),
        );
    }
    (acked, started.load(Ordering::SeqCst).min(budget))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_sends_loses_no_answered_send_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut s = setup(dir.path()).await;
    // A steady stream rather than one burst, so that sends are in flight whenever the
    // kill lands, however fast the machine.
    let budget = 2 * N;
    let answered = Arc::new(AtomicUsize::new(0));
    let stream = tokio::spawn(send_stream(s.target.clone(), 8, budget, answered.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < N {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{N} sends answered within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    s.server.proc.kill();
    let (acked, sent) = stream.await.expect("stream");
    eprintln!(
        "{} of {sent} started sends answered before the kill",
        acked.len()
    );

    let server = Server::start(dir.path(), "127.0.0.1:0").await;
    let got = read_inbox(&server.base, &s.device_token, acked.len()).await;
    eprintln!(
        "{} delivered after the restart (answered or in flight at the kill)",
        got.len()
    );
    assert_gap_free_and_once(&got);
    let delivered: HashSet<u64> = got.iter().map(|g| g.1).collect();
    let missing: Vec<&u64> = acked.iter().filter(|m| !delivered.contains(m)).collect();
    assert!(missing.is_empty(), "answered 0 but lost: {missing:?}");
    assert!(
        got.len() <= sent,
        "at most what was sent: {} > {sent}",
        got.len()
    );
}

/// The one-time grants of `openid` for `id` left in the ledger (`GET /v1/consents`).
async fn remaining(api: &Api, token: &str, openid: &str, id: &str) -> u64 {
    let r = api
        .http
        .get(api.url(&format!("/v1/consents/{openid}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("ledger");
    let v: Value = r.json().await.expect("json");
    v["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .find(|t| t["template_id"] == id)
        .and_then(|t| t["remaining"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_sends_on_one_time_grants_conserves_every_grant() {
    // granted = consumed + remaining, with consumed = the messages stored, after a kill
    // that lands while sends are taking grants.
    const GRANTS: usize = 120;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), "127.0.0.1:0").await;
    let demo = server.demo().await;
    let api = Api::new(&server.base, &demo);
    let (id, _) = demo.of_type(2);
    let (device_token, openid) = api.device_user("u").await;
    for _ in 0..GRANTS {
        api.accept(&device_token, &id).await;
    }
    let token = api.token().await;
    let (status, v) = api
        .put(
            "/v1/policy",
            &token,
            json!({"per_user": null, "per_user_template": null}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(remaining(&api, &token, &openid, &id).await, GRANTS as u64);
    let data = api.example_data(&token, &id).await;
    let body = json!({"touser": openid, "template_id": id, "data": data});
    let url = api.send_url(&token);
    let answered = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (http, url, body, answered) = (
                api.http.clone(),
                url.clone(),
                body.clone(),
                answered.clone(),
            );
            tokio::spawn(async move {
                let mut acked = Vec::new();
                loop {
                    let Ok(resp) = http.post(&url).json(&body).send().await else {
                        break;
                    };
                    let Ok(v) = resp.json::<Value>().await else {
                        break;
                    };
                    match v["errcode"].as_i64() {
                        Some(0) => acked.push(v["msgid"].as_u64().expect("msgid")),
                        // The grants ran out before the kill: nothing more to take.
                        Some(43101) => break,
                        _ => panic!("unexpected answer {v}"),
                    }
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                acked
            })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < GRANTS / 2 {
        assert!(tokio::time::Instant::now() < deadline, "sends are answered");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.proc.kill();
    let mut acked = Vec::new();
    for w in workers {
        acked.extend(
            tokio::time::timeout(Duration::from_secs(30), w)
                .await
                .expect("a worker stops")
                .expect("worker"),
        );
    }
    let server = Server::start(dir.path(), "127.0.0.1:0").await;
    let api = Api::new(&server.base, &demo);
    let token = api.token().await;
    let left = remaining(&api, &token, &openid, &id).await;
    let consumed = GRANTS.saturating_sub(left as usize);
    let got = read_inbox(&server.base, &device_token, consumed).await;
    assert_gap_free_and_once(&got);
    let delivered: HashSet<u64> = got.iter().map(|g| g.1).collect();
    assert!(
        acked.iter().all(|m| delivered.contains(m)),
        "every answered send is stored"
    );
    eprintln!(
        "{} answered before the kill, {} stored, {left} grants left",
        acked.len(),
        got.len()
    );
    assert_eq!(
        got.len() + left as usize,
        GRANTS,
        "granted = consumed (messages stored) + remaining"
    );
}
