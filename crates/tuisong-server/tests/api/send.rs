use crate::helpers::*;
use serde_json::{Value, json};

async fn ready(app: &TestApp) -> (String, Device, String, Value) {
    let t = app.token().await;
    let d = app.device("收件人").await;
    let id = app.one_time();
    let data = app.example_data(&t, &id).await;
    (t, d, id, data)
}

#[tokio::test]
async fn a_send_with_consent_is_stored_and_returns_a_numeric_msgid() {
    let app = spawn_app().await;
    let (t, d, id, data) = ready(&app).await;
    app.accept(&d, &id).await;
    let v = app
        .send(&t, json!({"touser": d.openid, "template_id": id, "page": "pages/order/detail?id=1", "data": data,
                         "miniprogram_state": "developer", "lang": "zh_CN"}))
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    assert_eq!(v["errmsg"], "ok");
    let msgid = v["msgid"].as_u64().expect("numeric msgid");
    let (s, m) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/messages/{msgid}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["touser"], d.openid.as_str());
    assert_eq!(m["page"], "pages/order/detail?id=1");
    assert_eq!(m["status"], "accepted");
    assert!(!m["rows"].as_array().expect("rows").is_empty());
}

#[tokio::test]
async fn a_send_without_consent_gets_43101_and_the_one_time_grant_is_used_once() {
    let app = spawn_app().await;
    let (t, d, id, data) = ready(&app).await;
    let body = json!({"touser": d.openid, "template_id": id, "data": data});
    assert_wx_err(&app.send(&t, body.clone()).await, 43101);
    app.accept(&d, &id).await;
    assert_eq!(errcode(&app.send(&t, body.clone()).await), 0);
    assert_wx_err(&app.send(&t, body).await, 43101);
}

#[tokio::test]
async fn one_time_grants_accumulate() {
    let app = spawn_app().await;
    let (t, d, id, data) = ready(&app).await;
    for _ in 0..3 {
        app.accept(&d, &id).await;
    }
    assert_eq!(app.remaining(&t, &d.openid, &id).await, 3);
    let body = json!({"touser": d.openid, "template_id": id, "data": data});
    for _ in 0..3 {
        assert_eq!(errcode(&app.send(&t, body.clone()).await), 0);
    }
    assert_wx_err(&app.send(&t, body).await, 43101);
    assert_eq!(app.remaining(&t, &d.openid, &id).await, 0);
}

#[tokio::test]
async fn the_sdks_shapes_of_optional_fields_and_values_are_all_accepted() {
    let app = spawn_app().await;
    let (t, d, id, data) = ready(&app).await;
    for _ in 0..4 {
        app.accept(&d, &id).await;
    }
    // silenceper: every key present, "" when unset, each item with a "color".
    let mut colored = data.clone();
    for (_, item) in colored.as_object_mut().expect("object") {
        item["color"] = json!("");
    }
    let shapes = [
        json!({"touser": d.openid, "template_id": id, "page": "", "miniprogram_state": "", "lang": "", "data": colored}),
        // labrador: null for unset options.
        json!({"touser": d.openid, "template_id": id, "page": null, "miniprogram_state": null, "lang": null, "data": data}),
        // wechatpy: only the required fields, plus unknown extra keys.
        json!({"touser": d.openid, "template_id": id, "data": data, "something_new": 1}),
        // WxJava: formal / zh_CN defaults spelled out.
        json!({"touser": d.openid, "template_id": id, "miniprogram_state": "formal", "lang": "zh_CN", "data": data}),
    ];
    for body in shapes {
        let v = app.send(&t, body.clone()).await;
        assert_eq!(errcode(&v), 0, "{body} → {v}");
    }
}

#[tokio::test]
async fn numeric_values_are_coerced_to_text_before_validation() {
    let app = spawn_app().await;
    let t = app.token().await;
    let d = app.device("u").await;
    // Find a demo template with a number or amount-free first key and send numbers.
    let id = app.one_time();
    app.accept(&d, &id).await;
    app.accept(&d, &id).await;
    let mut data = app.example_data(&t, &id).await;
    let first_key = data
        .as_object()
        .expect("obj")
        .keys()
        .next()
        .expect("a key")
        .clone();
    // A JSON number as the value of a character_string/thing key is text after coercion.
    data[&first_key] = json!({"value": 12345});
    let v = app
        .send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    data[&first_key] = json!({"value": [1, 2]});
    let v = app
        .send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await;
    assert_wx_err(&v, 47003);
}

#[tokio::test]
async fn each_bad_field_of_a_send_gets_its_errcode() {
    let app = spawn_app().await;
    let (t, d, id, data) = ready(&app).await;
    app.accept(&d, &id).await;
    let other_app_template = {
        let (_, other) = app
            .call(
                reqwest::Method::POST,
                "/admin/apps",
                Some(ADMIN_TOKEN),
                Some(json!({"name": "other"})),
            )
            .await;
        let ot = app
            .token_for(
                other["appid"].as_str().expect("appid"),
                other["secret"].as_str().expect("secret"),
            )
            .await;
        let v = app
            .post(
                &format!("/wxaapi/newtmpl/addtemplate?access_token={ot}"),
                json!({"tid": app.get(&format!("/wxaapi/newtmpl/getpubtemplatetitles?access_token={ot}&ids={}&start=0&limit=1",
                    app.get(&format!("/wxaapi/newtmpl/getcategory?access_token={ot}")).await["data"][0]["id"])).await["data"][0]["tid"].to_string(),
                       "kidList": [1, 2]}),
            )
            .await;
        v["priTmplId"]
            .as_str()
            .expect("other app's template")
            .to_owned()
    };
    let cases: Vec<(Value, i64)> = vec![
        (json!({"template_id": id, "data": data}), 40003),
        (
            json!({"touser": "", "template_id": id, "data": data}),
            40003,
        ),
        (
            json!({"touser": "not-an-openid", "template_id": id, "data": data}),
            40003,
        ),
        (
            json!({"touser": "o0000000000000000000000000AA", "template_id": id, "data": data}),
            40003,
        ),
        (
            json!({"touser": 12, "template_id": id, "data": data}),
            40003,
        ),
        (json!({"touser": d.openid, "data": data}), 40037),
        (
            json!({"touser": d.openid, "template_id": "nope", "data": data}),
            40037,
        ),
        (
            json!({"touser": d.openid, "template_id": "A".repeat(43), "data": data}),
            40037,
        ),
        (
            json!({"touser": d.openid, "template_id": other_app_template, "data": data}),
            40037,
        ),
        (
            json!({"touser": d.openid, "template_id": id, "page": "/pages/index", "data": data}),
            41030,
        ),
        (
            json!({"touser": d.openid, "template_id": id, "page": "pages/a b", "data": data}),
            41030,
        ),
        (
            json!({"touser": d.openid, "template_id": id, "data": data, "miniprogram_state": "beta"}),
            47001,
        ),
        (
            json!({"touser": d.openid, "template_id": id, "data": data, "lang": "fr_FR"}),
            47001,
        ),
        (
            json!({"touser": d.openid, "template_id": id, "data": "x"}),
            47001,
        ),
        (json!({"touser": d.openid, "template_id": id}), 47003),
    ];
    for (body, code) in cases {
        let v = app.send(&t, body.clone()).await;
        assert_wx_err(&v, code);
    }
    assert_wx_err(
        &app.post_raw(
            &format!("/cgi-bin/message/subscribe/send?access_token={t}"),
            "",
        )
        .await,
        44002,
    );
    assert_wx_err(
        &app.post_raw(
            &format!("/cgi-bin/message/subscribe/send?access_token={t}"),
            "{\"touser\":",
        )
        .await,
        47001,
    );
    assert_wx_err(
        &app.post_raw(
            &format!("/cgi-bin/message/subscribe/send?access_token={t}"),
            "[]",
        )
        .await,
        47001,
    );
    assert_wx_err(
        &app.get(&format!("/cgi-bin/message/subscribe/send?access_token={t}"))
            .await,
        43002,
    );
    assert_wx_err(
        &app.post_raw("/cgi-bin/message/subscribe/send?access_token=bogus", "{}")
            .await,
        40001,
    );
    // None of the refused sends used the grant.
    assert_eq!(app.remaining(&t, &d.openid, &id).await, 1);
}

#[tokio::test]
async fn data_errors_name_the_field_as_wechat_does() {
    let app = spawn_app().await;
    let (t, d, id, data) = ready(&app).await;
    app.accept(&d, &id).await;
    let keys: Vec<String> = data.as_object().expect("obj").keys().cloned().collect();
    let thing = keys
        .iter()
        .find(|k| k.starts_with("thing"))
        .expect("a thing keyword")
        .clone();
    let send = |value: Value| {
        let mut data = data.clone();
        data[&thing] = json!({"value": value});
        app.send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
    };
    let v = send(json!("")).await;
    assert_wx_err(&v, 47003);
    assert!(
        v["errmsg"]
            .as_str()
            .expect("msg")
            .starts_with(&format!("argument invalid! data.{thing}.value is emtpy")),
        "{v}"
    );
    let v = send(json!("一二三四五六七八九十一二三四五六七八九十一")).await;
    assert!(
        v["errmsg"]
            .as_str()
            .expect("msg")
            .starts_with(&format!("argument invalid! data.{thing}.value invalid")),
        "{v}"
    );
    let v = send(json!("一二三四五六七八九十一二三四五六七八九十")).await;
    assert_eq!(errcode(&v), 0, "20 CJK characters fit a thing: {v}");
    // A missing key is "is emtpy"; extra keys are ignored.
    let mut missing = data.clone();
    missing.as_object_mut().expect("obj").remove(&keys[0]);
    missing["unknown9"] = json!({"value": "x"});
    let v = app
        .send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": missing}),
        )
        .await;
    assert!(
        v["errmsg"].as_str().expect("msg").starts_with(&format!(
            "argument invalid! data.{}.value is emtpy",
            keys[0]
        )),
        "{v}"
    );
}

#[tokio::test]
async fn a_long_term_template_sends_until_the_user_turns_it_off() {
    let app = spawn_app().await;
    let t = app.token().await;
    let d = app.device("u").await;
    let id = app.long_term();
    let data = app.example_data(&t, &id).await;
    let body = json!({"touser": d.openid, "template_id": id, "data": data});
    assert_wx_err(&app.send(&t, body.clone()).await, 43101);
    app.accept(&d, &id).await;
    for _ in 0..5 {
        assert_eq!(errcode(&app.send(&t, body.clone()).await), 0);
    }
    let (s, v) = app
        .call(
            reqwest::Method::PUT,
            "/client/v1/settings",
            Some(&d.token),
            Some(json!({"appid": app.appid, "itemSettings": {id.clone(): "reject"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["itemSettings"][&id], "reject");
    assert_wx_err(&app.send(&t, body.clone()).await, 43101);
    let _ = app
        .call(
            reqwest::Method::PUT,
            "/client/v1/settings",
            Some(&d.token),
            Some(json!({"appid": app.appid, "itemSettings": {id.clone(): "accept"}})),
        )
        .await;
    assert_eq!(errcode(&app.send(&t, body).await), 0);
}

#[tokio::test]
async fn the_main_switch_off_blocks_every_send_and_keeps_the_grants() {
    let app = spawn_app().await;
    let (t, d, id, data) = ready(&app).await;
    app.accept(&d, &id).await;
    let body = json!({"touser": d.openid, "template_id": id, "data": data});
    let (s, v) = app
        .call(
            reqwest::Method::PUT,
            "/client/v1/settings",
            Some(&d.token),
            Some(json!({"appid": app.appid, "mainSwitch": false})),
        )
        .await;
    assert_eq!((s, v["mainSwitch"].clone()), (200, json!(false)));
    assert_wx_err(&app.send(&t, body.clone()).await, 43101);
    assert_eq!(app.remaining(&t, &d.openid, &id).await, 1);
    let _ = app
        .call(
            reqwest::Method::PUT,
            "/client/v1/settings",
            Some(&d.token),
            Some(json!({"appid": app.appid, "mainSwitch": true})),
        )
        .await;
    assert_eq!(errcode(&app.send(&t, body).await), 0);
}

#[tokio::test]
async fn the_withdrawn_template_message_apis_answer_45109() {
    let app = spawn_app().await;
    let t = app.token().await;
    for path in [
        "/cgi-bin/message/wxopen/template/send",
        "/cgi-bin/message/wxopen/template/uniform_send",
    ] {
        let v = app
            .post(&format!("{path}?access_token={t}"), json!({"touser": "x"}))
            .await;
        assert_wx_err(&v, 45109);
    }
}

#[tokio::test]
async fn a_deleted_template_can_no_longer_be_sent() {
    let app = spawn_app().await;
    let (t, d, id, data) = ready(&app).await;
    app.accept(&d, &id).await;
    let del = app
        .post(
            &format!("/wxaapi/newtmpl/deltemplate?access_token={t}"),
            json!({"priTmplId": id}),
        )
        .await;
    assert_eq!(errcode(&del), 0);
    assert_wx_err(
        &app.send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await,
        40037,
    );
}
