//! `tuisong device` end to end: the real binary as server and as device, the app server
//! played by HTTP calls from the test.

mod common;

use common::{Api, Proc, Server};
use serde_json::{Value, json};
use std::time::Duration;

const SEEN_WITHIN: Duration = Duration::from_secs(10);

/// Sends one message of `id` to `openid`; returns (msgid, the data sent).
async fn send(api: &Api, token: &str, openid: &str, id: &str) -> (u64, Value) {
    let data = api.example_data(token, id).await;
    let v: Value = api
        .http
        .post(api.send_url(token))
        .json(&json!({
            "touser": openid, "template_id": id,
            "page": "pages/order/detail?id=42", "data": data
        }))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(v["errcode"], 0, "{v}");
    (v["msgid"].as_u64().expect("msgid"), data)
}

/// The first keyword's value, as it appears in a card row.
fn first_value(data: &Value) -> String {
    data.as_object()
        .and_then(|m| m.values().next())
        .and_then(|v| v["value"].as_str())
        .expect("a value")
        .to_owned()
}

async fn wait_delivered(api: &Api, token: &str, msgid: u64) {
    for _ in 0..250 {
        let m: Value = api
            .http
            .get(api.url(&format!("/v1/messages/{msgid}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        if m["status"] == "delivered" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("message {msgid} was never acked as delivered");
}

#[tokio::test]
async fn the_device_shows_a_sent_card_acks_it_and_shows_its_recall() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), "127.0.0.1:0").await;
    let demo = server.demo().await;
    let api = Api::new(&server.base, &demo);
    let (tmpl, title) = demo.of_type(2);

    let device = Proc::spawn(&[
        "device",
        "--server",
        &server.base,
        "--nickname",
        "小明",
        "--appid",
        &demo.appid,
        "--accept",
        &tmpl,
        "--device",
        "cli-test",
    ]);
    let out = &device.stdout;
    let user_id = out.value_after("user_id:", SEEN_WITHIN).await;
    assert!(!user_id.is_empty());
    let token_line = out.value_after("device_token:", SEEN_WITHIN).await;
    assert!(token_line.starts_with("dt_"), "{token_line}");
    let code = out.value_after("login code:", SEEN_WITHIN).await;
    let code = code.split_whitespace().next().expect("code").to_owned();
    out.wait_contains(&format!("subscribe {tmpl}: accept"), SEEN_WITHIN)
        .await;

    let openid = api.openid_of(&code).await;
    let token = api.token().await;
    let (msgid, data) = send(&api, &token, &openid, &tmpl).await;
    let value = first_value(&data);

    out.wait_contains(&format!("msgid {msgid} ·"), SEEN_WITHIN)
        .await;
    let text = out.text();
    assert!(text.contains(&format!("┌─ {title} ─")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("│ ") && l.ends_with(&value)),
        "a row with {value:?}:\n{text}"
    );
    assert!(
        text.contains("│ 进入小程序查看 → pages/order/detail?id=42"),
        "{text}"
    );
    // The device acked it: the app sees it delivered.
    wait_delivered(&api, &token, msgid).await;

    let (s, v) = api
        .post(
            &format!("/v1/messages/{msgid}/recall"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("recalled")), "{v}");
    out.wait_contains(&format!("msgid {msgid}: 此消息已撤回"), SEEN_WITHIN)
        .await;
    assert_eq!(
        out.text().matches(&format!("msgid {msgid} ·")).count(),
        1,
        "the card is drawn once"
    );
}

#[tokio::test]
async fn the_device_reconnects_from_its_cursor_after_a_server_crash_and_exits_on_ctrl_c() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), "127.0.0.1:0").await;
    let demo = server.demo().await;
    let api = Api::new(&server.base, &demo);
    let (tmpl, title) = demo.of_type(3);
    let (dt, openid) = api.device_user("长期用户").await;

    let mut device = Proc::spawn(&[
        "device",
        "--server",
        &server.base,
        "--appid",
        &demo.appid,
        "--user-token",
        &dt,
        "--accept",
        &tmpl,
    ]);
    let out = device.stdout.clone();
    out.wait_contains(&format!("subscribe {tmpl}: accept"), SEEN_WITHIN)
        .await;
    assert!(
        !out.text().contains("device_token:"),
        "a reused token is not printed again"
    );
    let token = api.token().await;
    let (first, _) = send(&api, &token, &openid, &tmpl).await;
    out.wait_contains(&format!("msgid {first} ·"), SEEN_WITHIN)
        .await;
    wait_delivered(&api, &token, first).await;

    // SIGKILL, then the same data dir on the same port: the device finds it again.
    let port = server.port;
    server.proc.kill();
    device
        .stderr
        .wait_contains("reconnecting in", SEEN_WITHIN)
        .await;
    server = Server::start(dir.path(), &format!("127.0.0.1:{port}")).await;
    let api = Api::new(&server.base, &demo);
    let (second, _) = send(&api, &token, &openid, &tmpl).await;
    out.wait_contains(&format!("msgid {second} ·"), SEEN_WITHIN)
        .await;
    device.stderr.wait_contains("from seq 1", SEEN_WITHIN).await;
    let text = out.text();
    assert_eq!(
        text.matches(&format!("┌─ {title} ─")).count(),
        2,
        "the first card is not shown again after the reconnect:\n{text}"
    );

    // Ctrl-C: a clean exit with status 0.
    let pid = device.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let status = device.wait_exit(Duration::from_secs(5)).await;
    assert!(
        status.success(),
        "{status}; stderr:\n{}",
        device.stderr.text()
    );
}

#[tokio::test]
async fn login_only_prints_just_a_code_and_a_refused_token_exits_non_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), "127.0.0.1:0").await;
    let demo = server.demo().await;
    let api = Api::new(&server.base, &demo);

    let mut p = Proc::spawn(&[
        "device",
        "--server",
        &server.base,
        "--appid",
        &demo.appid,
        "--login-only",
    ]);
    let status = p.wait_exit(SEEN_WITHIN).await;
    assert!(status.success(), "{}", p.stderr.text());
    let stdout = p.stdout.text();
    assert_eq!(stdout.lines().count(), 1, "only the code: {stdout:?}");
    assert!(
        !api.openid_of(stdout.trim()).await.is_empty(),
        "the code trades for an openid"
    );
    assert!(
        p.stderr.text().contains("device_token: dt_"),
        "the new token goes to stderr"
    );

    let mut p = Proc::spawn(&[
        "device",
        "--server",
        &server.base,
        "--appid",
        &demo.appid,
        "--user-token",
        "dt_wrong",
    ]);
    let status = p.wait_exit(SEEN_WITHIN).await;
    assert!(!status.success());
    let err = p.stderr.text();
    assert!(
        err.starts_with("error: ") && err.contains("caused by: POST /client/v1/login answered 401"),
        "the chain is printed: {err}"
    );
}

#[tokio::test]
async fn app_show_demo_prints_the_demo_app_again_from_the_servers_data_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), "127.0.0.1:0").await;
    let demo = server.demo().await;
    let data_dir = dir.path().display().to_string();
    let mut show = Proc::spawn(&[
        "app",
        "show",
        "--demo",
        "--server",
        &server.base,
        "--data-dir",
        &data_dir,
    ]);
    let status = show.wait_exit(SEEN_WITHIN).await;
    let out = show.stdout.text();
    assert!(status.success(), "{out}\n{}", show.stderr.text());
    assert!(out.contains(&demo.appid), "{out}");
    assert!(out.contains(&demo.secret), "{out}");
    let (tmpl, _) = demo.of_type(2);
    assert!(out.contains(&tmpl), "{out}");
    // A data dir without the token: the error says where it looked and what else works.
    let mut lost = Proc::spawn(&[
        "app",
        "list",
        "--server",
        &server.base,
        "--data-dir",
        "/nonexistent",
    ]);
    let status = lost.wait_exit(SEEN_WITHIN).await;
    assert!(!status.success());
    let err = lost.stderr.text();
    assert!(
        err.contains("--data-dir") && err.contains("TUISONG_ADMIN_TOKEN"),
        "{err}"
    );
}

#[tokio::test]
async fn a_device_whose_consent_sheet_fails_exits_non_zero_instead_of_waiting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), "127.0.0.1:0").await;
    let demo = server.demo().await;
    let mut device = Proc::spawn(&[
        "device",
        "--server",
        &server.base,
        "--appid",
        &demo.appid,
        "--accept",
        "no-such-template-id-0123456789abcdef",
    ]);
    let status = device.wait_exit(SEEN_WITHIN).await;
    assert!(!status.success(), "{}", device.stdout.text());
    assert!(
        device.stderr.text().contains("20001"),
        "{}",
        device.stderr.text()
    );
}

#[tokio::test]
async fn a_device_for_an_unknown_appid_makes_no_user_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), "127.0.0.1:0").await;
    let mut device = Proc::spawn(&[
        "device",
        "--server",
        &server.base,
        "--appid",
        "wx0000000000000000",
    ]);
    let status = device.wait_exit(SEEN_WITHIN).await;
    assert!(!status.success());
    let out = device.stdout.text();
    assert!(!out.contains("device_token"), "no user was made: {out}");
    assert!(
        device.stderr.text().contains("404"),
        "{}",
        device.stderr.text()
    );
}

#[tokio::test]
async fn a_start_on_a_busy_port_fails_before_making_any_data_and_a_retry_shows_the_demo_app() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data_s = data.display().to_string();
    let mut first = Proc::spawn(&["serve", "--listen", &addr, "--data-dir", &data_s]);
    let status = first.wait_exit(SEEN_WITHIN).await;
    assert!(!status.success());
    assert!(
        first.stderr.text().contains("binding"),
        "{}",
        first.stderr.text()
    );
    assert!(!data.join("tuisong.db").exists(), "no database made");
    assert!(!data.join("admin-token").exists(), "no token made");
    drop(busy);
    // The retry is a first start: it creates the demo app and prints it.
    let server = Server::start(&data, "127.0.0.1:0").await;
    let demo = server.demo().await;
    assert!(demo.appid.starts_with("wx"));
}
