//! `components` of the document: the three bearer schemes, the error answers and the
//! shapes of the records several operations share. The shapes follow what the handlers
//! write (`edge/render.rs`, `push_config::config_json`) and read (`edge/fields.rs`).
//! Answers allow more fields than they list (`additionalProperties: true`); request
//! bodies that the server reads with `deny_unknown_fields` (the policy) say so.

use super::op::{nullable, object, schema_ref};
use serde_json::{Map, Value, json};
use tuisong_core::policy::MAX_LIMIT;

/// The `components` object.
pub fn components() -> Value {
    json!({
        "securitySchemes": security(),
        "responses": responses(),
        "schemas": schemas(),
    })
}

fn security() -> Value {
    json!({
        "accessToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "An app's access token (`GET /cgi-bin/token` or `POST /cgi-bin/stable_token` with the appid and secret).",
        },
        "deviceToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "A device token `dt_…` (`POST /client/v1/users`).",
        },
        "adminToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "The operator's admin token (`<data dir>/admin-token`, or `TUISONG_ADMIN_TOKEN`).",
        },
    })
}

/// The error statuses the operations name, and `Error` for any other.
const ERRORS: &[(u16, &str)] = &[
    (
        400,
        "The request is malformed or a field is invalid (the message names it).",
    ),
    (401, "Credentials are missing, invalid or expired."),
    (
        403,
        "Refused, e.g. `no_consent`: the user has no subscription left.",
    ),
    (
        404,
        "No such resource (message, openid, template, app, config).",
    ),
    (
        409,
        "Conflict: `too_late`, `idempotency_conflict`, `template_limit`.",
    ),
    (
        429,
        "Rate limited or over a quota; `Retry-After` may say when to retry.",
    ),
    (500, "Internal error; the detail is in the server log."),
    (
        503,
        "The store is unavailable (`store_unavailable`, `Retry-After: 1`).",
    ),
];

fn responses() -> Value {
    let mut out = Map::new();
    let error_body = json!({"application/json": {"schema": schema_ref("Error")}});
    for (status, description) in ERRORS {
        let mut r = json!({"description": description, "content": error_body});
        if matches!(status, 429 | 503) {
            r["headers"] = json!({"Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer"},
            }});
        }
        out.insert(format!("E{status}"), r);
    }
    out.insert(
        "Error".into(),
        json!({"description": "An error of the native dialect.", "content": error_body}),
    );
    Value::Object(out)
}

fn int() -> Value {
    json!({"type": "integer"})
}

fn string() -> Value {
    json!({"type": "string"})
}

fn boolean() -> Value {
    json!({"type": "boolean"})
}

/// Unix milliseconds.
fn millis() -> Value {
    json!({"type": "integer", "description": "Unix milliseconds"})
}

fn nullable_millis() -> Value {
    json!({"type": ["integer", "null"], "description": "Unix milliseconds"})
}

const STATUSES: &[&str] = &[
    "scheduled",
    "held",
    "accepted",
    "delivered",
    "recalled",
    "expired",
    "cancelled",
];

fn schemas() -> Value {
    json!({
        "Error": object(&["error"], json!({
            "error": object(&["code", "message"], json!({
                "code": {"type": "string", "description": "Stable machine-readable code (docs/API.md §4.8)."},
                "message": {"type": "string"},
            })),
        })),
        "Ok": object(&["ok"], json!({"ok": {"const": true}})),
        "Row": object(&["key", "name", "value"], json!({
            "key": string(), "name": string(), "value": string(),
        })),
        "Message": message(),
        "TimelineEvent": object(&["at", "event"], json!({
            "at": millis(),
            "event": string(),
            "device": string(),
            "detail": string(),
        })),
        "SendRequest": send_request(),
        "SendResult": object(&["msgid", "status", "replayed"], json!({
            "msgid": int(),
            "status": {"enum": STATUSES},
            "replayed": boolean(),
        })),
        "Consent": consent(),
        "Cap": {
            "type": "object",
            "required": ["max", "window_secs"],
            "properties": {
                "max": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                "window_secs": {"type": "integer", "minimum": 1, "maximum": 31 * 86_400},
            },
            "additionalProperties": false,
        },
        "QuietHours": {
            "type": "object",
            "required": ["start", "end"],
            "properties": {
                "start": {"type": "string", "description": "HH:MM, local time at utc_offset"},
                "end": {"type": "string", "description": "HH:MM; may be before start (wraps midnight)"},
                "utc_offset": {"type": "string", "description": "±HH:MM, default +08:00"},
            },
            "additionalProperties": false,
        },
        "Policy": policy(),
        "StatsReport": stats_report(),
        "PushConfigInput": push_config_input(),
        "PushConfig": object(&["url", "token", "format", "mode", "extension_events", "updated_at"], json!({
            "url": string(),
            "token": {"type": "string", "description": "masked"},
            "encoding_aes_key": {"type": ["string", "null"], "description": "masked"},
            "format": {"enum": ["xml", "json"]},
            "mode": {"enum": ["plaintext", "compatible", "safe"]},
            "extension_events": boolean(),
            "updated_at": millis(),
        })),
        "PushAttempt": object(&["at", "outbox_id", "event", "openid", "attempt", "ok", "duration_ms", "outcome"], json!({
            "at": millis(),
            "outbox_id": int(),
            "event": string(),
            "openid": string(),
            "attempt": int(),
            "ok": boolean(),
            "http_status": nullable("integer"),
            "error": nullable("string"),
            "duration_ms": int(),
            "outcome": {"type": "string", "description": "delivered, retry at <ms>, gave up"},
        })),
        "App": object(&["appid", "name", "original_id", "created_at"], json!({
            "appid": string(),
            "name": string(),
            "original_id": string(),
            "created_at": millis(),
        })),
        "AppWithSecret": {"allOf": [
            schema_ref("App"),
            object(&["secret"], json!({"secret": string()})),
        ]},
        "Settings": object(&["mainSwitch", "itemSettings", "quietHours"], json!({
            "mainSwitch": boolean(),
            "itemSettings": {"type": "object", "additionalProperties": {"enum": ["accept", "reject"]}},
            "quietHours": {"oneOf": [schema_ref("QuietHours"), {"type": "null"}]},
        })),
    })
}

fn message() -> Value {
    object(
        &[
            "msgid",
            "touser",
            "template_id",
            "title",
            "rows",
            "status",
            "urgent",
            "created_at",
            "release_at",
        ],
        json!({
            "msgid": int(),
            "touser": {"type": "string", "description": "the openid"},
            "template_id": string(),
            "title": string(),
            "page": nullable("string"),
            "rows": {"type": "array", "items": schema_ref("Row")},
            "lang": string(),
            "miniprogram_state": string(),
            "status": {"enum": STATUSES},
            "urgent": boolean(),
            "created_at": millis(),
            "release_at": millis(),
            "expires_at": nullable_millis(),
            "delivered_at": nullable_millis(),
        }),
    )
}

/// A send as `POST /v1/messages` reads it (`edge/send.rs`, `api/v1.rs`): strings as
/// received, numbers turned into text where WeChat does; `data` keys the template lacks
/// are refused, unknown top-level fields are ignored.
fn send_request() -> Value {
    let text = json!({"type": ["string", "number", "boolean", "null"]});
    object(
        &["touser", "template_id"],
        json!({
            "touser": {"type": "string", "minLength": 1, "pattern": "\\S", "description": "the recipient's openid"},
            "template_id": {"type": "string", "minLength": 1, "pattern": "\\S", "description": "a private template id (priTmplId)"},
            "page": {"type": ["string", "null"]},
            "data": {
                "type": ["object", "null"],
                "description": "keyword → {\"value\": …}; numbers and booleans are read as text",
                "additionalProperties": {"type": "object", "properties": {"value": text}},
            },
            "miniprogram_state": {"type": ["string", "null"], "description": "developer, trial or formal"},
            "lang": {"type": ["string", "null"], "description": "zh_CN, en_US, zh_HK or zh_TW"},
            "idempotency_key": text,
            "urgent": {"type": ["boolean", "null"]},
            "ttl_seconds": {"type": ["integer", "null"], "minimum": 0},
            "send_at": {"type": ["integer", "null"], "minimum": 0, "description": "Unix seconds"},
        }),
    )
}

fn consent() -> Value {
    object(
        &[
            "template_id",
            "remaining",
            "switched_off",
            "granted_total",
            "consumed_total",
            "updated_at",
        ],
        json!({
            "template_id": string(),
            "title": nullable("string"),
            "type": {"type": ["integer", "null"], "description": "2 one-time, 3 long-term"},
            "status": {"enum": ["accept", "reject", null]},
            "remaining": int(),
            "switched_off": boolean(),
            "kept": {"enum": ["accept", "reject", null]},
            "granted_total": int(),
            "consumed_total": int(),
            "updated_at": millis(),
        }),
    )
}

/// The policy: every field optional in a `PUT` (a missing one takes its default), none
/// unknown; the answer has them all.
fn policy() -> Value {
    let cap = json!({"oneOf": [schema_ref("Cap"), {"type": "null"}]});
    let count = json!({"type": ["integer", "null"], "minimum": 1, "maximum": MAX_LIMIT, "description": "null: no limit"});
    json!({
        "type": "object",
        "properties": {
            "per_user": cap,
            "per_user_template": cap,
            "app_daily": count,
            "app_per_minute": count,
            "quiet_hours": {"oneOf": [schema_ref("QuietHours"), {"type": "null"}]},
            "urgent_daily_budget": {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT},
        },
        "additionalProperties": false,
    })
}

fn stats_report() -> Value {
    let counts = json!({"type": "object", "additionalProperties": {"type": "integer"}});
    let rate = nullable("number");
    object(
        &[
            "granularity",
            "from",
            "to",
            "series",
            "totals",
            "refused",
            "funnel",
        ],
        json!({
            "granularity": {"enum": ["hour", "day"]},
            "from": millis(),
            "to": millis(),
            "series": {"type": "array", "items": object(&["at", "counts"], json!({
                "at": millis(),
                "counts": counts,
            }))},
            "totals": counts,
            "refused": {"type": "object", "description": "refused sends by WeChat errcode", "additionalProperties": {"type": "integer"}},
            "funnel": object(&["prompts", "accepted", "sent", "delivered", "clicked", "converted"], json!({
                "prompts": int(),
                "accepted": int(),
                "sent": int(),
                "delivered": int(),
                "clicked": int(),
                "converted": int(),
                "conversion_value": {"type": "number"},
                "accept_rate": rate,
                "delivery_rate": rate,
                "click_rate": rate,
                "conversion_rate": rate,
            })),
        }),
    )
}

fn push_config_input() -> Value {
    let text = json!({"type": ["string", "null"]});
    object(
        &["url", "token", "format", "mode"],
        json!({
            "url": {"type": "string", "minLength": 1, "description": "the receiver; public unless push_allow_private"},
            "token": {"type": "string", "minLength": 1},
            "encoding_aes_key": text,
            "format": {"enum": ["xml", "json"]},
            "mode": {"enum": ["plaintext", "compatible", "safe"]},
            "extension_events": {"type": ["boolean", "null"]},
        }),
    )
}
