//! The OpenAPI 3.1 description of the native dialects — `/v1`, `/client/v1` and
//! `/admin` — served at `GET /v1/openapi.json` without credentials.
//!
//! The document is written here as a `serde_json::Value` tree, one file per caller next
//! to the routes it describes (`v1`, `device`, `admin`; `push` for the push-config
//! resource both `/v1` and `/admin` mount), the shared shapes and the error answers in
//! `schemas`, and the builders in `op`. The handlers build their bodies as JSON values
//! too, so there are no types to derive a schema from; `tests/api/openapi.rs` keeps the
//! document and the routes in sync (every `(method, path)` of `src/api` is described,
//! and nothing else), and `tests/openapi/run.sh` runs schemathesis against `/v1`.

mod admin;
mod device;
mod op;
mod push;
mod schemas;
mod v1;

use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

/// `GET /v1/openapi.json`.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/openapi.json", get(serve))
}

async fn serve() -> Json<Value> {
    Json(document().clone())
}

/// The document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

fn build() -> Value {
    let mut paths = Map::new();
    v1::paths(&mut paths);
    device::paths(&mut paths);
    admin::paths(&mut paths);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tuisong native API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The native dialects of tuisong: /v1 for app servers (the app's access token), /client/v1 for devices (a device token), /admin for the operator (the admin token). Errors are {\"error\": {\"code\", \"message\"}} with an HTTP status; the codes are listed in docs/API.md §4.8. The WeChat dialect (/cgi-bin, /sns, /wxaapi) follows WeChat's own documentation and is not described here.",
            "license": {"name": "see the repository"},
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "v1", "description": "app servers: Authorization: Bearer <access_token>"},
            {"name": "client", "description": "devices: Authorization: Bearer dt_…"},
            {"name": "admin", "description": "the operator: Authorization: Bearer <admin token>"},
        ],
        "paths": paths,
        "components": schemas::components(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in the document names a component that exists.
    #[test]
    fn every_reference_resolves() {
        fn walk(v: &Value, doc: &Value, bad: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let found = r.strip_prefix('#').and_then(|p| doc.pointer(p)).is_some();
                        if !found {
                            bad.push(r.clone());
                        }
                    }
                    m.values().for_each(|x| walk(x, doc, bad));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, doc, bad)),
                _ => {}
            }
        }
        let doc = document();
        let mut bad = Vec::new();
        walk(doc, doc, &mut bad);
        assert!(bad.is_empty(), "unresolved: {bad:?}");
    }

    #[test]
    fn every_path_parameter_is_declared_by_its_operations() {
        for (path, item) in document()["paths"].as_object().expect("paths") {
            let names: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            for (method, op) in item.as_object().expect("item") {
                for n in &names {
                    let declared = op["parameters"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "path" && p["name"] == *n));
                    assert!(declared, "{method} {path} lacks the path parameter {n}");
                }
            }
        }
    }
}
