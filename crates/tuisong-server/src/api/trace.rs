//! Request ids and the request log.
//!
//! Every request gets an id: the caller's `x-request-id` when it is sane (1 to 64 of
//! `A-Z a-z 0-9 - _ . :`), else a new random one; it is set on the request (handlers and
//! the log see it) and returned on the response. `tower_http`'s `TraceLayer` then opens
//! one span per request with the method, the path — never the query, where the WeChat
//! dialect carries `access_token` — and the id, and logs the status and latency when the
//! answer is ready: info, or debug for what sends [`Quiet`] (probes, scrapes); a 5xx at
//! warn (503: the store or the node is unavailable) or error (anything else), with the
//! cause as far as the status tells it. What failed inside is logged by the handler in
//! the same span, so it carries the same id.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponseParts, Response, ResponseParts};
use std::time::Duration;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::trace::TraceLayer;
use tracing::Span;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Marks a response whose request is logged at debug rather than info.
#[derive(Clone, Copy, Debug)]
pub struct Quiet;

impl IntoResponseParts for Quiet {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        res.extensions_mut().insert(Quiet);
        Ok(res)
    }
}

/// Whether a caller's request id can be taken as it is.
pub fn sane_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    (1..=64).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

async fn request_id(mut req: Request, next: Next) -> Response {
    let id = match req.headers().get(&REQUEST_ID) {
        Some(v) if sane_request_id(v) => v.clone(),
        _ => HeaderValue::from_str(&tuisong_core::ids::random_hex(16))
            .unwrap_or(HeaderValue::from_static("-")),
    };
    req.headers_mut().insert(REQUEST_ID, id.clone());
    let mut res = next.run(req).await;
    res.headers_mut().insert(REQUEST_ID, id);
    res
}

fn span_of(req: &Request) -> Span {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %id,
    )
}

fn on_response(res: &Response, latency: Duration, _: &Span) {
    let status = res.status().as_u16();
    let ms = latency.as_secs_f64() * 1000.0;
    if res.status().is_server_error() {
        // `on_failure` logs it, with the cause.
    } else if res.extensions().get::<Quiet>().is_some() {
        tracing::debug!(status, latency_ms = ms, "request");
    } else {
        tracing::info!(status, latency_ms = ms, "request");
    }
}

fn on_failure(class: ServerErrorsFailureClass, latency: Duration, _: &Span) {
    let ms = latency.as_secs_f64() * 1000.0;
    match class {
        ServerErrorsFailureClass::StatusCode(s) if s == StatusCode::SERVICE_UNAVAILABLE => {
            tracing::warn!(
                status = s.as_u16(),
                latency_ms = ms,
                cause = "unavailable",
                "request failed"
            );
        }
        ServerErrorsFailureClass::StatusCode(s) => {
            let cause = s.canonical_reason().unwrap_or("server error");
            tracing::error!(
                status = s.as_u16(),
                latency_ms = ms,
                cause,
                "request failed"
            );
        }
        ServerErrorsFailureClass::Error(e) => {
            tracing::error!(latency_ms = ms, cause = %e, "request failed");
        }
    }
}

/// `router` with request ids and the request log around every route and the fallback.
pub fn layer<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(span_of as fn(&Request) -> Span)
                .on_request(())
                .on_response(on_response as fn(&Response, Duration, &Span))
                .on_failure(on_failure as fn(ServerErrorsFailureClass, Duration, &Span)),
        )
        .layer(axum::middleware::from_fn(request_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use std::sync::{Arc, Mutex};
    use tower::Service;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn call(router: &mut Router, req: Request) -> Response {
        router.call(req).await.expect("infallible")
    }

    fn app() -> Router {
        layer(
            Router::new()
                .route("/cgi-bin/token", get(|| async { "ok" }))
                .route("/boom", get(|| async { StatusCode::INTERNAL_SERVER_ERROR })),
        )
    }

    #[test]
    fn only_sane_request_ids_are_taken() {
        for ok in ["abc", "0f3a-77_x.y:z", &"a".repeat(64)] {
            assert!(
                sane_request_id(&HeaderValue::from_str(ok).expect("v")),
                "{ok}"
            );
        }
        for bad in ["", "has space", "semi;colon", &"a".repeat(65), "é"] {
            let v = HeaderValue::from_bytes(bad.as_bytes()).expect("v");
            assert!(!sane_request_id(&v), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_request_id_is_echoed_when_sane_and_made_when_not() {
        let mut r = app();
        let req = Request::get("/cgi-bin/token")
            .header("x-request-id", "req-42")
            .body(Body::empty())
            .expect("req");
        let res = call(&mut r, req).await;
        assert_eq!(res.headers()["x-request-id"], "req-42");

        let req = Request::get("/cgi-bin/token")
            .header("x-request-id", "no good; at all")
            .body(Body::empty())
            .expect("req");
        let res = call(&mut r, req).await;
        let made = res.headers()["x-request-id"].to_str().expect("ascii");
        assert_eq!(made.len(), 16);
        assert_ne!(made, "no good; at all");

        let req = Request::get("/nowhere").body(Body::empty()).expect("req");
        let res = call(&mut r, req).await;
        assert!(
            res.headers().contains_key("x-request-id"),
            "the fallback too"
        );
    }

    #[tokio::test]
    async fn the_log_has_the_path_without_the_query_and_5xx_at_error() {
        let out = Captured::default();
        let w = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        let _g = tracing::subscriber::set_default(subscriber);
        let mut r = app();
        let secret = "SECRET_ACCESS_TOKEN_123";
        let uri = format!("/cgi-bin/token?access_token={secret}&x=1");
        let req = Request::get(uri).body(Body::empty()).expect("req");
        assert_eq!(call(&mut r, req).await.status(), StatusCode::OK);
        let req = Request::get("/boom").body(Body::empty()).expect("req");
        assert_eq!(call(&mut r, req).await.status(), 500);
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf-8");
        assert!(!text.contains(secret), "{text}");
        assert!(!text.contains("access_token"), "{text}");
        assert!(text.contains("path=/cgi-bin/token"), "{text}");
        assert!(text.contains("status=200"), "{text}");
        assert!(text.contains("request_id="), "{text}");
        let boom = text
            .lines()
            .find(|l| l.contains("path=/boom"))
            .expect("5xx logged");
        assert!(
            boom.contains("ERROR") && boom.contains("status=500"),
            "{boom}"
        );
        assert!(boom.contains("Internal Server Error"), "{boom}");
    }
}
