use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn an_app_is_created_with_wechat_shaped_credentials() {
    let app = spawn_app().await;
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            "/admin/apps",
            Some(ADMIN_TOKEN),
            Some(json!({"name": "商城"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let appid = v["appid"].as_str().expect("appid");
    assert!(appid.starts_with("wx") && appid.len() == 18);
    let secret = v["secret"].as_str().expect("secret");
    assert!(secret.len() == 32 && secret.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(v["original_id"].as_str().expect("gh").starts_with("gh_"));
    let (_, list) = app
        .call(reqwest::Method::GET, "/admin/apps", Some(ADMIN_TOKEN), None)
        .await;
    let apps = list["apps"].as_array().expect("apps");
    assert_eq!(apps.len(), 2, "the demo app and the new one");
    assert!(
        apps.iter().all(|a| a.get("secret").is_none()),
        "list does not reveal secrets"
    );
    let (s, one) = app
        .call(
            reqwest::Method::GET,
            &format!("/admin/apps/{appid}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(one["name"], "商城");
    assert!(one.get("secret").is_none());
    let (_, revealed) = app
        .call(
            reqwest::Method::GET,
            &format!("/admin/apps/{appid}/secret"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(revealed["secret"], secret);
}

#[tokio::test]
async fn a_reset_secret_replaces_the_old_one() {
    let app = spawn_app().await;
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            &format!("/admin/apps/{}/reset-secret", app.appid),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let new = v["secret"].as_str().expect("secret");
    assert_ne!(new, app.secret);
    let old = app
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            app.appid, app.secret
        ))
        .await;
    assert_wx_err(&old, 40125);
    let _ = app.token_for(&app.appid, new).await;
}

#[tokio::test]
async fn the_admin_api_needs_the_admin_token() {
    let app = spawn_app().await;
    for token in [
        None,
        Some("wrong-token"),
        Some("test-admin-token-012345678"),
    ] {
        let (s, v) = app
            .call(reqwest::Method::GET, "/admin/apps", token, None)
            .await;
        assert_eq!(s, 401, "{v}");
        assert_eq!(v["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn bad_admin_input_is_a_4xx_with_a_message() {
    let app = spawn_app().await;
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            "/admin/apps",
            Some(ADMIN_TOKEN),
            Some(json!({"name": "  "})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("name")
    );
    let (s, _) = app
        .call(
            reqwest::Method::POST,
            "/admin/apps",
            Some(ADMIN_TOKEN),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = app
        .call(
            reqwest::Method::GET,
            "/admin/apps/wx0000000000000000",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .call(
            reqwest::Method::GET,
            "/admin/apps/nonsense",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .call(reqwest::Method::GET, "/no/such/endpoint", None, None)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_console_token_works_on_the_public_apis_and_leaves_the_app_servers_token_alone() {
    let app = spawn_app().await;
    let server_token = app.token().await;
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            &format!("/admin/apps/{}/console-token", app.appid),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let console = v["access_token"].as_str().expect("token").to_owned();
    app.clock.advance_ms(600_000);
    for t in [&server_token, &console] {
        let r = app
            .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={t}"))
            .await;
        assert_eq!(errcode(&r), 0, "{r}");
    }
    let (s, _) = app
        .call(
            reqwest::Method::POST,
            "/admin/apps/wx0000000000000000/console-token",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .call(
            reqwest::Method::POST,
            &format!("/admin/apps/{}/console-token", app.appid),
            None,
            None,
        )
        .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn a_device_can_list_the_mini_programs_and_their_templates() {
    let app = spawn_app().await;
    let dt = app.new_user("u").await;
    let (s, v) = app
        .call(reqwest::Method::GET, "/client/v1/apps", Some(&dt), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["apps"][0]["appid"], app.appid.as_str());
    let (s, v) = app
        .call(
            reqwest::Method::GET,
            &format!("/client/v1/apps/{}/templates", app.appid),
            Some(&dt),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let ts = v["templates"].as_array().expect("templates");
    assert_eq!(ts.len(), app.templates.len());
    assert!(ts[0]["rows"][0]["name"].is_string() && ts[0]["title"].is_string());
    let (s, _) = app
        .call(reqwest::Method::GET, "/client/v1/apps", None, None)
        .await;
    assert_eq!(s, 401);
}

/// Builds a server on `dir` that takes its admin token from `<dir>/admin-token`.
async fn build_on(dir: &std::path::Path) -> anyhow::Result<tuisong_server::Application> {
    let settings = tuisong_server::Settings {
        data_dir: dir.to_owned(),
        admin_token: None,
        ..tuisong_server::Settings::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    tuisong_server::Application::build_with(
        settings,
        tuisong_server::BuildOptions {
            listener: Some(listener),
            ..tuisong_server::BuildOptions::default()
        },
    )
    .await
}

#[tokio::test]
async fn an_empty_or_short_admin_token_file_stops_the_start_before_any_data_is_made() {
    for content in ["", "\n", "   ", "short-token"] {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("admin-token"), content).expect("write");
        let e = match build_on(dir.path()).await {
            Ok(_) => panic!("a start with admin-token {content:?} must be refused"),
            Err(e) => format!("{e:#}"),
        };
        assert!(e.contains("admin-token"), "{e}");
        assert!(e.contains("at least 16"), "{e}");
        assert!(
            !dir.path().join("tuisong.db").exists(),
            "refused before the database is created"
        );
    }
}

#[tokio::test]
async fn a_generated_admin_token_is_written_whole_and_private_and_read_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = build_on(dir.path()).await.expect("first start");
    let path = dir.path().join("admin-token");
    let token = std::fs::read_to_string(&path).expect("token file");
    assert!(token.starts_with("adm_") && token.len() >= 16, "{token:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary file is left: {leftovers:?}"
    );
    drop(first);
    // A second start reads the same token and it authenticates the operator.
    let app = build_on(dir.path()).await.expect("second start");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let ok = http
        .get(format!("{base}/admin/apps"))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("call");
    assert_eq!(ok.status(), 200);
    let anonymous = http
        .get(format!("{base}/admin/apps"))
        .send()
        .await
        .expect("call");
    assert_eq!(anonymous.status(), 401);
}
