//! The phone simulator alone: WeChat's fail shapes in the consent flow, and cards that
//! survive a reload exactly once each (cursor and msgid dedup in localStorage).

use crate::driver::{Chromedriver, poll};
use crate::server;
use crate::{BROWSER_LOCK, chromium_or_skip, screenshot_path};
use anyhow::Result;

const TITLE: &str = "订单发货通知"; // the demo app's first (one-time) template

#[tokio::test]
async fn a_prompt_with_the_main_switch_off_shows_the_20004_fail_shape() -> Result<()> {
    if !chromium_or_skip() {
        return Ok(());
    }
    let _one = BROWSER_LOCK.lock().await;
    let srv = server::spawn().await?;
    let driver = Chromedriver::start().await?;
    let phone = driver.browser(390, 844).await?;

    phone.goto(&srv.url("/simulator")).await?;
    phone.type_into("[data-test=new-user-name]", "小红").await?;
    phone.click("[data-test=create-user]").await?;
    phone
        .click(&format!(
            "[data-test=mini-app][data-appid=\"{}\"]",
            srv.appid
        ))
        .await?;
    phone.click("[data-test=open-settings]").await?;
    phone.click("[data-test=main-switch][data-on=true]").await?;
    phone.wait("[data-test=main-switch][data-on=false]").await?;
    phone
        .screenshot(&screenshot_path("simulator-settings.png"))
        .await?;
    phone.click("[data-test=back]").await?;
    phone
        .click(&format!("[data-test=subscribe][data-title=\"{TITLE}\"]"))
        .await?;
    let text = phone.wait_text("[data-test=fail-dialog]", "20004").await?;
    assert!(text.contains("总开关"), "{text}");
    assert_eq!(phone.count("[data-test=consent-sheet]").await?, 0);
    phone
        .wait_text(
            "[data-test=subscribe-result]",
            "requestSubscribeMessage:fail",
        )
        .await?;
    phone.click("[data-test=dialog-ok]").await?;

    // Switched back on, the sheet appears again.
    phone.click("[data-test=open-settings]").await?;
    phone
        .click("[data-test=main-switch][data-on=false]")
        .await?;
    phone.wait("[data-test=main-switch][data-on=true]").await?;
    phone.click("[data-test=back]").await?;
    phone
        .click(&format!("[data-test=subscribe][data-title=\"{TITLE}\"]"))
        .await?;
    phone.wait_text("[data-test=consent-sheet]", TITLE).await?;
    phone.quit().await?;
    Ok(())
}

#[tokio::test]
async fn cards_survive_a_reload_once_each_and_new_ones_follow_the_cursor() -> Result<()> {
    if !chromium_or_skip() {
        return Ok(());
    }
    let _one = BROWSER_LOCK.lock().await;
    let srv = server::spawn().await?;
    let driver = Chromedriver::start().await?;
    let phone = driver.browser(1280, 800).await?;

    phone.goto(&srv.url("/simulator")).await?;
    phone.type_into("[data-test=new-user-name]", "阿强").await?;
    phone.click("[data-test=create-user]").await?;
    phone
        .click(&format!(
            "[data-test=mini-app][data-appid=\"{}\"]",
            srv.appid
        ))
        .await?;
    // Two grants: two prompts accepted, the second kept ("总是保持") — a kept accept is
    // answered without the sheet and still adds a grant.
    for keep in [false, true] {
        phone
            .click(&format!("[data-test=subscribe][data-title=\"{TITLE}\"]"))
            .await?;
        if keep {
            phone.click("[data-test=consent-keep]").await?;
        }
        phone.click("[data-test=consent-allow]").await?;
        phone
            .wait_text("[data-test=subscribe-result]", "accept")
            .await?;
        phone
            .exec(
                "document.querySelector('[data-test=subscribe-result]').textContent = ''",
                serde_json::json!([]),
            )
            .await?;
    }
    phone
        .click(&format!("[data-test=subscribe][data-title=\"{TITLE}\"]"))
        .await?;
    phone
        .wait_text("[data-test=subscribe-result]", "accept")
        .await?;
    assert_eq!(phone.count("[data-test=consent-sheet]").await?, 0);

    phone.click("[data-test=wx-login]").await?;
    let code = poll("a login code", || async {
        phone
            .text("[data-test=login-code]")
            .await
            .ok()
            .flatten()
            .filter(|c| !c.trim().is_empty())
    })
    .await?;
    let openid = srv.openid_of_code(code.trim()).await?;
    let token = srv.access_token().await?;
    let (tmpl, data) = srv.template_by_title(&token, TITLE).await?;

    // A card while the phone is on its home screen: the badge counts it. (This phone is a
    // desktop window: the simulator draws a phone frame in the middle.)
    phone.click("[data-test=back]").await?;
    let first = srv
        .send(&token, &openid, &tmpl, &data, "pages/a?id=1")
        .await?;
    phone.wait_text_is("[data-test=unread-badge]", "1").await?;

    // Reload: the same tab is the same user; the card is shown once, not twice.
    phone.goto(&srv.url("/simulator")).await?;
    phone.wait_text("[data-test=ws-status]", "online").await?;
    phone.click("[data-test=open-notifications]").await?;
    phone
        .wait(&format!("[data-test=notification][data-msgid=\"{first}\"]"))
        .await?;
    let second = srv
        .send(&token, &openid, &tmpl, &data, "pages/a?id=2")
        .await?;
    phone
        .wait(&format!(
            "[data-test=notification][data-msgid=\"{second}\"]"
        ))
        .await?;
    assert_eq!(phone.count("[data-test=notification]").await?, 2);
    // Three prompts were accepted (the third silently, by the kept choice): a third card
    // comes, and a fourth send has no grant left.
    let third = srv
        .send(&token, &openid, &tmpl, &data, "pages/a?id=3")
        .await?;
    phone
        .wait(&format!("[data-test=notification][data-msgid=\"{third}\"]"))
        .await?;
    assert_eq!(phone.count("[data-test=notification]").await?, 3);
    let fourth = srv
        .send(&token, &openid, &tmpl, &data, "pages/a?id=4")
        .await;
    assert!(fourth.is_err(), "{fourth:?}");
    phone
        .screenshot(&screenshot_path("simulator-desktop.png"))
        .await?;
    phone.quit().await?;
    Ok(())
}

#[tokio::test]
async fn a_user_made_outside_the_simulator_signs_in_with_its_device_token() -> Result<()> {
    if !chromium_or_skip() {
        return Ok(());
    }
    let _one = BROWSER_LOCK.lock().await;
    let srv = server::spawn().await?;
    // The README's curl user: made over HTTP, not by the simulator.
    let v: serde_json::Value = reqwest::Client::new()
        .post(srv.url("/client/v1/users"))
        .json(&serde_json::json!({"nickname": "终端用户"}))
        .send()
        .await?
        .json()
        .await?;
    let token = v["device_token"].as_str().unwrap_or_default().to_owned();
    let driver = Chromedriver::start().await?;
    let phone = driver.browser(390, 844).await?;
    phone.goto(&srv.url("/simulator")).await?;
    phone
        .type_into("[data-test=existing-token]", "dt_wrong")
        .await?;
    phone.click("[data-test=sign-in-token]").await?;
    assert_eq!(
        phone.count("[data-test=tab-me]").await?,
        0,
        "a wrong token signs no one in"
    );
    phone.goto(&srv.url("/simulator")).await?;
    phone
        .type_into("[data-test=existing-token]", &token)
        .await?;
    phone.click("[data-test=sign-in-token]").await?;
    phone.click("[data-test=tab-me]").await?;
    phone.wait_text("[data-test=me-name]", "终端用户").await?;
    Ok(())
}
