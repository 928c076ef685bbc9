//! The WeChat dialect: `/cgi-bin/*`, `/sns/*`, `/wxaapi/newtmpl/*`, byte-compatible with
//! api.weixin.qq.com so that existing SDKs work by changing only the host. Every answer
//! is HTTP 200; errors carry `errcode`/`errmsg`. Unknown query parameters are ignored.
//!
//! - `token`: access tokens and `jscode2session`;
//! - `templates`: the public library and the app's private templates;
//! - here: the router, the subscribe-message send and the withdrawn APIs.

mod templates;
mod token;

use crate::edge::{Params, WxResult, json_object, query_app, send_request, wx_fixed, wx_reply};
use crate::metrics::{Dialect, Outcome};
use crate::state::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::any;
use serde_json::json;
use std::future::Future;
use tuisong_core::Error;

pub fn router() -> Router<AppState> {
    use templates::*;
    use token::*;
    Router::new()
        .route("/cgi-bin/token", any(token))
        .route("/cgi-bin/stable_token", any(stable_token))
        .route("/sns/jscode2session", any(jscode2session))
        .route("/wxaapi/newtmpl/getcategory", any(get_category))
        .route("/wxaapi/newtmpl/getpubtemplatetitles", any(pub_titles))
        .route("/wxaapi/newtmpl/getpubtemplatekeywords", any(pub_keywords))
        .route("/wxaapi/newtmpl/addtemplate", any(add_template))
        .route("/wxaapi/newtmpl/deltemplate", any(del_template))
        .route("/wxaapi/newtmpl/gettemplate", any(get_template))
        .route("/cgi-bin/message/subscribe/send", any(send))
        .route("/cgi-bin/message/wxopen/template/send", any(withdrawn))
        .route(
            "/cgi-bin/message/wxopen/template/uniform_send",
            any(withdrawn),
        )
}

/// What a WeChat-dialect call says besides its body: the HTTP method and the query.
pub struct WxCall {
    pub method: Method,
    pub q: Params,
}

impl<S: Send + Sync> FromRequestParts<S> for WxCall {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let method = parts.method.clone();
        let q = Params::from_request_parts(parts, state).await?;
        Ok(WxCall { method, q })
    }
}

/// Runs a handler's body and answers in the dialect.
async fn reply(body: impl Future<Output = WxResult>) -> Response {
    wx_reply(body.await)
}

/// A template API call: a wrong method gets errcode 404 (spec §4) before anything else.
async fn template_call(
    method: &Method,
    want: Method,
    body: impl Future<Output = WxResult>,
) -> Response {
    if *method != want {
        return wx_fixed(404, "wrong method");
    }
    reply(body).await
}

/// The send; counted in `tuisong_sends_total` under `ok` or the errcode it answers.
async fn send(State(state): State<AppState>, method: Method, q: Params, body: Bytes) -> Response {
    let started = std::time::Instant::now();
    let r = async {
        let appid = query_app(&state, &q).await?;
        if method != Method::POST {
            return Err(Error::RequirePost);
        }
        let b = json_object(&body)?;
        let req = send_request(&b)?;
        let r = state.platform.send(&appid, req).await?;
        Ok(json!({"errcode": 0, "errmsg": "ok", "msgid": r.msgid.0}))
    }
    .await;
    let outcome = match &r {
        Ok(_) => Outcome::Ok,
        Err(e) => Outcome::Errcode(tuisong_wire::errcode::wx_error(e).0),
    };
    state
        .metrics
        .send(Dialect::Wechat, outcome, started.elapsed());
    wx_reply(r)
}

/// Template messages and uniform_send were withdrawn by WeChat: every call gets 45109.
async fn withdrawn() -> Response {
    wx_fixed(
        45109,
        "this api has been offline, please use subscribe message",
    )
}
