use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn a_token_is_issued_for_valid_credentials_without_an_errcode() {
    let app = spawn_app().await;
    let v = app
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}&extra=ignored",
            app.appid, app.secret
        ))
        .await;
    assert_eq!(v["expires_in"], 7200);
    assert!(v["access_token"].as_str().expect("token").len() >= 64);
    assert!(v.get("errcode").is_none(), "{v}");
}

#[tokio::test]
async fn bad_credentials_get_their_errcodes() {
    let app = spawn_app().await;
    let (a, s) = (&app.appid, &app.secret);
    let cases = [
        (
            format!("/cgi-bin/token?grant_type=nope&appid={a}&secret={s}"),
            40002,
        ),
        (format!("/cgi-bin/token?appid={a}&secret={s}"), 40002),
        (
            format!("/cgi-bin/token?grant_type=client_credential&secret={s}"),
            41002,
        ),
        (
            format!("/cgi-bin/token?grant_type=client_credential&appid=wx123&secret={s}"),
            40013,
        ),
        (
            format!(
                "/cgi-bin/token?grant_type=client_credential&appid=wx0000000000000000&secret={s}"
            ),
            40013,
        ),
        (
            format!("/cgi-bin/token?grant_type=client_credential&appid={a}"),
            41004,
        ),
        (
            format!(
                "/cgi-bin/token?grant_type=client_credential&appid={a}&secret=00000000000000000000000000000000"
            ),
            40125,
        ),
    ];
    for (path, code) in cases {
        let v = app.get(&path).await;
        assert_wx_err(&v, code);
    }
}

#[tokio::test]
async fn a_new_token_leaves_the_old_one_valid_for_five_minutes() {
    let app = spawn_app().await;
    let t1 = app.token().await;
    let t2 = app.token().await;
    assert_ne!(t1, t2);
    let probe = |t: &str| format!("/wxaapi/newtmpl/getcategory?access_token={t}");
    assert_eq!(errcode(&app.get(&probe(&t1)).await), 0);
    app.clock.advance_ms(299_000);
    assert_eq!(
        errcode(&app.get(&probe(&t1)).await),
        0,
        "old token still valid within 5 minutes"
    );
    app.clock.advance_ms(2_000);
    assert_wx_err(&app.get(&probe(&t1)).await, 40001);
    assert_eq!(errcode(&app.get(&probe(&t2)).await), 0);
}

#[tokio::test]
async fn missing_malformed_unknown_and_expired_tokens_get_their_errcodes() {
    let app = spawn_app().await;
    assert_wx_err(&app.get("/wxaapi/newtmpl/getcategory").await, 41001);
    assert_wx_err(
        &app.get("/wxaapi/newtmpl/getcategory?access_token=").await,
        41001,
    );
    assert_wx_err(
        &app.get("/wxaapi/newtmpl/getcategory?access_token=not%20a%20token!")
            .await,
        40014,
    );
    assert_wx_err(
        &app.get("/wxaapi/newtmpl/getcategory?access_token=abcdefABCDEF0123456789")
            .await,
        40001,
    );
    let t = app.token().await;
    app.clock.advance_ms(7_200_000 + 1_000);
    assert_wx_err(
        &app.get(&format!("/wxaapi/newtmpl/getcategory?access_token={t}"))
            .await,
        42001,
    );
}

async fn stable(app: &TestApp, force: bool) -> serde_json::Value {
    app.post(
        "/cgi-bin/stable_token",
        json!({"grant_type": "client_credential", "appid": app.appid, "secret": app.secret, "force_refresh": force}),
    )
    .await
}

#[tokio::test]
async fn a_stable_token_is_reused_while_valid_and_renewed_in_its_last_five_minutes() {
    let app = spawn_app().await;
    let a = stable(&app, false).await;
    let b = stable(&app, false).await;
    assert_eq!(a["access_token"], b["access_token"]);
    assert_eq!(a["expires_in"], 7200);
    // Normal tokens do not touch stable ones.
    let _ = app.token().await;
    let c = stable(&app, false).await;
    assert_eq!(a["access_token"], c["access_token"]);
    app.clock.advance_ms((7200 - 299) * 1000);
    let d = stable(&app, false).await;
    assert_ne!(
        a["access_token"], d["access_token"],
        "renewed in the last 5 minutes"
    );
    let old = a["access_token"].as_str().expect("token");
    assert_eq!(
        errcode(
            &app.get(&format!("/wxaapi/newtmpl/getcategory?access_token={old}"))
                .await
        ),
        0
    );
}

#[tokio::test]
async fn force_refresh_replaces_the_stable_token_but_not_twice_in_thirty_seconds() {
    let app = spawn_app().await;
    let a = stable(&app, false).await;
    app.clock.advance_ms(31_000);
    let b = stable(&app, true).await;
    assert_ne!(a["access_token"], b["access_token"]);
    let old = a["access_token"].as_str().expect("token");
    assert_wx_err(
        &app.get(&format!("/wxaapi/newtmpl/getcategory?access_token={old}"))
            .await,
        40001,
    );
    let c = stable(&app, true).await;
    assert_eq!(
        b["access_token"], c["access_token"],
        "within 30 s no new token"
    );
}

#[tokio::test]
async fn force_refresh_is_limited_to_twenty_a_day() {
    let app = spawn_app().await;
    // Start an hour into a Beijing day, so the 21 refreshes never straddle midnight
    // (the quota window) whatever the wall clock says when the test runs.
    let now = app.clock.now_ms();
    let next_day = tuisong_core::policy::beijing_day_start(now) + 86_400_000;
    app.clock.advance_ms(next_day + 3_600_000 - now);
    for i in 0..20 {
        app.clock.advance_ms(31_000);
        let v = stable(&app, true).await;
        assert!(v["access_token"].is_string(), "refresh {i}: {v}");
    }
    app.clock.advance_ms(31_000);
    assert_wx_err(&stable(&app, true).await, 45009);
    // The current token is still handed out without force.
    assert!(stable(&app, false).await["access_token"].is_string());
}

#[tokio::test]
async fn stable_token_needs_post_and_a_json_body() {
    let app = spawn_app().await;
    assert_wx_err(&app.get("/cgi-bin/stable_token").await, 43002);
    assert_wx_err(&app.post_raw("/cgi-bin/stable_token", "").await, 44002);
    assert_wx_err(&app.post_raw("/cgi-bin/stable_token", "{nope").await, 47001);
    let v = app
        .post(
            "/cgi-bin/stable_token",
            json!({"grant_type": "client_credential", "appid": app.appid, "secret": "x"}),
        )
        .await;
    assert_wx_err(&v, 40125);
}

#[tokio::test]
async fn the_token_endpoint_has_a_daily_quota() {
    let app = spawn_app_with(|s| s.platform.token_daily_limit = 3).await;
    for _ in 0..3 {
        let _ = app.token().await;
    }
    let v = app
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            app.appid, app.secret
        ))
        .await;
    assert_wx_err(&v, 45009);
    app.clock.advance_ms(86_400_000);
    let _ = app.token().await;
}

#[tokio::test]
async fn repeated_wrong_secrets_shut_the_caller_out_even_with_the_right_one() {
    let app = spawn_app_with(|s| s.auth_failures_per_minute = 3).await;
    let token = app.token().await;
    let wrong = |appid: &str| {
        format!(
            "/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={}",
            "0".repeat(32)
        )
    };
    for _ in 0..3 {
        let v = app.get(&wrong(&app.appid)).await;
        assert_eq!(errcode(&v), 40125, "{v}");
    }
    // The fourth wrong secret spends the allowance: from now on the address is shut out.
    let v = app.get(&wrong(&app.appid)).await;
    assert_eq!(errcode(&v), 40125, "{v}");
    let right = format!(
        "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
        app.appid, app.secret
    );
    let v = app.get(&right).await;
    assert_eq!(
        errcode(&v),
        45011,
        "a right guess is no use while shut out: {v}"
    );
    let v = app
        .post(
            "/cgi-bin/stable_token",
            json!({"grant_type": "client_credential", "appid": app.appid, "secret": app.secret}),
        )
        .await;
    assert_eq!(errcode(&v), 45011, "{v}");
    // The address is shut out as a whole: its admin calls too.
    let (s, _) = app
        .call(reqwest::Method::GET, "/admin/apps", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, 429);
    // Calls that check no secret go on (an access token already held keeps working).
    let v = app
        .get(&format!("/wxaapi/newtmpl/getcategory?access_token={token}"))
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
}

#[tokio::test]
async fn repeated_wrong_admin_tokens_shut_the_caller_out_and_are_answered_429() {
    let app = spawn_app_with(|s| s.auth_failures_per_minute = 2).await;
    for _ in 0..3 {
        let (s, _) = app
            .call(
                reqwest::Method::GET,
                "/admin/apps",
                Some("not-the-admin-token-at-all"),
                None,
            )
            .await;
        assert_eq!(s, 401);
    }
    let (s, v) = app
        .call(reqwest::Method::GET, "/admin/apps", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, 429, "shut out even with the right token: {v}");
    // No credentials at all is not counted as a guess (a console before sign-in).
    let app = spawn_app_with(|s| s.auth_failures_per_minute = 2).await;
    for _ in 0..5 {
        let (s, _) = app
            .call(reqwest::Method::GET, "/admin/apps", None, None)
            .await;
        assert_eq!(s, 401);
    }
    let (s, _) = app
        .call(reqwest::Method::GET, "/admin/apps", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, 200);
}

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_or_a_span_even_at_trace_level() {
    // A current-thread test: the server runs on this thread, under this subscriber.
    let out = Captured::default();
    let w = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        // Every span is printed with its fields when it closes.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    let _g = tracing::subscriber::set_default(subscriber);
    let app = spawn_app().await;
    let (t, d, id, data) = app.subscribed(1).await;
    let v = app
        .send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let _ = app
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            app.appid,
            "f".repeat(32)
        ))
        .await;
    let (s, _) = app
        .call(reqwest::Method::GET, "/admin/apps", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, 200);
    let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(text.contains("send{"), "the send's span is there: {text}");
    for (what, secret) in [
        ("app secret", app.secret.as_str()),
        ("access token", t.as_str()),
        ("device token", d.token.as_str()),
        ("admin token", ADMIN_TOKEN),
        ("wrong secret", &"f".repeat(32)),
    ] {
        assert!(!text.contains(secret), "the {what} is in the log:\n{text}");
    }
}
