use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn the_policy_has_documented_defaults_and_refuses_bad_values() {
    let app = spawn_app().await;
    let t = app.token().await;
    let (s, p) = app
        .call(reqwest::Method::GET, "/v1/policy", Some(&t), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["per_user"], json!({"max": 60, "window_secs": 3600}));
    assert_eq!(p["app_daily"], 10_000_000);
    assert_eq!(p["quiet_hours"], Value::Null);
    assert_eq!(p["urgent_daily_budget"], 1000);
    for bad in [
        json!({"quiet_hours": {"start": "25:00", "end": "08:00"}}),
        json!({"per_user": {"max": 0, "window_secs": 60}}),
        json!({"app_daily": 0}),
        json!({"unknown_rule": 1}),
        json!({"per_user": "lots"}),
    ] {
        let (s, v) = app
            .call(
                reqwest::Method::PUT,
                "/v1/policy",
                Some(&t),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(s, 400, "{bad} → {v}");
    }
    let (s, _) = app
        .call(reqwest::Method::GET, "/v1/policy", None, None)
        .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn quiet_hours_hold_a_message_and_release_it_when_they_end() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(1).await;
    app.put_policy(&t, json!({"quiet_hours": quiet_around(app.clock.now_ms())}))
        .await;
    let mut ws = app.ws(&d.token, 0, "phone").await;
    let (s, v) = app
        .v1_send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await;
    assert_eq!((s, v["status"].clone()), (200, json!("held")), "{v}");
    assert!(
        ws.next_within(300).await.is_none(),
        "held, not dropped and not delivered"
    );
    app.clock.advance_ms(2 * 3_600_000);
    let f = ws.next().await;
    let t = app.token().await; // two hours on, the first token has expired
    assert_eq!(f["msgid"], v["msgid"]);
    let m = app
        .wait_status(&t, v["msgid"].as_u64().expect("id"), "accepted")
        .await;
    let events: Vec<&str> = m["timeline"]
        .as_array()
        .expect("t")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(
        events.contains(&"held") && events.contains(&"released"),
        "{events:?}"
    );
}

#[tokio::test]
async fn the_users_own_quiet_hours_hold_messages_too() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(1).await;
    let (s, v) = app
        .call(
            reqwest::Method::PUT,
            "/client/v1/settings",
            Some(&d.token),
            Some(json!({"appid": app.appid, "quietHours": quiet_around(app.clock.now_ms())})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["quietHours"]["start"].is_string());
    let v = app
        .send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await;
    assert_eq!(errcode(&v), 0);
    let (_, m) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/messages/{}", v["msgid"]),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(m["status"], "held");
    let (s, _) = app
        .call(
            reqwest::Method::PUT,
            "/client/v1/settings",
            Some(&d.token),
            Some(json!({"appid": app.appid, "quietHours": {"start": "9", "end": "10"}})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, v) = app
        .call(
            reqwest::Method::PUT,
            "/client/v1/settings",
            Some(&d.token),
            Some(json!({"appid": app.appid, "quietHours": null})),
        )
        .await;
    assert_eq!((s, v["quietHours"].clone()), (200, Value::Null));
}

#[tokio::test]
async fn an_urgent_message_skips_quiet_hours_and_caps_but_not_consent_and_spends_the_budget() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(3).await;
    app.put_policy(
        &t,
        json!({"quiet_hours": quiet_around(app.clock.now_ms()), "per_user": {"max": 1, "window_secs": 3600}, "urgent_daily_budget": 2}),
    )
    .await;
    let mut ws = app.ws(&d.token, 0, "phone").await;
    let body = json!({"touser": d.openid, "template_id": id, "data": data, "urgent": true});
    for _ in 0..2 {
        let (s, v) = app.v1_send(&t, body.clone()).await;
        assert_eq!((s, v["status"].clone()), (200, json!("accepted")), "{v}");
        let f = ws.next().await;
        assert_eq!(
            (f["msgid"].clone(), f["urgent"].clone()),
            (v["msgid"].clone(), json!(true))
        );
    }
    let (s, v) = app.v1_send(&t, body.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (429, json!("rate_limited")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains("urgent_budget")
    );
    assert_eq!(
        app.remaining(&t, &d.openid, &id).await,
        1,
        "a refused send takes no grant"
    );
    // Urgent still needs consent.
    let other = app.device("v").await;
    let mut b = body.clone();
    b["touser"] = json!(other.openid);
    let (s, _) = app.v1_send(&t, b).await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn the_per_user_cap_refuses_with_43108_and_429_without_taking_a_grant() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(4).await;
    app.put_policy(&t, json!({"per_user": {"max": 2, "window_secs": 3600}}))
        .await;
    let body = json!({"touser": d.openid, "template_id": id, "data": data});
    for _ in 0..2 {
        assert_eq!(errcode(&app.send(&t, body.clone()).await), 0);
    }
    assert_wx_err(&app.send(&t, body.clone()).await, 43108);
    let (s, v) = app.v1_send(&t, body.clone()).await;
    assert_eq!(s, 429);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains("per_user")
    );
    assert_eq!(app.remaining(&t, &d.openid, &id).await, 2);
    app.clock.advance_ms(3_600_000);
    assert_eq!(
        errcode(&app.send(&t, body).await),
        0,
        "a new window admits again"
    );
}

#[tokio::test]
async fn the_per_user_template_cap_counts_one_template() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(3).await;
    app.put_policy(
        &t,
        json!({"per_user_template": {"max": 1, "window_secs": 600}, "per_user": null}),
    )
    .await;
    let body = json!({"touser": d.openid, "template_id": id, "data": data});
    assert_eq!(errcode(&app.send(&t, body.clone()).await), 0);
    let (s, v) = app.v1_send(&t, body).await;
    assert_eq!(s, 429);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains("per_user_template")
    );
}

#[tokio::test]
async fn the_app_caps_answer_45009_daily_and_45011_per_minute() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(5).await;
    let body = json!({"touser": d.openid, "template_id": id, "data": data});
    app.put_policy(&t, json!({"app_per_minute": 1})).await;
    assert_eq!(errcode(&app.send(&t, body.clone()).await), 0);
    assert_wx_err(&app.send(&t, body.clone()).await, 45011);
    app.clock.advance_ms(60_000);
    app.put_policy(&t, json!({"app_daily": 2})).await;
    assert_eq!(errcode(&app.send(&t, body.clone()).await), 0);
    assert_wx_err(&app.send(&t, body.clone()).await, 45009);
    let (s, v) = app.v1_send(&t, body).await;
    assert_eq!(s, 429);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains("app_daily")
    );
}
