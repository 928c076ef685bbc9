use crate::helpers::*;
use serde_json::{Value, json};

fn msgid(v: &Value) -> u64 {
    v["msgid"]
        .as_u64()
        .unwrap_or_else(|| panic!("msgid in {v}"))
}

#[tokio::test]
async fn a_connected_device_receives_a_send_at_once_and_its_ack_marks_it_delivered() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(1).await;
    let mut ws = app.ws(&d.token, 0, "phone").await;
    let v = app
        .send(
            &t,
            json!({"touser": d.openid, "template_id": id, "page": "pages/o?id=1", "data": data}),
        )
        .await;
    let m = msgid(&v);
    let f = ws.next().await;
    assert_eq!(f["type"], "message", "{f}");
    assert_eq!(f["msgid"], m);
    assert_eq!(f["seq"], 1);
    assert_eq!(f["appid"], app.appid.as_str());
    assert_eq!(f["template_id"], id.as_str());
    assert_eq!(f["page"], "pages/o?id=1");
    assert_eq!(f["urgent"], false);
    let rows = f["rows"].as_array().expect("rows");
    assert!(!rows.is_empty() && rows[0]["name"].is_string() && rows[0]["value"].is_string());
    assert!(f["title"].is_string());
    let (_, before) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/messages/{m}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(before["status"], "accepted");
    ws.ack(m).await;
    let after = app.wait_status(&t, m, "delivered").await;
    let timeline = after["timeline"].as_array().expect("timeline");
    assert!(
        timeline
            .iter()
            .any(|e| e["event"] == "delivered" && e["device"] == "phone"),
        "{after}"
    );
}

#[tokio::test]
async fn an_offline_device_catches_up_from_its_cursor_in_order() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(5).await;
    let body = json!({"touser": d.openid, "template_id": id, "data": data});
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.push(msgid(&app.send(&t, body.clone()).await));
    }
    let mut ws = app.ws(&d.token, 0, "phone").await;
    for (i, m) in sent.iter().enumerate() {
        let f = ws.next().await;
        assert_eq!(
            (f["msgid"].as_u64(), f["seq"].as_u64()),
            (Some(*m), Some(i as u64 + 1)),
            "{f}"
        );
    }
    ws.close().await;
    for _ in 0..2 {
        sent.push(msgid(&app.send(&t, body.clone()).await));
    }
    let mut ws = app.ws(&d.token, 3, "phone").await;
    assert_eq!(ws.next().await["msgid"], sent[3]);
    assert_eq!(ws.next().await["msgid"], sent[4]);
    assert!(
        ws.next_within(300).await.is_none(),
        "nothing before the cursor is sent again"
    );
    // Live messages follow the backlog on the same session.
    app.accept(&d, &id).await;
    let live = msgid(&app.send(&t, body).await);
    let f = ws.next().await;
    assert_eq!(
        (f["msgid"].as_u64(), f["seq"].as_u64()),
        (Some(live), Some(6))
    );
}

#[tokio::test]
async fn the_inbox_over_http_matches_the_socket() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(2).await;
    let body = json!({"touser": d.openid, "template_id": id, "data": data});
    let a = msgid(&app.send(&t, body.clone()).await);
    let b = msgid(&app.send(&t, body).await);
    let (s, v) = app
        .call(
            reqwest::Method::GET,
            "/client/v1/inbox?cursor=0&limit=1",
            Some(&d.token),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["entries"][0]["msgid"], a);
    assert_eq!(
        (v["cursor"].clone(), v["more"].clone()),
        (json!(1), json!(true))
    );
    let (_, v) = app
        .call(
            reqwest::Method::GET,
            "/client/v1/inbox?cursor=1",
            Some(&d.token),
            None,
        )
        .await;
    assert_eq!(v["entries"][0]["msgid"], b);
    assert_eq!(v["cursor"], 2);
    let (s, _) = app
        .call(
            reqwest::Method::GET,
            "/client/v1/inbox?cursor=x",
            Some(&d.token),
            None,
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = app
        .call(reqwest::Method::GET, "/client/v1/inbox", None, None)
        .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn every_device_of_a_user_gets_every_message() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(1).await;
    let mut phone = app.ws(&d.token, 0, "phone").await;
    let mut pad = app.ws(&d.token, 0, "pad").await;
    let m = msgid(
        &app.send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await,
    );
    assert_eq!(phone.next().await["msgid"], m);
    assert_eq!(pad.next().await["msgid"], m);
    phone.ack(m).await;
    pad.ack(m).await;
    let v = app.wait_status(&t, m, "delivered").await;
    for _ in 0..50 {
        let (_, v) = app
            .call(
                reqwest::Method::GET,
                &format!("/v1/messages/{m}"),
                Some(&t),
                None,
            )
            .await;
        let devices: Vec<&str> = v["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .filter(|e| e["event"] == "delivered")
            .filter_map(|e| e["device"].as_str())
            .collect();
        if devices.len() == 2 {
            assert!(devices.contains(&"phone") && devices.contains(&"pad"));
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("both devices' deliveries on the timeline: {v}");
}

#[tokio::test]
async fn a_recall_before_delivery_cancels_refunds_and_leaves_only_a_tombstone() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(1).await;
    let m = msgid(
        &app.send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await,
    );
    assert_eq!(app.remaining(&t, &d.openid, &id).await, 0);
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/messages/{m}/recall"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!((s, v["status"].clone()), (200, json!("cancelled")), "{v}");
    assert_eq!(
        app.remaining(&t, &d.openid, &id).await,
        1,
        "the grant is back"
    );
    let mut ws = app.ws(&d.token, 0, "phone").await;
    let f = ws.next().await;
    assert_eq!(
        (f["type"].clone(), f["msgid"].clone()),
        (json!("recall"), json!(m)),
        "no card, only the tombstone: {f}"
    );
    assert!(ws.next_within(300).await.is_none());
}

#[tokio::test]
async fn a_recall_after_delivery_reaches_connected_and_offline_devices() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(1).await;
    let mut phone = app.ws(&d.token, 0, "phone").await;
    let m = msgid(
        &app.send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await,
    );
    assert_eq!(phone.next().await["msgid"], m);
    phone.ack(m).await;
    app.wait_status(&t, m, "delivered").await;
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/messages/{m}/recall"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!((s, v["status"].clone()), (200, json!("recalled")));
    let f = phone.next().await;
    assert_eq!(
        (f["type"].clone(), f["msgid"].clone(), f["seq"].clone()),
        (json!("recall"), json!(m), json!(2))
    );
    // A device that was offline sees the tombstone, not the card.
    let mut pad = app.ws(&d.token, 0, "pad").await;
    let f = pad.next().await;
    assert_eq!(
        (f["type"].clone(), f["msgid"].clone()),
        (json!("recall"), json!(m))
    );
    assert_eq!(
        app.remaining(&t, &d.openid, &id).await,
        0,
        "a delivered message is not refunded"
    );
    // Recalling twice, or another app's message, is refused.
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/messages/{m}/recall"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!((s, v["error"]["code"].clone()), (409, json!("too_late")));
    let (_, other) = app
        .call(
            reqwest::Method::POST,
            "/admin/apps",
            Some(ADMIN_TOKEN),
            Some(json!({"name": "o"})),
        )
        .await;
    let ot = app
        .token_for(
            other["appid"].as_str().expect("a"),
            other["secret"].as_str().expect("s"),
        )
        .await;
    let (s, _) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/messages/{m}/recall"),
            Some(&ot),
            None,
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn cancel_works_before_delivery_only() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(2).await;
    let body = json!({"touser": d.openid, "template_id": id, "data": data});
    let a = msgid(&app.send(&t, body.clone()).await);
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/messages/{a}/cancel"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!((s, v["status"].clone()), (200, json!("cancelled")));
    assert_eq!(app.remaining(&t, &d.openid, &id).await, 2);
    let b = msgid(&app.send(&t, body).await);
    let mut ws = app.ws(&d.token, 0, "phone").await;
    // The cancelled card's tombstone, then the live one.
    let mut got = Vec::new();
    while let Some(f) = ws.next_within(500).await {
        got.push(f);
    }
    let card = got
        .iter()
        .find(|f| f["type"] == "message")
        .expect("the second card");
    assert_eq!(card["msgid"], b);
    assert!(
        !got.iter()
            .any(|f| f["type"] == "message" && f["msgid"] == a)
    );
    ws.ack(b).await;
    app.wait_status(&t, b, "delivered").await;
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/messages/{b}/cancel"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!((s, v["error"]["code"].clone()), (409, json!("too_late")));
    let (s, _) = app
        .call(
            reqwest::Method::POST,
            "/v1/messages/987654/cancel",
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn an_undelivered_message_expires_at_its_ttl_and_gives_the_grant_back() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(1).await;
    let (s, v) = app
        .v1_send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data, "ttl_seconds": 60}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let m = msgid(&v);
    app.clock.advance_ms(59_000);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (_, still) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/messages/{m}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(still["status"], "accepted");
    app.clock.advance_ms(2_000);
    let v = app.wait_status(&t, m, "expired").await;
    assert!(
        v["timeline"]
            .as_array()
            .expect("t")
            .iter()
            .any(|e| e["event"] == "expired")
    );
    assert_eq!(app.remaining(&t, &d.openid, &id).await, 1);
    let mut ws = app.ws(&d.token, 0, "phone").await;
    assert!(
        ws.next_within(300).await.is_none(),
        "an expired card is not shown"
    );
    let (s, _) = app
        .v1_send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data, "ttl_seconds": 0}),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn a_scheduled_send_waits_for_its_time() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(1).await;
    let mut ws = app.ws(&d.token, 0, "phone").await;
    let at = app.clock.now_secs() + 3600;
    let (s, v) = app
        .v1_send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data, "send_at": at}),
        )
        .await;
    assert_eq!((s, v["status"].clone()), (200, json!("scheduled")), "{v}");
    assert!(ws.next_within(200).await.is_none());
    app.clock.advance_ms(3_601_000);
    let f = ws.next().await;
    assert_eq!(f["msgid"], v["msgid"]);
    let (s, _) = app
        .v1_send(&t, json!({"touser": d.openid, "template_id": id, "data": data, "send_at": at + 31 * 86_400}))
        .await;
    assert_eq!(s, 400, "too far ahead");
}

#[tokio::test]
async fn a_scheduled_send_survives_a_restart() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(1).await;
    let at = app.clock.now_secs() + 600;
    let (_, v) = app
        .v1_send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data, "send_at": at}),
        )
        .await;
    let m = msgid(&v);
    let app = app.restart().await;
    app.clock.advance_ms(601_000);
    let mut ws = app.ws(&d.token, 0, "phone").await;
    assert_eq!(ws.next().await["msgid"], m);
}

#[tokio::test]
async fn opening_a_card_answers_its_page_and_counts_on_the_timeline() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(1).await;
    let mut ws = app.ws(&d.token, 0, "phone").await;
    let m = msgid(
        &app.send(
            &t,
            json!({"touser": d.openid, "template_id": id, "page": "pages/x?y=1", "data": data}),
        )
        .await,
    );
    ws.next().await;
    ws.send(json!({"type": "open", "msgid": m})).await;
    let f = ws.next().await;
    assert_eq!(
        (f["type"].clone(), f["page"].clone(), f["appid"].clone()),
        (json!("opened"), json!("pages/x?y=1"), json!(app.appid))
    );
    ws.send(json!({"type": "open", "msgid": 424242})).await;
    assert_eq!(ws.next().await["type"], "error");
    ws.send(json!({"type": "nonsense"})).await;
    assert_eq!(
        ws.next().await["type"],
        "error",
        "a bad frame gets an error, not a closed socket"
    );
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/messages/{m}/conversions"),
            Some(&t),
            Some(json!({"event": "purchase", "value": 99.5})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/messages/{m}"),
            Some(&t),
            None,
        )
        .await;
    let events: Vec<&str> = v["timeline"]
        .as_array()
        .expect("t")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(
        events.contains(&"accepted") && events.contains(&"opened") && events.contains(&"converted"),
        "{events:?}"
    );
    let (s, _) = app
        .call(
            reqwest::Method::POST,
            "/v1/messages/424242/conversions",
            Some(&t),
            Some(json!({"event": "x"})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/messages/{m}/conversions"),
            Some(&t),
            Some(json!({"value": 1})),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn the_socket_needs_a_device_token_and_a_hello() {
    let app = spawn_app().await;
    let url = format!("{}/client/v1/ws", app.base.replacen("http", "ws", 1));
    assert!(
        tokio_tungstenite::connect_async(&url).await.is_err(),
        "no token, no upgrade"
    );
    assert!(
        tokio_tungstenite::connect_async(format!("{url}?token=dt_wrong"))
            .await
            .is_err()
    );
    let dt = app.new_user("u").await;
    let (mut s, _) = tokio_tungstenite::connect_async(format!("{url}?token={dt}"))
        .await
        .expect("connects");
    use futures_util::{SinkExt, StreamExt};
    s.send(tokio_tungstenite::tungstenite::Message::Text(
        r#"{"type":"ack","msgid":1}"#.into(),
    ))
    .await
    .expect("send");
    let first = s.next().await.expect("a frame").expect("ok");
    assert!(
        first.to_text().expect("text").contains("hello"),
        "{first:?}"
    );
}
