//! The body of a send, read the same way by both dialects (the /v1 dialect then reads
//! its own extra fields): absent, `null` and `""` are "not given", numbers become text,
//! `color` and other extra fields are ignored (spec §3.2).

use super::fields::{opt_str, str_or_empty};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use tuisong_core::Error;
use tuisong_core::service::RawSend;
use tuisong_core::template::TemplateError;

/// `data` of a send: `{key: {"value": any}}`. A value that is a number or boolean is
/// turned into its text; a missing `value` or `null` counts as empty; extra fields
/// (`color`) are ignored (spec §3.2).
pub fn coerce_data(v: Option<&Value>) -> Result<BTreeMap<String, String>, Error> {
    let items = match v {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m,
        Some(Value::String(s)) if s.is_empty() => return Ok(BTreeMap::new()),
        Some(_) => return Err(Error::BadFormat("data must be an object".into())),
    };
    let mut out = BTreeMap::new();
    for (key, item) in items {
        let value = match item {
            Value::Object(fields) => match fields.get("value") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Array(_) | Value::Object(_)) => {
                    return Err(Error::Template(TemplateError::DataInvalid {
                        key: key.clone(),
                        error: tuisong_core::keyword::KeywordError::Invalid,
                        reason: "must be a string, a number or a boolean".into(),
                    }));
                }
            },
            _ => String::new(),
        };
        out.insert(key.clone(), value);
    }
    Ok(out)
}

/// A send body in either dialect (the /v1 dialect adds `idempotency_key` and the rest).
pub fn send_request(b: &Map<String, Value>) -> Result<RawSend, Error> {
    Ok(RawSend {
        touser: str_or_empty(b, "touser"),
        template_id: str_or_empty(b, "template_id"),
        page: opt_str(b, "page"),
        data: coerce_data(b.get("data"))?,
        miniprogram_state: opt_str(b, "miniprogram_state"),
        lang: opt_str(b, "lang"),
        ..RawSend::default()
    })
}
