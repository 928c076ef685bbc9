//! The OpenAPI document at `GET /v1/openapi.json` is in sync with the routes: every
//! `(method, path)` under `/v1`, `/client/v1` and `/admin` that `src/api` mounts is
//! described, and nothing else is. The routes are found by reading the source, so a new
//! route without an entry in `src/api/openapi` fails here.

use crate::helpers::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

const PREFIXES: &[&str] = &["/v1/", "/client/v1/", "/admin/"];
const METHODS: &[&str] = &["get", "post", "put", "delete", "patch"];

/// The text of the call whose `(` is at `open`, up to its matching `)`, string literals
/// skipped.
fn call_text(text: &str, open: usize) -> &str {
    let bytes = text.as_bytes();
    let (mut depth, mut in_str, mut i) = (0usize, false, open);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'(' if !in_str => depth += 1,
            b')' if !in_str => {
                depth -= 1;
                if depth == 0 {
                    return &text[open + 1..i];
                }
            }
            _ => {}
        }
        i += 1;
    }
    &text[open + 1..]
}

/// The methods a route's method router names: `get(…)`, `.post(…)`, … (`any(…)` is
/// `ANY`, which no description matches).
fn methods_of(router: &str) -> Vec<String> {
    let mut out = Vec::new();
    for m in METHODS.iter().chain(&["any"]) {
        let needle = format!("{m}(");
        for (i, _) in router.match_indices(&needle) {
            let before = router[..i].chars().next_back();
            if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                out.push(m.to_uppercase());
            }
        }
    }
    out
}

/// A route's path: a literal, or the push-config module's `base` / `format!("{base}/…")`
/// (returned as `Err(suffix)`, to be put under every base it is mounted at).
fn path_of(arg: &str) -> Option<Result<String, String>> {
    let arg = arg.trim();
    if let Some(q) = arg.strip_prefix('"') {
        return Some(Ok(q[..q.find('"')?].to_owned()));
    }
    if arg == "base" {
        return Some(Err(String::new()));
    }
    let start = arg.find("\"{base}")? + "\"{base}".len();
    let rest = &arg[start..];
    Some(Err(rest[..rest.find('"')?].to_owned()))
}

/// Every `(METHOD, path)` the source mounts under the native prefixes.
fn source_routes() -> BTreeSet<(String, String)> {
    fn scan(
        dir: &Path,
        literal: &mut Vec<(String, String)>,
        relative: &mut Vec<(String, String)>,
        bases: &mut Vec<String>,
    ) {
        for entry in std::fs::read_dir(dir).expect("read src/api") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                scan(&path, literal, relative, bases);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            for (i, _) in text.match_indices(".route(") {
                let call = call_text(&text, i + ".route".len());
                let (arg, router) = split_first_arg(call);
                let Some(p) = path_of(arg) else {
                    panic!(
                        "{}: a route whose path the scan cannot read: {call}",
                        path.display()
                    )
                };
                let methods = methods_of(router);
                assert!(
                    !methods.is_empty(),
                    "{}: no method in {call}",
                    path.display()
                );
                for m in methods {
                    match &p {
                        Ok(lit) => literal.push((m, lit.clone())),
                        Err(suffix) => relative.push((m, suffix.clone())),
                    }
                }
            }
            for (i, _) in text.match_indices("push_config::routes::<") {
                let rest = &text[i..];
                let open = rest.find('(').expect("call");
                let call = call_text(rest, open);
                let q = call.find('"').expect("a literal base") + 1;
                bases.push(call[q..q + call[q..].find('"').expect("end")].to_owned());
            }
        }
    }
    let (mut literal, mut relative, mut bases) = (Vec::new(), Vec::new(), Vec::new());
    scan(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api"),
        &mut literal,
        &mut relative,
        &mut bases,
    );
    assert!(
        bases.len() >= 2 && relative.len() >= 5,
        "the scan finds push-config: {bases:?} {relative:?}"
    );
    for b in &bases {
        literal.extend(relative.iter().map(|(m, s)| (m.clone(), format!("{b}{s}"))));
    }
    literal
        .into_iter()
        .filter(|(_, p)| PREFIXES.iter().any(|pre| p.starts_with(pre)))
        .collect()
}

/// `("/path", get(x).post(y))` → (`"/path"`, `get(x).post(y)`), at the first top-level comma.
fn split_first_arg(call: &str) -> (&str, &str) {
    let (mut depth, mut in_str) = (0i32, false);
    for (i, c) in call.char_indices() {
        match c {
            '"' => in_str = !in_str,
            '(' | '[' | '{' if !in_str => depth += 1,
            ')' | ']' | '}' if !in_str => depth -= 1,
            ',' if !in_str && depth == 0 => return (&call[..i], &call[i + 1..]),
            _ => {}
        }
    }
    (call, "")
}

fn spec_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if METHODS.contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn the_scan_reads_methods_and_push_config_bases() {
    let found = source_routes();
    for (m, p) in [
        ("POST", "/v1/messages"),
        ("GET", "/v1/messages"),
        ("PUT", "/v1/policy"),
        ("DELETE", "/v1/push-config"),
        ("POST", "/v1/push-config/test"),
        ("GET", "/admin/apps/{appid}/push-config/deliveries"),
        ("PUT", "/client/v1/settings"),
        ("GET", "/client/v1/ws"),
        ("GET", "/v1/openapi.json"),
    ] {
        assert!(
            found.contains(&(m.to_owned(), p.to_owned())),
            "{m} {p} not in {found:?}"
        );
    }
    assert!(found.len() >= 39, "{found:?}");
    assert!(!found.iter().any(|(_, p)| p.starts_with("/cgi-bin")));
}

#[tokio::test]
async fn the_served_document_is_openapi_3_1_and_describes_exactly_the_routes() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .expect("GET /v1/openapi.json");
    assert_eq!(r.status(), 200, "served without credentials");
    let doc: Value = r.json().await.expect("JSON");
    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1."), "{version}");

    let described = spec_routes(&doc);
    let mounted = source_routes();
    let undescribed: Vec<_> = mounted.difference(&described).collect();
    let unmounted: Vec<_> = described.difference(&mounted).collect();
    assert!(
        undescribed.is_empty() && unmounted.is_empty(),
        "routes without an entry in src/api/openapi: {undescribed:?}; entries without a route: {unmounted:?}"
    );

    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let responses = &op["responses"];
            assert!(
                responses.get("200").or(responses.get("101")).is_some(),
                "{method} {path}: a success answer"
            );
            assert!(
                responses.get("default").is_some(),
                "{method} {path}: the error answer"
            );
            let security = op["security"].as_array().expect("security");
            let open = path == "/v1/openapi.json" || path == "/client/v1/users";
            assert_eq!(
                security.is_empty(),
                open,
                "{method} {path}: security {security:?}"
            );
            let scheme = security
                .first()
                .and_then(|s| s.as_object()?.keys().next().cloned());
            let expected = if open {
                None
            } else if path.starts_with("/v1/") {
                Some("accessToken")
            } else if path.starts_with("/client/v1/") {
                Some("deviceToken")
            } else {
                Some("adminToken")
            };
            assert_eq!(scheme.as_deref(), expected, "{method} {path}");
        }
    }
    for scheme in ["accessToken", "deviceToken", "adminToken"] {
        assert_eq!(
            doc["components"]["securitySchemes"][scheme]["scheme"],
            "bearer"
        );
    }
}

#[tokio::test]
async fn the_error_schema_matches_what_the_server_answers() {
    let app = spawn_app().await;
    let doc: Value = app.get("/v1/openapi.json").await;
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    assert_eq!(
        error["properties"]["error"]["required"],
        serde_json::json!(["code", "message"])
    );
    let r = app
        .client
        .get(app.url("/v1/policy"))
        .send()
        .await
        .expect("GET /v1/policy");
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.expect("JSON");
    assert!(
        v["error"]["code"].is_string() && v["error"]["message"].is_string(),
        "{v}"
    );
}
