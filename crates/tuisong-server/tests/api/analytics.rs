use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn the_funnel_counts_prompts_sends_deliveries_clicks_and_conversions_across_a_restart() {
    let app = spawn_app().await;
    let t = app.token().await;
    let ids: Vec<String> = app
        .templates
        .iter()
        .filter(|x| x.1 == 2)
        .map(|x| x.0.clone())
        .collect();
    let (a, b) = (&ids[0], &ids[1]);
    let d = app.device("u").await;
    let v = app
        .call(
            reqwest::Method::POST,
            "/client/v1/subscribe",
            Some(&d.token),
            Some(json!({"appid": app.appid, "tmplIds": [a, b], "decisions": {a.clone(): "accept", b.clone(): "reject"}})),
        )
        .await;
    assert_eq!(v.0, 200);
    let data = app.example_data(&t, a).await;
    let body = json!({"touser": d.openid, "template_id": a, "data": data});
    let mut ws = app.ws(&d.token, 0, "phone").await;
    let m = app.send(&t, body.clone()).await["msgid"]
        .as_u64()
        .expect("sent");
    assert_wx_err(&app.send(&t, body.clone()).await, 43101);
    let (s, _) = app.v1_send(&t, body).await;
    assert_eq!(s, 403);
    ws.next().await;
    ws.ack(m).await;
    app.wait_status(&t, m, "delivered").await;
    ws.send(json!({"type": "open", "msgid": m})).await;
    ws.next().await;
    app.call(
        reqwest::Method::POST,
        &format!("/v1/messages/{m}/conversions"),
        Some(&t),
        Some(json!({"event": "pay", "value": 30.5})),
    )
    .await;

    let app = app.restart().await;
    let (s, r) = app
        .call(
            reqwest::Method::GET,
            "/v1/stats?granularity=day",
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let f = &r["funnel"];
    assert_eq!(
        (f["prompts"].clone(), f["accepted"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(
        (
            f["sent"].clone(),
            f["delivered"].clone(),
            f["clicked"].clone(),
            f["converted"].clone()
        ),
        (json!(1), json!(1), json!(1), json!(1))
    );
    assert_eq!(f["conversion_value"], 30.5);
    assert_eq!(f["accept_rate"], 0.5);
    assert_eq!(f["click_rate"], 1.0);
    assert_eq!(
        r["refused"]["43101"], 2,
        "both dialects count refusals alike: {r}"
    );
    assert_eq!(r["totals"]["grant_consumed"], 1);
    assert_eq!(r["series"].as_array().expect("series").len(), 1);
    // The numbers agree with the message table.
    let (_, list) = app
        .call(reqwest::Method::GET, "/v1/messages", Some(&t), None)
        .await;
    assert_eq!(
        list["messages"].as_array().expect("list").len() as u64,
        r["totals"]["sent"].as_u64().expect("sent")
    );
    // One template only.
    let (_, rb) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/stats?template_id={b}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(
        (
            rb["funnel"]["prompts"].clone(),
            rb["funnel"]["sent"].clone()
        ),
        (json!(1), json!(0))
    );
    assert_eq!(
        rb["funnel"]["delivery_rate"],
        serde_json::Value::Null,
        "no rate without a denominator"
    );
}

#[tokio::test]
async fn bad_stats_queries_are_400s() {
    let app = spawn_app().await;
    let t = app.token().await;
    for q in [
        "granularity=week",
        "from=abc",
        "from=200&to=100",
        "from=0&to=99999999999",
        "template_id=nope",
    ] {
        let (s, v) = app
            .call(
                reqwest::Method::GET,
                &format!("/v1/stats?{q}"),
                Some(&t),
                None,
            )
            .await;
        assert_eq!(s, 400, "{q} → {v}");
    }
    let (s, _) = app
        .call(reqwest::Method::GET, "/v1/stats", None, None)
        .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn messages_are_listed_newest_first_with_filters_and_paging() {
    let app = spawn_app().await;
    let t = app.token().await;
    let d = app.device("u").await;
    let id = app.one_time();
    for _ in 0..3 {
        app.accept(&d, &id).await;
    }
    let data = app.example_data(&t, &id).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            app.send(
                &t,
                json!({"touser": d.openid, "template_id": id, "data": data}),
            )
            .await["msgid"]
                .as_u64()
                .expect("m"),
        );
    }
    app.call(
        reqwest::Method::POST,
        &format!("/v1/messages/{}/cancel", ids[0]),
        Some(&t),
        None,
    )
    .await;
    let (_, all) = app
        .call(reqwest::Method::GET, "/v1/messages?limit=2", Some(&t), None)
        .await;
    let got: Vec<u64> = all["messages"]
        .as_array()
        .expect("m")
        .iter()
        .map(|m| m["msgid"].as_u64().expect("id"))
        .collect();
    assert_eq!(got, vec![ids[2], ids[1]]);
    assert_eq!(all["next_before"], ids[1]);
    let (_, rest) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/messages?limit=2&before={}", ids[1]),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(rest["messages"][0]["msgid"], ids[0]);
    assert_eq!(rest["next_before"], serde_json::Value::Null);
    let (_, c) = app
        .call(
            reqwest::Method::GET,
            "/v1/messages?status=cancelled",
            Some(&t),
            None,
        )
        .await;
    assert_eq!(c["messages"].as_array().expect("m").len(), 1);
    let (_, u) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/messages?touser={}&template_id={id}", d.openid),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(u["messages"].as_array().expect("m").len(), 3);
    let (s, _) = app
        .call(
            reqwest::Method::GET,
            "/v1/messages?status=lost",
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn an_idempotency_conflict_is_counted_under_its_own_reason_not_47001() {
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(3).await;
    let body =
        json!({"touser": d.openid, "template_id": id, "data": data, "idempotency_key": "k1"});
    let (s, v) = app.v1_send(&t, body.clone()).await;
    assert_eq!(s, 200, "{v}");
    let mut other = body.clone();
    other["page"] = json!("pages/other");
    let (s, v) = app.v1_send(&t, other).await;
    assert_eq!(s, 409, "{v}");
    let (s, r) = app
        .call(reqwest::Method::GET, "/v1/stats", Some(&t), None)
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["refused"]["idempotency_conflict"], 1, "{r}");
    assert!(r["refused"].get("47001").is_none(), "{r}");
}
