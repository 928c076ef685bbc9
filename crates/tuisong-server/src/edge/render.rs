//! JSON views of domain records that several APIs show (apps, templates, consents,
//! messages). Secrets appear only where a caller asks for them by name.

use serde_json::{Value, json};
use tuisong_core::consent::ConsentState;
use tuisong_core::store::{App, Message};
use tuisong_core::template::PrivateTemplate;

/// A private template as `gettemplate` lists it (spec §4), `keywordEnumValueList` only
/// when the template has enum keywords.
pub fn template_json(t: &PrivateTemplate) -> Value {
    let mut v = json!({
        "priTmplId": t.id,
        "title": t.title,
        "content": t.content(),
        "example": t.example(),
        "type": t.kind.code(),
    });
    let enums = t.enum_value_list();
    if !enums.is_empty() {
        v["keywordEnumValueList"] = enums
            .into_iter()
            .map(|(code, values)| json!({"keywordCode": code, "enumValueList": values}))
            .collect();
    }
    v
}

/// An app without its secret.
pub fn app_json(a: &App) -> Value {
    json!({
        "appid": a.appid,
        "name": a.name,
        "original_id": a.original_id,
        "created_at": a.created_at,
    })
}

/// An app with its secret (create, reset, reveal).
pub fn app_json_with_secret(a: &App) -> Value {
    let mut v = app_json(a);
    v["secret"] = json!(a.secret.expose());
    v
}

pub fn consent_json(c: &ConsentState, t: Option<&PrivateTemplate>) -> Value {
    json!({
        "template_id": c.template_id,
        "title": t.map(|t| t.title.as_str()),
        "type": t.map(|t| t.kind.code()),
        "status": c.status.map(|d| d.as_str()),
        "remaining": c.remaining,
        "switched_off": c.switched_off,
        "kept": c.kept.map(|d| d.as_str()),
        "granted_total": c.granted_total,
        "consumed_total": c.consumed_total,
        "updated_at": c.updated_at,
    })
}

pub fn message_json(m: &Message) -> Value {
    json!({
        "msgid": m.msgid,
        "touser": m.openid,
        "template_id": m.template_id,
        "title": m.title,
        "page": m.page,
        "rows": m.rows,
        "lang": m.lang,
        "miniprogram_state": m.miniprogram_state,
        "status": m.status.as_str(),
        "urgent": m.urgent,
        "created_at": m.created_at,
        "release_at": m.release_at,
        "expires_at": m.expires_at,
        "delivered_at": m.delivered_at,
    })
}
