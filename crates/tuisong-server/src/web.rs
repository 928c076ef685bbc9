//! The browser pages: the operator's console at `/console` and the phone simulator at
//! `/simulator`. Hand-written HTML, CSS and JavaScript compiled into the binary with
//! `include_str!`, so `tuisong serve` needs no build step and no files beside it.
//!
//! The pages are clients of the public HTTP and WebSocket APIs only (admin, the WeChat
//! dialect, /v1, /client/v1), the same ones the CLI and SDKs use; they hold no rule of
//! their own. Every answer says `Cache-Control: no-cache` (a new binary must never be
//! shown stale pages) and carries a content security policy that allows only this
//! origin's scripts, because the console keeps the admin token in the tab's storage.

use crate::state::AppState;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// One embedded file: the name it is served under (`/web/{name}`, which may hold a
/// folder: `console/main.js`), its type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

const CONSOLE_HTML: &str = include_str!("../web/console.html");
const SIMULATOR_HTML: &str = include_str!("../web/simulator.html");

/// A JavaScript file under `web/`, served by its path there.
macro_rules! js {
    ($name:literal) => {
        Asset {
            name: $name,
            content_type: JS,
            body: include_str!(concat!("../web/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "common.css",
        content_type: CSS,
        body: include_str!("../web/common.css"),
    },
    Asset {
        name: "console.css",
        content_type: CSS,
        body: include_str!("../web/console.css"),
    },
    Asset {
        name: "simulator.css",
        content_type: CSS,
        body: include_str!("../web/simulator.css"),
    },
    Asset {
        name: "common.js",
        content_type: JS,
        body: include_str!("../web/common.js"),
    },
    Asset {
        name: "simulator.js",
        content_type: JS,
        body: include_str!("../web/simulator.js"),
    },
    // The JS device SDK (sdk/js, the npm package @tuisong/device), which the simulator
    // speaks the device protocol with: the same file, not a copy.
    Asset {
        name: "sdk/index.js",
        content_type: JS,
        body: include_str!("../../../sdk/js/src/index.js"),
    },
    // The console's ES modules, which import each other by relative path.
    js!("console/main.js"),
    js!("console/state.js"),
    js!("console/i18n.js"),
    js!("console/api.js"),
    js!("console/dom.js"),
    js!("console/apps.js"),
    js!("console/push-config.js"),
    js!("console/templates.js"),
    js!("console/users.js"),
    js!("console/messages.js"),
    js!("console/send.js"),
    js!("console/analytics.js"),
    js!("console/policy.js"),
    Asset {
        name: "icon.svg",
        content_type: SVG,
        body: include_str!("../web/icon.svg"),
    },
];

/// Scripts and styles from this origin only; the WebSocket is the same origin's `ws:`
/// (`'self'` alone does not cover `ws:` in every browser).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self' ws: wss:; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(|| async { page(CONSOLE_HTML) }))
        .route("/simulator", get(|| async { page(SIMULATOR_HTML) }))
        .route("/web/{*name}", get(asset))
        .route(
            "/favicon.ico",
            get(|| async { Redirect::to("/web/icon.svg") }),
        )
}

fn respond(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
        ],
        body,
    )
        .into_response()
}

fn page(html: &'static str) -> Response {
    respond(HTML, html)
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => respond(a.content_type, a.body),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(
                serde_json::json!({"error": {"code": "not_found", "message": "no such file"}}),
            ),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(name: &str) -> Option<&'static Asset> {
        ASSETS.iter().find(|a| a.name == name)
    }

    /// `target` (`./x.js`, `../x.js`) as seen from the asset `from` (`console/main.js`).
    fn resolve(from: &str, target: &str) -> String {
        let mut parts: Vec<&str> = from.split('/').collect();
        parts.pop();
        for seg in target.split('/') {
            match seg {
                "." => {}
                ".." => assert!(parts.pop().is_some(), "{from}: {target} leaves /web"),
                s => parts.push(s),
            }
        }
        parts.join("/")
    }

    /// Whether `body` declares `export function name` (or async function, const, let).
    fn exports(body: &str, name: &str) -> bool {
        ["function", "async function", "const", "let"]
            .iter()
            .any(|k| {
                let decl = format!("\nexport {k} {name}");
                body.match_indices(&decl).any(|(i, _)| {
                    matches!(body[i + decl.len()..].chars().next(), Some(' ' | '(' | '='))
                })
            })
    }

    /// Every `import … from '…';` line of every embedded script names an embedded script
    /// that exports each imported name; a miss would be a blank page in the browser.
    #[test]
    fn every_module_import_is_served_and_exported() {
        let mut names = 0;
        for a in ASSETS.iter().filter(|a| a.content_type == JS) {
            for line in a.body.lines().filter(|l| l.starts_with("import ")) {
                let (what, spec) = line.rsplit_once(" from ").expect(line);
                let spec = spec.strip_suffix(';').expect(line).trim_matches('\'');
                assert!(spec.starts_with("./") || spec.starts_with("../"), "{line}");
                let path = resolve(a.name, spec);
                let Some(target) = find(&path) else {
                    panic!("{} imports {path}, which is not in ASSETS", a.name);
                };
                assert_eq!(target.content_type, JS, "{path}");
                let Some(list) = what.strip_prefix("import {") else {
                    continue; // `import * as X`
                };
                for name in list.trim_end_matches('}').split(',').map(str::trim) {
                    assert!(
                        exports(target.body, name),
                        "{}: {path} has no export {name}",
                        a.name
                    );
                    names += 1;
                }
            }
        }
        assert!(names > 50, "only {names} imported names found");
    }

    /// The pages load their scripts as modules from ASSETS.
    #[test]
    fn the_pages_load_served_modules() {
        for (page, entry) in [
            (CONSOLE_HTML, "console/main.js"),
            (SIMULATOR_HTML, "simulator.js"),
        ] {
            let tag = format!("<script type=\"module\" src=\"/web/{entry}\"></script>");
            assert!(page.contains(&tag), "{entry}");
            assert_eq!(page.matches("<script").count(), 1, "{entry}");
            assert!(find(entry).is_some(), "{entry}");
        }
    }
}
