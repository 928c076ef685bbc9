//! The error mapping of each dialect. WeChat: HTTP 200, numeric `errcode`, `errmsg` with a
//! ` rid: …` suffix (the table is `tuisong_wire::errcode::wx_error`). Native (/v1,
//! /client/v1, /admin): an HTTP status and a stable code in
//! `{"error": {"code", "message"}}` (`api_status`). Both are exhaustive `match`es, so a new
//! domain error forces each dialect to decide; a store failure is logged, never shown.
//!
//! A store that cannot be reached (`StoreError::Unavailable`: its connection died, it is
//! restarting, reconnects are backing off) is not an internal error: the request may be
//! retried. The native dialects answer 503 `store_unavailable` with `Retry-After: 1`; the
//! WeChat dialect answers what WeChat answers when it is busy, errcode -1 `system error`
//! (HTTP 200 — its SDKs retry -1), the same code as any other store failure there, since
//! WeChat has no code that tells the two apart.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tuisong_core::Error;
use tuisong_core::store::StoreError;
use tuisong_core::template::TemplateError;
use tuisong_wire::errcode;

/// What the real server is believed to send (spec §0).
const WX_CONTENT_TYPE: &str = "application/json; encoding=utf-8";

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A WeChat-dialect success body, HTTP 200.
pub fn wx_ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(WX_CONTENT_TYPE),
        )],
        body.to_string(),
    )
        .into_response()
}

/// A WeChat-dialect error: HTTP 200, numeric errcode, errmsg with a ` rid: …` suffix.
pub fn wx_err(e: Error) -> Response {
    let rid = errcode::rid(now_secs());
    log_store_failure(&e, Some(&rid));
    let (code, msg) = errcode::wx_error(&e);
    wx_ok(json!({"errcode": code, "errmsg": errcode::errmsg_with_rid(&msg, &rid)}))
}

/// A WeChat-dialect error that is not a domain error (wrong method, withdrawn API).
pub fn wx_fixed(code: i64, msg: &str) -> Response {
    let rid = errcode::rid(now_secs());
    wx_ok(json!({"errcode": code, "errmsg": errcode::errmsg_with_rid(msg, &rid)}))
}

/// Result of a WeChat-dialect handler.
pub type WxResult = Result<Value, Error>;

pub fn wx_reply(r: WxResult) -> Response {
    match r {
        Ok(v) => wx_ok(v),
        Err(e) => wx_err(e),
    }
}

/// An error of the native dialects (/v1, /client/v1, /admin).
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<tuisong_core::store::StoreError> for ApiError {
    fn from(e: tuisong_core::store::StoreError) -> Self {
        ApiError(Error::Store(e))
    }
}

/// HTTP status and stable machine-readable code of every domain error.
pub fn api_status(e: &Error) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match e {
        Error::AppIdMissing | Error::SecretMissing => (S::BAD_REQUEST, "credentials_missing"),
        Error::AppIdInvalid | Error::SecretInvalid => (S::UNAUTHORIZED, "invalid_credentials"),
        Error::GrantTypeInvalid => (S::BAD_REQUEST, "invalid_grant_type"),
        Error::RequirePost => (S::METHOD_NOT_ALLOWED, "method_not_allowed"),
        Error::MinuteQuota => (S::TOO_MANY_REQUESTS, "minute_quota"),
        Error::DailyQuota => (S::TOO_MANY_REQUESTS, "daily_quota"),
        Error::TokenMissing => (S::UNAUTHORIZED, "token_missing"),
        Error::TokenInvalid | Error::TokenNotLatest => (S::UNAUTHORIZED, "invalid_token"),
        Error::TokenExpired => (S::UNAUTHORIZED, "token_expired"),
        Error::CodeMissing | Error::CodeInvalid | Error::CodeUsed => {
            (S::BAD_REQUEST, "invalid_code")
        }
        Error::EmptyBody | Error::BadFormat(_) => (S::BAD_REQUEST, "invalid_request"),
        Error::Template(TemplateError::TidInvalid) => (S::BAD_REQUEST, "invalid_tid"),
        Error::Template(TemplateError::KidListInvalid) => (S::BAD_REQUEST, "invalid_kid_list"),
        Error::Template(TemplateError::SceneDescInvalid) => (S::BAD_REQUEST, "invalid_scene_desc"),
        Error::TemplateCap(_) => (S::CONFLICT, "template_limit"),
        Error::TemplateDuplicate => (S::CONFLICT, "template_duplicate"),
        Error::IdsMissing | Error::IdsInvalid => (S::BAD_REQUEST, "invalid_ids"),
        Error::StartInvalid | Error::LimitInvalid => (S::BAD_REQUEST, "invalid_paging"),
        Error::PriTmplIdInvalid | Error::TemplateIdInvalid => (S::NOT_FOUND, "unknown_template"),
        Error::OpenIdInvalid => (S::NOT_FOUND, "unknown_openid"),
        Error::PageInvalid => (S::BAD_REQUEST, "invalid_page"),
        Error::Template(TemplateError::DataInvalid { .. }) => (S::BAD_REQUEST, "invalid_data"),
        Error::NoConsent => (S::FORBIDDEN, "no_consent"),
        Error::IdempotencyConflict => (S::CONFLICT, "idempotency_conflict"),
        Error::Capped(_) => (S::TOO_MANY_REQUESTS, "rate_limited"),
        Error::TooLate(_) => (S::CONFLICT, "too_late"),
        Error::NotFound(_) => (S::NOT_FOUND, "not_found"),
        Error::Invalid(_) => (S::BAD_REQUEST, "invalid_request"),
        Error::Unauthorized => (S::UNAUTHORIZED, "unauthorized"),
        Error::Store(StoreError::Unavailable(_) | StoreError::Closed) => {
            (S::SERVICE_UNAVAILABLE, "store_unavailable")
        }
        Error::Store(StoreError::Backend(_) | StoreError::Corrupt(_)) => {
            (S::INTERNAL_SERVER_ERROR, "internal")
        }
    }
}

/// What the native dialects tell a caller when the store is down.
pub const STORE_UNAVAILABLE: &str = "the store is unavailable; retry";

/// Logs a store failure with the request's id: an outage as a warning (it is expected
/// while the database restarts, and each request says so), anything else as an error.
/// Store errors never hold a connection URL, so no password reaches the log.
fn log_store_failure(e: &Error, rid: Option<&str>) {
    let rid = rid.unwrap_or("-");
    match e {
        Error::Store(inner @ (StoreError::Unavailable(_) | StoreError::Closed)) => {
            crate::metrics::process().store_error(true);
            tracing::warn!(error = %inner, rid, "store unavailable");
        }
        Error::Store(inner) => {
            crate::metrics::process().store_error(false);
            tracing::error!(error = %inner, rid, "store failure");
        }
        _ => {}
    }
}

/// A native-dialect error body with the given status, code and message.
pub fn api_fixed(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = api_status(&self.0);
        let message = match &self.0 {
            Error::Store(_) if status == StatusCode::SERVICE_UNAVAILABLE => {
                log_store_failure(&self.0, None);
                let mut r = api_fixed(status, code, STORE_UNAVAILABLE);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
            Error::Store(_) => {
                log_store_failure(&self.0, None);
                "internal error; see the server log".to_owned()
            }
            Error::NoConsent => {
                "the user has no subscription left for this template (43101)".to_owned()
            }
            // WeChat says only "invalid"; the native dialect says why.
            Error::Template(TemplateError::DataInvalid { key, reason, .. }) => {
                format!("data.{key}.value: {reason}")
            }
            other => other.to_string(),
        };
        api_fixed(status, code, &message)
    }
}

pub type ApiResult<T = Value> = Result<axum::Json<T>, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> (StatusCode, Option<String>, Value) {
        let status = r.status();
        let retry = r
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().expect("ascii").to_owned());
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, retry, serde_json::from_slice(&bytes).expect("json"))
    }

    fn unavailable() -> Error {
        Error::Store(StoreError::Unavailable(
            "57P01: terminating connection due to administrator command".into(),
        ))
    }

    #[tokio::test]
    async fn an_unavailable_store_is_503_store_unavailable_in_the_native_dialects() {
        let (status, retry, v) = body(ApiError(unavailable()).into_response()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(
            v,
            json!({"error": {"code": "store_unavailable", "message": "the store is unavailable; retry"}}),
            "the detail stays in the log"
        );
    }

    #[tokio::test]
    async fn any_other_store_failure_stays_500_internal() {
        let e = Error::Store(StoreError::Backend("23505: duplicate key".into()));
        let (status, retry, v) = body(ApiError(e).into_response()).await;
        assert_eq!((status, retry), (StatusCode::INTERNAL_SERVER_ERROR, None));
        assert_eq!(v["error"]["code"], "internal");
        assert!(!v.to_string().contains("23505"));
    }

    #[tokio::test]
    async fn an_unavailable_store_is_errcode_minus_one_system_error_in_the_wechat_dialect() {
        let (status, _, v) = body(wx_err(unavailable())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["errcode"], -1);
        let msg = v["errmsg"].as_str().expect("errmsg");
        assert!(msg.starts_with("system error rid: "), "{msg}");
        assert!(!msg.contains("57P01"));
    }
}
