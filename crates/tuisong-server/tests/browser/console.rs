//! The console beyond the story: sign-in, a narrow window, the policy form, credentials
//! and the message-push form with its handshake and delivery log.

use crate::driver::{Chromedriver, poll};
use crate::server::{self, ADMIN_TOKEN};
use crate::{BROWSER_LOCK, chromium_or_skip, screenshot_path};
use anyhow::Result;
use axum::extract::Query;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[tokio::test]
async fn a_wrong_admin_token_is_refused_and_the_policy_form_works_in_a_phone_sized_window()
-> Result<()> {
    if !chromium_or_skip() {
        return Ok(());
    }
    let _one = BROWSER_LOCK.lock().await;
    let srv = server::spawn().await?;
    let driver = Chromedriver::start().await?;
    let b = driver.browser(390, 844).await?;

    b.goto(&srv.url("/console")).await?;
    b.type_into("[data-test=admin-token]", "not-the-token-at-all")
        .await?;
    b.click("[data-test=signin-submit]").await?;
    b.wait_text("[data-test=signin-error]", "not right").await?;
    b.type_into("[data-test=admin-token]", ADMIN_TOKEN).await?;
    b.click("[data-test=signin-submit]").await?;
    b.wait("[data-test=app-row]").await?;

    // The side nav is a strip of tabs here; the policy form still fits and saves.
    b.click("[data-test=nav-policy]").await?;
    b.type_into("[data-test=policy-per_user-max]", "5").await?;
    b.click("[data-test=policy-quiet-on]").await?;
    b.type_into("[data-test=policy-app_per_minute]", "100")
        .await?;
    b.click("[data-test=policy-save]").await?;
    b.wait_text("[data-test=toast]", "Policy saved").await?;
    b.exec("window.scrollTo(0, 0);", serde_json::json!([]))
        .await?;
    b.screenshot(&screenshot_path("console-narrow.png")).await?;

    let token = srv.access_token().await?;
    let p: Value = srv
        .http
        .get(srv.url("/v1/policy"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(p["per_user"]["max"], 5, "{p}");
    assert_eq!(p["app_per_minute"], 100, "{p}");
    assert_eq!(p["quiet_hours"]["start"], "22:00", "{p}");
    assert_eq!(p["quiet_hours"]["end"], "08:00", "{p}");

    // Signing out forgets the token: a reload shows the sign-in form again.
    b.click("[data-test=sign-out]").await?;
    b.goto(&srv.url("/console")).await?;
    b.wait("[data-test=signin-form]").await?;
    b.quit().await?;
    Ok(())
}

/// A receiving server for message push: echoes the handshake, takes every event.
async fn receiver() -> Result<(String, Arc<AtomicUsize>)> {
    let got = Arc::new(AtomicUsize::new(0));
    let counter = got.clone();
    let router = axum::Router::new().route(
        "/wx",
        axum::routing::get(|Query(q): Query<HashMap<String, String>>| async move {
            q.get("echostr").cloned().unwrap_or_default()
        })
        .post(move || {
            let c = counter.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                "success"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/wx", l.local_addr()?);
    tokio::spawn(async move { axum::serve(l, router).await });
    Ok((url, got))
}

#[tokio::test]
async fn the_app_page_reveals_and_resets_the_secret_and_configures_message_push() -> Result<()> {
    if !chromium_or_skip() {
        return Ok(());
    }
    let _one = BROWSER_LOCK.lock().await;
    let srv = server::spawn().await?;
    let (url, got) = receiver().await?;
    let driver = Chromedriver::start().await?;
    let b = driver.browser(1280, 800).await?;

    b.goto(&srv.url("/console")).await?;
    b.type_into("[data-test=admin-token]", ADMIN_TOKEN).await?;
    b.click("[data-test=signin-submit]").await?;
    b.click(&format!(
        "[data-test=app-row][data-appid=\"{}\"]",
        srv.appid
    ))
    .await?;

    // Credentials: hidden until asked for; a reset shows the new one.
    b.wait_text("[data-test=app-appid]", &srv.appid).await?;
    assert!(
        !b.text("[data-test=app-secret]")
            .await?
            .unwrap_or_default()
            .contains(&srv.secret)
    );
    b.click("[data-test=reveal-secret]").await?;
    b.wait_text("[data-test=app-secret]", &srv.secret).await?;
    b.click("[data-test=reset-secret]").await?;
    b.click("[data-test=reset-secret-confirm]").await?;
    let new_secret = poll("a new secret", || async {
        b.text("[data-test=app-secret]")
            .await
            .ok()
            .flatten()
            .filter(|s| s.len() == 32 && *s != srv.secret)
    })
    .await?;
    let old: Value = srv
        .http
        .get(srv.url(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            srv.appid, srv.secret
        )))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(old["errcode"], 40125, "{old}");
    let fresh: Value = srv
        .http
        .get(srv.url(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={new_secret}",
            srv.appid
        )))
        .send()
        .await?
        .json()
        .await?;
    assert!(fresh["access_token"].is_string(), "{fresh}");

    // Message push: saved after the handshake; the test button repeats it.
    b.type_into("[data-test=push-url]", &url).await?;
    b.type_into("[data-test=push-token]", "PushToken123")
        .await?;
    b.exec(
        "const s = document.querySelector('[data-test=push-format]'); s.value = 'json'; s.dispatchEvent(new Event('change'));",
        serde_json::json!([]),
    )
    .await?;
    b.click("[data-test=push-save]").await?;
    b.wait_text("[data-test=push-state]", &url).await?;
    b.click("[data-test=push-test]").await?;
    b.wait_text("[data-test=toast]", "Handshake succeeded")
        .await?;

    // A user's answer to a prompt is pushed; the delivery shows in the log.
    let user: Value = srv
        .http
        .post(srv.url("/client/v1/users"))
        .json(&serde_json::json!({"nickname": "小刚"}))
        .send()
        .await?
        .json()
        .await?;
    let dt = user["device_token"].as_str().unwrap_or("").to_owned();
    let tmpls: Value = srv
        .http
        .get(srv.url(&format!("/client/v1/apps/{}/templates", srv.appid)))
        .bearer_auth(&dt)
        .send()
        .await?
        .json()
        .await?;
    let id = tmpls["templates"][0]["priTmplId"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let r: Value = srv
        .http
        .post(srv.url("/client/v1/subscribe"))
        .bearer_auth(&dt)
        .json(&serde_json::json!({"appid": srv.appid, "tmplIds": [id], "decisions": {id.clone(): "accept"}}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(r[&id], "accept", "{r}");
    poll("the receiver to get the event", || async {
        (got.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await?;
    poll("the delivery log to show it", || async {
        if b.count("[data-test=delivery-row]").await.ok()? > 0 {
            return Some(());
        }
        b.click("[data-test=deliveries-refresh]").await.ok()?;
        None
    })
    .await?;
    b.wait_text("[data-test=delivery-row]", "subscribe_msg_popup_event")
        .await?;
    b.exec(
        "document.querySelector('[data-test=deliveries]').scrollIntoView({block: 'end'});",
        serde_json::json!([]),
    )
    .await?;
    b.screenshot(&screenshot_path("console-app.png")).await?;
    b.quit().await?;
    Ok(())
}
