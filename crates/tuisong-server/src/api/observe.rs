//! What operators and their tools ask of a node: `/healthz` (the process is up),
//! `/readyz` (it can serve: the store answers, the bus is connected when configured, it
//! is not shutting down) and `/metrics` (Prometheus; the names are in docs/METRICS.md).
//! None needs credentials and none shows a secret, an appid or an openid; all three are
//! logged at debug, not info, so probes and scrapes do not fill the log.

use super::trace::Quiet;
use crate::metrics::{CONTENT_TYPE, Scraped};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long `/readyz` waits for the store before calling it not ready.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> impl IntoResponse {
    (Quiet, "ok")
}

/// What is keeping a node from being ready, in the order `/readyz` names them.
pub fn not_ready(shutting_down: bool, store_ok: bool, bus_ok: Option<bool>) -> Vec<&'static str> {
    let mut why = Vec::new();
    if shutting_down {
        why.push("shutting_down");
    }
    if !store_ok {
        why.push("store");
    }
    if bus_ok == Some(false) {
        why.push("bus");
    }
    why
}

/// 200 `{"ready": true}`, or 503 `{"ready": false, "not_ready": [...]}` naming each of
/// `shutting_down`, `store` and `bus` that fails. A node that is stopping says so without
/// asking the store.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let shutting_down = *state.shutdown.borrow();
    let store_ok = shutting_down
        || match tokio::time::timeout(STORE_TIMEOUT, state.platform.store_ready()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "readiness: the store did not answer");
                false
            }
            Err(_) => {
                tracing::debug!("readiness: the store did not answer in time");
                false
            }
        };
    let bus_ok = state.bus.as_ref().map(|b| b.is_connected());
    let why = not_ready(shutting_down, store_ok, bus_ok);
    if why.is_empty() {
        (StatusCode::OK, Quiet, Json(json!({"ready": true}))).into_response()
    } else {
        let body = json!({"ready": false, "not_ready": why});
        (StatusCode::SERVICE_UNAVAILABLE, Quiet, Json(body)).into_response()
    }
}

/// The exposition of this node's metrics.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let r = &state.worker_restarts;
    let restarts = [
        ("due", r.due.load(Ordering::Relaxed)),
        ("push", r.push.load(Ordering::Relaxed)),
        ("retention", r.retention.load(Ordering::Relaxed)),
    ];
    let body = state.metrics.render(&Scraped {
        devices: state.hub.connected(),
        sockets: state.hub.sockets(),
        worker_restarts: &restarts,
        commits: state.platform.commit_stats(),
    });
    (Quiet, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Application, BuildOptions, Settings};

    #[test]
    fn not_ready_names_each_cause() {
        assert!(not_ready(false, true, None).is_empty());
        assert!(not_ready(false, true, Some(true)).is_empty());
        assert_eq!(
            not_ready(true, false, Some(false)),
            ["shutting_down", "store", "bus"]
        );
        assert_eq!(not_ready(false, true, Some(false)), ["bus"]);
    }

    async fn ready_of(state: AppState) -> (StatusCode, serde_json::Value) {
        let r = readyz(State(state)).await;
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn a_live_node_is_ready_and_a_stopping_one_is_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = Settings {
            data_dir: dir.path().to_owned(),
            admin_token: Some(tuisong_core::ids::Secret::new(
                "test-admin-token-0123456789",
            )),
            ..Settings::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let opts = BuildOptions {
            listener: Some(listener),
            ..BuildOptions::default()
        };
        let app = Application::build_with(settings, opts)
            .await
            .expect("builds");
        let (status, v) = ready_of(app.state.clone()).await;
        assert_eq!((status, v), (StatusCode::OK, json!({"ready": true})));

        let (_stop, stopping) = tokio::sync::watch::channel(true);
        let state = AppState {
            shutdown: stopping,
            ..app.state.clone()
        };
        let (status, v) = ready_of(state).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(v, json!({"ready": false, "not_ready": ["shutting_down"]}));
    }
}
