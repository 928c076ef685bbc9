//! Templates in the WeChat dialect (`/wxaapi/newtmpl/*`): the public library (categories,
//! titles, keywords) and the app's private templates (add, delete, list). These APIs
//! answer a wrong HTTP method with errcode 404 (spec §4).

use super::{WxCall, template_call};
use crate::edge::{WxResult, json_object, opt_str, param, query_app, render};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use serde_json::{Map, Value, json};
use tuisong_core::Error;
use tuisong_core::ids::AppId;
use tuisong_core::template::TemplateError;

/// A call on the public library: GET with a valid access token, then one lookup.
async fn library_call(
    state: &AppState,
    call: &WxCall,
    lookup: impl FnOnce() -> WxResult,
) -> Response {
    template_call(&call.method, Method::GET, async {
        query_app(state, &call.q).await?;
        lookup()
    })
    .await
}

pub async fn get_category(State(state): State<AppState>, call: WxCall) -> Response {
    library_call(&state, &call, || {
        let data: Vec<Value> = state
            .platform
            .categories()
            .iter()
            .map(|c| json!({"id": c.id, "name": c.name}))
            .collect();
        Ok(json!({"errcode": 0, "errmsg": "ok", "data": data}))
    })
    .await
}

pub async fn pub_titles(State(state): State<AppState>, call: WxCall) -> Response {
    library_call(&state, &call, || {
        let (count, page) = state.platform.pub_titles(
            param(&call.q, "ids"),
            param(&call.q, "start"),
            param(&call.q, "limit"),
        )?;
        let data: Vec<Value> = page
            .iter()
            .map(|t| {
                json!({"tid": t.tid, "title": t.title, "type": t.kind.code(),
                       "categoryId": t.category_id.to_string()})
            })
            .collect();
        Ok(json!({"errcode": 0, "errmsg": "ok", "count": count, "data": data}))
    })
    .await
}

pub async fn pub_keywords(State(state): State<AppState>, call: WxCall) -> Response {
    library_call(&state, &call, || {
        let t = state.platform.pub_keywords(param(&call.q, "tid"))?;
        let data: Vec<Value> = t
            .keywords
            .iter()
            .map(|k| json!({"kid": k.kid, "name": k.name, "example": k.example, "rule": k.rule.as_str()}))
            .collect();
        Ok(json!({"errcode": 0, "errmsg": "ok", "count": data.len(), "data": data}))
    })
    .await
}

/// Parses addtemplate's body: `tid` as a string (SDKs) or a number; `kidList` integers.
fn add_template_input(b: &Map<String, Value>) -> Result<(u32, Vec<u32>, String), Error> {
    let tid = match b.get("tid") {
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| Error::Template(TemplateError::TidInvalid))?,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(Error::Template(TemplateError::TidInvalid))?,
        _ => return Err(Error::Template(TemplateError::TidInvalid)),
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
            .ok_or(Error::Template(TemplateError::KidListInvalid))?,
        _ => return Err(Error::Template(TemplateError::KidListInvalid)),
    };
    let scene = match b.get("sceneDesc") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(Error::Template(TemplateError::SceneDescInvalid)),
    };
    Ok((tid, kids, scene))
}

/// A change to the app's private templates: POST with a valid access token and a JSON
/// object body, then one change.
async fn template_change(
    state: &AppState,
    call: &WxCall,
    body: &[u8],
    change: impl AsyncFnOnce(AppId, Map<String, Value>) -> WxResult,
) -> Response {
    template_call(&call.method, Method::POST, async {
        let appid = query_app(state, &call.q).await?;
        let b = json_object(body)?;
        change(appid, b).await
    })
    .await
}

pub async fn add_template(State(state): State<AppState>, call: WxCall, body: Bytes) -> Response {
    template_change(&state, &call, &body, async |appid, b| {
        let (tid, kids, scene) = add_template_input(&b)?;
        let t = state
            .platform
            .add_template(&appid, tid, &kids, &scene)
            .await?;
        Ok(json!({"errcode": 0, "errmsg": "ok", "priTmplId": t.id}))
    })
    .await
}

pub async fn del_template(State(state): State<AppState>, call: WxCall, body: Bytes) -> Response {
    template_change(&state, &call, &body, async |appid, b| {
        let id = opt_str(&b, "priTmplId").ok_or(Error::PriTmplIdInvalid)?;
        state.platform.delete_template(&appid, &id).await?;
        Ok(json!({"errcode": 0, "errmsg": "ok"}))
    })
    .await
}

pub async fn get_template(State(state): State<AppState>, call: WxCall) -> Response {
    template_call(&call.method, Method::GET, async {
        let appid = query_app(&state, &call.q).await?;
        let list = state.platform.list_templates(&appid).await?;
        let data: Vec<Value> = list.iter().map(render::template_json).collect();
        Ok(json!({"errcode": 0, "errmsg": "ok", "data": data}))
    })
    .await
}
