//! Push-config endpoints, shared by the app's own API (`/v1/push-config`, access token)
//! and the operator's (`/admin/apps/{appid}/push-config`, admin token).

use crate::http::ApiError;
use crate::state::AppState;
use serde_json::{Map, Value, json};
use tuisong_core::Error;
use tuisong_core::ids::{AppId, Secret};
use tuisong_core::push::{PushConfig, PushFormat, PushMode, mask};

fn string(b: &Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match b.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::Invalid(format!("{key} must be a string"))),
    }
}

/// Reads a config from a request body; every error names its field.
pub fn parse_config(b: &Map<String, Value>) -> Result<PushConfig, Error> {
    let url = string(b, "url")?.ok_or_else(|| Error::Invalid("url is required".into()))?;
    let token = string(b, "token")?.ok_or_else(|| Error::Invalid("token is required".into()))?;
    let format = match string(b, "format")?.as_deref() {
        Some("xml") => PushFormat::Xml,
        Some("json") => PushFormat::Json,
        _ => return Err(Error::Invalid("format must be \"xml\" or \"json\"".into())),
    };
    let mode = match string(b, "mode")?.as_deref() {
        Some("plaintext") => PushMode::Plaintext,
        Some("compatible") => PushMode::Compatible,
        Some("safe") => PushMode::Safe,
        _ => {
            return Err(Error::Invalid(
                "mode must be \"plaintext\", \"compatible\" or \"safe\"".into(),
            ));
        }
    };
    let extension_events = match b.get("extension_events") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(v)) => *v,
        Some(_) => return Err(Error::Invalid("extension_events must be a boolean".into())),
    };
    Ok(PushConfig {
        url,
        token: Secret::new(token),
        encoding_aes_key: string(b, "encoding_aes_key")?.map(Secret::new),
        format,
        mode,
        extension_events,
        updated_at: 0,
    })
}

/// A config as it is shown: the token and the AES key masked.
pub fn config_json(c: &PushConfig) -> Value {
    json!({
        "url": c.url,
        "token": mask(c.token.expose()),
        "encoding_aes_key": c.encoding_aes_key.as_ref().map(|k| mask(k.expose())),
        "format": c.format,
        "mode": c.mode,
        "extension_events": c.extension_events,
        "updated_at": c.updated_at,
    })
}

pub async fn put(
    state: &AppState,
    appid: &AppId,
    b: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let cfg = parse_config(b)?;
    let saved = crate::push::save_config(&state.platform, &state.push_http, appid, cfg).await?;
    Ok(config_json(&saved))
}

pub async fn get(state: &AppState, appid: &AppId) -> Result<Value, ApiError> {
    let cfg = state
        .platform
        .store()
        .get_push_config(appid)
        .await?
        .ok_or(Error::NotFound("push config"))?;
    Ok(config_json(&cfg))
}

pub async fn delete(state: &AppState, appid: &AppId) -> Result<Value, ApiError> {
    state.platform.store().set_push_config(appid, None).await?;
    Ok(json!({"ok": true}))
}

pub async fn deliveries(
    state: &AppState,
    appid: &AppId,
    limit: Option<&str>,
) -> Result<Value, ApiError> {
    let limit = match limit {
        None | Some("") => 50,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| Error::Invalid("limit must be a positive integer".into()))?
            .clamp(1, 500),
    };
    let attempts = state.platform.store().push_attempts(appid, limit).await?;
    Ok(json!({"attempts": attempts}))
}

/// Runs the handshake against the saved config (the console's "test" button).
pub async fn test(state: &AppState, appid: &AppId) -> Result<Value, ApiError> {
    let cfg = state
        .platform
        .store()
        .get_push_config(appid)
        .await?
        .ok_or(Error::NotFound("push config"))?;
    crate::push::handshake(
        &state.push_http,
        &cfg.url,
        &cfg.token,
        state.platform.clock().now_secs(),
    )
    .await?;
    Ok(json!({"ok": true, "url": cfg.url}))
}
