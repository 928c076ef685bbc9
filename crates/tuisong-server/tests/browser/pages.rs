//! The pages as HTTP resources: served from the binary with their types, never cached,
//! and `/` leading to the console. These need no browser.

use crate::server;
use anyhow::Result;

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
        ("/console", "text/html; charset=utf-8", "console.js"),
        ("/simulator", "text/html; charset=utf-8", "simulator.js"),
        ("/web/common.css", "text/css; charset=utf-8", ".wx-card"),
        ("/web/console.css", "text/css; charset=utf-8", ".sidenav"),
        ("/web/simulator.css", "text/css; charset=utf-8", ".phone"),
        (
            "/web/common.js",
            "text/javascript; charset=utf-8",
            "const TS",
        ),
        (
            "/web/console.js",
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
        "/web/console.js",
        "/web/simulator.js",
    ] {
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
