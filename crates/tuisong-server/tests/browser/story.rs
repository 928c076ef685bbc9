//! The story, end to end: an operator adds a template in the console; a user on
//! the simulated phone subscribes through the consent sheet; the app server sends over
//! HTTP; the card arrives live; tapping it opens its page and counts a click in the
//! console's analytics; a recall from the console turns the card into "此消息已撤回".

use crate::driver::{Chromedriver, poll};
use crate::server::{self, ADMIN_TOKEN};
use crate::{BROWSER_LOCK, chromium_or_skip, screenshot_path};
use anyhow::Result;

const TITLE: &str = "订单支付成功通知"; // tid 1035, category 307 (电商平台)
const PAGE: &str = "pages/order/detail?id=42";

#[tokio::test]
async fn an_operator_and_a_phone_user_walk_through_subscribe_send_click_and_recall() -> Result<()> {
    if !chromium_or_skip() {
        return Ok(());
    }
    let _one = BROWSER_LOCK.lock().await;
    let srv = server::spawn().await?;
    let driver = Chromedriver::start().await?;
    let console = driver.browser(1280, 800).await?;
    let phone = driver.browser(390, 844).await?;

    // 1. The operator signs in with the admin token.
    console.goto(&srv.url("/console")).await?;
    console
        .type_into("[data-test=admin-token]", ADMIN_TOKEN)
        .await?;
    console.click("[data-test=signin-submit]").await?;
    console
        .wait(&format!(
            "[data-test=app-row][data-appid=\"{}\"]",
            srv.appid
        ))
        .await?;

    // 2. In Chinese, they add 订单支付成功通知 from the library with three keywords.
    console.click("[data-test=lang-toggle]").await?;
    console
        .wait_text_is("[data-test=nav-templates]", "模板")
        .await?;
    console.click("[data-test=nav-templates]").await?;
    console
        .click("[data-test=category][data-id=\"307\"]")
        .await?;
    console
        .click("[data-test=library-title][data-tid=\"1035\"]")
        .await?;
    for kid in [3, 1, 4] {
        console
            .click(&format!("[data-test=keyword][data-kid=\"{kid}\"]"))
            .await?;
    }
    console
        .type_into("[data-test=scene-desc]", "支付提醒")
        .await?;
    console
        .wait_text("[data-test=preview-card]", "支付金额")
        .await?;
    console
        .screenshot(&screenshot_path("console-templates.png"))
        .await?;
    console.click("[data-test=add-template]").await?;
    console.wait_text("[data-test=my-templates]", TITLE).await?;
    assert_eq!(console.count("[data-test=template]").await?, 4);

    // 3. On the phone, 小明 opens the demo mini program and accepts the new template.
    phone.goto(&srv.url("/simulator")).await?;
    phone.type_into("[data-test=new-user-name]", "小明").await?;
    phone.click("[data-test=create-user]").await?;
    phone.wait_text("[data-test=ws-status]", "online").await?;
    phone
        .click(&format!(
            "[data-test=mini-app][data-appid=\"{}\"]",
            srv.appid
        ))
        .await?;
    phone
        .click(&format!("[data-test=subscribe][data-title=\"{TITLE}\"]"))
        .await?;
    phone.wait_text("[data-test=consent-sheet]", TITLE).await?;
    phone
        .wait_text("[data-test=consent-sheet]", "总是保持以上选择，不再询问")
        .await?;
    phone
        .screenshot(&screenshot_path("simulator-consent.png"))
        .await?;
    phone.click("[data-test=consent-allow]").await?;
    phone
        .wait_text("[data-test=subscribe-result]", "accept")
        .await?;

    // 4. The mini program logs in; its back end trades the code for the openid.
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

    // 5. 小明 watches 服务通知 while the app server sends over the WeChat dialect.
    phone.click("[data-test=back]").await?;
    phone.click("[data-test=open-notifications]").await?;
    phone.wait("[data-test=no-notifications]").await?;
    let token = srv.access_token().await?;
    let (tmpl, data) = srv.template_by_title(&token, TITLE).await?;
    let msgid = srv.send(&token, &openid, &tmpl, &data, PAGE).await?;
    let card = format!("[data-test=notification][data-msgid=\"{msgid}\"]");
    phone.wait_text(&card, TITLE).await?;
    phone.wait_text(&card, "支付金额").await?;
    phone.wait_text(&card, "进入小程序查看").await?;
    // The card on screen was acknowledged: the message is delivered.
    poll("the message to be delivered", || async {
        let m = srv.message(&token, msgid).await.ok()?;
        (m["status"] == "delivered").then_some(())
    })
    .await?;
    phone.screenshot(&screenshot_path("simulator.png")).await?;

    // 6. Tapping the card opens its page (and counts a click).
    phone
        .click(&format!("{card} [data-test=notification-card]"))
        .await?;
    phone.wait_text("[data-test=page-path]", PAGE).await?;
    phone
        .screenshot(&screenshot_path("simulator-page.png"))
        .await?;

    // 7. The ledger shows the grant used up.
    console.click("[data-test=lang-toggle]").await?;
    console
        .wait_text_is("[data-test=nav-users]", "Users & consent")
        .await?;
    console.click("[data-test=nav-users]").await?;
    console
        .type_into("[data-test=ledger-openid]", &openid)
        .await?;
    console.click("[data-test=ledger-lookup]").await?;
    let row = format!("[data-test=ledger-row][data-template=\"{tmpl}\"]");
    console
        .wait_text_is(&format!("{row} [data-test=ledger-remaining]"), "0")
        .await?;
    console.wait_text(&row, "accept").await?;

    // 8. Analytics: the funnel of the template shows the click.
    console.click("[data-test=nav-analytics]").await?;
    console.wait("[data-test=stats-chart]").await?;
    poll("the funnel to count one click", || async {
        let n = console.text("[data-test=funnel-clicked]").await.ok()??;
        if n.trim() == "1" {
            return Some(());
        }
        console.click("[data-test=analytics-refresh]").await.ok()?;
        None
    })
    .await?;
    let per_template = format!("[data-test=template-funnel-row][data-id=\"{tmpl}\"]");
    console.wait_text(&per_template, "100%").await?;
    console.wait_text("[data-test=rate-click]", "100%").await?;
    console.screenshot(&screenshot_path("console.png")).await?;

    // 9. The operator opens the message, sees its timeline and recalls it.
    console.click("[data-test=nav-messages]").await?;
    console
        .click(&format!("[data-test=message-row][data-msgid=\"{msgid}\"]"))
        .await?;
    console
        .wait("[data-test=timeline-event][data-event=opened]")
        .await?;
    console
        .wait("[data-test=timeline-event][data-event=delivered]")
        .await?;
    console.click("[data-test=recall-message]").await?;
    console
        .wait("[data-test=message-detail][data-status=recalled]")
        .await?;
    console
        .wait("[data-test=timeline-event][data-event=recalled]")
        .await?;
    console
        .screenshot(&screenshot_path("console-messages.png"))
        .await?;

    // 10. Back in 服务通知 the card has become a tombstone, live.
    phone.click("[data-test=back]").await?;
    phone
        .wait_text(&format!("{card} [data-test=recalled]"), "此消息已撤回")
        .await?;
    assert_eq!(phone.count("[data-test=notification]").await?, 1);
    phone
        .screenshot(&screenshot_path("simulator-recalled.png"))
        .await?;

    console.quit().await?;
    phone.quit().await?;
    Ok(())
}
