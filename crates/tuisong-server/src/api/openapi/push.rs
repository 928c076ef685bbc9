//! The message-push config's five operations, described once for both doors
//! (`api/push_config.rs`): `/v1/push-config` with the app's token and
//! `/admin/apps/{appid}/push-config` with the admin token.

use super::op::{Caller, Op, add, object, query_param, schema_ref};
use serde_json::{Map, Value, json};

/// The operations under `base`; `params` are the base's own path parameters.
pub fn paths(
    paths: &mut Map<String, Value>,
    base: &str,
    tag: &'static str,
    caller: Caller,
    params: &[Value],
) {
    let p = || params.to_vec();
    let config = schema_ref("PushConfig");
    add(
        paths,
        base,
        "get",
        Op::new(
            tag,
            caller,
            "The app's message-push config (secrets masked)",
            config.clone(),
        )
        .params(p())
        .errors(&[404]),
    );
    add(
        paths,
        base,
        "put",
        Op::new(
            tag,
            caller,
            "Save the config after the receiver passes WeChat's GET handshake",
            config,
        )
        .params(p())
        .body(schema_ref("PushConfigInput"))
        .errors(&[400, 404]),
    );
    add(
        paths,
        base,
        "delete",
        Op::new(
            tag,
            caller,
            "Remove the config (events stop being queued)",
            schema_ref("Ok"),
        )
        .params(p())
        .errors(&[404]),
    );
    let mut with_limit = p();
    with_limit.push(query_param(
        "limit",
        "how many attempts (default 50; clamped to 1–500)",
        json!({"type": "integer", "minimum": 0}),
    ));
    add(
        paths,
        &format!("{base}/deliveries"),
        "get",
        Op::new(
            tag,
            caller,
            "The latest delivery attempts, newest first",
            object(
                &["attempts"],
                json!({"attempts": {"type": "array", "items": schema_ref("PushAttempt")}}),
            ),
        )
        .params(with_limit)
        .errors(&[400, 404]),
    );
    add(
        paths,
        &format!("{base}/test"),
        "post",
        Op::new(
            tag,
            caller,
            "Run the handshake against the saved config",
            object(
                &["ok", "url"],
                json!({"ok": {"const": true}, "url": {"type": "string"}}),
            ),
        )
        .params(p())
        .errors(&[400, 404]),
    );
}
