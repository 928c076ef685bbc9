//! The device API under /client/v1: the part of the WeChat app that tuisong emulates
//! (sign-in, `wx.login`, `wx.requestSubscribeMessage`, `wx.getSetting`, the settings
//! page). Authenticated by the device token (`Authorization: Bearer dt_…`). Documented
//! in docs/PROTOCOL.md.

use crate::http::{ApiError, ApiResult, bearer, json_object, msgid_of};
use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use tuisong_core::Error;
use tuisong_core::consent::{Decision, PromptRequest};
use tuisong_core::policy::QuietHours;
use tuisong_core::service::SubscriptionSettings;
use tuisong_core::store::User;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/client/v1/users", post(create_user))
        .route("/client/v1/login", post(login))
        .route("/client/v1/subscribe", post(subscribe))
        .route("/client/v1/settings", get(settings).put(update_settings))
        .route("/client/v1/inbox", get(inbox))
        .route("/client/v1/apps", get(apps))
        .route("/client/v1/apps/{appid}/templates", get(app_templates))
        .route("/client/v1/messages/{msgid}/ack", post(ack))
        .route("/client/v1/messages/{msgid}/open", post(open))
        .route("/client/v1/messages/{msgid}/unsubscribe", post(unsubscribe))
}

/// `POST /client/v1/messages/{msgid}/unsubscribe`: "stop receiving this" from a card.
async fn unsubscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(msgid): Path<String>,
) -> ApiResult {
    let user = user_of(&state, &headers).await?;
    let t = state
        .platform
        .unsubscribe_from_message(&user.user_id, msgid_of(&msgid)?)
        .await?;
    Ok(Json(json!({"template_id": t, "status": "reject"})))
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
    json!({"mainSwitch": s.main_switch, "itemSettings": items, "quietHours": s.quiet_hours})
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
    let quiet = match b.get("quietHours") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => Some(Some(serde_json::from_value::<QuietHours>(v.clone()).map_err(|e| {
            Error::Invalid(format!(
                "quietHours must be {{\"start\":\"22:00\",\"end\":\"08:00\",\"utc_offset\":\"+08:00\"}} or null: {e}"
            ))
        })?)),
    };
    let s = state
        .platform
        .update_settings(&user, &appid, main, &items, quiet)
        .await?;
    Ok(Json(settings_json(&s)))
}

/// `GET /client/v1/apps`: the mini programs a device can open (name and appid).
async fn apps(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    user_of(&state, &headers).await?;
    let apps = state.platform.list_apps().await?;
    let list: Vec<Value> = apps
        .iter()
        .map(|a| json!({"appid": a.appid, "name": a.name}))
        .collect();
    Ok(Json(json!({"apps": list})))
}

/// `GET /client/v1/apps/{appid}/templates`: what a mini program's code knows — its
/// template ids, titles, types and the card's rows with example values.
async fn app_templates(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(appid): Path<String>,
) -> ApiResult {
    user_of(&state, &headers).await?;
    let app = state.platform.app(&appid).await?;
    let list = state.platform.list_templates(&app.appid).await?;
    let out: Vec<Value> = list
        .iter()
        .map(|t| {
            json!({
                "priTmplId": t.id,
                "title": t.title,
                "type": t.kind.code(),
                "rows": t.example_rows().iter().map(|r| json!({"key": r.key, "name": r.name, "value": r.value})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(
        json!({"appid": app.appid, "name": app.name, "templates": out}),
    ))
}

/// `GET /client/v1/inbox?cursor=N&limit=M`: what a WebSocket session would send after
/// `cursor`, as a list, plus the cursor to ask with next time.
async fn inbox(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let user = user_of(&state, &headers).await?;
    let num = |key: &str, default: u64| -> Result<u64, Error> {
        match q.get(key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| Error::Invalid(format!("{key} must be a non-negative integer"))),
        }
    };
    let cursor = num("cursor", 0)?;
    let limit = num("limit", 100)?.clamp(1, 500) as usize;
    let entries = state.platform.inbox(&user, cursor, limit).await?;
    let now = state.platform.now();
    let next = entries.last().map_or(cursor, |e| e.seq);
    let frames: Vec<Value> = entries
        .iter()
        .filter_map(|e| crate::gateway::entry_frame(e, now))
        .map(|f| serde_json::to_value(f).unwrap_or(Value::Null))
        .collect();
    Ok(Json(
        json!({"entries": frames, "cursor": next, "more": entries.len() == limit}),
    ))
}

fn device_name(headers: &HeaderMap) -> String {
    headers
        .get("x-device")
        .and_then(|v| v.to_str().ok())
        .map(|d| {
            d.chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>()
        })
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "http".to_owned())
}

/// `POST /client/v1/messages/{msgid}/ack`: the HTTP twin of the `ack` frame.
async fn ack(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(msgid): Path<String>,
) -> ApiResult {
    let user = user_of(&state, &headers).await?;
    let first = state
        .platform
        .ack(&user.user_id, msgid_of(&msgid)?, &device_name(&headers))
        .await?;
    Ok(Json(json!({"ok": true, "first_delivery": first})))
}

/// `POST /client/v1/messages/{msgid}/open`: the HTTP twin of the `open` frame.
async fn open(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(msgid): Path<String>,
) -> ApiResult {
    let user = user_of(&state, &headers).await?;
    let m = state
        .platform
        .open(&user.user_id, msgid_of(&msgid)?, &device_name(&headers))
        .await?;
    Ok(Json(
        json!({"msgid": m.msgid, "appid": m.appid, "page": m.page}),
    ))
}
