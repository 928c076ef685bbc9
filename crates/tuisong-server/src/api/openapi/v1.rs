//! The operations of `/v1` (`api/v1.rs`), for app servers, with the app's access token.

use super::op::{Caller, Op, add, object, path_param, query_param, schema_ref, uint};
use serde_json::{Map, Value, json};

const TAG: &str = "v1";

fn msgid() -> Value {
    path_param("msgid", "the message id (a number; anything else is 404)")
}

pub fn paths(paths: &mut Map<String, Value>) {
    let app = Caller::App;
    add(
        paths,
        "/v1/openapi.json",
        "get",
        Op::new(
            TAG,
            Caller::Anyone,
            "This document (OpenAPI 3.1)",
            json!({"type": "object", "required": ["openapi"], "additionalProperties": true}),
        ),
    );
    add(
        paths,
        "/v1/messages",
        "post",
        Op::new(
            TAG,
            app,
            "Send a subscription message",
            schema_ref("SendResult"),
        )
        .body(schema_ref("SendRequest"))
        .errors(&[400, 403, 404, 409, 429]),
    );
    let status = json!({"enum": ["scheduled", "held", "accepted", "delivered", "recalled", "expired", "cancelled"]});
    add(
        paths,
        "/v1/messages",
        "get",
        Op::new(
            TAG,
            app,
            "List messages, newest first",
            object(
                &["messages", "next_before"],
                json!({
                    "messages": {"type": "array", "items": schema_ref("Message")},
                    "next_before": {"type": ["integer", "null"], "description": "pass as before= for the next page"},
                }),
            ),
        )
        .params(vec![
            query_param("status", "only messages in this status", status),
            query_param("template_id", "only this template", json!({"type": "string"})),
            query_param("touser", "only this openid", json!({"type": "string"})),
            query_param("before", "only msgids below this", uint()),
            query_param("limit", "page size (default 50, clamped to 1–500)", uint()),
        ])
        .errors(&[400]),
    );
    let secs = json!({"type": "integer", "minimum": 0, "maximum": i64::MAX / 1000, "description": "Unix seconds"});
    add(
        paths,
        "/v1/stats",
        "get",
        Op::new(
            TAG,
            app,
            "Analytics: counters by hour or day and the funnel",
            schema_ref("StatsReport"),
        )
        .params(vec![
            query_param(
                "template_id",
                "only this template",
                json!({"type": "string"}),
            ),
            query_param("from", "start (default: to minus 7 days)", secs.clone()),
            query_param(
                "to",
                "end (default: an hour from now); at most 400 days after from",
                secs,
            ),
            query_param(
                "granularity",
                "bucket size (default hour)",
                json!({"enum": ["hour", "day"]}),
            ),
        ])
        .errors(&[400]),
    );
    let mut with_timeline = schema_ref("Message");
    with_timeline = json!({"allOf": [with_timeline, object(&["timeline"], json!({
        "timeline": {"type": "array", "items": schema_ref("TimelineEvent")},
    }))]});
    add(
        paths,
        "/v1/messages/{msgid}",
        "get",
        Op::new(TAG, app, "One message with its timeline", with_timeline)
            .params(vec![msgid()])
            .errors(&[404]),
    );
    let stopped = object(
        &["msgid", "status"],
        json!({"msgid": {"type": "integer"}, "status": {"enum": ["cancelled", "recalled"]}}),
    );
    add(
        paths,
        "/v1/messages/{msgid}/cancel",
        "post",
        Op::new(
            TAG,
            app,
            "Cancel a message not yet in the inbox",
            stopped.clone(),
        )
        .params(vec![msgid()])
        .errors(&[404, 409]),
    );
    add(
        paths,
        "/v1/messages/{msgid}/recall",
        "post",
        Op::new(
            TAG,
            app,
            "Recall a message (tombstone to the devices)",
            stopped,
        )
        .params(vec![msgid()])
        .errors(&[404, 409]),
    );
    add(
        paths,
        "/v1/messages/{msgid}/conversions",
        "post",
        Op::new(
            TAG,
            app,
            "Record a conversion caused by a message",
            schema_ref("Ok"),
        )
        .params(vec![msgid()])
        .body(object(
            &["event"],
            json!({
                    "event": {"type": "string", "minLength": 1, "maxLength": 64, "description": "trimmed; no control characters"},
                    "value": {"type": ["number", "null"]},
                }),
        ))
        .errors(&[400, 404]),
    );
    add(
        paths,
        "/v1/consents/{openid}",
        "get",
        Op::new(
            TAG,
            app,
            "The user's consent ledger for the app",
            object(
                &["openid", "main_switch", "templates"],
                json!({
                    "openid": {"type": "string"},
                    "main_switch": {"type": "boolean"},
                    "templates": {"type": "array", "items": schema_ref("Consent")},
                }),
            ),
        )
        .params(vec![path_param("openid", "the user's openid for this app")])
        .errors(&[404]),
    );
    add(
        paths,
        "/v1/policy",
        "get",
        Op::new(TAG, app, "The app's push policy", schema_ref("Policy")),
    );
    add(
        paths,
        "/v1/policy",
        "put",
        Op::new(
            TAG,
            app,
            "Replace the push policy (missing fields take their defaults)",
            schema_ref("Policy"),
        )
        .body(schema_ref("Policy"))
        .errors(&[400]),
    );
    super::push::paths(paths, "/v1/push-config", TAG, app, &[]);
}
