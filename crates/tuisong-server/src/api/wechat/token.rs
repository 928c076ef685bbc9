//! Credentials in the WeChat dialect: `/cgi-bin/token`, `/cgi-bin/stable_token` and
//! `/sns/jscode2session` (a mini program's login code for its openid).

use super::reply;
use crate::edge::limit::ClientIp;
use crate::edge::{Params, json_object, opt_str, param};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};
use tuisong_core::Error;

/// Runs a call that checks an app secret, under the credential guard: refused with 45011
/// while the caller or the appid is shut out, and a wrong secret counted and logged.
async fn guarded<T>(
    state: &AppState,
    ip: ClientIp,
    appid: Option<&str>,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let guard = &state.client_limits.credentials;
    guard.admit(ip.0, appid).map_err(|_| Error::MinuteQuota)?;
    let r = call.await;
    if matches!(r, Err(Error::SecretInvalid)) {
        guard.failed(ip.0, appid, "app secret");
    }
    r
}

pub async fn token(State(state): State<AppState>, ip: ClientIp, q: Params) -> Response {
    reply(async {
        let appid = param(&q, "appid");
        let call = state
            .platform
            .token(param(&q, "grant_type"), appid, param(&q, "secret"));
        let t = guarded(&state, ip, appid, call).await?;
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

pub async fn stable_token(
    State(state): State<AppState>,
    ip: ClientIp,
    method: Method,
    body: Bytes,
) -> Response {
    reply(async {
        if method != Method::POST {
            return Err(Error::RequirePost);
        }
        let b = json_object(&body)?;
        let force = force_refresh(&b)?;
        let (grant_type, appid, secret) = (
            opt_str(&b, "grant_type"),
            opt_str(&b, "appid"),
            opt_str(&b, "secret"),
        );
        let call = state.platform.stable_token(
            grant_type.as_deref(),
            appid.as_deref(),
            secret.as_deref(),
            force,
        );
        let t = guarded(&state, ip, appid.as_deref(), call).await?;
        Ok(json!({"access_token": t.token, "expires_in": t.expires_in}))
    })
    .await
}

pub async fn jscode2session(State(state): State<AppState>, ip: ClientIp, q: Params) -> Response {
    reply(async {
        let appid = param(&q, "appid");
        let call = state.platform.code_to_session(
            appid,
            param(&q, "secret"),
            param(&q, "js_code"),
            param(&q, "grant_type"),
        );
        let s = guarded(&state, ip, appid, call).await?;
        Ok(json!({"openid": s.openid, "session_key": s.session_key}))
    })
    .await
}
