//! Tenant isolation: every app-scoped route, called with another app's credentials on the
//! first app's resources, neither shows nor changes them. A second test keeps the walk
//! complete: a route added to `src/api` without a place in this file fails it.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

/// Routes the walk below calls with app B's credentials on app A's things.
const WALKED: &[&str] = &[
    "/cgi-bin/token",
    "/cgi-bin/stable_token",
    "/sns/jscode2session",
    "/wxaapi/newtmpl/addtemplate",
    "/wxaapi/newtmpl/deltemplate",
    "/wxaapi/newtmpl/gettemplate",
    "/cgi-bin/message/subscribe/send",
    "/v1/messages",
    "/v1/messages/{msgid}",
    "/v1/messages/{msgid}/cancel",
    "/v1/messages/{msgid}/recall",
    "/v1/messages/{msgid}/conversions",
    "/v1/consents/{openid}",
    "/v1/stats",
    "/v1/policy",
    "/v1/push-config",
    "/admin/apps",
    "/admin/apps/{appid}",
    "/admin/apps/{appid}/console-token",
    "/admin/apps/{appid}/reset-secret",
    "/admin/apps/{appid}/secret",
    "/admin/apps/{appid}/push-config",
];

/// Routes that hold no app's data: the public template library, the withdrawn WeChat
/// calls, the device API (scoped to a user, not an app: tested in client.rs and
/// delivery.rs), the pages and the probe.
const NOT_APP_SCOPED: &[&str] = &[
    "/wxaapi/newtmpl/getcategory",
    "/wxaapi/newtmpl/getpubtemplatetitles",
    "/wxaapi/newtmpl/getpubtemplatekeywords",
    "/cgi-bin/message/wxopen/template/send",
    "/cgi-bin/message/wxopen/template/uniform_send",
    "/client/v1/apps",
    "/client/v1/apps/{appid}/templates",
    "/client/v1/inbox",
    "/client/v1/login",
    "/client/v1/messages/{msgid}/ack",
    "/client/v1/messages/{msgid}/open",
    "/client/v1/messages/{msgid}/unsubscribe",
    "/client/v1/settings",
    "/client/v1/subscribe",
    "/client/v1/users",
    "/client/v1/me",
    "/client/v1/ws",
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/openapi.json",
];

fn route_paths(dir: &std::path::Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read src/api") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            route_paths(&path, out);
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        // Routes of a module's own tests are not the server's.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        // `.route("/path", …)`, the path possibly on the next line.
        for (i, _) in text.match_indices(".route(") {
            let rest = text[i + ".route(".len()..].trim_start();
            if let Some(quoted) = rest.strip_prefix('"') {
                if let Some(end) = quoted.find('"') {
                    out.push(quoted[..end].to_owned());
                }
            }
        }
        // The push-config routes are mounted under a base given by the caller.
        for (i, _) in text.match_indices("push_config::routes::<") {
            let rest = &text[i..];
            if let Some(start) = rest.find('"') {
                let base = &rest[start + 1..];
                if let Some(end) = base.find('"') {
                    out.push(base[..end].to_owned());
                }
            }
        }
    }
}

#[test]
fn every_route_is_walked_or_is_named_as_holding_no_apps_data() {
    let mut found = Vec::new();
    route_paths(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api"),
        &mut found,
    );
    assert!(found.len() > 30, "the scan finds the routes: {found:?}");
    let missing: Vec<_> = found
        .iter()
        .filter(|p| !WALKED.contains(&p.as_str()) && !NOT_APP_SCOPED.contains(&p.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "routes not walked by the isolation test: {missing:?}"
    );
}

async fn create_app(app: &TestApp, name: &str) -> (String, String) {
    let (s, v) = app
        .call(
            Method::POST,
            "/admin/apps",
            Some(ADMIN_TOKEN),
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    (
        v["appid"].as_str().expect("appid").to_owned(),
        v["secret"].as_str().expect("secret").to_owned(),
    )
}

fn mentions(v: &Value, needle: &str) -> bool {
    v.to_string().contains(needle)
}

#[tokio::test]
async fn another_apps_credentials_neither_show_nor_change_this_apps_data() {
    let app = spawn_app().await;
    // App A (the demo app): a user with two grants, one message sent, a policy.
    let (ta, d, id, data) = app.subscribed(2).await;
    let v = app
        .send(
            &ta,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let msgid = v["msgid"].as_u64().expect("msgid");
    let remaining_before = app.remaining(&ta, &d.openid, &id).await;
    let (_, policy_a) = app.call(Method::GET, "/v1/policy", Some(&ta), None).await;

    // App B, with its own token.
    let (appid_b, secret_b) = create_app(&app, "另一个").await;
    let tb = app.token_for(&appid_b, &secret_b).await;

    // Tokens: B's secret does not open A.
    let v = app
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={secret_b}",
            app.appid
        ))
        .await;
    assert_ne!(errcode(&v), 0, "{v}");
    let v = app
        .post(
            "/cgi-bin/stable_token",
            json!({"grant_type": "client_credential", "appid": app.appid, "secret": secret_b}),
        )
        .await;
    assert_ne!(errcode(&v), 0, "{v}");

    // A login code made for A cannot be exchanged by B.
    let code = app.login_code(&d.token, &app.appid).await;
    let v = app
        .get(&format!(
            "/sns/jscode2session?appid={appid_b}&secret={secret_b}&js_code={code}&grant_type=authorization_code"
        ))
        .await;
    assert_ne!(errcode(&v), 0, "{v}");
    assert!(!mentions(&v, &d.openid), "{v}");

    // Templates: B does not see, delete or send A's.
    let v = app
        .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={tb}"))
        .await;
    assert!(!mentions(&v, &id), "{v}");
    let v = app
        .post(
            &format!("/wxaapi/newtmpl/deltemplate?access_token={tb}"),
            json!({ "priTmplId": id }),
        )
        .await;
    assert_ne!(errcode(&v), 0, "{v}");
    let v = app
        .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={ta}"))
        .await;
    assert!(mentions(&v, &id), "A's template survives B's delete: {v}");
    // B adds a template of its own: it does not appear in A's list.
    let v = app
        .post(
            &format!("/wxaapi/newtmpl/addtemplate?access_token={tb}"),
            json!({"tid": 1, "kidList": [1, 2], "sceneDesc": "b"}),
        )
        .await;
    if let Some(bid) = v["priTmplId"].as_str() {
        let listed = app
            .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={ta}"))
            .await;
        assert!(!mentions(&listed, bid), "{listed}");
    }
    let v = app
        .send(
            &tb,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await;
    assert_ne!(errcode(&v), 0, "B cannot send with A's template: {v}");
    let (s, v) = app
        .call(
            Method::POST,
            "/v1/messages",
            Some(&tb),
            Some(json!({"touser": d.openid, "template_id": id, "data": data})),
        )
        .await;
    assert!((400..500).contains(&s), "{s} {v}");

    // Messages: A's msgid is unknown to B, for reading and for every change.
    for (method, path) in [
        (Method::GET, format!("/v1/messages/{msgid}")),
        (Method::POST, format!("/v1/messages/{msgid}/cancel")),
        (Method::POST, format!("/v1/messages/{msgid}/recall")),
        (Method::POST, format!("/v1/messages/{msgid}/conversions")),
    ] {
        let (s, v) = app
            .call(method, &path, Some(&tb), Some(json!({"event": "buy"})))
            .await;
        assert_eq!(s, 404, "{path}: {v}");
    }
    let (s, v) = app
        .call(
            Method::GET,
            &format!("/v1/messages?touser={}", d.openid),
            Some(&tb),
            None,
        )
        .await;
    assert!(s == 200 || s == 404, "{s} {v}");
    assert!(!mentions(&v, &msgid.to_string()) || s == 404, "{v}");
    let (s, v) = app.call(Method::GET, "/v1/messages", Some(&tb), None).await;
    assert_eq!(s, 200, "{v}");
    assert!(!mentions(&v, &d.openid), "{v}");

    // The ledger and the stats are B's own.
    let (s, v) = app
        .call(
            Method::GET,
            &format!("/v1/consents/{}", d.openid),
            Some(&tb),
            None,
        )
        .await;
    assert!(s == 200 || s == 404, "{s} {v}");
    assert!(!mentions(&v, &id), "B does not see A's grants: {v}");
    let (s, v) = app.call(Method::GET, "/v1/stats", Some(&tb), None).await;
    assert_eq!(s, 200, "{v}");
    assert!(!mentions(&v, &id), "{v}");

    // B's policy and push config change B only.
    let (s, v) = app
        .call(
            Method::PUT,
            "/v1/policy",
            Some(&tb),
            Some(json!({"app_daily": 1, "urgent_daily_budget": 1})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, after) = app.call(Method::GET, "/v1/policy", Some(&ta), None).await;
    assert_eq!(after, policy_a, "A's policy is untouched");
    let (s, _) = app
        .call(Method::DELETE, "/v1/push-config", Some(&tb), None)
        .await;
    assert!(s < 500);

    // An app's token is not the operator's.
    for (method, path) in [
        (Method::GET, "/admin/apps".to_owned()),
        (Method::GET, format!("/admin/apps/{}", app.appid)),
        (
            Method::POST,
            format!("/admin/apps/{}/console-token", app.appid),
        ),
        (
            Method::POST,
            format!("/admin/apps/{}/reset-secret", app.appid),
        ),
        (Method::GET, format!("/admin/apps/{}/secret", app.appid)),
        (
            Method::GET,
            format!("/admin/apps/{}/push-config", app.appid),
        ),
    ] {
        let (s, v) = app.call(method, &path, Some(&tb), None).await;
        assert_eq!(s, 401, "{path}: {v}");
    }

    // And after all of it, A's message and grants are as they were.
    let (s, m) = app
        .call(
            Method::GET,
            &format!("/v1/messages/{msgid}"),
            Some(&ta),
            None,
        )
        .await;
    assert_eq!(s, 200, "{m}");
    assert_ne!(m["status"], "cancelled", "{m}");
    assert_ne!(m["status"], "recalled", "{m}");
    assert_eq!(app.remaining(&ta, &d.openid, &id).await, remaining_before);
    // A's secret still works (token_for panics otherwise).
    let _ = app.token().await;
}
