//! The HTTP API, one module per caller:
//!
//! - `wechat`: the WeChat dialect for app servers (`/cgi-bin`, `/sns`, `/wxaapi`);
//! - `v1`: the native JSON API for app servers (`/v1`);
//! - `client`: the device API (`/client/v1`; its WebSocket is `crate::gateway`);
//! - `admin`: the operator's API (`/admin`);
//! - `push_config`: the message-push config, mounted by both `v1` and `admin`;
//! - `openapi`: the OpenAPI 3.1 description of the three, at `GET /v1/openapi.json`.
//!
//! - `observe`: `/healthz`, `/readyz` and `/metrics`;
//! - `trace`: request ids and the request log, around everything.
//!
//! `router` puts them together with the console, the device socket, the operators' probes
//! and the answer to unknown paths. Handlers are adapters: parse (with `crate::edge`), call one
//! `Platform` function, map the result.

pub mod admin;
pub mod client;
pub mod observe;
pub mod openapi;
pub mod push_config;
pub mod trace;
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
    let routes = Router::new()
        .merge(wechat::router())
        .merge(v1::router())
        .merge(client::router())
        .merge(admin::router())
        .merge(openapi::router())
        .merge(crate::web::router())
        .route("/client/v1/ws", get(client::websocket))
        .route("/healthz", get(observe::healthz))
        .route("/readyz", get(observe::readyz))
        .route("/metrics", get(observe::metrics))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::edge::oversize::MAX_BODY,
        ))
        .layer(axum::middleware::from_fn(crate::edge::oversize::shape));
    trace::layer(routes).with_state(state)
}

/// Unknown paths: the WeChat dialect's prefixes answer like WeChat (HTTP 200, errcode
/// 48001) so SDKs report an API error rather than a transport one; others get a 404.
async fn not_found(uri: Uri) -> Response {
    let p = uri.path();
    if crate::edge::oversize::is_wechat_path(p) {
        return wx_fixed(48001, "api unauthorized");
    }
    api_fixed(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}
