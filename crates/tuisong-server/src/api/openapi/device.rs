//! The operations of `/client/v1` (`api/client.rs`), the device API, with the device
//! token; and its WebSocket upgrade (`/client/v1/ws`, frames in docs/PROTOCOL.md).

use super::op::{Caller, Op, add, object, path_param, query_param, schema_ref, uint};
use serde_json::{Map, Value, json};

const TAG: &str = "client";

fn msgid() -> Value {
    path_param("msgid", "the message id (a number; anything else is 404)")
}

fn appid_body(extra: Value) -> Value {
    let mut props = json!({"appid": {"type": "string", "minLength": 1}});
    if let (Value::Object(p), Value::Object(e)) = (&mut props, extra) {
        p.extend(e);
    }
    object(&["appid"], props)
}

pub fn paths(paths: &mut Map<String, Value>) {
    let dev = Caller::Device;
    let decisions =
        json!({"type": ["object", "null"], "additionalProperties": {"enum": ["accept", "reject"]}});
    add(
        paths,
        "/client/v1/users",
        "post",
        Op::new(
            TAG,
            Caller::Anyone,
            "Register a device user (limited per client address)",
            object(
                &["user_id", "nickname", "device_token"],
                json!({
                    "user_id": {"type": "string"},
                    "nickname": {"type": "string"},
                    "device_token": {"type": "string"},
                }),
            ),
        )
        .body(object(
            &["nickname"],
            json!({"nickname": {"type": "string"}}),
        ))
        .errors(&[400, 429]),
    );
    add(
        paths,
        "/client/v1/me",
        "get",
        Op::new(
            TAG,
            dev,
            "Who the device token belongs to",
            object(
                &["user_id", "nickname"],
                json!({"user_id": {"type": "string"}, "nickname": {"type": "string"}}),
            ),
        ),
    );
    add(
        paths,
        "/client/v1/login",
        "post",
        Op::new(
            TAG,
            dev,
            "wx.login: a login code for a mini program (limited per client address)",
            object(
                &["code", "errMsg"],
                json!({"code": {"type": "string"}, "errMsg": {"const": "login:ok"}}),
            ),
        )
        .body(appid_body(json!({})))
        .errors(&[400, 404, 429]),
    );
    add(
        paths,
        "/client/v1/subscribe",
        "post",
        Op::new(
            TAG,
            dev,
            "wx.requestSubscribeMessage: the prompt and the user's answers",
            json!({
                "type": "object",
                "description": "errMsg, then each template id → accept/reject/filter; a refused prompt has errMsg and errCode instead",
                "required": ["errMsg"],
                "properties": {"errMsg": {"type": "string"}, "errCode": {"type": "integer"}},
                "additionalProperties": true,
            }),
        )
        .body(appid_body(json!({
            "tmplIds": {"type": ["array", "string", "null"], "items": {"type": "string"}},
            "decisions": decisions,
            "keep": {"type": ["boolean", "null"]},
        })))
        .errors(&[400, 404]),
    );
    add(
        paths,
        "/client/v1/settings",
        "get",
        Op::new(
            TAG,
            dev,
            "wx.getSetting: the user's subscription settings for an app",
            schema_ref("Settings"),
        )
        .params(vec![json!({
            "name": "appid", "in": "query", "required": true,
            "description": "the mini program", "schema": {"type": "string", "minLength": 1},
        })])
        .errors(&[400, 404]),
    );
    add(
        paths,
        "/client/v1/settings",
        "put",
        Op::new(
            TAG,
            dev,
            "The settings page: main switch, per-template switches, quiet hours",
            schema_ref("Settings"),
        )
        .body(appid_body(json!({
            "mainSwitch": {"type": ["boolean", "null"]},
            "itemSettings": decisions,
            "quietHours": {"oneOf": [schema_ref("QuietHours"), {"type": "null"}]},
        })))
        .errors(&[400, 404]),
    );
    add(
        paths,
        "/client/v1/inbox",
        "get",
        Op::new(
            TAG,
            dev,
            "The inbox after a cursor, as the WebSocket would send it",
            object(
                &["entries", "cursor", "more"],
                json!({
                    "entries": {"type": "array", "items": {"type": "object", "additionalProperties": true, "description": "device frames (docs/PROTOCOL.md)"}},
                    "cursor": {"type": "integer"},
                    "more": {"type": "boolean"},
                }),
            ),
        )
        .params(vec![
            query_param("cursor", "the last seq seen (default 0)", uint()),
            query_param("limit", "at most this many (default 100, clamped to 1–500)", uint()),
        ])
        .errors(&[400]),
    );
    let app = object(
        &["appid", "name"],
        json!({"appid": {"type": "string"}, "name": {"type": "string"}}),
    );
    add(
        paths,
        "/client/v1/apps",
        "get",
        Op::new(
            TAG,
            dev,
            "The mini programs a device can open",
            object(&["apps"], json!({"apps": {"type": "array", "items": app}})),
        ),
    );
    let template = object(
        &["priTmplId", "title", "type", "rows"],
        json!({
            "priTmplId": {"type": "string"},
            "title": {"type": "string"},
            "type": {"type": "integer"},
            "rows": {"type": "array", "items": schema_ref("Row")},
        }),
    );
    add(
        paths,
        "/client/v1/apps/{appid}/templates",
        "get",
        Op::new(
            TAG,
            dev,
            "A mini program's templates with example rows",
            object(
                &["appid", "name", "templates"],
                json!({
                    "appid": {"type": "string"},
                    "name": {"type": "string"},
                    "templates": {"type": "array", "items": template},
                }),
            ),
        )
        .params(vec![path_param("appid", "the mini program")])
        .errors(&[404]),
    );
    message_calls(paths);
    add(
        paths,
        "/client/v1/ws",
        "get",
        Op::new(
            TAG,
            dev,
            "The device WebSocket (frames in docs/PROTOCOL.md)",
            json!({}),
        )
        .params(vec![query_param(
            "token",
            "the device token, for browsers that cannot set the header",
            json!({"type": "string"}),
        )])
        .upgrade()
        .errors(&[503]),
    );
}

/// `/client/v1/messages/{msgid}/…`: the HTTP twins of the `ack` and `open` frames, and
/// "stop receiving this".
fn message_calls(paths: &mut Map<String, Value>) {
    let dev = Caller::Device;
    let device = json!({
        "name": "X-Device", "in": "header", "required": false,
        "description": "the device's name in the timeline (default http)",
        "schema": {"type": "string"},
    });
    add(
        paths,
        "/client/v1/messages/{msgid}/ack",
        "post",
        Op::new(
            TAG,
            dev,
            "Acknowledge a card (the first ack delivers it)",
            object(
                &["ok", "first_delivery"],
                json!({"ok": {"const": true}, "first_delivery": {"type": "boolean"}}),
            ),
        )
        .params(vec![msgid(), device.clone()])
        .errors(&[404]),
    );
    add(
        paths,
        "/client/v1/messages/{msgid}/open",
        "post",
        Op::new(
            TAG,
            dev,
            "Open a card",
            object(
                &["msgid", "appid"],
                json!({"msgid": {"type": "integer"}, "appid": {"type": "string"}, "page": {"type": ["string", "null"]}}),
            ),
        )
        .params(vec![msgid(), device])
        .errors(&[404, 409]),
    );
    add(
        paths,
        "/client/v1/messages/{msgid}/unsubscribe",
        "post",
        Op::new(
            TAG,
            dev,
            "Stop receiving this template (from a card)",
            object(
                &["template_id", "status"],
                json!({"template_id": {"type": "string"}, "status": {"const": "reject"}}),
            ),
        )
        .params(vec![msgid()])
        .errors(&[404]),
    );
}
