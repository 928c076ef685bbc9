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

/// Rows of `login_codes` in the app's database, read beside the server.
fn login_codes_in_db(app: &TestApp) -> i64 {
    let c = rusqlite::Connection::open_with_flags(
        app.dir.path().join("tuisong.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the database opens");
    c.query_row("SELECT count(*) FROM login_codes", [], |r| r.get(0))
        .expect("count")
}

#[tokio::test]
async fn a_login_no_longer_deletes_expired_codes_on_its_way() {
    // The sweep runs at start and then not for an hour.
    let app = spawn_app_with(|s| s.retention_interval = std::time::Duration::from_secs(3600)).await;
    let dt = app.new_user("u").await;
    app.login_code(&dt, &app.appid).await;
    // Two days on, the first code is long expired; the old login path deleted it here.
    app.clock.advance_ms(2 * 86_400_000);
    app.login_code(&dt, &app.appid).await;
    assert_eq!(
        login_codes_in_db(&app),
        2,
        "the login wrote and deleted nothing else"
    );
}

#[tokio::test]
async fn the_retention_worker_sweeps_expired_codes_and_keeps_live_ones() {
    let app = spawn_app_with(|s| s.retention_interval = std::time::Duration::from_millis(20)).await;
    let dt = app.new_user("u").await;
    let other = app.new_user("v").await;
    app.login_code(&dt, &app.appid).await;
    app.login_code(&other, &app.appid).await;
    app.clock.advance_ms(301_000);
    let live = app.login_code(&dt, &app.appid).await;
    for _ in 0..250 {
        if login_codes_in_db(&app) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        login_codes_in_db(&app),
        1,
        "the two expired codes were swept"
    );
    assert!(app.code2session(&live).await["openid"].is_string());
}

#[tokio::test]
async fn one_address_gets_its_logins_a_minute_then_429_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.client_logins_per_minute = 3;
        s.client_logins_burst = 3;
    })
    .await;
    let dt = app.new_user("u").await;
    for _ in 0..3 {
        app.login_code(&dt, &app.appid).await;
    }
    let r = app
        .client
        .post(app.url("/client/v1/login"))
        .bearer_auth(&dt)
        .json(&serde_json::json!({"appid": app.appid}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 429);
    let wait: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(
        (1..=20).contains(&wait),
        "one login every 20 s comes back: {wait}"
    );
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    // Refused before the device token is read: a wrong one is refused the same way.
    let (s, _) = app
        .call(
            reqwest::Method::POST,
            "/client/v1/login",
            Some("dt_wrong"),
            Some(serde_json::json!({"appid": app.appid})),
        )
        .await;
    assert_eq!(s, 429);
}

#[tokio::test]
async fn one_address_gets_its_new_users_a_minute_then_429() {
    let app = spawn_app_with(|s| {
        s.client_users_per_minute = 2;
        s.client_users_burst = 2;
    })
    .await;
    app.new_user("a").await;
    app.new_user("b").await;
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            "/client/v1/users",
            None,
            Some(serde_json::json!({"nickname": "c"})),
        )
        .await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
}

#[tokio::test]
async fn a_user_keeps_only_the_five_newest_unused_codes() {
    let app = spawn_app().await;
    let dt = app.new_user("u").await;
    let mut codes = Vec::new();
    for _ in 0..7 {
        codes.push(app.login_code(&dt, &app.appid).await);
    }
    for c in &codes[..2] {
        assert_wx_err(&app.code2session(c).await, 40029);
    }
    for c in &codes[2..] {
        let v = app.code2session(c).await;
        assert!(v["openid"].is_string(), "{v}");
    }
}
