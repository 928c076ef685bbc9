//! The edge: what every handler shares, whichever caller it serves.
//!
//! - `auth`: who is calling — the WeChat dialect's `?access_token=`, and the Bearer
//!   extractors of the native dialects (app, device, operator);
//! - `fields`: a JSON object body and the field readers (`opt_str`, `bool_field`,
//!   `uint_field`, …), whose errors name the field;
//! - `send`: the send body both dialects read alike;
//! - `error`: one error mapping per dialect (WeChat `errcode` at HTTP 200 with ` rid:`;
//!   native `{"error": {"code", "message"}}` with a proper status);
//! - `render`: the JSON of domain records that several APIs show;
//! - `oversize`: a body over the 2 MB limit, answered in the caller's dialect;
//! - `limit`: per-caller rate limits — the client address, the 429 answer (the wrong
//!   credentials' guard is `crate::guard`).
//!
//! The edge depends on the state and on core, never on a handler module.

mod auth;
mod error;
mod fields;
pub mod limit;
pub mod oversize;
pub mod render;
mod send;

pub use auth::{Admin, AdminApp, BearerApp, DeviceUser, Params, bearer, param, query_app};
pub use error::{
    ApiError, ApiResult, WxResult, api_fixed, api_status, wx_err, wx_fixed, wx_ok, wx_reply,
};
pub use fields::{
    bool_field, decisions_field, json_object, msgid_of, opt_bool_field, opt_str, query_str,
    query_uint, required_str, str_or_empty, string_field, uint_field,
};
pub use send::{coerce_data, send_request};
