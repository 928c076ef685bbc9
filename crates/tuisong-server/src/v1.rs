//! The native JSON API under /v1 for app servers: what WeChat lacks (urgent, TTL,
//! scheduling, idempotency, cancel and recall, conversions, the readable consent ledger,
//! message timelines, the push policy). `Authorization: Bearer <access_token>`; errors
//! are HTTP 4xx/5xx with `{"error": {"code", "message"}}`.

use crate::http::{ApiError, ApiResult, bearer, json_object, msgid_of, opt_str};
use crate::render;
use crate::state::AppState;
use crate::wechat::send_request;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use tuisong_core::Error;
use tuisong_core::analytics::Granularity;
use tuisong_core::ids::AppId;
use tuisong_core::policy::Policy;
use tuisong_core::store::{MessageFilter, MessageStatus};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/messages", post(send).get(list_messages))
        .route("/v1/stats", get(stats))
        .route("/v1/messages/{msgid}", get(message))
        .route("/v1/messages/{msgid}/cancel", post(cancel))
        .route("/v1/messages/{msgid}/recall", post(recall))
        .route("/v1/messages/{msgid}/conversions", post(conversion))
        .route("/v1/consents/{openid}", get(consents))
        .route("/v1/policy", get(get_policy).put(put_policy))
        .route(
            "/v1/push-config",
            get(get_push).put(put_push).delete(delete_push),
        )
        .route("/v1/push-config/deliveries", get(push_deliveries))
        .route("/v1/push-config/test", post(test_push))
}

async fn put_push(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    let b = json_object(&body)?;
    Ok(Json(crate::push_api::put(&state, &appid, &b).await?))
}

async fn get_push(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    Ok(Json(crate::push_api::get(&state, &appid).await?))
}

async fn delete_push(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    Ok(Json(crate::push_api::delete(&state, &appid).await?))
}

async fn push_deliveries(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    Ok(Json(
        crate::push_api::deliveries(&state, &appid, q.get("limit").map(String::as_str)).await?,
    ))
}

async fn test_push(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    Ok(Json(crate::push_api::test(&state, &appid).await?))
}

async fn app_of(state: &AppState, headers: &HeaderMap) -> Result<AppId, ApiError> {
    Ok(state.platform.authenticate(bearer(headers)).await?)
}

fn bool_field(b: &Map<String, Value>, key: &str) -> Result<bool, Error> {
    match b.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(v)) => Ok(*v),
        Some(_) => Err(Error::Invalid(format!("{key} must be a boolean"))),
    }
}

fn uint_field(b: &Map<String, Value>, key: &str) -> Result<Option<u64>, Error> {
    match b.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| Error::Invalid(format!("{key} must be a non-negative integer"))),
        Some(_) => Err(Error::Invalid(format!(
            "{key} must be a non-negative integer"
        ))),
    }
}

async fn send(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    let b = json_object(&body)?;
    let mut req = send_request(&b)?;
    req.idempotency_key = opt_str(&b, "idempotency_key");
    req.urgent = bool_field(&b, "urgent")?;
    req.ttl_seconds = uint_field(&b, "ttl_seconds")?;
    req.send_at = uint_field(&b, "send_at")?.map(|secs| {
        i64::try_from(secs)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000)
    });
    let r = crate::wechat::send_counted(&state, &appid, req).await?;
    Ok(Json(
        json!({"msgid": r.msgid, "status": r.status.as_str(), "replayed": r.replayed}),
    ))
}

/// `GET /v1/messages?status=&template_id=&touser=&before=&limit=`: newest first.
async fn list_messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let status = match get("status") {
        None => None,
        Some(s) => Some(MessageStatus::parse(&s).ok_or_else(|| {
            Error::Invalid(
                "status must be scheduled, held, accepted, delivered, recalled, expired or cancelled".into(),
            )
        })?),
    };
    let num = |k: &str| -> Result<Option<u64>, Error> {
        get(k)
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::Invalid(format!("{k} must be a non-negative integer")))
            })
            .transpose()
    };
    let filter = MessageFilter {
        status,
        template_id: get("template_id"),
        openid: get("touser"),
        before: num("before")?,
        limit: num("limit")?.unwrap_or(50).clamp(1, 500) as usize,
    };
    let list = state.platform.list_messages(&appid, &filter).await?;
    let next = if list.len() == filter.limit {
        list.last().map(|m| m.msgid)
    } else {
        None
    };
    Ok(Json(json!({
        "messages": list.iter().map(render::message_json).collect::<Vec<_>>(),
        "next_before": next,
    })))
}

/// `GET /v1/stats?template_id=&from=&to=&granularity=hour|day` (from/to in Unix seconds).
async fn stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let secs = |k: &str| -> Result<Option<i64>, Error> {
        get(k)
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|s| (0..=i64::MAX / 1000).contains(s))
                    .map(|s| s * 1000)
                    .ok_or_else(|| Error::Invalid(format!("{k} must be Unix seconds")))
            })
            .transpose()
    };
    let granularity = match get("granularity") {
        None => Granularity::Hour,
        Some(g) => Granularity::parse(&g)
            .ok_or_else(|| Error::Invalid("granularity must be hour or day".into()))?,
    };
    let report = state
        .platform
        .stats(
            &appid,
            get("template_id").as_deref(),
            secs("from")?,
            secs("to")?,
            granularity,
        )
        .await?;
    Ok(Json(json!(report)))
}

async fn message(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(msgid): Path<String>,
) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    let (m, timeline) = state
        .platform
        .message_timeline(&appid, msgid_of(&msgid)?)
        .await?;
    let mut v = render::message_json(&m);
    v["timeline"] = json!(timeline);
    Ok(Json(v))
}

async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(msgid): Path<String>,
) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    let status = state
        .platform
        .stop_message(&appid, msgid_of(&msgid)?, false)
        .await?;
    Ok(Json(json!({"msgid": msgid_of(&msgid)?, "status": status})))
}

async fn recall(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(msgid): Path<String>,
) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    let status = state
        .platform
        .stop_message(&appid, msgid_of(&msgid)?, true)
        .await?;
    Ok(Json(json!({"msgid": msgid_of(&msgid)?, "status": status})))
}

async fn conversion(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(msgid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    let b = json_object(&body)?;
    let event = match b.get("event") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(Error::Invalid("event is required".into()).into()),
    };
    let value = match b.get("value") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => return Err(Error::Invalid("value must be a number".into()).into()),
    };
    state
        .platform
        .conversion(&appid, msgid_of(&msgid)?, &event, value)
        .await?;
    Ok(Json(json!({"ok": true})))
}

async fn consents(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(openid): Path<String>,
) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    let (sub, entries) = state.platform.ledger(&appid, &openid).await?;
    let templates: Vec<_> = entries
        .iter()
        .map(|e| render::consent_json(&e.state, e.template.as_deref()))
        .collect();
    Ok(Json(json!({
        "openid": sub.openid,
        "main_switch": sub.main_switch,
        "templates": templates,
    })))
}

async fn get_policy(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    let p = state.platform.policy(&appid).await?;
    Ok(Json(json!(*p)))
}

async fn put_policy(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    let b = json_object(&body)?;
    let p: Policy = serde_json::from_value(Value::Object(b))
        .map_err(|e| Error::Invalid(format!("policy: {e}")))?;
    let p = state.platform.set_policy(&appid, p).await?;
    Ok(Json(json!(*p)))
}
