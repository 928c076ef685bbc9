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

/// One embedded file: the name it is served under (`/web/{name}`), its type and bytes.
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
        name: "console.js",
        content_type: JS,
        body: include_str!("../web/console.js"),
    },
    Asset {
        name: "simulator.js",
        content_type: JS,
        body: include_str!("../web/simulator.js"),
    },
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
        .route("/web/{name}", get(asset))
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
