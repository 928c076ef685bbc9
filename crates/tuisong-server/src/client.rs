//! The device API under /client/v1: the part of the WeChat app that tuisong emulates
//! (sign-in, `wx.login`, `wx.requestSubscribeMessage`, `wx.getSetting`, the settings
//! page). Authenticated by the device token (`Authorization: Bearer dt_…`). Documented
//! in docs/PROTOCOL.md.

use crate::http::{ApiError, ApiResult, bearer, json_object};
use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use tuisong_core::Error;
use tuisong_core::consent::{Decision, PromptRequest};
use tuisong_core::service::SubscriptionSettings;
use tuisong_core::store::User;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/client/v1/users", post(create_user))
        .route("/client/v1/login", post(login))
        .route("/client/v1/subscribe", post(subscribe))
        .route("/client/v1/settings", get(settings).put(update_settings))
}

async fn user_of(state: &AppState, headers: &HeaderMap) -> Result<User, ApiError> {
    Ok(state.platform.device_user(bearer(headers)).await?)
}

fn appid_field(b: &Map<String, Value>) -> Result<String, Error> {
    match b.get("appid") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Error::Invalid("appid is required".into())),
    }
}

async fn create_user(State(state): State<AppState>, body: Bytes) -> ApiResult {
    let b = json_object(&body)?;
    let nickname = match b.get("nickname") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(Error::Invalid("nickname is required".into()).into()),
    };
    let (user, token) = state.platform.register_user(&nickname).await?;
    Ok(Json(
        json!({"user_id": user.user_id, "nickname": user.nickname, "device_token": token}),
    ))
}

async fn login(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let user = user_of(&state, &headers).await?;
    let b = json_object(&body)?;
    let (code, _) = state.platform.login_code(&user, &appid_field(&b)?).await?;
    Ok(Json(json!({"code": code, "errMsg": "login:ok"})))
}

fn prompt_request(b: &Map<String, Value>) -> Result<PromptRequest, Error> {
    let ids = match b.get("tmplIds") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => vec![Some(s.clone())],
        Some(_) => vec![None],
    };
    let mut decisions = HashMap::new();
    match b.get("decisions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (id, d) in m {
                let d = d.as_str().and_then(Decision::parse).ok_or_else(|| {
                    Error::Invalid(format!("decisions.{id} must be \"accept\" or \"reject\""))
                })?;
                decisions.insert(id.clone(), d);
            }
        }
        Some(_) => return Err(Error::Invalid("decisions must be an object".into())),
    }
    let keep = match b.get("keep") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(k)) => *k,
        Some(_) => return Err(Error::Invalid("keep must be a boolean".into())),
    };
    Ok(PromptRequest {
        ids,
        decisions,
        keep,
    })
}

async fn subscribe(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let user = user_of(&state, &headers).await?;
    let b = json_object(&body)?;
    let appid = appid_field(&b)?;
    let req = prompt_request(&b)?;
    match state.platform.prompt(&user, &appid, &req).await? {
        Ok((_, effects)) => {
            let mut out = Map::new();
            out.insert("errMsg".into(), json!("requestSubscribeMessage:ok"));
            for e in &effects {
                out.insert(e.template_id.to_string(), json!(e.result.as_str()));
            }
            Ok(Json(Value::Object(out)))
        }
        Err(fail) => Ok(Json(
            json!({"errMsg": fail.err_msg(), "errCode": fail.err_code()}),
        )),
    }
}

fn settings_json(s: &SubscriptionSettings) -> Value {
    let items: Map<String, Value> = s
        .item_settings
        .iter()
        .map(|(k, d)| (k.clone(), json!(d.as_str())))
        .collect();
    json!({"mainSwitch": s.main_switch, "itemSettings": items})
}

async fn settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let user = user_of(&state, &headers).await?;
    let appid = q
        .get("appid")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::Invalid("appid is required".into()))?;
    let s = state.platform.subscription_settings(&user, appid).await?;
    Ok(Json(settings_json(&s)))
}

async fn update_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let user = user_of(&state, &headers).await?;
    let b = json_object(&body)?;
    let appid = appid_field(&b)?;
    let main = match b.get("mainSwitch") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(v)) => Some(*v),
        Some(_) => return Err(Error::Invalid("mainSwitch must be a boolean".into()).into()),
    };
    let mut items = BTreeMap::new();
    match b.get("itemSettings") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (id, d) in m {
                let d = d.as_str().and_then(Decision::parse).ok_or_else(|| {
                    Error::Invalid(format!(
                        "itemSettings.{id} must be \"accept\" or \"reject\""
                    ))
                })?;
                items.insert(id.clone(), d);
            }
        }
        Some(_) => return Err(Error::Invalid("itemSettings must be an object".into()).into()),
    }
    let s = state
        .platform
        .update_settings(&user, &appid, main, &items)
        .await?;
    Ok(Json(settings_json(&s)))
}
