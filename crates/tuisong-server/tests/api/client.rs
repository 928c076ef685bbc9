use crate::helpers::*;
use serde_json::json;

async fn prompt(app: &TestApp, d: &Device, body: serde_json::Value) -> serde_json::Value {
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            "/client/v1/subscribe",
            Some(&d.token),
            Some(body),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test]
async fn a_prompt_answers_in_the_shape_of_request_subscribe_message() {
    let app = spawn_app().await;
    let d = app.device("u").await;
    let ids: Vec<String> = app
        .templates
        .iter()
        .filter(|t| t.1 == 2)
        .map(|t| t.0.clone())
        .collect();
    assert!(ids.len() >= 2);
    let v = prompt(
        &app,
        &d,
        json!({"appid": app.appid, "tmplIds": ids,
        "decisions": {ids[0].clone(): "accept", ids[1].clone(): "reject"}}),
    )
    .await;
    assert_eq!(v["errMsg"], "requestSubscribeMessage:ok");
    assert_eq!(v[&ids[0]], "accept");
    assert_eq!(v[&ids[1]], "reject");
    assert!(v.get("errCode").is_none());
}

#[tokio::test]
async fn prompt_failures_carry_wechats_err_codes() {
    let app = spawn_app().await;
    let d = app.device("u").await;
    let one = app.one_time();
    let long = app.long_term();
    let cases = [
        (json!({"appid": app.appid, "tmplIds": []}), 10001),
        (json!({"appid": app.appid}), 10001),
        (json!({"appid": app.appid, "tmplIds": [42]}), 10004),
        (
            json!({"appid": app.appid, "tmplIds": ["A".repeat(43)]}),
            20001,
        ),
        (
            json!({"appid": app.appid, "tmplIds": [one, long], "decisions": {one.clone(): "accept", long.clone(): "accept"}}),
            20002,
        ),
        (
            json!({"appid": app.appid, "tmplIds": [one, one, one, one]}),
            20003,
        ),
    ];
    for (body, code) in cases {
        let v = prompt(&app, &d, body.clone()).await;
        assert_eq!(v["errCode"], code, "{body} → {v}");
        assert!(
            v["errMsg"]
                .as_str()
                .expect("errMsg")
                .starts_with("requestSubscribeMessage:fail "),
            "{v}"
        );
    }
    let _ = app
        .call(
            reqwest::Method::PUT,
            "/client/v1/settings",
            Some(&d.token),
            Some(json!({"appid": app.appid, "mainSwitch": false})),
        )
        .await;
    let v = prompt(
        &app,
        &d,
        json!({"appid": app.appid, "tmplIds": [one], "decisions": {one.clone(): "accept"}}),
    )
    .await;
    assert_eq!(v["errCode"], 20004);
}

#[tokio::test]
async fn a_prompt_without_a_decision_or_with_a_bad_one_is_a_400() {
    let app = spawn_app().await;
    let d = app.device("u").await;
    let one = app.one_time();
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            "/client/v1/subscribe",
            Some(&d.token),
            Some(json!({"appid": app.appid, "tmplIds": [one]})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains(&one)
    );
    let (s, _) = app
        .call(
            reqwest::Method::POST,
            "/client/v1/subscribe",
            Some(&d.token),
            Some(
                json!({"appid": app.appid, "tmplIds": [one], "decisions": {one.clone(): "maybe"}}),
            ),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn a_kept_choice_answers_later_prompts_silently_and_shows_in_settings() {
    let app = spawn_app().await;
    let t = app.token().await;
    let d = app.device("u").await;
    let one = app.one_time();
    let v = app.subscribe(&d, &[&one], "accept", true).await;
    assert_eq!(v[&one], "accept");
    // No decision needed any more; each kept accept still grants one send (our documented choice).
    let v = prompt(&app, &d, json!({"appid": app.appid, "tmplIds": [one]})).await;
    assert_eq!(v[&one], "accept", "{v}");
    assert_eq!(app.remaining(&t, &d.openid, &one).await, 2);
    let (s, settings) = app
        .call(
            reqwest::Method::GET,
            &format!("/client/v1/settings?appid={}", app.appid),
            Some(&d.token),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(settings["mainSwitch"], true);
    assert_eq!(settings["itemSettings"][&one], "accept");
    assert_eq!(
        settings["itemSettings"].as_object().expect("obj").len(),
        1,
        "only kept templates are listed"
    );
}

#[tokio::test]
async fn a_kept_reject_answers_reject_without_a_grant() {
    let app = spawn_app().await;
    let t = app.token().await;
    let d = app.device("u").await;
    let one = app.one_time();
    let v = app.subscribe(&d, &[&one], "reject", true).await;
    assert_eq!(v[&one], "reject");
    let v = app.subscribe(&d, &[&one], "accept", false).await;
    assert_eq!(v[&one], "reject", "the kept choice wins over a new answer");
    assert_eq!(app.remaining(&t, &d.openid, &one).await, 0);
}

#[tokio::test]
async fn the_ledger_is_readable_per_template() {
    let app = spawn_app().await;
    let t = app.token().await;
    let d = app.device("u").await;
    let one = app.one_time();
    app.accept(&d, &one).await;
    app.accept(&d, &one).await;
    let v = app.ledger(&t, &d.openid).await;
    assert_eq!(v["openid"], d.openid.as_str());
    assert_eq!(v["main_switch"], true);
    let row = v["templates"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["template_id"] == one)
        .expect("row")
        .clone();
    assert_eq!(row["status"], "accept");
    assert_eq!(row["remaining"], 2);
    assert_eq!(row["granted_total"], 2);
    assert_eq!(row["consumed_total"], 0);
    assert_eq!(row["type"], 2);
    assert!(row["title"].is_string());
    let (s, _) = app
        .call(
            reqwest::Method::GET,
            "/v1/consents/o0000000000000000000000000AA",
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/consents/{}", d.openid),
            None,
            None,
        )
        .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn settings_refuse_templates_of_other_apps_and_bad_values() {
    let app = spawn_app().await;
    let d = app.device("u").await;
    let (s, _) = app
        .call(
            reqwest::Method::PUT,
            "/client/v1/settings",
            Some(&d.token),
            Some(json!({"appid": app.appid, "itemSettings": {"A".repeat(43): "reject"}})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .call(
            reqwest::Method::PUT,
            "/client/v1/settings",
            Some(&d.token),
            Some(json!({"appid": app.appid, "mainSwitch": "off"})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = app
        .call(
            reqwest::Method::GET,
            "/client/v1/settings",
            Some(&d.token),
            None,
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn me_names_the_user_of_a_device_token_and_refuses_a_wrong_one() {
    let app = spawn_app().await;
    let token = app.new_user("小红").await;
    let (s, v) = app
        .call(reqwest::Method::GET, "/client/v1/me", Some(&token), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["nickname"], "小红");
    assert!(v["user_id"].as_str().is_some_and(|u| !u.is_empty()), "{v}");
    assert!(
        v.get("device_token").is_none(),
        "the token is not echoed: {v}"
    );
    let (s, _) = app
        .call(
            reqwest::Method::GET,
            "/client/v1/me",
            Some("dt_not-a-token"),
            None,
        )
        .await;
    assert_eq!(s, 401);
}
