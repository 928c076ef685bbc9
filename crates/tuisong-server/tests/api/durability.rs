use crate::helpers::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_sends_against_ten_grants_deliver_exactly_ten() {
    let app = spawn_app().await;
    let t = app.token().await;
    let d = app.device("u").await;
    let id = app.one_time();
    for _ in 0..10 {
        app.accept(&d, &id).await;
    }
    let data = app.example_data(&t, &id).await;
    let body = json!({"touser": d.openid, "template_id": id, "data": data});
    let url = app.url(&format!("/cgi-bin/message/subscribe/send?access_token={t}"));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (c, url, body) = (app.client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let v: serde_json::Value = c
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("json");
            errcode(&v)
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.expect("task") {
            0 => ok += 1,
            43101 => refused += 1,
            other => panic!("unexpected errcode {other}"),
        }
    }
    assert_eq!((ok, refused), (10, 190));
    let v = app.ledger(&t, &d.openid).await;
    let row = v["templates"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["template_id"] == id)
        .expect("row")
        .clone();
    assert_eq!(row["remaining"], 0);
    assert_eq!(row["consumed_total"], 10);
}

#[tokio::test]
async fn a_restart_keeps_apps_tokens_templates_consents_and_messages() {
    let app = spawn_app().await;
    let t = app.token().await;
    let d = app.device("u").await;
    let id = app.one_time();
    app.accept(&d, &id).await;
    app.accept(&d, &id).await;
    let data = app.example_data(&t, &id).await;
    let v = app
        .send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await;
    let msgid = v["msgid"].as_u64().expect("msgid");
    let (_, created) = app
        .call(
            reqwest::Method::POST,
            "/admin/apps",
            Some(ADMIN_TOKEN),
            Some(json!({"name": "kept"})),
        )
        .await;
    let templates_before = app
        .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={t}"))
        .await;

    let app = app.restart().await;

    // The token issued before the restart still works, and so does everything it reads.
    let templates_after = app
        .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={t}"))
        .await;
    assert_eq!(templates_before, templates_after);
    let (s, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/admin/apps/{}", created["appid"].as_str().expect("a")),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(app.remaining(&t, &d.openid, &id).await, 1);
    let (s, m) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/messages/{msgid}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, 200, "{m}");
    // The consent left over is still usable, exactly once.
    let body = json!({"touser": d.openid, "template_id": id, "data": data});
    assert_eq!(errcode(&app.send(&t, body.clone()).await), 0);
    assert_wx_err(&app.send(&t, body).await, 43101);
    // The device token still signs in.
    let code = app.login_code(&d.token, &app.appid).await;
    assert_eq!(app.code2session(&code).await["openid"], d.openid.as_str());
}

#[tokio::test]
async fn the_first_start_writes_an_admin_token_file_only_the_owner_can_read() {
    let app = spawn_app_with(|s| s.admin_token = None).await;
    let path = app.dir.path().join("admin-token");
    let token = std::fs::read_to_string(&path).expect("admin token file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (s, _) = app
        .call(
            reqwest::Method::GET,
            "/admin/apps",
            Some(token.trim()),
            None,
        )
        .await;
    assert_eq!(s, 200);
    // A restart keeps the same token.
    let app = app.restart().await;
    let (s, _) = app
        .call(
            reqwest::Method::GET,
            "/admin/apps",
            Some(token.trim()),
            None,
        )
        .await;
    assert_eq!(s, 200);
}
