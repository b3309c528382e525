//! What was wrong with a client's input, as the domain modules (model, scheduler,
//! progress) report it: the field to blame, what kind of problem it is and the message.
//! Only the HTTP layer (`error.rs`) turns an [`InputError`] into a status and a code.
//!
//! [`from_object`] reads a JSON object into a typed request (serde), and names the field
//! that failed by its path (`priority`, `progress.node`, `capabilities[2]`).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use serde_path_to_error::{Path, Segment};

/// A field of the input failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    /// The offending field, e.g. `priority`, `metadata.requires.comfyui`, `body`.
    pub field: String,
    /// What kind of problem it is.
    pub problem: Problem,
    /// Human-readable message.
    pub message: String,
}

/// The kinds of input problems the domain reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// A required field is absent or null.
    Missing,
    /// The field has the wrong JSON type.
    Type,
    /// The field has the wrong type or length where a display hint is read (progress).
    Value,
    /// The field is larger than `limit` bytes, serialized.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Not a valid user id.
    UserId,
    /// Not a valid workflow.
    Workflow,
    /// Not a priority 0–3.
    Priority,
    /// Not a valid error text.
    ErrorText,
    /// Not a valid worker id.
    WorkerId,
    /// Not a job id (UUID).
    JobId,
    /// Not a semver requirement.
    VersionRequirement,
    /// Not a valid idempotency key.
    IdempotencyKey,
    /// Not a usable file name or subfolder (`..`, absolute, control characters, too long).
    FileName,
    /// Not a SHA-256 (64 hex digits).
    Sha256,
    /// The body is not JSON (or nested deeper than it can be read back).
    Malformed,
}

impl InputError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, problem: Problem, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem,
            message: message.into(),
        }
    }

    /// `field` is larger than `limit` bytes.
    pub fn too_large(field: &str, limit: usize) -> Self {
        Self::new(
            field,
            Problem::TooLarge { limit },
            format!("`{field}` is larger than {limit} bytes"),
        )
    }
}

/// Reads `obj` into `T`. Fields are read in `order` (then any others), so when several are
/// wrong the first one in that order is named, whatever order the client sent them in.
/// A field that does not deserialize is handed to `blame` with its path (e.g.
/// `progress.node`) and the JSON value found there, which picks the problem and message.
pub fn from_object<T: DeserializeOwned>(
    mut obj: Map<String, Value>,
    order: &[&str],
    blame: impl FnOnce(&str, &Value) -> InputError,
) -> Result<T, InputError> {
    let mut ordered = Map::with_capacity(obj.len());
    for field in order {
        if let Some((k, v)) = obj.remove_entry(*field) {
            ordered.insert(k, v);
        }
    }
    ordered.extend(obj);
    let value = Value::Object(ordered);
    serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path();
        blame(&path.to_string(), at(&value, path))
    })
}

/// The value at `path` inside `root` (`null` where the path leads nowhere).
fn at<'a>(root: &'a Value, path: &Path) -> &'a Value {
    let mut v = root;
    for seg in path.iter() {
        let next = match seg {
            Segment::Map { key } => v.get(key.as_str()),
            Segment::Seq { index } => v.get(*index),
            Segment::Enum { .. } | Segment::Unknown => Some(v),
        };
        v = next.unwrap_or(&Value::Null);
    }
    v
}

/// `Err(missing)` when `obj` has no `field`, or it is null (absent and null mean the same).
pub fn require(obj: &Map<String, Value>, field: &str, message: &str) -> Result<(), InputError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(InputError::new(field, Problem::Missing, message)),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Probe {
        a: Option<u8>,
        b: Option<Vec<String>>,
        c: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        d: Option<String>,
    }

    fn blame_of(v: Value) -> (String, Value) {
        let Value::Object(obj) = v else {
            panic!("not an object")
        };
        let e = from_object::<Probe>(obj, &["a", "b", "c"], |path, found| {
            InputError::new(path, Problem::Type, found.to_string())
        })
        .unwrap_err();
        (e.field, serde_json::from_str(&e.message).unwrap())
    }

    #[test]
    fn names_the_path_and_hands_over_the_offending_value() {
        assert_eq!(blame_of(json!({"a": "x"})), ("a".into(), json!("x")));
        assert_eq!(blame_of(json!({"b": ["ok", 7]})), ("b[1]".into(), json!(7)));
        assert_eq!(blame_of(json!({"c": {"d": 3}})), ("c.d".into(), json!(3)));
    }

    #[test]
    fn the_first_wrong_field_in_the_given_order_is_named() {
        // Sent as c, a: still a is read first.
        let (field, _) = blame_of(json!({"c": {"d": 3}, "a": "x"}));
        assert_eq!(field, "a");
    }

    #[test]
    fn null_counts_as_missing() {
        let obj = json!({"a": null}).as_object().cloned().unwrap();
        assert_eq!(
            require(&obj, "a", "m").unwrap_err().problem,
            Problem::Missing
        );
        assert_eq!(require(&obj, "b", "m").unwrap_err().field, "b");
        let obj = json!({"a": 0}).as_object().cloned().unwrap();
        assert!(require(&obj, "a", "m").is_ok());
    }
}
