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
