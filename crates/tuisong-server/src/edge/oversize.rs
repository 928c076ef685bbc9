//! Bodies over the limit, answered in the caller's dialect. axum refuses them with a
//! plain-text 413 before any handler runs; an SDK of the WeChat dialect expects HTTP 200
//! with an errcode, and the native dialects their `{"error": {…}}`.

use super::{api_fixed, wx_fixed};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

/// Whether a path is the WeChat dialect's (its answers are HTTP 200 with an errcode).
pub fn is_wechat_path(p: &str) -> bool {
    p.starts_with("/cgi-bin/") || p.starts_with("/sns/") || p.starts_with("/wxaapi/")
}

/// The largest request body any route reads.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// Middleware: a 413 that no handler made becomes the dialect's answer.
pub async fn shape(req: Request, next: Next) -> Response {
    // Decided before the call, so that no request pays for a copy of its path.
    let wechat = is_wechat_path(req.uri().path());
    let resp = next.run(req).await;
    if resp.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return resp;
    }
    if wechat {
        // WeChat documents no code for this; 47001 is its "data format error" for a body
        // it cannot read (our choice, docs/API.md).
        wx_fixed(47001, "data format error: the body is over the 2 MB limit")
    } else {
        api_fixed(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is over the 2 MB limit",
        )
    }
}
