use crate::helpers::*;
use base64::Engine;

#[tokio::test]
async fn a_login_code_trades_for_an_openid_and_session_key_once() {
    let app = spawn_app().await;
    let dt = app.new_user("小明").await;
    let code = app.login_code(&dt, &app.appid).await;
    let v = app.code2session(&code).await;
    let openid = v["openid"].as_str().expect("openid");
    assert_eq!(openid.len(), 28);
    assert!(v.get("errcode").is_none(), "{v}");
    let key = base64::engine::general_purpose::STANDARD
        .decode(v["session_key"].as_str().expect("session_key"))
        .expect("base64");
    assert_eq!(key.len(), 16);
    assert_wx_err(&app.code2session(&code).await, 40163);
    // The same user logging in again is the same openid.
    let code2 = app.login_code(&dt, &app.appid).await;
    assert_eq!(app.code2session(&code2).await["openid"], openid);
}

#[tokio::test]
async fn a_code_expires_after_five_minutes() {
    let app = spawn_app().await;
    let dt = app.new_user("u").await;
    let code = app.login_code(&dt, &app.appid).await;
    app.clock.advance_ms(301_000);
    assert_wx_err(&app.code2session(&code).await, 40029);
}

#[tokio::test]
async fn unknown_missing_and_foreign_codes_are_refused() {
    let app = spawn_app().await;
    assert_wx_err(&app.code2session("made-up-code").await, 40029);
    let v = app
        .get(&format!(
            "/sns/jscode2session?appid={}&secret={}&grant_type=authorization_code",
            app.appid, app.secret
        ))
        .await;
    assert_wx_err(&v, 41008);
    let v = app
        .get(&format!(
            "/sns/jscode2session?appid={}&secret=wrong&js_code=x",
            app.appid
        ))
        .await;
    assert_wx_err(&v, 40125);
    // A code made for another app does not work for this one.
    let (s, other) = app
        .call(
            reqwest::Method::POST,
            "/admin/apps",
            Some(ADMIN_TOKEN),
            Some(serde_json::json!({"name": "other"})),
        )
        .await;
    assert_eq!(s, 200);
    let dt = app.new_user("u").await;
    let code = app
        .login_code(&dt, other["appid"].as_str().expect("appid"))
        .await;
    assert_wx_err(&app.code2session(&code).await, 40029);
}

#[tokio::test]
async fn one_user_has_a_different_openid_in_each_app() {
    let app = spawn_app().await;
    let (_, other) = app
        .call(
            reqwest::Method::POST,
            "/admin/apps",
            Some(ADMIN_TOKEN),
            Some(serde_json::json!({"name": "other"})),
        )
        .await;
    let (oa, os) = (
        other["appid"].as_str().expect("appid"),
        other["secret"].as_str().expect("secret"),
    );
    let dt = app.new_user("u").await;
    let c1 = app.login_code(&dt, &app.appid).await;
    let c2 = app.login_code(&dt, oa).await;
    let o1 = app.code2session(&c1).await["openid"].clone();
    let o2 = app
        .get(&format!(
            "/sns/jscode2session?appid={oa}&secret={os}&js_code={c2}&grant_type=authorization_code"
        ))
        .await["openid"]
        .clone();
    assert!(o1.is_string() && o2.is_string());
    assert_ne!(o1, o2);
}

#[tokio::test]
async fn the_device_api_refuses_a_missing_or_wrong_device_token() {
    let app = spawn_app().await;
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            "/client/v1/login",
            None,
            Some(serde_json::json!({"appid": app.appid})),
        )
        .await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"]["code"], "unauthorized");
    let (s, _) = app
        .call(
            reqwest::Method::POST,
            "/client/v1/login",
            Some("dt_wrong"),
            Some(serde_json::json!({"appid": app.appid})),
        )
        .await;
    assert_eq!(s, 401);
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            "/client/v1/users",
            None,
            Some(serde_json::json!({"nickname": ""})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let dt = app.new_user("u").await;
    let (s, _) = app
        .call(
            reqwest::Method::POST,
            "/client/v1/login",
            Some(&dt),
            Some(serde_json::json!({"appid": "wx0000000000000000"})),
        )
        .await;
    assert_eq!(s, 404);
}
