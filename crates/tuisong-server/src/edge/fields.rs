//! Reading request bodies and query strings: a JSON object body, and the field readers
//! every dialect uses. Each reader says in its error which field was wrong; none decides
//! anything beyond the wire shape.

use serde_json::{Map, Value};
use std::collections::HashMap;
use tuisong_core::Error;
use tuisong_core::consent::Decision;

/// Parses a JSON object body: empty → `EmptyBody`, not JSON or not an object → `BadFormat`.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::EmptyBody);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::BadFormat("the body must be a JSON object".into())),
        Err(e) => Err(Error::BadFormat(format!("the body is not JSON: {e}"))),
    }
}

/// A request body field as "given or not": absent, `null` and `""` are all "not given"
/// (spec §0, optional fields). Numbers and booleans are turned into their text.
pub fn opt_str(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// A string field that, when given, must be a string: absent, `null` and `""` are `None`.
pub fn string_field(b: &Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match b.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::Invalid(format!("{key} must be a string"))),
    }
}

/// A string field that must be there (it may be empty).
pub fn required_str(b: &Map<String, Value>, key: &str) -> Result<String, Error> {
    match b.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(Error::Invalid(format!("{key} is required"))),
    }
}

/// A string field, with anything that is not a string read as `""`.
pub fn str_or_empty(b: &Map<String, Value>, key: &str) -> String {
    match b.get(key) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// A boolean field: absent and `null` are `None`.
pub fn opt_bool_field(b: &Map<String, Value>, key: &str) -> Result<Option<bool>, Error> {
    match b.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(v)) => Ok(Some(*v)),
        Some(_) => Err(Error::Invalid(format!("{key} must be a boolean"))),
    }
}

/// A boolean field: absent and `null` are `false`.
pub fn bool_field(b: &Map<String, Value>, key: &str) -> Result<bool, Error> {
    Ok(opt_bool_field(b, key)?.unwrap_or(false))
}

/// A non-negative integer field: absent and `null` are `None`.
pub fn uint_field(b: &Map<String, Value>, key: &str) -> Result<Option<u64>, Error> {
    match b.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| Error::Invalid(format!("{key} must be a non-negative integer"))),
        Some(_) => Err(Error::Invalid(format!(
            "{key} must be a non-negative integer"
        ))),
    }
}

/// A map of template id → `"accept"` / `"reject"`: absent and `null` are empty.
pub fn decisions_field<C: FromIterator<(String, Decision)>>(
    b: &Map<String, Value>,
    key: &str,
) -> Result<C, Error> {
    match b.get(key) {
        None | Some(Value::Null) => Ok(std::iter::empty().collect()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(id, d)| {
                let d = d.as_str().and_then(Decision::parse).ok_or_else(|| {
                    Error::Invalid(format!("{key}.{id} must be \"accept\" or \"reject\""))
                })?;
                Ok((id.clone(), d))
            })
            .collect(),
        Some(_) => Err(Error::Invalid(format!("{key} must be an object"))),
    }
}

/// A query parameter as "given or not": absent and `""` are "not given".
pub fn query_str(q: &HashMap<String, String>, key: &str) -> Option<String> {
    q.get(key).filter(|v| !v.is_empty()).cloned()
}

/// A non-negative integer query parameter: absent and `""` are `None`.
pub fn query_uint(q: &HashMap<String, String>, key: &str) -> Result<Option<u64>, Error> {
    query_str(q, key)
        .map(|v| {
            v.parse()
                .map_err(|_| Error::Invalid(format!("{key} must be a non-negative integer")))
        })
        .transpose()
}

/// A msgid from a path: anything that is not a number is an unknown message (404).
pub fn msgid_of(s: &str) -> Result<u64, Error> {
    s.parse().map_err(|_| Error::NotFound("message"))
}
