//! The native JSON API under /v1 for app servers: what WeChat lacks (idempotency, the
//! readable consent ledger, message status). `Authorization: Bearer <access_token>`;
//! errors are HTTP 4xx/5xx with `{"error": {"code", "message"}}`.

use crate::http::{ApiError, ApiResult, bearer, json_object, opt_str};
use crate::render;
use crate::state::AppState;
use crate::wechat::send_request;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::json;
use tuisong_core::Error;
use tuisong_core::ids::AppId;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/messages", post(send))
        .route("/v1/messages/{msgid}", get(message))
        .route("/v1/consents/{openid}", get(consents))
}

async fn app_of(state: &AppState, headers: &HeaderMap) -> Result<AppId, ApiError> {
    Ok(state.platform.authenticate(bearer(headers)).await?)
}

async fn send(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    let b = json_object(&body)?;
    let mut req = send_request(&b)?;
    req.idempotency_key = opt_str(&b, "idempotency_key");
    let (msgid, replayed) = state.platform.send(&appid, req).await?;
    Ok(Json(
        json!({"msgid": msgid, "status": "accepted", "replayed": replayed}),
    ))
}

async fn message(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(msgid): Path<String>,
) -> ApiResult {
    let appid = app_of(&state, &headers).await?;
    let id: u64 = msgid.parse().map_err(|_| Error::NotFound("message"))?;
    let m = state.platform.message(&appid, id).await?;
    Ok(Json(render::message_json(&m)))
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
