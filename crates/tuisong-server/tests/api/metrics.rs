//! `/metrics`, `/readyz` and request ids over a real socket.

use crate::helpers::*;
use serde_json::json;

/// The value of the series `line` (its name and labels, exactly) in an exposition.
fn series(text: &str, line: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(app: &TestApp) -> String {
    let r = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    r.text().await.expect("text")
}

#[tokio::test]
async fn sends_are_counted_by_dialect_and_outcome_and_refusals_under_their_reason() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(2).await;
    let body = json!({"touser": d.openid, "template_id": id, "data": data});
    assert_eq!(errcode(&app.send(&t, body.clone()).await), 0);
    let (s, v) = app.v1_send(&t, body.clone()).await;
    assert_eq!(s, 200, "{v}");
    // Both grants are used: each dialect is refused for consent now.
    assert_wx_err(&app.send(&t, body.clone()).await, 43101);
    let (s, v) = app.v1_send(&t, body.clone()).await;
    assert_eq!(s, 403, "{v}");
    let (s, _) = app.v1_send("not-a-token", body).await;
    assert_eq!(s, 401);

    let text = scrape(&app).await;
    for (line, want) in [
        (r#"tuisong_sends_total{dialect="wechat",outcome="ok"}"#, 1.0),
        (
            r#"tuisong_sends_total{dialect="wechat",outcome="43101"}"#,
            1.0,
        ),
        (r#"tuisong_sends_total{dialect="v1",outcome="ok"}"#, 1.0),
        (
            r#"tuisong_sends_total{dialect="v1",outcome="no_consent"}"#,
            1.0,
        ),
        (
            r#"tuisong_sends_total{dialect="v1",outcome="invalid_token"}"#,
            1.0,
        ),
        (
            r#"tuisong_send_duration_seconds_count{dialect="wechat"}"#,
            2.0,
        ),
        (r#"tuisong_send_duration_seconds_count{dialect="v1"}"#, 3.0),
    ] {
        assert_eq!(series(&text, line), Some(want), "{line} in\n{text}");
    }
    assert!(text.contains(r#"tuisong_build_info{version=""#), "{text}");
    assert!(
        series(&text, "tuisong_connected_devices").is_some(),
        "{text}"
    );
    // No appid, openid or token in any label.
    for secret in [&app.appid, &d.openid, &t] {
        assert!(
            !text.contains(secret.as_str()),
            "{secret} leaked into\n{text}"
        );
    }
}

#[tokio::test]
async fn connected_devices_acks_and_frames_show_in_the_metrics() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(1).await;
    let mut ws = app.ws(&d.token, 0, "phone").await;
    let text = scrape(&app).await;
    assert_eq!(
        series(&text, "tuisong_connected_devices"),
        Some(1.0),
        "{text}"
    );
    let v = app
        .send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await;
    let msgid = v["msgid"].as_u64().expect("msgid");
    loop {
        let f = ws.next().await;
        if f["type"] == "message" {
            break;
        }
    }
    ws.ack(msgid).await;
    app.wait_status(&t, msgid, "delivered").await;
    let text = scrape(&app).await;
    // Process-wide counters: other tests in this binary add to them.
    assert!(series(&text, "tuisong_acks_total") >= Some(1.0), "{text}");
    assert!(
        series(&text, "tuisong_frames_out_total") >= Some(1.0),
        "{text}"
    );
    ws.close().await;
}

#[tokio::test]
async fn readyz_is_200_on_a_live_node_and_healthz_stays_up() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.expect("json"),
        json!({"ready": true})
    );
    let r = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(
        (r.status().as_u16(), r.text().await.expect("text")),
        (200, "ok".into())
    );
}

#[tokio::test]
async fn the_request_id_is_echoed_when_given_and_made_when_not() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "lb-7f3a")
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.headers()["x-request-id"], "lb-7f3a");
    let r = app
        .client
        .get(app.url("/cgi-bin/token?grant_type=client_credential"))
        .send()
        .await
        .expect("token");
    let made = r.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(made.len(), 16, "{made}");
}

/// The value of an unlabelled sample line `name value`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
}

#[tokio::test]
async fn the_stores_group_commits_show_as_batch_sizes_and_commit_times() {
    let app = spawn_app().await;
    let before = sample(&scrape(&app).await, "tuisong_store_commit_seconds_count");
    let (t, d, id, data) = app.subscribed(3).await;
    let sends: Vec<_> = (0..3)
        .map(|_| {
            app.send(
                &t,
                json!({"touser": d.openid, "template_id": id, "data": data}),
            )
        })
        .collect();
    for v in futures_util::future::join_all(sends).await {
        assert_eq!(errcode(&v), 0, "{v}");
    }
    let text = scrape(&app).await;
    let commits = sample(&text, "tuisong_store_commit_seconds_count");
    assert!(
        commits > before,
        "commits were counted: {before} → {commits}"
    );
    let jobs = sample(&text, "tuisong_store_batch_size_sum");
    assert!(jobs >= commits, "every commit carries at least one write");
    assert!(
        text.contains("tuisong_store_batch_size_bucket{le=\"+Inf\"}"),
        "{text}"
    );
}
