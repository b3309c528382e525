//! Reading requests as ComfyUI's handlers do: JSON object bodies, query
//! maps, id lists, Python truthiness, canonical UUIDs.

use axum::body::Bytes;
use axum::extract::Query;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A query string as a map.
pub(crate) type Q = Query<HashMap<String, String>>;

/// The body as a JSON object (an empty body is an empty object); `None`
/// when it is not one.
pub(crate) fn parse_object(body: &Bytes) -> Option<Map<String, Value>> {
    if body.is_empty() {
        return Some(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

pub(crate) fn canonical_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

/// Python truthiness of a JSON value.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

pub(crate) fn id_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
