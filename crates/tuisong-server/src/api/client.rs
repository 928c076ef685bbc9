//! The device API under /client/v1: the part of the WeChat app that tuisong emulates
//! (sign-in, `wx.login`, `wx.requestSubscribeMessage`, `wx.getSetting`, the settings
//! page). Authenticated by the device token (`Authorization: Bearer dt_…`). Documented
//! in docs/PROTOCOL.md.

use crate::edge::limit::ClientIp;
use crate::edge::{
    ApiError, ApiResult, DeviceUser, bool_field, decisions_field, json_object, msgid_of,
    opt_bool_field, opt_str, query_str, query_uint, required_str,
};
use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use tuisong_core::Error;
use tuisong_core::consent::PromptRequest;
use tuisong_core::policy::QuietHours;
use tuisong_core::service::SubscriptionSettings;
use tuisong_core::store::User;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/client/v1/users", post(create_user))
        .route("/client/v1/me", get(me))
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
async fn unsubscribe(State(state): State<AppState>, m: OnMessage) -> ApiResult {
    let t = state
        .platform
        .unsubscribe_from_message(&m.user.user_id, msgid_of(&m.msgid)?)
        .await?;
    Ok(Json(json!({"template_id": t, "status": "reject"})))
}

fn appid_field(b: &Map<String, Value>) -> Result<String, Error> {
    match b.get("appid") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Error::Invalid("appid is required".into())),
    }
}

/// `POST /client/v1/users`: needs no credentials, so it is limited per client address
/// before anything is read or written.
async fn create_user(State(state): State<AppState>, ip: ClientIp, body: Bytes) -> Response {
    if let Err(wait) = state.client_limits.users.check(&ip.0) {
        return wait.into_response();
    }
    register(&state, &body).await.into_response()
}

async fn register(state: &AppState, body: &Bytes) -> ApiResult {
    let b = json_object(body)?;
    let nickname = required_str(&b, "nickname")?;
    // A client that knows which mini program it signs in for may say so: an unknown
    // appid is then refused before a user is made that could never log in to it.
    if let Some(appid) = opt_str(&b, "appid") {
        state.platform.app(&appid).await?;
    }
    let (user, token) = state.platform.register_user(&nickname).await?;
    Ok(Json(
        json!({"user_id": user.user_id, "nickname": user.nickname, "device_token": token}),
    ))
}

/// A device's call about one mini program: the user, then a JSON object body with an
/// `appid` (in that order, so an unsigned call is refused before its body is read).
struct ForApp {
    user: User,
    appid: String,
    body: Map<String, Value>,
}

impl FromRequest<AppState> for ForApp {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let DeviceUser(user) = DeviceUser::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let read = || -> Result<_, Error> {
            let b = json_object(&bytes)?;
            Ok((appid_field(&b)?, b))
        };
        let (appid, body) = read().map_err(|e| ApiError(e).into_response())?;
        Ok(ForApp { user, appid, body })
    }
}

/// `POST /client/v1/login` (`wx.login`): limited per client address before the device
/// token is even checked; the store bounds each user's unused codes.
async fn login(State(state): State<AppState>, ip: ClientIp, req: Request) -> Response {
    if let Err(wait) = state.client_limits.logins.check(&ip.0) {
        return wait.into_response();
    }
    let call = match ForApp::from_request(req, &state).await {
        Ok(call) => call,
        Err(refused) => return refused,
    };
    match state.platform.login_code(&call.user, &call.appid).await {
        Ok((code, _)) => Json(json!({"code": code, "errMsg": "login:ok"})).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
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
    let decisions = decisions_field(b, "decisions")?;
    let keep = bool_field(b, "keep")?;
    Ok(PromptRequest {
        ids,
        decisions,
        keep,
    })
}

async fn subscribe(State(state): State<AppState>, call: ForApp) -> ApiResult {
    let req = prompt_request(&call.body)?;
    match state.platform.prompt(&call.user, &call.appid, &req).await? {
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
    Query(q): Query<HashMap<String, String>>,
    DeviceUser(user): DeviceUser,
) -> ApiResult {
    let appid = query_str(&q, "appid").ok_or_else(|| Error::Invalid("appid is required".into()))?;
    let s = state.platform.subscription_settings(&user, &appid).await?;
    Ok(Json(settings_json(&s)))
}

async fn update_settings(State(state): State<AppState>, call: ForApp) -> ApiResult {
    let ForApp {
        user,
        appid,
        body: b,
    } = call;
    let main = opt_bool_field(&b, "mainSwitch")?;
    let items = decisions_field(&b, "itemSettings")?;
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

/// `GET /client/v1/me`: who the device token belongs to, so a client given only a token
/// (a user made elsewhere, e.g. with curl) can show the user.
async fn me(DeviceUser(user): DeviceUser) -> ApiResult {
    Ok(Json(
        json!({"user_id": user.user_id, "nickname": user.nickname}),
    ))
}

/// `GET /client/v1/apps`: the mini programs a device can open (name and appid).
async fn apps(State(state): State<AppState>, _: DeviceUser) -> ApiResult {
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
    Path(appid): Path<String>,
    _: DeviceUser,
) -> ApiResult {
    // TODO(core): two service calls (the app, then its templates); a
    // `Platform::app_catalog` would answer this in one.
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
    Query(q): Query<HashMap<String, String>>,
    DeviceUser(user): DeviceUser,
) -> ApiResult {
    let cursor = query_uint(&q, "cursor")?.unwrap_or(0);
    let limit = query_uint(&q, "limit")?.unwrap_or(100).clamp(1, 500) as usize;
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

/// A device's call about one of its messages (`/client/v1/messages/{msgid}/…`): the
/// msgid as given (read by `msgid_of` after the user is known, so a bad one is a 404
/// only to a signed-in device), the user, and the device's name (`X-Device`).
struct OnMessage {
    msgid: String,
    user: User,
    device: String,
}

impl FromRequestParts<AppState> for OnMessage {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Path(msgid) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let DeviceUser(user) = DeviceUser::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let device = device_name(&parts.headers);
        Ok(OnMessage {
            msgid,
            user,
            device,
        })
    }
}

/// `POST /client/v1/messages/{msgid}/ack`: the HTTP twin of the `ack` frame.
async fn ack(State(state): State<AppState>, m: OnMessage) -> ApiResult {
    let first = state
        .platform
        .ack(&m.user.user_id, msgid_of(&m.msgid)?, &m.device)
        .await?;
    Ok(Json(json!({"ok": true, "first_delivery": first})))
}

/// `POST /client/v1/messages/{msgid}/open`: the HTTP twin of the `open` frame.
async fn open(State(state): State<AppState>, m: OnMessage) -> ApiResult {
    let opened = state
        .platform
        .open(&m.user.user_id, msgid_of(&m.msgid)?, &m.device)
        .await?;
    Ok(Json(
        json!({"msgid": opened.msgid, "appid": opened.appid, "page": opened.page}),
    ))
}

#[derive(serde::Deserialize)]
pub(super) struct WsQuery {
    token: Option<String>,
}

/// Seconds a device refused for a full node is told to wait (`Retry-After`).
const WS_RETRY_AFTER_SECS: u32 = 5;

/// `GET /client/v1/ws`: authenticated by the device token (`Authorization: Bearer` or,
/// for browsers that cannot set headers on a WebSocket, `?token=`). The HTTP adapter
/// over `gateway::accept`; refusals get the native dialect's error body: 401 for the
/// token, 503 `too_many_connections` with `Retry-After` when the node is full.
pub(super) async fn websocket(
    State(gw): State<crate::gateway::GatewayState>,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    use crate::gateway::Refusal;
    use axum::http::{StatusCode, header};
    let token = crate::edge::bearer(&headers).map(str::to_owned).or(q.token);
    match crate::gateway::accept(gw, token.as_deref(), ws).await {
        Ok(upgraded) => upgraded,
        Err(Refusal::Denied(e)) => ApiError(e).into_response(),
        Err(Refusal::Full) => {
            let mut r = crate::edge::api_fixed(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_connections",
                "this node has all the device connections it takes; retry later",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, WS_RETRY_AFTER_SECS.into());
            r
        }
    }
}
