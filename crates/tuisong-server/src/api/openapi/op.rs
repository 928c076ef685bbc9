//! The small builders the path tables use: one operation, its parameters, its bodies and
//! its answers. Everything is plain `serde_json::Value`, so a table reads like the
//! document it produces.

use serde_json::{Map, Value, json};

/// Who may call an operation: the security scheme it names (see `schemas::security`).
#[derive(Clone, Copy)]
pub enum Caller {
    /// No credentials (`security: []`).
    Anyone,
    /// An app's access token (`/v1`).
    App,
    /// A device token `dt_…` (`/client/v1`).
    Device,
    /// The operator's admin token (`/admin`).
    Admin,
}

impl Caller {
    fn security(self) -> Value {
        match self {
            Caller::Anyone => json!([]),
            Caller::App => json!([{"accessToken": []}]),
            Caller::Device => json!([{"deviceToken": []}]),
            Caller::Admin => json!([{"adminToken": []}]),
        }
    }
}

/// A reference to a component schema.
pub fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A path parameter (always a required string; the handler reads the text).
pub fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": {"type": "string"},
    })
}

/// An optional query parameter with the given schema.
pub fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "schema": schema,
    })
}

/// A JSON object with the given properties, the required ones named; the server may add
/// fields (`additionalProperties: true`), so a client must ignore unknown ones.
pub fn object(required: &[&str], properties: Value) -> Value {
    json!({
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": true,
    })
}

/// A non-negative integer query parameter (`edge::query_uint`).
pub fn uint() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": u64::MAX})
}

/// A nullable value of the given JSON type.
pub fn nullable(ty: &str) -> Value {
    json!({"type": [ty, "null"]})
}

/// One operation.
pub struct Op {
    summary: &'static str,
    caller: Caller,
    tag: &'static str,
    params: Vec<Value>,
    body: Option<Value>,
    ok: Value,
    errors: Vec<u16>,
    upgrade: bool,
}

impl Op {
    /// An operation answering 200 with `ok` (a JSON schema).
    pub fn new(tag: &'static str, caller: Caller, summary: &'static str, ok: Value) -> Self {
        Op {
            summary,
            caller,
            tag,
            params: Vec::new(),
            body: None,
            ok,
            errors: Vec::new(),
            upgrade: false,
        }
    }

    pub fn params(mut self, params: Vec<Value>) -> Self {
        self.params = params;
        self
    }

    /// A required JSON request body.
    pub fn body(mut self, schema: Value) -> Self {
        self.body = Some(schema);
        self
    }

    /// The error statuses the operation documents besides the caller's own (401 for a
    /// bearer, 429 and 503 everywhere; `default` covers any other).
    pub fn errors(mut self, statuses: &[u16]) -> Self {
        self.errors = statuses.to_vec();
        self
    }

    /// A WebSocket upgrade: answered 101 Switching Protocols, with no JSON body.
    pub fn upgrade(mut self) -> Self {
        self.upgrade = true;
        self
    }

    pub fn build(self) -> Value {
        let mut responses = Map::new();
        if self.upgrade {
            responses.insert(
                "101".into(),
                json!({"description": "Switching Protocols: the WebSocket is open (send `Connection: Upgrade`, `Upgrade: websocket`)"}),
            );
        } else {
            responses.insert(
                "200".into(),
                json!({
                    "description": "OK",
                    "content": {"application/json": {"schema": self.ok}},
                }),
            );
        }
        let mut statuses = self.errors;
        if !matches!(self.caller, Caller::Anyone) {
            statuses.push(401);
        }
        statuses.extend([500, 503]);
        statuses.sort_unstable();
        statuses.dedup();
        for s in statuses {
            responses.insert(
                s.to_string(),
                json!({"$ref": format!("#/components/responses/E{s}")}),
            );
        }
        responses.insert(
            "default".into(),
            json!({"$ref": "#/components/responses/Error"}),
        );
        let mut op = Map::new();
        op.insert("summary".into(), json!(self.summary));
        op.insert("tags".into(), json!([self.tag]));
        op.insert("security".into(), self.caller.security());
        if !self.params.is_empty() {
            op.insert("parameters".into(), Value::Array(self.params));
        }
        if let Some(schema) = self.body {
            op.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "content": {"application/json": {"schema": schema}},
                }),
            );
        }
        op.insert("responses".into(), Value::Object(responses));
        Value::Object(op)
    }
}

/// Adds `op` under `path` and `method` (lower case) in `paths`.
pub fn add(paths: &mut Map<String, Value>, path: &str, method: &str, op: Op) {
    let item = paths
        .entry(path.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = item {
        m.insert(method.to_owned(), op.build());
    }
}
