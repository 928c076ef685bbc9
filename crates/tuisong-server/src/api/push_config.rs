//! The message-push config of an app, one resource with two doors: the app's own
//! (`/v1/push-config`, its access token) and the operator's
//! (`/admin/apps/{appid}/push-config`, the admin token). The handlers are generic over
//! the extractor that says which app is meant; everything else is the same.

use crate::edge::{AdminApp, ApiResult, BearerApp, bool_field, json_object, string_field};
use crate::push::{HttpReceiverCheck, shown_url};
use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, State};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use tuisong_core::Error;
use tuisong_core::ids::{AppId, Secret};
use tuisong_core::push::{PushConfig, PushFormat, PushMode, mask};

/// An extractor that names the app a push-config call is about.
pub trait AppOfCall: FromRequestParts<AppState> + Send + 'static {
    fn appid(&self) -> &AppId;
}

impl AppOfCall for BearerApp {
    fn appid(&self) -> &AppId {
        &self.0
    }
}

impl AppOfCall for AdminApp {
    fn appid(&self) -> &AppId {
        &self.0
    }
}

/// The push-config routes under `base`, for the callers `A` identifies.
pub fn routes<A: AppOfCall>(base: &str) -> Router<AppState> {
    Router::new()
        .route(base, get(show::<A>).put(save::<A>).delete(remove::<A>))
        .route(&format!("{base}/deliveries"), get(deliveries::<A>))
        .route(&format!("{base}/test"), post(test::<A>))
}

/// Reads a config from a request body; every error names its field.
pub fn parse_config(b: &Map<String, Value>) -> Result<PushConfig, Error> {
    let url = string_field(b, "url")?.ok_or_else(|| Error::Invalid("url is required".into()))?;
    let token =
        string_field(b, "token")?.ok_or_else(|| Error::Invalid("token is required".into()))?;
    let format = match string_field(b, "format")?.as_deref() {
        Some("xml") => PushFormat::Xml,
        Some("json") => PushFormat::Json,
        _ => return Err(Error::Invalid("format must be \"xml\" or \"json\"".into())),
    };
    let mode = match string_field(b, "mode")?.as_deref() {
        Some("plaintext") => PushMode::Plaintext,
        Some("compatible") => PushMode::Compatible,
        Some("safe") => PushMode::Safe,
        _ => {
            return Err(Error::Invalid(
                "mode must be \"plaintext\", \"compatible\" or \"safe\"".into(),
            ));
        }
    };
    let extension_events = bool_field(b, "extension_events")?;
    Ok(PushConfig {
        url,
        token: Secret::new(token),
        encoding_aes_key: string_field(b, "encoding_aes_key")?.map(Secret::new),
        format,
        mode,
        extension_events,
        updated_at: 0,
    })
}

/// A config as it is shown: the token and the AES key masked, and a user name or
/// password in the URL (refused since, but possibly stored before) replaced.
pub fn config_json(c: &PushConfig) -> Value {
    json!({
        "url": shown_url(&c.url),
        "token": mask(c.token.expose()),
        "encoding_aes_key": c.encoding_aes_key.as_ref().map(|k| mask(k.expose())),
        "format": c.format,
        "mode": c.mode,
        "extension_events": c.extension_events,
        "updated_at": c.updated_at,
    })
}

async fn save<A: AppOfCall>(State(state): State<AppState>, app: A, body: Bytes) -> ApiResult {
    let b = json_object(&body)?;
    let cfg = parse_config(&b)?;
    let check = HttpReceiverCheck(&state.push_http);
    let saved = state
        .platform
        .save_push_config(app.appid(), cfg, &check)
        .await?;
    Ok(Json(config_json(&saved)))
}

async fn show<A: AppOfCall>(State(state): State<AppState>, app: A) -> ApiResult {
    Ok(Json(config_json(
        &state.platform.push_config(app.appid()).await?,
    )))
}

async fn remove<A: AppOfCall>(State(state): State<AppState>, app: A) -> ApiResult {
    state.platform.remove_push_config(app.appid()).await?;
    Ok(Json(json!({"ok": true})))
}

/// `…/deliveries?limit=N`: the latest attempts, newest first (50 unless asked, ≤ 500).
async fn deliveries<A: AppOfCall>(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    app: A,
) -> ApiResult {
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") => 50,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| Error::Invalid("limit must be a positive integer".into()))?
            .clamp(1, 500),
    };
    let mut attempts = state.platform.push_attempts(app.appid(), limit).await?;
    for a in &mut attempts {
        if let Some(e) = &mut a.error {
            *e = shown_error(e);
        }
    }
    Ok(Json(json!({"attempts": attempts})))
}

/// An attempt's error as the log shows it. Attempts recorded by older versions quoted the
/// reply's first bytes or named the network failure; those are shown generically.
fn shown_error(e: &str) -> String {
    if e.starts_with("unexpected reply") {
        "unexpected reply (want \"success\" or empty)".to_owned()
    } else if e.starts_with("timed out")
        || e.starts_with("connection refused")
        || e.starts_with("error sending request")
    {
        "no answer from the receiver".to_owned()
    } else {
        e.to_owned()
    }
}

/// Runs the handshake against the saved config (the console's "test" button).
async fn test<A: AppOfCall>(State(state): State<AppState>, app: A) -> ApiResult {
    let check = HttpReceiverCheck(&state.push_http);
    let cfg = state.platform.test_push_config(app.appid(), &check).await?;
    Ok(Json(json!({"ok": true, "url": shown_url(&cfg.url)})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_url_with_a_password_is_shown_masked() {
        let cfg = PushConfig {
            url: "http://user:hunter2@example.com/wx".into(),
            token: Secret::new("Token123"),
            encoding_aes_key: None,
            format: PushFormat::Json,
            mode: PushMode::Plaintext,
            extension_events: false,
            updated_at: 0,
        };
        let shown = config_json(&cfg).to_string();
        assert!(
            !shown.contains("hunter2") && !shown.contains("user:"),
            "{shown}"
        );
        assert!(shown.contains("example.com/wx"), "{shown}");
    }

    #[test]
    fn old_attempt_errors_do_not_quote_replies_or_network_failures() {
        assert_eq!(
            shown_error(
                "unexpected reply \"internal: db at 10.0.0.5\" (want \"success\" or empty)"
            ),
            "unexpected reply (want \"success\" or empty)"
        );
        assert_eq!(
            shown_error("connection refused or unreachable"),
            "no answer from the receiver"
        );
        assert_eq!(shown_error("HTTP 500"), "HTTP 500");
    }
}
