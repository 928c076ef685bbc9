//! The HTTP API, one module per caller:
//!
//! - `wechat`: the WeChat dialect for app servers (`/cgi-bin`, `/sns`, `/wxaapi`);
//! - `v1`: the native JSON API for app servers (`/v1`);
//! - `client`: the device API (`/client/v1`; its WebSocket is `crate::gateway`);
//! - `admin`: the operator's API (`/admin`);
//! - `push_config`: the message-push config, mounted by both `v1` and `admin`.
//!
//! `router` puts them together with the console, the device socket, `/healthz` and the
//! answer to unknown paths. Handlers are adapters: parse (with `crate::edge`), call one
//! `Platform` function, map the result.

pub mod admin;
pub mod client;
pub mod push_config;
pub mod v1;
pub mod wechat;

use crate::edge::{api_fixed, wx_fixed};
use crate::state::AppState;
use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(wechat::router())
        .merge(v1::router())
        .merge(client::router())
        .merge(admin::router())
        .merge(crate::web::router())
        .route("/client/v1/ws", get(client::websocket))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(state)
}

/// Unknown paths: the WeChat dialect's prefixes answer like WeChat (HTTP 200, errcode
/// 48001) so SDKs report an API error rather than a transport one; others get a 404.
async fn not_found(uri: Uri) -> Response {
    let p = uri.path();
    if p.starts_with("/cgi-bin/") || p.starts_with("/sns/") || p.starts_with("/wxaapi/") {
        return wx_fixed(48001, "api unauthorized");
    }
    api_fixed(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn healthz() -> &'static str {
    "ok"
}
