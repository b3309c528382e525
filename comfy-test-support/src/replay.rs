//! Replays recorded ComfyUI HTTP exchanges (`fixtures/comfyui-*/NNN-*.json`)
//! through wiremock, matching requests EXACTLY as recorded.
//!
//! A mounted exchange matches only when the request has
//! - the recorded method;
//! - the recorded path, byte for byte, percent-encoding included
//!   (`workflows%2Fx.json` is not `workflows/x.json`). wiremock's own
//!   `matchers::path` compares `request.url.path()`, which keeps the encoding
//!   as sent (wiremock 0.6.5 `matchers.rs`, `impl Match for PathExactMatcher`);
//!   [`RawPath`] does the same comparison explicitly so the intent is visible
//!   and does not depend on wiremock internals;
//! - every recorded query pair (`query_param`) and no other pair
//!   ([`ExactQuery`]);
//! - the recorded body: JSON equality for JSON bodies (numbers compared by
//!   value, so `5` equals `5.0`), byte equality for raw text bodies, and an
//!   empty body when none was recorded. For `POST /prompt` bodies recorded
//!   without a `prompt_id`, a `prompt_id` the adapter generated is tolerated
//!   but must be a canonical UUID.
//!
//! Each mount is named `"<version> <file>"`, so a verification failure names
//! the version and the fixture.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_adapter::model::server::{Capabilities, Line};
use comfy_adapter::releases::RELEASES;
use comfy_adapter::{ComfyAdapter, Timeouts};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use wiremock::matchers::{method, query_param};
use wiremock::{Match, Mock, MockBuilder, MockServer, Request, ResponseTemplate, Times};

/// Every recorded ComfyUI version, oldest first (the rows of
/// `comfy_adapter::releases::RELEASES`).
pub const VERSIONS: [&str; RELEASES.len()] = {
    let mut v = [""; RELEASES.len()];
    let mut i = 0;
    while i < RELEASES.len() {
        v[i] = RELEASES[i].version;
        i += 1;
    }
    v
};

/// (frontend version, ComfyUI release whose fixtures hold its object_info):
/// the three frontends whose prompts are recorded in `workflows/api-ground-truth/`.
pub const PAIRS: [(&str, &str); 3] = [
    ("1.36.14", "0.9.2"),
    ("1.37.11", "0.11.1"),
    ("1.48.7", "0.33.0"),
];

/// The template workflows under `workflows/ui/`.
pub const WORKFLOWS: [&str; 5] = [
    "image_flux2_klein_text_to_image",
    "image_flux2_text_to_image_9b",
    "tiny_bypass_mute",
    "video_ltx2_t2v",
    "video_ltx2_t2v_distilled",
];

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A JSON file, or a panic naming it.
pub fn read_json(p: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `fixtures/comfyui-<version>/`.
pub fn fixture_dir(version: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
        .join(format!("comfyui-{version}"))
}

/// One recorded HTTP exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The ComfyUI version folder it came from.
    pub version: String,
    /// File stem (`023-run-success-submit`).
    pub file: String,
    /// The whole file.
    pub raw: Value,
}

/// Every fixture file of a version as `(file stem, contents)`, in order.
pub fn all_fixtures(version: &str) -> Vec<(String, Value)> {
    let dir = fixture_dir(version);
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{version}: cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("{version}: {stem} is not JSON: {e}"));
            (stem, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The one fixture file (HTTP exchange or WebSocket trace) whose name starts
/// with `name_prefix` (`"024-"`), as `(file stem, contents)`.
pub fn read_fixture(version: &str, name_prefix: &str) -> (String, Value) {
    let dir = fixture_dir(version);
    let mut hits: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{version}: cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(name_prefix) && name.ends_with(".json")
        })
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "{version}: expected exactly one fixture starting with {name_prefix:?}, found {hits:?}"
    );
    let file = hits.pop().unwrap();
    let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
    let raw: Value = serde_json::from_slice(&std::fs::read(&file).unwrap())
        .unwrap_or_else(|e| panic!("{version}: {stem} is not JSON: {e}"));
    (stem, raw)
}

/// Loads the exchange whose file name starts with `name_prefix` (`"023-"`).
/// Refuses WebSocket traces and the synthesized `016` summary.
pub fn load(version: &str, name_prefix: &str) -> Exchange {
    let (stem, raw) = read_fixture(version, name_prefix);
    assert!(
        !stem.contains("-ws-"),
        "{version}: {stem} is a WebSocket trace, not an HTTP exchange"
    );
    assert!(
        !stem.starts_with("016-"),
        "{version}: {stem} is a synthesized summary, not a real response: never mount it"
    );
    assert_eq!(
        raw["comfyui_version"].as_str(),
        Some(version),
        "{version}: {stem} records another version"
    );
    Exchange {
        version: version.to_owned(),
        file: stem,
        raw,
    }
}

impl Exchange {
    /// `"<version> <file>"`, for mock names and assertion messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.version, self.file)
    }

    /// Request method (`GET`, `POST`, `DELETE`).
    pub fn method(&self) -> &str {
        self.raw["request"]["method"].as_str().unwrap()
    }

    /// Request path exactly as sent on the wire (percent-encoded).
    pub fn path(&self) -> &str {
        self.raw["request"]["path"].as_str().unwrap()
    }

    /// Request query pairs (decoded).
    pub fn query(&self) -> BTreeMap<String, String> {
        self.raw["request"]["query"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Request body: JSON, a raw text string, or null.
    pub fn request_body(&self) -> &Value {
        &self.raw["request"]["body"]
    }

    /// Response status.
    pub fn status(&self) -> u16 {
        u16::try_from(self.raw["response"]["status"].as_u64().unwrap()).unwrap()
    }

    /// Response body as recorded (JSON, text, or a binary placeholder).
    pub fn response_body(&self) -> &Value {
        &self.raw["response"]["body"]
    }

    /// A recorded response header (lower-case name).
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.raw["response"]["headers"]
            .get(name)
            .and_then(Value::as_str)
    }

    /// `N` of a `{"_binary_bytes": N, ...}` placeholder body.
    pub fn binary_len(&self) -> Option<usize> {
        self.response_body()
            .get("_binary_bytes")
            .and_then(Value::as_u64)
            .map(|n| usize::try_from(n).unwrap())
    }

    /// A derived exchange with one more query pair (the file is not changed).
    pub fn with_query(mut self, key: &str, value: &str) -> Self {
        let q = self.raw["request"]["query"].as_object_mut().unwrap();
        q.insert(key.to_owned(), Value::String(value.to_owned()));
        self.file.push_str(&format!(" (derived: +{key}={value:?})"));
        self
    }

    /// A derived exchange served under a path prefix (a reverse proxy).
    pub fn with_path_prefix(mut self, prefix: &str) -> Self {
        let p = format!("{prefix}{}", self.path());
        self.raw["request"]["path"] = Value::String(p);
        self.file.push_str(&format!(" (derived: under {prefix})"));
        self
    }

    /// A derived exchange with another request body.
    pub fn with_request_body(mut self, body: Value) -> Self {
        self.raw["request"]["body"] = body;
        self.file.push_str(" (derived body)");
        self
    }

    /// A derived exchange with another response body.
    pub fn with_response_body(mut self, body: Value) -> Self {
        self.raw["response"]["body"] = body;
        self.file.push_str(" (derived response)");
        self
    }
}

/// Matches `request.url.path()` (percent-encoding as sent) to a string.
#[derive(Debug)]
pub struct RawPath(pub String);

impl Match for RawPath {
    fn matches(&self, request: &Request) -> bool {
        request.url.path() == self.0
    }
}

/// Matches when the request's query pairs are exactly these: no missing,
/// no extra, no repeated key.
#[derive(Debug)]
pub struct ExactQuery(pub BTreeMap<String, String>);

impl Match for ExactQuery {
    fn matches(&self, request: &Request) -> bool {
        let pairs: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
        let set: BTreeMap<String, String> = pairs.iter().cloned().collect();
        set.len() == pairs.len() && set == self.0
    }
}

/// Matches a request without a body.
#[derive(Debug)]
pub struct EmptyBody;

impl Match for EmptyBody {
    fn matches(&self, request: &Request) -> bool {
        request.body.is_empty()
    }
}

/// Matches a raw body byte for byte.
#[derive(Debug)]
pub struct RawBody(pub Vec<u8>);

impl Match for RawBody {
    fn matches(&self, request: &Request) -> bool {
        request.body == self.0
    }
}

/// Matches a JSON body equal to `expected` (numbers by value). With
/// `generated_prompt_id`, a top-level `prompt_id` absent from `expected` is
/// allowed in the request when it is a canonical UUID.
#[derive(Debug)]
pub struct JsonBody {
    pub expected: Value,
    pub generated_prompt_id: bool,
}

impl Match for JsonBody {
    fn matches(&self, request: &Request) -> bool {
        let Ok(mut actual) = serde_json::from_slice::<Value>(&request.body) else {
            return false;
        };
        if self.generated_prompt_id
            && self.expected.get("prompt_id").is_none()
            && let Some(obj) = actual.as_object_mut()
            && let Some(id) = obj.remove("prompt_id")
            && !id
                .as_str()
                .is_some_and(comfy_adapter::cancel_api_prompt_id_ok)
        {
            return false;
        }
        json_eq(&actual, &self.expected)
    }
}

/// JSON equality where numbers compare by value (`5 == 5.0`).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// How a mount checks the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCheck {
    /// As recorded (JSON / raw text / empty).
    Recorded,
    /// Not checked (the multipart upload, stored as a description).
    Skip,
}

/// The response the exchange recorded: status, `content-type` (and the other
/// kept headers), and the body. JSON bodies are sent as JSON; a string body
/// is sent as JSON when the content-type is `application/json` (the userdata
/// write answer `"workflows/x.json"`), as raw text otherwise; a binary
/// placeholder becomes N zero bytes.
pub fn response(ex: &Exchange) -> ResponseTemplate {
    let mut t = ResponseTemplate::new(ex.status());
    let headers = ex.raw["response"]["headers"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (k, v) in &headers {
        if !k.eq_ignore_ascii_case("content-type") {
            t = t.insert_header(k.as_str(), v.as_str().unwrap());
        }
    }
    let mut content_type = ex.response_header("content-type").map(str::to_owned);
    let body = ex.response_body();
    let bytes: Vec<u8> = if let Some(n) = ex.binary_len() {
        if let Some(ct) = body.get("_content_type").and_then(Value::as_str) {
            content_type = Some(ct.to_owned());
        }
        vec![0; n]
    } else {
        match body {
            Value::String(s) => {
                if content_type
                    .as_deref()
                    .is_some_and(|ct| ct.starts_with("application/json"))
                {
                    serde_json::to_vec(s).unwrap()
                } else {
                    s.as_bytes().to_vec()
                }
            }
            Value::Null => Vec::new(),
            other => serde_json::to_vec(other).unwrap(),
        }
    };
    match content_type {
        Some(ct) => t.set_body_raw(bytes, &ct),
        None => t.set_body_bytes(bytes),
    }
}

/// A mock for `ex` with every matcher, not yet mounted.
pub fn mock_for(ex: &Exchange, body: BodyCheck) -> MockBuilder {
    let path = ex.path().to_owned();
    assert!(
        !path.contains('?'),
        "{}: recorded path has a query",
        ex.label()
    );
    let mut m = Mock::given(method(ex.method())).and(RawPath(path));
    let query = ex.query();
    for (k, v) in &query {
        m = m.and(query_param(k.as_str(), v.as_str()));
    }
    m = m.and(ExactQuery(query));
    if body == BodyCheck::Recorded {
        m = match ex.request_body() {
            Value::Null => m.and(EmptyBody),
            Value::String(s) => m.and(RawBody(s.as_bytes().to_vec())),
            json => m.and(JsonBody {
                expected: json.clone(),
                generated_prompt_id: ex.method() == "POST" && ex.path() == "/prompt",
            }),
        };
    }
    m
}

/// Mounts `ex`, expected exactly once.
pub async fn mount(server: &MockServer, exchange: &Exchange) {
    mount_times(server, exchange, 1).await;
}

/// Mounts `ex` with an expected call count (`0`, `1`, `1..`).
pub async fn mount_times(server: &MockServer, exchange: &Exchange, times: impl Into<Times>) {
    mock_for(exchange, BodyCheck::Recorded)
        .respond_with(response(exchange))
        .expect(times)
        .named(exchange.label())
        .mount(server)
        .await;
}

/// Mounts `ex` matching method, path and query only (body not checked).
pub async fn mount_without_body(server: &MockServer, exchange: &Exchange, times: impl Into<Times>) {
    mock_for(exchange, BodyCheck::Skip)
        .respond_with(response(exchange))
        .expect(times)
        .named(format!("{} (body not checked)", exchange.label()))
        .mount(server)
        .await;
}

/// Any request no mounted exchange matches lands here: answered 418 and
/// expected never, so verification lists it.
pub async fn mount_fallback(server: &MockServer, version: &str) {
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(418).set_body_string("no recorded exchange matches this request"),
        )
        .with_priority(u8::MAX)
        .expect(0)
        .named(format!(
            "{version}: request that matches no recorded exchange"
        ))
        .mount(server)
        .await;
}

/// A server with the given fixtures of `version` mounted (each expected
/// once) and the fallback.
pub async fn server_with(version: &str, prefixes: &[&str]) -> MockServer {
    let server = MockServer::start().await;
    for p in prefixes {
        mount(&server, &load(version, p)).await;
    }
    mount_fallback(&server, version).await;
    server
}

/// The line each recorded version is on (`docs/versions.md`).
pub fn line_of(version: &str) -> Line {
    match version {
        "0.3.64" => Line::Legacy,
        "0.6.0" | "0.9.2" | "0.11.1" => Line::JobsApi,
        "0.26.0" | "0.33.0" => Line::CancelApi,
        other => panic!("no recorded version {other}"),
    }
}

/// What detection must report for each recorded version.
pub fn expected_capabilities(version: &str) -> Capabilities {
    let line = line_of(version);
    Capabilities {
        jobs_api: line != Line::Legacy,
        jobs_cancel_api: line == Line::CancelApi,
        cancelled_status: !matches!(version, "0.3.64" | "0.6.0"),
        uuid_prompt_ids: line == Line::CancelApi,
        missing_node_type_errors: line == Line::CancelApi,
        targeted_interrupt: true,
        multi_user: false,
        preview_metadata: true,
        max_upload_size: Some(104_857_600),
    }
}

/// The adapter detection picks for `version`, built without probing
/// (detection itself is replayed by the `detect` tests).
pub fn adapter(server: &MockServer, version: &str) -> Arc<dyn ComfyAdapter> {
    adapter_on(server, version, line_of(version))
}

/// An adapter of a chosen line against `server`.
pub fn adapter_on(server: &MockServer, version: &str, line: Line) -> Arc<dyn ComfyAdapter> {
    comfy_adapter::connect(
        &server.uri(),
        line,
        expected_capabilities(version),
        Timeouts::default(),
        None,
    )
    .unwrap()
}

/// The requests `server` received that `pred` selects.
pub async fn received(server: &MockServer, pred: impl Fn(&Request) -> bool) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| pred(r))
        .collect()
}

/// The object body of a JSON value (panics naming `what`).
pub fn obj<'a>(v: &'a Value, what: &str) -> &'a Map<String, Value> {
    v.as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {v}"))
}
