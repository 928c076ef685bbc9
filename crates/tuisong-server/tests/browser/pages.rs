//! The pages as HTTP resources: served from the binary with their types, never cached,
//! and `/` leading to the console. These need no browser.

use crate::server;
use anyhow::Result;

/// The console's ES modules (web/console/), all served under /web/console/.
const CONSOLE_MODULES: [&str; 13] = [
    "/web/console/main.js",
    "/web/console/state.js",
    "/web/console/i18n.js",
    "/web/console/api.js",
    "/web/console/dom.js",
    "/web/console/apps.js",
    "/web/console/push-config.js",
    "/web/console/templates.js",
    "/web/console/users.js",
    "/web/console/messages.js",
    "/web/console/send.js",
    "/web/console/analytics.js",
    "/web/console/policy.js",
];

#[tokio::test]
async fn the_root_redirects_to_the_console() -> Result<()> {
    let srv = server::spawn().await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = http.get(srv.url("/")).send().await?;
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()["location"], "/console");
    Ok(())
}

#[tokio::test]
async fn every_page_and_asset_is_served_with_its_type_and_no_cache() -> Result<()> {
    let srv = server::spawn().await?;
    let cases = [
        (
            "/console",
            "text/html; charset=utf-8",
            "/web/console/main.js",
        ),
        ("/simulator", "text/html; charset=utf-8", "simulator.js"),
        ("/web/common.css", "text/css; charset=utf-8", ".wx-card"),
        ("/web/console.css", "text/css; charset=utf-8", ".sidenav"),
        ("/web/simulator.css", "text/css; charset=utf-8", ".phone"),
        (
            "/web/common.js",
            "text/javascript; charset=utf-8",
            "export function h(",
        ),
        (
            "/web/console/main.js",
            "text/javascript; charset=utf-8",
            "renderShell",
        ),
        (
            "/web/console/api.js",
            "text/javascript; charset=utf-8",
            "console-token",
        ),
        (
            "/web/simulator.js",
            "text/javascript; charset=utf-8",
            "/client/v1/ws",
        ),
        ("/web/icon.svg", "image/svg+xml", "<svg"),
    ];
    for (path, ty, needle) in cases {
        let r = srv.http.get(srv.url(path)).send().await?;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], ty, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-cache", "{path}");
        assert!(
            r.headers()["content-security-policy"]
                .to_str()?
                .contains("script-src 'self'"),
            "{path}"
        );
        let body = r.text().await?;
        assert!(body.contains(needle), "{path} lacks {needle}");
    }
    for path in CONSOLE_MODULES {
        let r = srv.http.get(srv.url(path)).send().await?;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "text/javascript; charset=utf-8",
            "{path}"
        );
        assert_eq!(r.headers()["cache-control"], "no-cache", "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn an_unknown_asset_is_a_native_404() -> Result<()> {
    let srv = server::spawn().await?;
    let r = srv.http.get(srv.url("/web/nope.js")).send().await?;
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await?;
    assert_eq!(v["error"]["code"], "not_found");
    Ok(())
}

/// The pages load nothing from another origin: no CDN, no fonts from the internet.
#[tokio::test]
async fn the_pages_reference_only_their_own_origin() -> Result<()> {
    let srv = server::spawn().await?;
    for path in [
        "/console",
        "/simulator",
        "/web/common.css",
        "/web/console.css",
        "/web/simulator.css",
        "/web/common.js",
        "/web/simulator.js",
    ]
    .into_iter()
    .chain(CONSOLE_MODULES)
    {
        let body = srv.http.get(srv.url(path)).send().await?.text().await?;
        for bad in [
            "src=\"http",
            "href=\"http",
            "src=\"//",
            "url(http",
            "url(//",
            "@import",
            "import(",
        ] {
            assert!(!body.contains(bad), "{path} contains {bad}");
        }
    }
    Ok(())
}
