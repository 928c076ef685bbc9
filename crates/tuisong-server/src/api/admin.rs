//! The operator's API under /admin (`Authorization: Bearer <admin token>`): apps, their
//! credentials and their message-push config. The CLI (`tuisong app …`) and the console
//! are its clients.

use super::push_config;
use crate::edge::{Admin, AdminApp, ApiResult, json_object, render, required_str};
use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/apps", post(create_app).get(list_apps))
        .route("/admin/apps/{appid}", get(get_app))
        .route("/admin/apps/{appid}/secret", get(reveal_secret))
        .route("/admin/apps/{appid}/reset-secret", post(reset_secret))
        .route("/admin/apps/{appid}/console-token", post(console_token))
        .merge(push_config::routes::<AdminApp>(
            "/admin/apps/{appid}/push-config",
        ))
}

async fn create_app(State(state): State<AppState>, _: Admin, body: Bytes) -> ApiResult {
    let b = json_object(&body)?;
    let name = required_str(&b, "name")?;
    let app = state.platform.create_app(&name).await?;
    Ok(Json(render::app_json_with_secret(&app)))
}

async fn list_apps(State(state): State<AppState>, _: Admin) -> ApiResult {
    let apps = state.platform.list_apps().await?;
    Ok(Json(
        json!({"apps": apps.iter().map(render::app_json).collect::<Vec<_>>()}),
    ))
}

async fn get_app(State(state): State<AppState>, Path(appid): Path<String>, _: Admin) -> ApiResult {
    let app = state.platform.app(&appid).await?;
    Ok(Json(render::app_json(&app)))
}

/// An access token for the console to call the app's public APIs with.
async fn console_token(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    _: Admin,
) -> ApiResult {
    let t = state.platform.console_token(&appid).await?;
    Ok(Json(
        json!({"access_token": t.token, "expires_in": t.expires_in}),
    ))
}

async fn reveal_secret(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    _: Admin,
) -> ApiResult {
    let app = state.platform.app(&appid).await?;
    Ok(Json(render::app_json_with_secret(&app)))
}

async fn reset_secret(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    _: Admin,
) -> ApiResult {
    let app = state.platform.reset_secret(&appid).await?;
    Ok(Json(render::app_json_with_secret(&app)))
}
