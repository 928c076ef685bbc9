//! The operator's API under /admin (`Authorization: Bearer <admin token>`): apps and
//! their credentials. The CLI (`tuisong app …`) and the console are its clients.

use crate::http::{ApiError, ApiResult, bearer, json_object};
use crate::render;
use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tuisong_core::Error;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/apps", post(create_app).get(list_apps))
        .route("/admin/apps/{appid}", get(get_app))
        .route("/admin/apps/{appid}/secret", get(reveal_secret))
        .route("/admin/apps/{appid}/reset-secret", post(reset_secret))
        .route("/admin/apps/{appid}/console-token", post(console_token))
        .route(
            "/admin/apps/{appid}/push-config",
            get(get_push).put(put_push).delete(delete_push),
        )
        .route(
            "/admin/apps/{appid}/push-config/deliveries",
            get(push_deliveries),
        )
        .route("/admin/apps/{appid}/push-config/test", post(test_push))
}

async fn admin_app(
    state: &AppState,
    headers: &HeaderMap,
    appid: &str,
) -> Result<tuisong_core::ids::AppId, ApiError> {
    check_admin(state, headers)?;
    Ok(state.platform.app(appid).await?.appid)
}

async fn put_push(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(appid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let appid = admin_app(&state, &headers, &appid).await?;
    let b = json_object(&body)?;
    Ok(Json(crate::push_api::put(&state, &appid, &b).await?))
}

async fn get_push(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(appid): Path<String>,
) -> ApiResult {
    let appid = admin_app(&state, &headers, &appid).await?;
    Ok(Json(crate::push_api::get(&state, &appid).await?))
}

async fn delete_push(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(appid): Path<String>,
) -> ApiResult {
    let appid = admin_app(&state, &headers, &appid).await?;
    Ok(Json(crate::push_api::delete(&state, &appid).await?))
}

async fn push_deliveries(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(appid): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> ApiResult {
    let appid = admin_app(&state, &headers, &appid).await?;
    let limit = q.get("limit").map(String::as_str);
    Ok(Json(
        crate::push_api::deliveries(&state, &appid, limit).await?,
    ))
}

async fn test_push(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(appid): Path<String>,
) -> ApiResult {
    let appid = admin_app(&state, &headers, &appid).await?;
    Ok(Json(crate::push_api::test(&state, &appid).await?))
}

fn check_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = bearer(headers).unwrap_or("").as_bytes();
    let want = state.admin_token.expose().as_bytes();
    let same = given.len() == want.len()
        && given
            .iter()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(Error::Unauthorized.into())
    }
}

async fn create_app(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    check_admin(&state, &headers)?;
    let b = json_object(&body)?;
    let name = match b.get("name") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(Error::Invalid("name is required".into()).into()),
    };
    let app = state.platform.create_app(&name).await?;
    Ok(Json(render::app_json_with_secret(&app)))
}

async fn list_apps(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    check_admin(&state, &headers)?;
    let apps = state.platform.list_apps().await?;
    Ok(Json(
        json!({"apps": apps.iter().map(render::app_json).collect::<Vec<_>>()}),
    ))
}

async fn get_app(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(appid): Path<String>,
) -> ApiResult {
    check_admin(&state, &headers)?;
    let app = state.platform.app(&appid).await?;
    Ok(Json(render::app_json(&app)))
}

/// An access token for the console to call the app's public APIs with.
async fn console_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(appid): Path<String>,
) -> ApiResult {
    check_admin(&state, &headers)?;
    let t = state.platform.console_token(&appid).await?;
    Ok(Json(
        json!({"access_token": t.token, "expires_in": t.expires_in}),
    ))
}

async fn reveal_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(appid): Path<String>,
) -> ApiResult {
    check_admin(&state, &headers)?;
    let app = state.platform.app(&appid).await?;
    Ok(Json(render::app_json_with_secret(&app)))
}

async fn reset_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(appid): Path<String>,
) -> ApiResult {
    check_admin(&state, &headers)?;
    let app = state.platform.reset_secret(&appid).await?;
    Ok(Json(render::app_json_with_secret(&app)))
}
