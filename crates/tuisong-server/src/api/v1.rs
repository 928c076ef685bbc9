//! The native JSON API under /v1 for app servers: what WeChat lacks (urgent, TTL,
//! scheduling, idempotency, cancel and recall, conversions, the readable consent ledger,
//! message timelines, the push policy, the message-push config). `Authorization: Bearer
//! <access_token>`; errors are HTTP 4xx/5xx with `{"error": {"code", "message"}}`.

use super::push_config;
use crate::edge::{
    ApiError, ApiResult, BearerApp, api_status, bool_field, json_object, msgid_of, opt_str,
    query_str, query_uint, render, required_str, send_request, str_or_empty, uint_field,
};
use crate::metrics::{Dialect, Outcome};
use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use tuisong_core::Error;
use tuisong_core::analytics::Granularity;
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
        .merge(push_config::routes::<BearerApp>("/v1/push-config"))
}

/// The send; counted in `tuisong_sends_total` under `ok` or its error code (a wrong
/// token too: the extractor's rejection is taken here).
async fn send(
    State(state): State<AppState>,
    app: Result<BearerApp, ApiError>,
    body: Bytes,
) -> ApiResult {
    let started = std::time::Instant::now();
    let r = match app {
        Ok(BearerApp(appid)) => send_as(&state, &appid, &body).await,
        Err(e) => Err(e),
    };
    let outcome = match &r {
        Ok(_) => Outcome::Ok,
        Err(e) => Outcome::Code(api_status(&e.0).1),
    };
    state.metrics.send(Dialect::V1, outcome, started.elapsed());
    r
}

async fn send_as(state: &AppState, appid: &tuisong_core::ids::AppId, body: &[u8]) -> ApiResult {
    let b = json_object(body)?;
    // WeChat answers a missing field with the error of a bad one (40003, 40037); the
    // native dialect names the field, so a misspelt `templateId` is not a 404.
    for field in ["touser", "template_id"] {
        if str_or_empty(&b, field).trim().is_empty() {
            return Err(Error::Invalid(format!("{field} is required")).into());
        }
    }
    let mut req = send_request(&b)?;
    req.extra_keys = tuisong_core::service::ExtraKeys::Refuse;
    req.idempotency_key = opt_str(&b, "idempotency_key");
    req.urgent = bool_field(&b, "urgent")?;
    req.ttl_seconds = uint_field(&b, "ttl_seconds")?;
    let send_at = uint_field(&b, "send_at")?;
    // 10^11 seconds is the year 5138; such a number is milliseconds sent by mistake.
    if let Some(v) = send_at.filter(|v| *v >= 100_000_000_000) {
        return Err(Error::Invalid(format!(
            "send_at is Unix seconds; {v} looks like milliseconds (use {})",
            v / 1000
        ))
        .into());
    }
    req.send_at = send_at.map(|secs| {
        i64::try_from(secs)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000)
    });
    let r = state.platform.send(appid, req).await?;
    Ok(Json(
        json!({"msgid": r.msgid, "status": r.status.as_str(), "replayed": r.replayed}),
    ))
}

/// `GET /v1/messages?status=&template_id=&touser=&before=&limit=`: newest first.
async fn list_messages(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    BearerApp(appid): BearerApp,
) -> ApiResult {
    let status = match query_str(&q, "status") {
        None => None,
        Some(s) => Some(MessageStatus::parse(&s).ok_or_else(|| {
            Error::Invalid(
                "status must be scheduled, held, accepted, delivered, recalled, expired or cancelled".into(),
            )
        })?),
    };
    let filter = MessageFilter {
        status,
        template_id: query_str(&q, "template_id"),
        openid: query_str(&q, "touser"),
        before: query_uint(&q, "before")?,
        limit: query_uint(&q, "limit")?.unwrap_or(50).clamp(1, 500) as usize,
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

/// A time bound of `/v1/stats` in Unix seconds, as milliseconds.
fn query_secs(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, Error> {
    query_str(q, key)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|s| (0..=i64::MAX / 1000).contains(s))
                .map(|s| s * 1000)
                .ok_or_else(|| Error::Invalid(format!("{key} must be Unix seconds")))
        })
        .transpose()
}

/// `GET /v1/stats?template_id=&from=&to=&granularity=hour|day` (from/to in Unix seconds).
async fn stats(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    BearerApp(appid): BearerApp,
) -> ApiResult {
    let granularity = match query_str(&q, "granularity") {
        None => Granularity::Hour,
        Some(g) => Granularity::parse(&g)
            .ok_or_else(|| Error::Invalid("granularity must be hour or day".into()))?,
    };
    let report = state
        .platform
        .stats(
            &appid,
            query_str(&q, "template_id").as_deref(),
            query_secs(&q, "from")?,
            query_secs(&q, "to")?,
            granularity,
        )
        .await?;
    Ok(Json(json!(report)))
}

async fn message(
    State(state): State<AppState>,
    Path(msgid): Path<String>,
    BearerApp(appid): BearerApp,
) -> ApiResult {
    let (m, timeline) = state
        .platform
        .message_timeline(&appid, msgid_of(&msgid)?)
        .await?;
    let mut v = render::message_json(&m);
    v["timeline"] = json!(timeline);
    Ok(Json(v))
}

/// Cancel (`recall == false`) or recall one message.
async fn stop(
    state: &AppState,
    appid: &tuisong_core::ids::AppId,
    msgid: &str,
    recall: bool,
) -> ApiResult {
    let msgid = msgid_of(msgid)?;
    let status = state.platform.stop_message(appid, msgid, recall).await?;
    Ok(Json(json!({"msgid": msgid, "status": status})))
}

async fn cancel(
    State(state): State<AppState>,
    Path(msgid): Path<String>,
    BearerApp(appid): BearerApp,
) -> ApiResult {
    stop(&state, &appid, &msgid, false).await
}

async fn recall(
    State(state): State<AppState>,
    Path(msgid): Path<String>,
    BearerApp(appid): BearerApp,
) -> ApiResult {
    let r = stop(&state, &appid, &msgid, true).await;
    if r.is_ok() {
        state.metrics.recalls.inc();
    }
    r
}

async fn conversion(
    State(state): State<AppState>,
    Path(msgid): Path<String>,
    BearerApp(appid): BearerApp,
    body: Bytes,
) -> ApiResult {
    let b = json_object(&body)?;
    let event = required_str(&b, "event")?;
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
    Path(openid): Path<String>,
    BearerApp(appid): BearerApp,
) -> ApiResult {
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

async fn get_policy(State(state): State<AppState>, BearerApp(appid): BearerApp) -> ApiResult {
    let p = state.platform.policy(&appid).await?;
    Ok(Json(json!(*p)))
}

async fn put_policy(
    State(state): State<AppState>,
    BearerApp(appid): BearerApp,
    body: Bytes,
) -> ApiResult {
    let b = json_object(&body)?;
    let p: Policy = serde_json::from_value(Value::Object(b))
        .map_err(|e| Error::Invalid(format!("policy: {e}")))?;
    let p = state.platform.set_policy(&appid, p).await?;
    Ok(Json(json!(*p)))
}
