//! The operations of `/admin` (`api/admin.rs`), the operator's API, with the admin token.

use super::op::{Caller, Op, add, object, path_param, schema_ref};
use serde_json::{Map, Value, json};

const TAG: &str = "admin";

fn appid() -> Value {
    path_param("appid", "the app")
}

pub fn paths(paths: &mut Map<String, Value>) {
    let admin = Caller::Admin;
    add(
        paths,
        "/admin/apps",
        "post",
        Op::new(
            TAG,
            admin,
            "Create an app (its secret is shown once here)",
            schema_ref("AppWithSecret"),
        )
        .body(object(&["name"], json!({"name": {"type": "string"}})))
        .errors(&[400]),
    );
    add(
        paths,
        "/admin/apps",
        "get",
        Op::new(
            TAG,
            admin,
            "Every app, without secrets",
            object(
                &["apps"],
                json!({"apps": {"type": "array", "items": schema_ref("App")}}),
            ),
        ),
    );
    add(
        paths,
        "/admin/apps/{appid}",
        "get",
        Op::new(TAG, admin, "One app, without its secret", schema_ref("App"))
            .params(vec![appid()])
            .errors(&[404]),
    );
    add(
        paths,
        "/admin/apps/{appid}/secret",
        "get",
        Op::new(
            TAG,
            admin,
            "One app with its secret",
            schema_ref("AppWithSecret"),
        )
        .params(vec![appid()])
        .errors(&[404]),
    );
    add(
        paths,
        "/admin/apps/{appid}/reset-secret",
        "post",
        Op::new(
            TAG,
            admin,
            "A new secret (the old one stops working)",
            schema_ref("AppWithSecret"),
        )
        .params(vec![appid()])
        .errors(&[404]),
    );
    add(
        paths,
        "/admin/apps/{appid}/console-token",
        "post",
        Op::new(
            TAG,
            admin,
            "An access token for the console to call the app's APIs",
            object(
                &["access_token", "expires_in"],
                json!({"access_token": {"type": "string"}, "expires_in": {"type": "integer"}}),
            ),
        )
        .params(vec![appid()])
        .errors(&[404]),
    );
    super::push::paths(
        paths,
        "/admin/apps/{appid}/push-config",
        TAG,
        admin,
        &[appid()],
    );
}
