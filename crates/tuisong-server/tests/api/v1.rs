use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn a_native_send_answers_msgid_and_status() {
    let app = spawn_app().await;
    let t = app.token().await;
    let d = app.device("u").await;
    let id = app.one_time();
    app.accept(&d, &id).await;
    let data = app.example_data(&t, &id).await;
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            "/v1/messages",
            Some(&t),
            Some(json!({"touser": d.openid, "template_id": id, "data": data})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["msgid"].is_u64());
    assert_eq!(v["status"], "accepted");
}

#[tokio::test]
async fn the_same_idempotency_key_gives_the_same_message_once() {
    let app = spawn_app().await;
    let t = app.token().await;
    let d = app.device("u").await;
    let id = app.one_time();
    app.accept(&d, &id).await;
    app.accept(&d, &id).await;
    let data = app.example_data(&t, &id).await;
    let body =
        json!({"touser": d.openid, "template_id": id, "data": data, "idempotency_key": "order-42"});
    let (s1, a) = app
        .call(
            reqwest::Method::POST,
            "/v1/messages",
            Some(&t),
            Some(body.clone()),
        )
        .await;
    let (s2, b) = app
        .call(
            reqwest::Method::POST,
            "/v1/messages",
            Some(&t),
            Some(body.clone()),
        )
        .await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(a["msgid"], b["msgid"]);
    assert_eq!(b["replayed"], true);
    assert_eq!(app.remaining(&t, &d.openid, &id).await, 1, "consumed once");
    let mut other = body.clone();
    other["page"] = json!("pages/other");
    let (s, v) = app
        .call(reqwest::Method::POST, "/v1/messages", Some(&t), Some(other))
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "idempotency_conflict");
}

#[tokio::test]
async fn native_errors_are_http_statuses_with_a_code_and_message() {
    let app = spawn_app().await;
    let t = app.token().await;
    let d = app.device("u").await;
    let id = app.one_time();
    let data = app.example_data(&t, &id).await;
    let send = |bearer: Option<&str>, body: serde_json::Value| {
        let bearer = bearer.map(str::to_owned);
        let app = &app;
        async move {
            app.call(
                reqwest::Method::POST,
                "/v1/messages",
                bearer.as_deref(),
                Some(body),
            )
            .await
        }
    };
    let (s, v) = send(
        Some(&t),
        json!({"touser": d.openid, "template_id": id, "data": data}),
    )
    .await;
    assert_eq!((s, v["error"]["code"].clone()), (403, json!("no_consent")));
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("43101")
    );
    let (s, _) = send(None, json!({})).await;
    assert_eq!(s, 401);
    let (s, _) = send(Some("bogus"), json!({})).await;
    assert_eq!(s, 401);
    let (s, v) = send(
        Some(&t),
        json!({"touser": d.openid, "template_id": id, "data": {}}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (400, json!("invalid_data"))
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("data.")
    );
    let (s, _) = send(
        Some(&t),
        json!({"touser": "x", "template_id": id, "data": data}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = send(
        Some(&t),
        json!({"touser": d.openid, "template_id": "x", "data": data}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .call(reqwest::Method::GET, "/v1/messages/999999", Some(&t), None)
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .call(reqwest::Method::GET, "/v1/messages/abc", Some(&t), None)
        .await;
    assert_eq!(s, 404);
    let r = app
        .client
        .post(app.url("/v1/messages"))
        .bearer_auth(&t)
        .body("{oops")
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn another_apps_message_is_not_found() {
    let app = spawn_app().await;
    let t = app.token().await;
    let d = app.device("u").await;
    let id = app.one_time();
    app.accept(&d, &id).await;
    let data = app.example_data(&t, &id).await;
    let v = app
        .send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await;
    let msgid = v["msgid"].as_u64().expect("msgid");
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
            reqwest::Method::GET,
            &format!("/v1/messages/{msgid}"),
            Some(&ot),
            None,
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_data_key_the_template_lacks_is_a_400_naming_it_in_v1_and_ignored_in_wechats_dialect() {
    let app = spawn_app().await;
    let (t, d, id, mut data) = app.subscribed(2).await;
    data["thing999"] = json!({"value": "多余"});
    let (s, v) = app
        .v1_send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(msg.starts_with("data.thing999: "), "{msg}");
    // WeChat ignores keys its template lacks; so does its dialect here, and stores none.
    let obj = data.as_object_mut().expect("object");
    for i in 0..2000 {
        obj.insert(format!("thing{}", 1000 + i), json!({"value": "x"}));
    }
    let v = app
        .send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let msgid = v["msgid"].as_u64().expect("msgid");
    let (s, m) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/messages/{msgid}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, 200, "{m}");
    assert!(!m.to_string().contains("thing1000"), "{m}");
}

#[tokio::test]
async fn v1_names_a_missing_field_says_why_a_value_is_refused_and_spots_milliseconds() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(2).await;
    for (body, field) in [
        (json!({"template_id": id, "data": data}), "touser"),
        (
            json!({"touser": d.openid, "templateId": id, "data": data}),
            "template_id",
        ),
    ] {
        let (s, v) = app.v1_send(&t, body).await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["error"]["message"], format!("{field} is required"), "{v}");
    }
    // A keyword value over its length: the message says the rule, the limit and the count.
    let mut long = data.clone();
    let thing = long
        .as_object()
        .expect("object")
        .keys()
        .find(|k| k.starts_with("thing"))
        .cloned();
    if let Some(key) = thing {
        long[&key] = json!({"value": "长".repeat(26)});
        let (s, v) = app
            .v1_send(
                &t,
                json!({"touser": d.openid, "template_id": id, "data": long}),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some("invalid_data")),
            "{v}"
        );
        assert_eq!(
            v["error"]["message"],
            format!("data.{key}.value: thing allows at most 20 characters, got 26")
        );
        // The WeChat dialect stays exact.
        let w = app
            .send(
                &t,
                json!({"touser": d.openid, "template_id": id, "data": long}),
            )
            .await;
        assert_eq!(
            w["errmsg"]
                .as_str()
                .map(|m| m.split(" rid:").next().unwrap_or("")),
            Some(format!("argument invalid! data.{key}.value invalid").as_str()),
            "{w}"
        );
    }
    let ms = app.clock.now_ms() + 60_000;
    let (s, v) = app
        .v1_send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data, "send_at": ms}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let m = v["error"]["message"].as_str().expect("message");
    assert!(m.starts_with("send_at is Unix seconds;"), "{m}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_answered_in_each_dialects_shape() {
    let app = spawn_app().await;
    let t = app.token().await;
    let big = format!("{{\"touser\":\"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let r = app
        .client
        .post(app.url(&format!("/cgi-bin/message/subscribe/send?access_token={t}")))
        .body(big.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "the WeChat dialect answers HTTP 200");
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(errcode(&v), 47001, "{v}");
    let r = app
        .client
        .post(app.url("/v1/messages"))
        .bearer_auth(&t)
        .body(big)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.json().await.expect("json body, not text/plain");
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");
}
