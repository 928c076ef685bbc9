//! Who is calling: the access token of the WeChat dialect (a query parameter), and the
//! `Authorization: Bearer …` extractors of the native dialects — an app's access token
//! (`BearerApp`), a device token (`DeviceUser`) and the operator's admin token (`Admin`,
//! `AdminApp`). Each runs one platform call (or the admin-token comparison) and rejects
//! with the native dialect's error.

use super::error::ApiError;
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use tuisong_core::Error;
use tuisong_core::ids::AppId;
use tuisong_core::store::User;

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The query string of a WeChat-dialect call; one that does not parse counts as empty
/// (its parameters are then "missing", which every endpoint reports with its own errcode).
pub type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// One query parameter of a WeChat-dialect call.
pub fn param<'a>(q: &'a Params, key: &str) -> Option<&'a str> {
    q.as_ref()
        .ok()
        .and_then(|Query(m)| m.get(key))
        .map(String::as_str)
}

/// The app of a WeChat-dialect call: `?access_token=…`.
pub async fn query_app(state: &AppState, q: &Params) -> Result<AppId, Error> {
    state.platform.authenticate(param(q, "access_token")).await
}

/// The app of a `/v1` call: `Authorization: Bearer <access_token>`.
pub struct BearerApp(pub AppId);

impl FromRequestParts<AppState> for BearerApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(BearerApp(
            state.platform.authenticate(bearer(&parts.headers)).await?,
        ))
    }
}

/// The user of a `/client/v1` call: `Authorization: Bearer dt_…`.
pub struct DeviceUser(pub User);

impl FromRequestParts<AppState> for DeviceUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(DeviceUser(
            state.platform.device_user(bearer(&parts.headers)).await?,
        ))
    }
}

/// The operator: `Authorization: Bearer <admin token>`.
pub struct Admin;

// TODO(core): who the operator is (the admin token and its comparison) is decided here,
// at the edge, while apps and devices are authenticated by `Platform`.
fn check_admin(state: &AppState, parts: &Parts) -> Result<(), ApiError> {
    let ip = super::limit::ClientIp::of_parts(parts).0;
    let guard = &state.client_limits.credentials;
    if guard.admit(ip, None).is_err() {
        return Err(Error::MinuteQuota.into());
    }
    let given = bearer(&parts.headers).unwrap_or("").as_bytes();
    let want = state.admin_token.expose().as_bytes();
    // The start refuses a short token; this guards the rule where it matters, so that an
    // empty token can never turn a request without credentials into the operator.
    if want.len() < crate::settings::MIN_ADMIN_TOKEN_LEN {
        return Err(Error::Unauthorized.into());
    }
    // Constant time: the comparison does not stop at the first differing byte.
    let same = given.len() == want.len()
        && given
            .iter()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        // A call with no credentials at all is a mistake, not a guess.
        if !given.is_empty() {
            guard.failed(ip, None, "admin token");
        }
        Err(Error::Unauthorized.into())
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check_admin(state, parts)?;
        Ok(Admin)
    }
}

/// The app named by the path (`/admin/apps/{appid}/…`) of an operator's call.
pub struct AdminApp(pub AppId);

impl FromRequestParts<AppState> for AdminApp {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Path(appid) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        check_admin(state, parts).map_err(IntoResponse::into_response)?;
        // TODO(core): a second service call — the app must exist before its push
        // config is touched; `Platform`'s push-config functions could check it.
        let app = state
            .platform
            .app(&appid)
            .await
            .map_err(|e| ApiError::from(e).into_response())?;
        Ok(AdminApp(app.appid))
    }
}
