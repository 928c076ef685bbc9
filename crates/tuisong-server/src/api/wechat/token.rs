//! Credentials in the WeChat dialect: `/cgi-bin/token`, `/cgi-bin/stable_token` and
//! `/sns/jscode2session` (a mini program's login code for its openid).

use super::reply;
use crate::edge::{Params, json_object, opt_str, param};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};
use tuisong_core::Error;

pub async fn token(State(state): State<AppState>, q: Params) -> Response {
    reply(async {
        let t = state
            .platform
            .token(
                param(&q, "grant_type"),
                param(&q, "appid"),
                param(&q, "secret"),
            )
            .await?;
        Ok(json!({"access_token": t.token, "expires_in": t.expires_in}))
    })
    .await
}

/// `force_refresh` as SDKs send it: a boolean, `"true"`, or `1`.
fn force_refresh(b: &serde_json::Map<String, Value>) -> Result<bool, Error> {
    match b.get("force_refresh") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(v)) => Ok(*v),
        Some(Value::String(s)) => Ok(s == "true"),
        Some(Value::Number(n)) => Ok(n.as_i64() == Some(1)),
        Some(_) => Err(Error::BadFormat("force_refresh must be a boolean".into())),
    }
}

pub async fn stable_token(State(state): State<AppState>, method: Method, body: Bytes) -> Response {
    reply(async {
        if method != Method::POST {
            return Err(Error::RequirePost);
        }
        let b = json_object(&body)?;
        let force = force_refresh(&b)?;
        let t = state
            .platform
            .stable_token(
                opt_str(&b, "grant_type").as_deref(),
                opt_str(&b, "appid").as_deref(),
                opt_str(&b, "secret").as_deref(),
                force,
            )
            .await?;
        Ok(json!({"access_token": t.token, "expires_in": t.expires_in}))
    })
    .await
}

pub async fn jscode2session(State(state): State<AppState>, q: Params) -> Response {
    reply(async {
        let s = state
            .platform
            .code_to_session(
                param(&q, "appid"),
                param(&q, "secret"),
                param(&q, "js_code"),
                param(&q, "grant_type"),
            )
            .await?;
        Ok(json!({"openid": s.openid, "session_key": s.session_key}))
    })
    .await
}
