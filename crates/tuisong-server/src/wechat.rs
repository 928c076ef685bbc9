//! The WeChat dialect: `/cgi-bin/*`, `/sns/*`, `/wxaapi/newtmpl/*`, byte-compatible with
//! api.weixin.qq.com so that existing SDKs work by changing only the host. Every answer
//! is HTTP 200; errors carry `errcode`/`errmsg`. Unknown query parameters are ignored.

use crate::http::{json_object, opt_str, wx_reply};
use crate::state::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::any;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use tuisong_core::Error;
use tuisong_core::ids::AppId;
use tuisong_core::service::SendRequest;

/// The query string; one that does not parse counts as empty (its parameters are then
/// "missing", which every endpoint reports with its own errcode).
type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

fn param<'a>(q: &'a Params, key: &str) -> Option<&'a str> {
    q.as_ref()
        .ok()
        .and_then(|Query(m)| m.get(key))
        .map(String::as_str)
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cgi-bin/token", any(token))
        .route("/cgi-bin/stable_token", any(stable_token))
        .route("/sns/jscode2session", any(jscode2session))
        .route("/wxaapi/newtmpl/getcategory", any(get_category))
        .route("/wxaapi/newtmpl/getpubtemplatetitles", any(pub_titles))
        .route("/wxaapi/newtmpl/getpubtemplatekeywords", any(pub_keywords))
        .route("/wxaapi/newtmpl/addtemplate", any(add_template))
        .route("/wxaapi/newtmpl/deltemplate", any(del_template))
        .route("/wxaapi/newtmpl/gettemplate", any(get_template))
        .route("/cgi-bin/message/subscribe/send", any(send))
        .route("/cgi-bin/message/wxopen/template/send", any(withdrawn))
        .route(
            "/cgi-bin/message/wxopen/template/uniform_send",
            any(withdrawn),
        )
}

/// The template APIs answer a wrong method with errcode 404 (spec §4).
fn wrong_method() -> Response {
    crate::http::wx_fixed(404, "wrong method")
}

async fn authed(state: &AppState, q: &Params) -> Result<AppId, Error> {
    state.platform.authenticate(param(q, "access_token")).await
}

async fn token(State(state): State<AppState>, q: Params) -> Response {
    wx_reply(
        async {
            let t = state
                .platform
                .token(
                    param(&q, "grant_type"),
                    param(&q, "appid"),
                    param(&q, "secret"),
                )
                .await?;
            Ok(json!({"access_token": t.token, "expires_in": t.expires_in}))
        }
        .await,
    )
}

async fn stable_token(State(state): State<AppState>, method: Method, body: Bytes) -> Response {
    wx_reply(
        async {
            if method != Method::POST {
                return Err(Error::RequirePost);
            }
            let b = json_object(&body)?;
            let force = match b.get("force_refresh") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(v)) => *v,
                Some(Value::String(s)) => s == "true",
                Some(Value::Number(n)) => n.as_i64() == Some(1),
                Some(_) => return Err(Error::BadFormat("force_refresh must be a boolean".into())),
            };
            let t = state
                .platform
                .stable_token(
                    opt_str(&b, "grant_type").as_deref(),
                    opt_str(&b, "appid").as_deref(),
                    opt_str(&b, "secret").as_deref(),
                    force,
                )
                .await?;
            Ok(json!({"access_token": t.token, "expires_in": t.expires_in}))
        }
        .await,
    )
}

async fn jscode2session(State(state): State<AppState>, q: Params) -> Response {
    wx_reply(
        async {
            let s = state
                .platform
                .code_to_session(
                    param(&q, "appid"),
                    param(&q, "secret"),
                    param(&q, "js_code"),
                    param(&q, "grant_type"),
                )
                .await?;
            Ok(json!({"openid": s.openid, "session_key": s.session_key}))
        }
        .await,
    )
}

async fn get_category(State(state): State<AppState>, method: Method, q: Params) -> Response {
    if method != Method::GET {
        return wrong_method();
    }
    wx_reply(
        async {
            authed(&state, &q).await?;
            let data: Vec<Value> = state
                .platform
                .categories()
                .iter()
                .map(|c| json!({"id": c.id, "name": c.name}))
                .collect();
            Ok(json!({"errcode": 0, "errmsg": "ok", "data": data}))
        }
        .await,
    )
}

async fn pub_titles(State(state): State<AppState>, method: Method, q: Params) -> Response {
    if method != Method::GET {
        return wrong_method();
    }
    wx_reply(
        async {
            authed(&state, &q).await?;
            let (count, page) = state.platform.pub_titles(
                param(&q, "ids"),
                param(&q, "start"),
                param(&q, "limit"),
            )?;
            let data: Vec<Value> = page
                .iter()
                .map(|t| {
                    json!({"tid": t.tid, "title": t.title, "type": t.kind.code(),
                           "categoryId": t.category_id.to_string()})
                })
                .collect();
            Ok(json!({"errcode": 0, "errmsg": "ok", "count": count, "data": data}))
        }
        .await,
    )
}

async fn pub_keywords(State(state): State<AppState>, method: Method, q: Params) -> Response {
    if method != Method::GET {
        return wrong_method();
    }
    wx_reply(
        async {
            authed(&state, &q).await?;
            let t = state.platform.pub_keywords(param(&q, "tid"))?;
            let data: Vec<Value> = t
                .keywords
                .iter()
                .map(|k| json!({"kid": k.kid, "name": k.name, "example": k.example, "rule": k.rule.as_str()}))
                .collect();
            Ok(json!({"errcode": 0, "errmsg": "ok", "count": data.len(), "data": data}))
        }
        .await,
    )
}

/// Parses addtemplate's body: `tid` as a string (SDKs) or a number; `kidList` integers.
fn add_template_input(
    b: &serde_json::Map<String, Value>,
) -> Result<(u32, Vec<u32>, String), Error> {
    let tid = match b.get("tid") {
        Some(Value::String(s)) => s.trim().parse().map_err(|_| Error::TidInvalid)?,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(Error::TidInvalid)?,
        _ => return Err(Error::TidInvalid),
    };
    let kids = match b.get("kidList") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
            .collect::<Option<Vec<u32>>>()
            .ok_or(Error::KidListInvalid)?,
        _ => return Err(Error::KidListInvalid),
    };
    let scene = match b.get("sceneDesc") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(Error::SceneDescInvalid),
    };
    Ok((tid, kids, scene))
}

async fn add_template(
    State(state): State<AppState>,
    method: Method,
    q: Params,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return wrong_method();
    }
    wx_reply(
        async {
            let appid = authed(&state, &q).await?;
            let b = json_object(&body)?;
            let (tid, kids, scene) = add_template_input(&b)?;
            let t = state
                .platform
                .add_template(&appid, tid, &kids, &scene)
                .await?;
            Ok(json!({"errcode": 0, "errmsg": "ok", "priTmplId": t.id}))
        }
        .await,
    )
}

async fn del_template(
    State(state): State<AppState>,
    method: Method,
    q: Params,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return wrong_method();
    }
    wx_reply(
        async {
            let appid = authed(&state, &q).await?;
            let b = json_object(&body)?;
            let id = opt_str(&b, "priTmplId").ok_or(Error::PriTmplIdInvalid)?;
            state.platform.delete_template(&appid, &id).await?;
            Ok(json!({"errcode": 0, "errmsg": "ok"}))
        }
        .await,
    )
}

async fn get_template(State(state): State<AppState>, method: Method, q: Params) -> Response {
    if method != Method::GET {
        return wrong_method();
    }
    wx_reply(
        async {
            let appid = authed(&state, &q).await?;
            let list = state.platform.list_templates(&appid).await?;
            let data: Vec<Value> = list.iter().map(crate::render::template_json).collect();
            Ok(json!({"errcode": 0, "errmsg": "ok", "data": data}))
        }
        .await,
    )
}

/// `data` of a send: `{key: {"value": any}}`. A value that is a number or boolean is
/// turned into its text; a missing `value` or `null` counts as empty; extra fields
/// (`color`) are ignored (spec §3.2).
pub fn coerce_data(v: Option<&Value>) -> Result<BTreeMap<String, String>, Error> {
    let items = match v {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m,
        Some(Value::String(s)) if s.is_empty() => return Ok(BTreeMap::new()),
        Some(_) => return Err(Error::BadFormat("data must be an object".into())),
    };
    let mut out = BTreeMap::new();
    for (key, item) in items {
        let value = match item {
            Value::Object(fields) => match fields.get("value") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Array(_) | Value::Object(_)) => {
                    return Err(Error::DataInvalid {
                        key: key.clone(),
                        error: tuisong_core::keyword::KeywordError::Invalid,
                    });
                }
            },
            _ => String::new(),
        };
        out.insert(key.clone(), value);
    }
    Ok(out)
}

/// A send body in either dialect (the /v1 dialect adds `idempotency_key`).
pub fn send_request(b: &serde_json::Map<String, Value>) -> Result<SendRequest, Error> {
    Ok(SendRequest {
        touser: match b.get("touser") {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        },
        template_id: match b.get("template_id") {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        },
        page: opt_str(b, "page"),
        data: coerce_data(b.get("data"))?,
        miniprogram_state: opt_str(b, "miniprogram_state"),
        lang: opt_str(b, "lang"),
        ..SendRequest::default()
    })
}

async fn send(State(state): State<AppState>, method: Method, q: Params, body: Bytes) -> Response {
    wx_reply(
        async {
            let appid = authed(&state, &q).await?;
            if method != Method::POST {
                return Err(Error::RequirePost);
            }
            let b = json_object(&body)?;
            let req = send_request(&b)?;
            let r = send_counted(&state, &appid, req).await?;
            Ok(json!({"errcode": 0, "errmsg": "ok", "msgid": r.msgid.0}))
        }
        .await,
    )
}

/// A send in either dialect; a refused one is counted under its WeChat errcode.
pub async fn send_counted(
    state: &AppState,
    appid: &AppId,
    req: SendRequest,
) -> Result<tuisong_core::service::SendReceipt, Error> {
    let template_id = req.template_id.clone();
    match state.platform.send(appid, req).await {
        Ok(r) => Ok(r),
        Err(e) => {
            if !matches!(e, Error::Store(_)) {
                let (code, _) = tuisong_wire::errcode::wx_error(&e);
                state
                    .platform
                    .record_refusal(appid, &template_id, &code.to_string())
                    .await;
            }
            Err(e)
        }
    }
}

/// Template messages and uniform_send were withdrawn by WeChat: every call gets 45109.
async fn withdrawn() -> Response {
    crate::http::wx_fixed(
        45109,
        "this api has been offline, please use subscribe message",
    )
}
