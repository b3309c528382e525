//! One exchange in the fixture format of `fixtures/README.md`: what went on
//! the wire and what came back, with bodies as JSON, text or a binary marker.

use comfy_adapter::http::Response;
use reqwest::Method;
use serde_json::{Map, Value, json};

/// The response headers a fixture keeps (the ones that carry meaning to a
/// client; dates, lengths and server names change on every run).
const KEPT_HEADERS: &[&str] = &["content-type", "allow", "content-disposition"];

/// A request as the fixture records it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub(crate) method: Method,
    /// Exactly what goes on the wire (already percent-encoded).
    pub(crate) path: String,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) body: RequestBody,
}

/// What a request sends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RequestBody {
    None,
    /// Serialized as JSON.
    Json(Value),
    /// Sent as-is (malformed JSON, a userdata file).
    Text(String),
    /// A one-file multipart form; the fixture holds this description.
    Upload {
        description: String,
    },
}

impl Request {
    pub(crate) fn get(path: impl Into<String>) -> Self {
        Request {
            method: Method::GET,
            path: path.into(),
            query: Vec::new(),
            body: RequestBody::None,
        }
    }

    pub(crate) fn post(path: impl Into<String>, body: RequestBody) -> Self {
        Request {
            method: Method::POST,
            path: path.into(),
            query: Vec::new(),
            body,
        }
    }

    pub(crate) fn delete(path: impl Into<String>) -> Self {
        Request {
            method: Method::DELETE,
            path: path.into(),
            query: Vec::new(),
            body: RequestBody::None,
        }
    }

    pub(crate) fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    /// The `request` object of a fixture file.
    pub(crate) fn to_fixture(&self) -> Value {
        let query: Map<String, Value> = self
            .query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
            .collect();
        let body = match &self.body {
            RequestBody::None => Value::Null,
            RequestBody::Json(v) => v.clone(),
            RequestBody::Text(s) => Value::String(s.clone()),
            RequestBody::Upload { description } => Value::String(description.clone()),
        };
        json!({
            "method": self.method.as_str(),
            "path": self.path,
            "query": query,
            "headers": {},
            "body": body,
        })
    }
}

/// The `response` object of a fixture file.
pub(crate) fn response_fixture(resp: &Response) -> Value {
    let mut headers = Map::new();
    for name in KEPT_HEADERS {
        if let Some(v) = resp.headers.get(*name).and_then(|v| v.to_str().ok()) {
            headers.insert((*name).to_owned(), Value::String(v.to_owned()));
        }
    }
    let content_type = resp
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    json!({
        "status": resp.status,
        "headers": headers,
        "body": body_fixture(content_type, &resp.body),
    })
}

/// JSON when the server says JSON and it parses; text when there is no
/// content type or a textual one; otherwise a marker with the size.
pub(crate) fn body_fixture(content_type: Option<&str>, body: &[u8]) -> Value {
    let essence = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|ct| ct.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
        None => Value::String(String::from_utf8_lossy(body).into_owned()),
        Some(ct) if ct.starts_with("text/") => {
            Value::String(String::from_utf8_lossy(body).into_owned())
        }
        Some(_) => json!({
            "_binary_bytes": body.len(),
            "_content_type": content_type.unwrap_or_default(),
        }),
    }
}

/// The summary the recorded sets keep beside the full catalogue
/// (`object_info-summary`): node count, sorted class names and the distinct
/// sets of fields a node definition has.
pub(crate) fn object_info_summary(full: &Value) -> Value {
    let Some(nodes) = full.as_object() else {
        return json!({"node_count": 0, "node_classes": [], "field_sets": []});
    };
    let mut classes: Vec<&String> = nodes.keys().collect();
    classes.sort();
    let mut sets: Vec<String> = nodes
        .values()
        .filter_map(Value::as_object)
        .map(|def| {
            let mut keys: Vec<&str> = def.keys().map(String::as_str).collect();
            keys.sort_unstable();
            keys.join(",")
        })
        .collect();
    sets.sort();
    sets.dedup();
    json!({"node_count": nodes.len(), "node_classes": classes, "field_sets": sets})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_classified_as_the_recordings_are() {
        assert_eq!(
            body_fixture(Some("application/json; charset=utf-8"), br#"{"a":1}"#),
            json!({"a": 1})
        );
        assert_eq!(
            body_fixture(Some("application/json"), b"not json"),
            json!("not json")
        );
        assert_eq!(body_fixture(None, b""), json!(""));
        assert_eq!(
            body_fixture(
                Some("text/plain; charset=utf-8"),
                b"405: Method Not Allowed"
            ),
            json!("405: Method Not Allowed")
        );
        assert_eq!(
            body_fixture(Some("image/png"), &[0x89, b'P', b'N', b'G']),
            json!({"_binary_bytes": 4, "_content_type": "image/png"})
        );
    }

    #[test]
    fn the_summary_sorts_classes_and_dedups_field_sets() {
        let full = json!({
            "B": {"name": "B", "input": {}},
            "A": {"input": {}, "name": "A"},
            "C": {"name": "C"},
        });
        assert_eq!(
            object_info_summary(&full),
            json!({"node_count": 3, "node_classes": ["A", "B", "C"], "field_sets": ["input,name", "name"]})
        );
    }

    #[test]
    fn a_request_records_its_query_and_body() {
        let r = Request::get("/api/jobs")
            .query("limit", "2")
            .query("sort_order", "asc");
        assert_eq!(
            r.to_fixture(),
            json!({"method": "GET", "path": "/api/jobs", "query": {"limit": "2", "sort_order": "asc"}, "headers": {}, "body": null})
        );
    }
}
