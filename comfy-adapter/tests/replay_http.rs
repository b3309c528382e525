//! HTTP replay tests: the adapter talks to a wiremock server that answers
//! with the recorded exchanges of every ComfyUI version (`fixtures/`), and
//! a request only matches when method, encoded path, query and body are
//! exactly what the real server received (see `support/mod.rs`). Every mount
//! is expected a number of times, and a fallback that must never be hit
//! catches any request that matches no recording.
//!
//! Each case is an `async fn case(version)`; `per_version!` turns it into
//! one `#[tokio::test]` per recorded version (`case::v0_26_0`), so a failure
//! names the version in the test name as well as in its message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_test_support::replay as support;

use bytes::Bytes;
use comfy_adapter::model::job::{CancelOutcome, JobQuery, JobState, JobStatus, SortOrder};
use comfy_adapter::model::output::{FileRef, FolderType, Output, OutputKind};
use comfy_adapter::model::prompt::{
    InputErrorKind, PromptRejected, PromptRequest, QueuePosition, RejectionKind,
};
use comfy_adapter::model::userdata::{ListOptions, Overwrite, UserdataPath, UserdataPathError};
use comfy_adapter::{
    ComfyError, DetectOptions, Line, Timeouts, UploadOptions, WriteOptions, normalize,
};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::{
    ExactQuery, Exchange, JsonBody, RawPath, VERSIONS, adapter, adapter_on, expected_capabilities,
    line_of, load, mount, mount_fallback, mount_times, mount_without_body, obj, received,
    server_with,
};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// One `#[tokio::test]` per recorded version for each `async fn case(version)`.
macro_rules! per_version {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn v0_3_64() {
                super::$case("0.3.64").await;
            }
            #[tokio::test]
            async fn v0_6_0() {
                super::$case("0.6.0").await;
            }
            #[tokio::test]
            async fn v0_9_2() {
                super::$case("0.9.2").await;
            }
            #[tokio::test]
            async fn v0_11_1() {
                super::$case("0.11.1").await;
            }
            #[tokio::test]
            async fn v0_26_0() {
                super::$case("0.26.0").await;
            }
            #[tokio::test]
            async fn v0_33_0() {
                super::$case("0.33.0").await;
            }
        }
    )*};
}

/// `Err(pattern)` or a panic naming the context and what came instead.
macro_rules! assert_err {
    ($result:expr, $pattern:pat, $ctx:expr) => {
        match $result {
            Err($pattern) => {}
            other => panic!(
                "{}: expected Err({}), got {:?}",
                $ctx,
                stringify!($pattern),
                other
            ),
        }
    };
}

// ---------------------------------------------------------------------------
// helpers

/// A `PromptRequest` from a recorded `POST /prompt` body.
fn request_from(ex: &Exchange) -> PromptRequest {
    let body = obj(ex.request_body(), &ex.label());
    let mut req = PromptRequest::new(
        body.get("prompt")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    );
    req.client_id = body
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    req.extra_data = body
        .get("extra_data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    req
}

/// The last path segment of a recorded path (`/api/jobs/{id}` → id).
fn last_segment(ex: &Exchange) -> String {
    ex.path().rsplit('/').next().unwrap().to_owned()
}

/// A recorded `/userdata/<encoded>` path, decoded and validated.
fn userdata_path(encoded: &str) -> UserdataPath {
    let decoded = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .unwrap()
        .into_owned();
    let p = UserdataPath::new(decoded).unwrap();
    assert_eq!(
        p.encoded(),
        encoded,
        "UserdataPath must encode back to the recorded segment"
    );
    p
}

/// The encoded file segment of `/userdata/<segment>`.
fn userdata_segment(ex: &Exchange) -> &str {
    ex.path()
        .strip_prefix("/userdata/")
        .unwrap_or_else(|| panic!("{}: not a /userdata/ path", ex.label()))
}

/// The recorded userdata write body as bytes.
fn userdata_body(ex: &Exchange) -> Bytes {
    Bytes::from(ex.request_body().as_str().unwrap().to_owned())
}

fn write_options(overwrite: Overwrite, full_info: bool) -> WriteOptions {
    WriteOptions {
        overwrite,
        full_info,
    }
}

/// Userdata `full_info` times are seconds in the model; 0.26+ sends ms.
fn recorded_seconds(version: &str, v: &Value) -> f64 {
    let raw = v.as_f64().unwrap();
    if line_of(version) == Line::CancelApi {
        raw / 1000.0
    } else {
        raw
    }
}

fn assert_seconds(ctx: &str, got: Option<f64>, expected: f64) {
    let got = got.unwrap_or_else(|| panic!("{ctx}: time missing"));
    assert!(
        (got - expected).abs() < 1e-3,
        "{ctx}: time {got} s, expected {expected} s"
    );
    // Seconds since the epoch in 2026, not milliseconds.
    assert!(
        (1.7e9..1.9e9).contains(&got),
        "{ctx}: {got} is not a time in seconds"
    );
}

/// The `execution_interrupted` payload inside a recorded history or job body.
fn recorded_message(body: &Value, kind: &str) -> Option<Value> {
    match body {
        Value::Array(a) if a.len() == 2 && a[0] == kind => Some(a[1].clone()),
        Value::Array(a) => a.iter().find_map(|v| recorded_message(v, kind)),
        Value::Object(m) => m.values().find_map(|v| recorded_message(v, kind)),
        _ => None,
    }
}

/// Replays a job lookup the way the version's line does it: `/api/jobs/{id}`
/// on the jobs lines, `GET /queue` (empty, `019`) then `/history/{id}` on
/// the legacy line.
async fn replay_job(version: &str, legacy: &str, jobs: &str) -> (MockServer, Exchange, JobStatus) {
    let (server, ex) = if line_of(version) == Line::Legacy {
        (
            server_with(version, &["019-", legacy]).await,
            load(version, legacy),
        )
    } else {
        (server_with(version, &[jobs]).await, load(version, jobs))
    };
    let id = last_segment(&ex);
    let status = adapter(&server, version)
        .job(&id)
        .await
        .unwrap_or_else(|e| panic!("{}: job({id}) failed: {e}", ex.label()));
    assert_eq!(status.prompt_id, id, "{}: prompt id", ex.label());
    server.verify().await;
    if line_of(version) == Line::Legacy {
        // Queue first, then history: a prompt finishing in between is not missed.
        let order: Vec<String> = received(&server, |_| true)
            .await
            .iter()
            .map(|r| r.url.path().to_owned())
            .collect();
        assert_eq!(
            order,
            ["/queue".to_owned(), ex.path().to_owned()],
            "{}",
            ex.label()
        );
    }
    (server, ex, status)
}

async fn rejected(version: &str, prefix: &str) -> (Exchange, PromptRejected) {
    let ex = load(version, prefix);
    let server = server_with(version, &[prefix]).await;
    let result = adapter(&server, version).submit(&request_from(&ex)).await;
    server.verify().await;
    let rejection = match result {
        Err(ComfyError::PromptRejected(r)) => *r,
        other => panic!("{}: expected PromptRejected, got {other:?}", ex.label()),
    };
    let error = &ex.response_body()["error"];
    assert_eq!(rejection.status, 400, "{}", ex.label());
    assert_eq!(
        rejection.server_type,
        error["type"].as_str().unwrap(),
        "{}",
        ex.label()
    );
    assert_eq!(
        rejection.message,
        error["message"].as_str().unwrap(),
        "{}",
        ex.label()
    );
    assert_eq!(&rejection.raw, ex.response_body(), "{}", ex.label());
    (ex, rejection)
}

// ---------------------------------------------------------------------------
// 0. the replay set itself

#[test]
fn every_fixture_folder_is_replayed() {
    let root = support::fixture_dir(VERSIONS[0])
        .parent()
        .unwrap()
        .to_owned();
    let found: BTreeSet<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_prefix("comfyui-").map(str::to_owned))
        .collect();
    let expected: BTreeSet<String> = VERSIONS.iter().map(|v| (*v).to_owned()).collect();
    assert_eq!(
        found, expected,
        "fixture folders vs the versions these tests replay"
    );
}

// ---------------------------------------------------------------------------
// 1. detection

per_version!(detect_picks_line_and_capabilities);
async fn detect_picks_line_and_capabilities(version: &str) {
    let server = MockServer::start().await;
    let line = line_of(version);
    for p in ["001-", "003-", "076-"] {
        mount(&server, &load(version, p)).await;
    }
    // Without the jobs API (0.3.64: 076 is a 404) the cancel probe is not sent.
    let cancel_probe = load(version, "067-");
    mount_times(&server, &cancel_probe, u64::from(line != Line::Legacy)).await;
    mount_fallback(&server, version).await;

    let found = comfy_adapter::detect(&server.uri(), &DetectOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{version}: detect failed: {e}"));
    server.verify().await;

    assert_eq!(found.line, line, "{version}: line");
    assert_eq!(found.adapter.line(), line, "{version}: adapter line");
    assert_eq!(
        found.info.version_string.as_deref(),
        Some(version),
        "{version}: version string"
    );
    assert_eq!(
        found
            .info
            .version
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some(version),
        "{version}: parsed version"
    );
    assert!(
        found.warnings.is_empty(),
        "{version}: warnings {:?}",
        found.warnings
    );
    assert_eq!(
        found.capabilities,
        expected_capabilities(version),
        "{version}: capabilities"
    );
    assert_eq!(
        found.adapter.capabilities(),
        &expected_capabilities(version),
        "{version}: adapter capabilities"
    );
    assert_eq!(
        found.adapter.base_url().as_str().trim_end_matches('/'),
        server.uri(),
        "{version}: base url"
    );
}

/// `/system_stats` of `version` with another `comfyui_version`.
fn stats_with_version(version: &str, reported: &str) -> Exchange {
    let ex = load(version, "001-");
    let mut body = ex.response_body().clone();
    body["system"]["comfyui_version"] = json!(reported);
    ex.with_response_body(body)
}

/// Detection with a version string the crate cannot place: the probes of
/// `version` decide the line, with a warning; strict mode refuses.
async fn detect_with_reported(version: &str, reported: &str, why: &str) {
    let ctx = format!("{version} reporting {reported:?}");
    let line = line_of(version);

    let server = MockServer::start().await;
    mount(&server, &stats_with_version(version, reported)).await;
    mount(&server, &load(version, "003-")).await;
    mount(&server, &load(version, "076-")).await;
    mount_times(
        &server,
        &load(version, "067-"),
        u64::from(line != Line::Legacy),
    )
    .await;
    mount_fallback(&server, version).await;
    let found = comfy_adapter::detect(&server.uri(), &DetectOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{ctx}: detect failed: {e}"));
    server.verify().await;
    assert_eq!(found.line, line, "{ctx}: the probes pick the line");
    assert_eq!(
        found.info.version_string.as_deref(),
        Some(reported),
        "{ctx}"
    );
    assert_eq!(
        found.warnings.len(),
        1,
        "{ctx}: warnings {:?}",
        found.warnings
    );
    assert!(
        found.warnings[0].contains(reported) && found.warnings[0].contains(why),
        "{ctx}: warning {:?}",
        found.warnings[0]
    );
    assert_eq!(
        found.capabilities.jobs_api,
        line != Line::Legacy,
        "{ctx}: probed jobs api"
    );
    assert_eq!(
        found.capabilities.jobs_cancel_api,
        line == Line::CancelApi,
        "{ctx}: probed cancel api"
    );

    // Strict: refused. Whether the probes run first is not part of the contract.
    let server = MockServer::start().await;
    mount(&server, &stats_with_version(version, reported)).await;
    for p in ["003-", "076-", "067-"] {
        mount_times(&server, &load(version, p), 0..).await;
    }
    mount_fallback(&server, version).await;
    let strict = DetectOptions {
        strict: true,
        ..DetectOptions::default()
    };
    let result = comfy_adapter::detect(&server.uri(), &strict).await;
    server.verify().await;
    match result {
        Err(ComfyError::UnsupportedVersion { version: v, .. }) => assert_eq!(v, reported, "{ctx}"),
        other => panic!("{ctx}: strict detect should refuse, got {other:?}"),
    }
}

per_version!(detect_unparseable_version);
async fn detect_unparseable_version(version: &str) {
    detect_with_reported(version, "banana", "unparseable").await;
}

per_version!(detect_version_outside_tested_range);
async fn detect_version_outside_tested_range(version: &str) {
    detect_with_reported(version, "0.40.0", "outside the tested range").await;
}

#[tokio::test]
async fn detect_connection_refused_is_connect() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let result = comfy_adapter::detect(
        &format!("http://127.0.0.1:{port}"),
        &DetectOptions::default(),
    )
    .await;
    assert_err!(result, ComfyError::Connect { .. }, "refused connection");
}

#[tokio::test]
async fn detect_404_system_stats_is_not_comfyui() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(RawPath("/system_stats".into()))
        .respond_with(
            ResponseTemplate::new(404).set_body_raw(Vec::new(), "application/octet-stream"),
        )
        .expect(1)
        .named("GET /system_stats 404")
        .mount(&server)
        .await;
    mount_fallback(&server, "not ComfyUI").await;
    let result = comfy_adapter::detect(&server.uri(), &DetectOptions::default()).await;
    server.verify().await;
    assert_err!(result, ComfyError::NotComfyUi { .. }, "404 /system_stats");
}

#[tokio::test]
async fn detect_foreign_json_is_not_comfyui() {
    for body in [
        json!({"status": "ok", "version": "1.2.3"}),
        json!([1, 2, 3]),
        json!({"system": 5}),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(RawPath("/system_stats".into()))
            .respond_with(ResponseTemplate::new(200).set_body_json(&body))
            .expect(1)
            .named(format!("GET /system_stats {body}"))
            .mount(&server)
            .await;
        mount_fallback(&server, "not ComfyUI").await;
        let result = comfy_adapter::detect(&server.uri(), &DetectOptions::default()).await;
        server.verify().await;
        assert_err!(
            result,
            ComfyError::NotComfyUi { .. },
            format!("/system_stats {body}")
        );
    }
}

#[tokio::test]
async fn detect_500_is_server_error() {
    // The body ComfyUI sends with its 500s (045, 072).
    let crash = load("0.33.0", "045-");
    assert_eq!(crash.status(), 500);
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(RawPath("/system_stats".into()))
        .respond_with(support::response(&crash))
        .expect(1)
        .named("GET /system_stats 500")
        .mount(&server)
        .await;
    mount_fallback(&server, "crashing").await;
    let result = comfy_adapter::detect(&server.uri(), &DetectOptions::default()).await;
    server.verify().await;
    match result {
        Err(ComfyError::Server {
            status,
            ref method,
            ref path,
            ref body,
        }) => {
            assert_eq!(status, 500);
            assert_eq!(method, "GET");
            assert_eq!(path, "/system_stats");
            assert!(body.contains("Server got itself in trouble"), "{body:?}");
        }
        other => panic!("500 /system_stats: expected Server, got {other:?}"),
    }
}

#[tokio::test]
async fn detect_slow_server_is_timeout() {
    // A dedicated (not pooled) server: the delayed answer never arrives.
    let server = MockServer::builder().start().await;
    let stats = load("0.33.0", "001-");
    Mock::given(method("GET"))
        .and(RawPath("/system_stats".into()))
        .respond_with(support::response(&stats).set_delay(Duration::from_secs(30)))
        .named("slow GET /system_stats")
        .mount(&server)
        .await;
    let options = DetectOptions {
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_millis(200),
        },
        ..DetectOptions::default()
    };
    let started = Instant::now();
    let result = comfy_adapter::detect(&server.uri(), &options).await;
    let waited = started.elapsed();
    assert_err!(result, ComfyError::Timeout { .. }, "delayed /system_stats");
    assert!(
        waited < Duration::from_secs(10),
        "detect waited {waited:?} despite a 200 ms timeout"
    );
}

// A base URL with a path prefix (ComfyUI behind a reverse proxy at /comfy/):
// every request, and every view URL, keeps the prefix.
#[tokio::test]
async fn base_url_with_path_prefix() {
    let version = "0.33.0";
    let server = MockServer::start().await;
    for p in ["001-", "003-", "076-", "067-", "105-", "089-"] {
        mount(&server, &load(version, p).with_path_prefix("/comfy")).await;
    }
    mount_fallback(&server, version).await;
    let found = comfy_adapter::detect(
        &format!("{}/comfy/", server.uri()),
        &DetectOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{version} under /comfy/: {e}"));
    assert_eq!(found.line, Line::CancelApi);
    assert!(found.warnings.is_empty(), "{:?}", found.warnings);
    let a = found.adapter;
    a.userdata_get(&UserdataPath::new("workflows/fixture_template.json").unwrap())
        .await
        .unwrap_or_else(|e| panic!("{version} under /comfy/: {e}"));
    let image = file_from_query(&load(version, "089-"));
    let bytes = a
        .view(&image)
        .await
        .unwrap_or_else(|e| panic!("{version} under /comfy/: {e}"));
    assert_eq!(bytes.len(), 423);
    assert_eq!(
        a.view_url(&image),
        format!(
            "{}/comfy/view?filename=fixture_ok_00001_.png&subfolder=&type=output",
            server.uri()
        )
    );
    server.verify().await;
}

// `DetectOptions::user` goes out as `comfy-user` on every request, probes
// included, and `--multi-user` in argv sets the capability.
#[tokio::test]
async fn detect_multi_user_server() {
    let version = "0.33.0";
    let stats = load(version, "001-");
    let mut body = stats.response_body().clone();
    body["system"]["argv"]
        .as_array_mut()
        .unwrap()
        .push(json!("--multi-user"));
    let stats = stats.with_response_body(body);
    let server = MockServer::start().await;
    mount(&server, &stats).await;
    for p in ["003-", "076-", "067-", "105-"] {
        mount(&server, &load(version, p)).await;
    }
    mount_fallback(&server, version).await;
    let options = DetectOptions {
        user: Some("alice".into()),
        ..DetectOptions::default()
    };
    let found = comfy_adapter::detect(&server.uri(), &options)
        .await
        .unwrap_or_else(|e| panic!("{version} multi-user: {e}"));
    assert!(found.capabilities.multi_user, "{:?}", found.capabilities);
    assert!(found.info.multi_user());
    found
        .adapter
        .userdata_get(&UserdataPath::new("workflows/fixture_template.json").unwrap())
        .await
        .unwrap_or_else(|e| panic!("{version} multi-user: {e}"));
    server.verify().await;
    let sent = received(&server, |_| true).await;
    assert_eq!(sent.len(), 5, "system_stats, 2 probes, features, userdata");
    for r in &sent {
        assert_eq!(
            r.headers.get("comfy-user").and_then(|v| v.to_str().ok()),
            Some("alice"),
            "{} {}",
            r.method,
            r.url
        );
    }
}

// ---------------------------------------------------------------------------
// 2. prompt submission

per_version!(submit_success);
async fn submit_success(version: &str) {
    let ex = load(version, "023-");
    let server = server_with(version, &["023-"]).await;
    let accepted = adapter(&server, version)
        .submit(&request_from(&ex))
        .await
        .unwrap_or_else(|e| panic!("{}: submit failed: {e}", ex.label()));
    server.verify().await;
    assert_eq!(
        accepted.prompt_id,
        ex.response_body()["prompt_id"].as_str().unwrap(),
        "{}: prompt id from the answer",
        ex.label()
    );
    assert_eq!(accepted.number, 0.0, "{}", ex.label());
    assert!(
        accepted.node_errors.is_empty(),
        "{}: {:?}",
        ex.label(),
        accepted.node_errors
    );

    // No id in the request: the adapter generated one, a canonical UUID.
    let sent = received(&server, |r| r.url.path() == "/prompt").await;
    assert_eq!(sent.len(), 1, "{}", ex.label());
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    let id = body["prompt_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no generated prompt_id in {body}", ex.label()));
    assert!(
        comfy_adapter::cancel_api_prompt_id_ok(id),
        "{}: {id:?}",
        ex.label()
    );
}

// Every other accepted submit of the probe run (cached, error, slow,
// mixed-outputs and interrupted runs): body {prompt, client_id}.
per_version!(submit_other_accepted_runs);
async fn submit_other_accepted_runs(version: &str) {
    for p in ["028-", "031-", "046-", "047-", "048-", "081-", "085-"] {
        let ex = load(version, p);
        let server = server_with(version, &[p]).await;
        let accepted = adapter(&server, version)
            .submit(&request_from(&ex))
            .await
            .unwrap_or_else(|e| panic!("{}: submit failed: {e}", ex.label()));
        server.verify().await;
        let answer = ex.response_body();
        assert_eq!(
            accepted.prompt_id,
            answer["prompt_id"].as_str().unwrap(),
            "{}",
            ex.label()
        );
        assert_eq!(
            Some(accepted.number),
            answer["number"].as_f64(),
            "{}",
            ex.label()
        );
        assert!(accepted.node_errors.is_empty(), "{}", ex.label());
    }
}

per_version!(submit_client_prompt_id_and_number);
async fn submit_client_prompt_id_and_number(version: &str) {
    let ex = load(version, "035-");
    let recorded = obj(ex.request_body(), &ex.label());
    let prompt_id = recorded["prompt_id"].as_str().unwrap();
    let number = recorded["number"].as_f64().unwrap();
    assert_eq!((prompt_id, number), ("fixture-prompt-id-0001", 5.0));
    let mut req = request_from(&ex);
    req.prompt_id = Some(prompt_id.to_owned());
    req.position = QueuePosition::Number(number);

    // 0.26+ answers 400 invalid_prompt_id: the adapter must refuse first.
    let refused = line_of(version) == Line::CancelApi;
    let server = MockServer::start().await;
    mount_times(&server, &ex, u64::from(!refused)).await;
    mount_fallback(&server, version).await;
    let result = adapter(&server, version).submit(&req).await;
    server.verify().await;
    if refused {
        assert_eq!(ex.status(), 400, "{}", ex.label());
        assert_eq!(
            ex.response_body()["error"]["type"],
            "invalid_prompt_id",
            "{}",
            ex.label()
        );
        assert_err!(
            result,
            ComfyError::InvalidInput {
                field: "prompt_id",
                ..
            },
            ex.label()
        );
        let r = normalize::rejection(ex.status(), ex.response_body().clone()).unwrap();
        assert_eq!(r.kind, RejectionKind::InvalidPromptId, "{}", ex.label());
    } else {
        let accepted = result.unwrap_or_else(|e| panic!("{}: submit failed: {e}", ex.label()));
        assert_eq!(
            accepted.prompt_id,
            "fixture-prompt-id-0001",
            "{}",
            ex.label()
        );
        assert_eq!(accepted.number, 5.0, "{}", ex.label());
        assert!(accepted.node_errors.is_empty(), "{}", ex.label());
    }
}

per_version!(submit_front);
async fn submit_front(version: &str) {
    let ex = load(version, "036-");
    let server = server_with(version, &["036-"]).await;
    let mut req = request_from(&ex);
    req.position = QueuePosition::Front;
    let accepted = adapter(&server, version)
        .submit(&req)
        .await
        .unwrap_or_else(|e| panic!("{}: submit failed: {e}", ex.label()));
    server.verify().await;
    assert_eq!(
        accepted.prompt_id,
        ex.response_body()["prompt_id"].as_str().unwrap(),
        "{}",
        ex.label()
    );
    assert_eq!(accepted.number, -3.0, "{}", ex.label());
}

per_version!(submit_empty_prompt_is_refused_before_sending);
async fn submit_empty_prompt_is_refused_before_sending(version: &str) {
    let ex = load(version, "037-");
    let server = MockServer::start().await;
    mount_times(&server, &ex, 0).await;
    mount_fallback(&server, version).await;
    let req = PromptRequest::new(Map::new()).with_client_id("x");
    let result = adapter(&server, version).submit(&req).await;
    server.verify().await;
    assert_err!(
        result,
        ComfyError::InvalidInput {
            field: "prompt",
            ..
        },
        ex.label()
    );

    // What the server would have said, normalized.
    let r = normalize::rejection(ex.status(), ex.response_body().clone())
        .unwrap_or_else(|| panic!("{}: not a rejection", ex.label()));
    assert_eq!(r.kind, RejectionKind::NoPrompt, "{}", ex.label());
    assert_eq!(r.status, 400, "{}", ex.label());
}

per_version!(reject_unknown_class);
async fn reject_unknown_class(version: &str) {
    let (ex, r) = rejected(version, "038-").await;
    assert_eq!(r.kind, RejectionKind::UnknownNodeType, "{}", ex.label());
    assert_eq!(
        r.class_type.as_deref(),
        Some("DoesNotExist"),
        "{}",
        ex.label()
    );
    assert_eq!(r.node_id.as_deref(), Some("1"), "{}", ex.label());
    assert!(r.node_errors.is_empty(), "{}", ex.label());
}

per_version!(reject_missing_class_type);
async fn reject_missing_class_type(version: &str) {
    let (ex, r) = rejected(version, "039-").await;
    assert_eq!(r.kind, RejectionKind::MissingClassType, "{}", ex.label());
    assert_eq!(r.class_type, None, "{}", ex.label());
    assert_eq!(r.node_id.as_deref(), Some("1"), "{}", ex.label());
}

per_version!(reject_no_outputs);
async fn reject_no_outputs(version: &str) {
    let (ex, r) = rejected(version, "040-").await;
    assert_eq!(r.kind, RejectionKind::NoOutputs, "{}", ex.label());
    assert!(r.node_errors.is_empty(), "{}", ex.label());
}

/// The single node error of a validation rejection.
fn single_input_error(
    ex: &Exchange,
    r: &PromptRejected,
    node: &str,
    class: &str,
) -> comfy_adapter::model::prompt::InputError {
    assert_eq!(
        r.kind,
        RejectionKind::OutputsFailedValidation,
        "{}",
        ex.label()
    );
    assert_eq!(
        r.node_errors.len(),
        1,
        "{}: {:?}",
        ex.label(),
        r.node_errors
    );
    let n = &r.node_errors[0];
    assert_eq!(n.node_id, node, "{}", ex.label());
    assert_eq!(n.class_type.as_deref(), Some(class), "{}", ex.label());
    assert_eq!(n.errors.len(), 1, "{}: {:?}", ex.label(), n.errors);
    n.errors[0].clone()
}

per_version!(reject_value_smaller_than_min);
async fn reject_value_smaller_than_min(version: &str) {
    let (ex, r) = rejected(version, "041-").await;
    let e = single_input_error(&ex, &r, "1", "EmptyImage");
    assert_eq!(r.node_errors[0].dependent_outputs, ["2"], "{}", ex.label());
    assert_eq!(
        e.kind,
        InputErrorKind::ValueSmallerThanMin,
        "{}",
        ex.label()
    );
    assert_eq!(e.input_name.as_deref(), Some("width"), "{}", ex.label());
    assert_eq!(e.received_value, Some(json!(0)), "{}", ex.label());
}

per_version!(reject_required_input_missing);
async fn reject_required_input_missing(version: &str) {
    let (ex, r) = rejected(version, "042-").await;
    let e = single_input_error(&ex, &r, "1", "EmptyImage");
    assert_eq!(
        e.kind,
        InputErrorKind::RequiredInputMissing,
        "{}",
        ex.label()
    );
    assert_eq!(e.input_name.as_deref(), Some("height"), "{}", ex.label());
}

per_version!(reject_value_not_in_list);
async fn reject_value_not_in_list(version: &str) {
    let (ex, r) = rejected(version, "043-").await;
    let e = single_input_error(&ex, &r, "1", "CheckpointLoaderSimple");
    assert_eq!(e.kind, InputErrorKind::ValueNotInList, "{}", ex.label());
    assert_eq!(e.input_name.as_deref(), Some("ckpt_name"), "{}", ex.label());
    assert_eq!(
        e.received_value,
        Some(json!("flux2_klein_9b.safetensors")),
        "{}",
        ex.label()
    );
}

per_version!(reject_exception_during_validation);
async fn reject_exception_during_validation(version: &str) {
    let (ex, r) = rejected(version, "044-").await;
    let node = obj(&ex.response_body()["node_errors"], &ex.label());
    let (id, entry) = node.iter().next().unwrap();
    let class = entry["class_type"].as_str().unwrap();
    let e = single_input_error(&ex, &r, id, class);
    assert_eq!(
        e.kind,
        InputErrorKind::ExceptionDuringValidation,
        "{}",
        ex.label()
    );
}

// 045 (malformed JSON) cannot be produced by the adapter, which always
// serializes its body; its 500 mapping is covered by detect_500_is_server_error.

// ---------------------------------------------------------------------------
// 3. job status and outputs

per_version!(job_succeeded);
async fn job_succeeded(version: &str) {
    let (server, ex, job) = replay_job(version, "025-", "027-").await;
    let ctx = ex.label();
    assert_eq!(job.state, JobState::Succeeded, "{ctx}");
    assert_eq!(job.workflow_id.as_deref(), Some("wf-fixture-1"), "{ctx}");
    assert_eq!(job.outputs_count, Some(1), "{ctx}");
    assert!(
        job.failure.is_none() && job.interruption.is_none(),
        "{ctx}: {job:?}"
    );
    assert!(
        job.started_at_ms.is_some() && job.finished_at_ms.is_some(),
        "{ctx}: {job:?}"
    );
    assert_eq!(job.outputs.len(), 1, "{ctx}: {:?}", job.outputs);
    let o = &job.outputs[0];
    assert_eq!(o.kind, OutputKind::Image, "{ctx}");
    assert_eq!(o.node_id, "2", "{ctx}");
    assert_eq!(
        o.file,
        Some(FileRef {
            filename: "fixture_ok_00001_.png".into(),
            subfolder: String::new(),
            folder: FolderType::Output
        }),
        "{ctx}"
    );
    assert_eq!(
        o.view_url.as_deref(),
        Some(
            format!(
                "{}/view?filename=fixture_ok_00001_.png&subfolder=&type=output",
                server.uri()
            )
            .as_str()
        ),
        "{ctx}"
    );
}

// The cached run has no jobs-by-id recording on any version (028 is its
// submit, 030 its history), so it is replayed through the legacy route
// (`GET /queue` + `GET /history/{id}`) on every version.
per_version!(job_cached_via_history);
async fn job_cached_via_history(version: &str) {
    let ex = load(version, "030-");
    let server = server_with(version, &["019-", "030-"]).await;
    let id = last_segment(&ex);
    let job = adapter_on(&server, version, Line::Legacy)
        .job(&id)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
    server.verify().await;
    let ctx = ex.label();
    assert_eq!(job.state, JobState::Succeeded, "{ctx}");
    let cached: BTreeSet<&str> = job.cached_nodes.iter().map(String::as_str).collect();
    assert_eq!(cached, BTreeSet::from(["1", "2"]), "{ctx}");
    assert_eq!(job.outputs.len(), 1, "{ctx}");
    assert!(job.outputs[0].cached, "{ctx}: output of a cached node");
}

per_version!(job_failed);
async fn job_failed(version: &str) {
    let (_server, ex, job) = replay_job(version, "033-", "034-").await;
    let ctx = ex.label();
    assert_eq!(job.state, JobState::Failed, "{ctx}");
    let f = job
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("{ctx}: no failure"));
    assert_eq!(f.node_id.as_deref(), Some("2"), "{ctx}");
    assert_eq!(f.node_type.as_deref(), Some("SaveImage"), "{ctx}");
    assert_eq!(f.exception_type.as_deref(), Some("Exception"), "{ctx}");
    assert!(!f.traceback.is_empty(), "{ctx}: empty traceback");
    assert!(
        f.exception_message
            .as_deref()
            .is_some_and(|m| m.contains("Saving image outside the output folder")),
        "{ctx}: {:?}",
        f.exception_message
    );
    assert!(!f.is_out_of_memory(), "{ctx}");
    assert!(job.interruption.is_none(), "{ctx}");
    assert!(job.outputs.is_empty(), "{ctx}");
}

per_version!(job_interrupted);
async fn job_interrupted(version: &str) {
    let (_server, ex, job) = replay_job(version, "058-", "059-").await;
    let ctx = ex.label();
    // Which node was running differs by run (docs/versions.md): read it from the file.
    let recorded = recorded_message(ex.response_body(), "execution_interrupted")
        .unwrap_or_else(|| panic!("{ctx}: no execution_interrupted recorded"));
    assert_eq!(job.state, JobState::Interrupted, "{ctx}");
    let i = job
        .interruption
        .as_ref()
        .unwrap_or_else(|| panic!("{ctx}: no interruption"));
    assert_eq!(i.node_id.as_deref(), recorded["node_id"].as_str(), "{ctx}");
    assert_eq!(
        i.node_type.as_deref(),
        recorded["node_type"].as_str(),
        "{ctx}"
    );
    assert!(i.node_id.is_some(), "{ctx}");
    assert!(job.failure.is_none(), "{ctx}");
    assert!(job.outputs.is_empty(), "{ctx}");
}

per_version!(job_unknown_or_deleted);
async fn job_unknown_or_deleted(version: &str) {
    let prefixes: &[&str] = if line_of(version) == Line::Legacy {
        // 021: /history of an id never submitted answers {}.
        &["021-"]
    } else {
        // 077: never submitted; 061: deleted while pending. Both 404.
        &["077-", "061-"]
    };
    for p in prefixes {
        let ex = load(version, p);
        let server = if line_of(version) == Line::Legacy {
            server_with(version, &["019-", p]).await
        } else {
            server_with(version, &[p]).await
        };
        let id = last_segment(&ex);
        let job = adapter(&server, version)
            .job(&id)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
        server.verify().await;
        assert_eq!(job.state, JobState::Unknown, "{}", ex.label());
        assert_eq!(job.prompt_id, id, "{}", ex.label());
        assert!(job.outputs.is_empty(), "{}", ex.label());
    }
}

per_version!(job_mixed_outputs);
async fn job_mixed_outputs(version: &str) {
    let legacy = line_of(version) == Line::Legacy;
    let ex = load(version, if legacy { "083-" } else { "084-" });
    let ctx = ex.label();
    let server = if legacy {
        server_with(version, &["019-", "083-"]).await
    } else {
        server_with(version, &["084-"]).await
    };
    let id = last_segment(&ex);
    let outputs = adapter(&server, version)
        .outputs(&id)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
    server.verify().await;

    // 1 webp, 1 mp4, 1 flac, 1 text, 4 temp previews (order is not fixed).
    assert_eq!(outputs.len(), 8, "{ctx}: {outputs:?}");
    let of = |pred: &dyn Fn(&Output) -> bool| {
        outputs
            .iter()
            .filter(|o| pred(o))
            .cloned()
            .collect::<Vec<_>>()
    };
    let folder = |o: &Output| o.file.as_ref().map(|f| f.folder.clone());
    let name = |o: &Output| {
        o.file
            .as_ref()
            .map(|f| f.filename.clone())
            .unwrap_or_default()
    };

    let video = of(&|o| o.kind == OutputKind::Video);
    assert_eq!(video.len(), 1, "{ctx}: {outputs:?}");
    assert!(name(&video[0]).ends_with(".mp4"), "{ctx}");
    assert_eq!(
        video[0].key, "images",
        "{ctx}: SaveVideo reports under images"
    );
    assert_eq!(video[0].file.as_ref().unwrap().subfolder, "video", "{ctx}");

    let audio = of(&|o| o.kind == OutputKind::Audio);
    assert_eq!(audio.len(), 1, "{ctx}: {outputs:?}");
    assert!(name(&audio[0]).ends_with(".flac"), "{ctx}");
    assert_eq!(audio[0].file.as_ref().unwrap().subfolder, "audio", "{ctx}");

    let text = of(&|o| o.kind == OutputKind::Text);
    assert_eq!(text.len(), 1, "{ctx}: {outputs:?}");
    assert_eq!(
        text[0].text.as_deref(),
        Some("hello from a fixture"),
        "{ctx}"
    );
    assert!(
        text[0].file.is_none() && text[0].view_url.is_none(),
        "{ctx}"
    );

    let webp = of(&|o| o.kind == OutputKind::Image && name(o).ends_with(".webp"));
    assert_eq!(webp.len(), 1, "{ctx}: {outputs:?}");
    assert!(webp[0].animated, "{ctx}: animated webp");
    assert_eq!(folder(&webp[0]), Some(FolderType::Output), "{ctx}");

    let temp = of(&|o| o.kind == OutputKind::Image && folder(o) == Some(FolderType::Temp));
    assert_eq!(temp.len(), 4, "{ctx}: {outputs:?}");
    assert!(
        temp.iter()
            .all(|o| name(o).ends_with(".png") && !o.animated),
        "{ctx}"
    );

    let prefix = format!("{}/view?filename=", server.uri());
    for o in outputs.iter().filter(|o| o.file.is_some()) {
        let url = o
            .view_url
            .as_deref()
            .unwrap_or_else(|| panic!("{ctx}: no view url for {o:?}"));
        assert!(url.starts_with(&prefix), "{ctx}: {url}");
        assert_eq!(
            url,
            format!("{}{}", server.uri(), o.file.as_ref().unwrap().view_path()),
            "{ctx}"
        );
    }
}

/// The state a recorded `/history/{id}` body stands for.
fn history_state(body: &Value) -> JobState {
    let Some(item) = body.as_object().and_then(|m| m.values().next()) else {
        return JobState::Unknown;
    };
    match item["status"]["status_str"].as_str() {
        Some("error") if recorded_message(item, "execution_interrupted").is_some() => {
            JobState::Interrupted
        }
        Some("error") => JobState::Failed,
        _ => JobState::Succeeded,
    }
}

// Every `/history/{id}` recording through the legacy route (`GET /queue`
// empty, then the history entry), on every version: the history shape is the
// same on all six (docs/versions.md).
per_version!(history_by_id_via_legacy_route);
async fn history_by_id_via_legacy_route(version: &str) {
    for p in [
        "021-", "025-", "030-", "033-", "058-", "060-", "070-", "080-", "083-", "088-",
    ] {
        let ex = load(version, p);
        let server = server_with(version, &["019-", p]).await;
        let id = last_segment(&ex);
        let job = adapter_on(&server, version, Line::Legacy)
            .job(&id)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
        server.verify().await;
        let body = ex.response_body();
        assert_eq!(job.prompt_id, id, "{}", ex.label());
        assert_eq!(job.state, history_state(body), "{}", ex.label());
        if let Some(item) = body.get(&id) {
            assert_eq!(job.number, item["prompt"][0].as_f64(), "{}", ex.label());
            assert_eq!(
                job.created_at_ms.is_some(),
                version != "0.3.64",
                "{}: create_time",
                ex.label()
            );
            let files = obj(&item["outputs"], &ex.label())
                .values()
                .flat_map(|ui| obj(ui, &ex.label()).iter())
                .filter(|(k, _)| k.as_str() != "animated")
                .map(|(_, v)| v.as_array().map_or(1, Vec::len))
                .sum::<usize>();
            assert_eq!(job.outputs.len(), files, "{}: outputs", ex.label());
        } else {
            assert!(job.outputs.is_empty(), "{}", ex.label());
        }
    }
}

/// The state a recorded `/api/jobs/{id}` answer stands for.
fn jobs_state(ex: &Exchange) -> JobState {
    if ex.status() == 404 {
        return JobState::Unknown;
    }
    let body = ex.response_body();
    let interrupted = recorded_message(body, "execution_interrupted").is_some();
    match body["status"].as_str().unwrap() {
        "pending" => JobState::Pending,
        "in_progress" => JobState::Running,
        "completed" => JobState::Succeeded,
        // 0.6.0 reports an interrupted prompt as failed.
        "failed" if interrupted => JobState::Interrupted,
        "failed" => JobState::Failed,
        "cancelled" if interrupted || body.get("execution_start_time").is_some() => {
            JobState::Interrupted
        }
        "cancelled" => JobState::Cancelled,
        other => panic!("{}: unknown status {other}", ex.label()),
    }
}

// Every `/api/jobs/{id}` recording on the jobs lines. On 0.3.64 they are all
// the 404 of a missing route, which the legacy adapter never requests.
per_version!(jobs_by_id);
async fn jobs_by_id(version: &str) {
    let prefixes = [
        "027-", "034-", "052-", "059-", "061-", "068-", "069-", "077-", "084-",
    ];
    if line_of(version) == Line::Legacy {
        for p in prefixes {
            let ex = load(version, p);
            assert_eq!(ex.status(), 404, "{}", ex.label());
            assert_eq!(ex.binary_len(), Some(0), "{}: empty route 404", ex.label());
        }
        return;
    }
    for p in prefixes {
        let ex = load(version, p);
        let server = server_with(version, &[p]).await;
        let id = last_segment(&ex);
        let job = adapter(&server, version)
            .job(&id)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
        server.verify().await;
        let ctx = ex.label();
        assert_eq!(job.prompt_id, id, "{ctx}");
        assert_eq!(job.state, jobs_state(&ex), "{ctx}");
        if ex.status() == 200 {
            let body = ex.response_body();
            assert_eq!(job.number, body["priority"].as_f64(), "{ctx}");
            assert_eq!(job.created_at_ms, body["create_time"].as_i64(), "{ctx}");
            // The server's own count (docs: it differs between versions).
            assert_eq!(job.outputs_count, body["outputs_count"].as_u64(), "{ctx}");
            assert_eq!(
                job.failure.is_some(),
                job.state == JobState::Failed,
                "{ctx}: {:?}",
                job.failure
            );
            assert_eq!(
                job.interruption.is_some(),
                recorded_message(body, "execution_interrupted").is_some(),
                "{ctx}"
            );
        }
    }
}

// A queued prompt: the legacy line finds it in `/queue` (049) without
// reading history; the jobs lines ask `/api/jobs/{id}` (052).
per_version!(job_pending);
async fn job_pending(version: &str) {
    if line_of(version) == Line::Legacy {
        let queue = load(version, "049-");
        let body = queue.response_body();
        let server = server_with(version, &[]).await;
        mount_times(&server, &queue, 2).await;
        let a = adapter(&server, version);
        let running = body["queue_running"][0][1].as_str().unwrap();
        let pending = body["queue_pending"][0][1].as_str().unwrap();
        let r = a
            .job(running)
            .await
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        let p = a
            .job(pending)
            .await
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        server.verify().await;
        assert_eq!(r.state, JobState::Running, "{version}: {running}");
        assert_eq!(p.state, JobState::Pending, "{version}: {pending}");
        assert_eq!(p.number, body["queue_pending"][0][0].as_f64(), "{version}");
        return;
    }
    let (_server, ex, job) = replay_job(version, "049-", "052-").await;
    assert_eq!(job.state, JobState::Pending, "{}", ex.label());
    assert_eq!(
        job.number,
        ex.response_body()["priority"].as_f64(),
        "{}",
        ex.label()
    );
}

// ---------------------------------------------------------------------------
// 4. listings, queue, cancel

/// The normalized state a jobs-API listing item stands for.
fn listed_state(job: &Value) -> Option<JobState> {
    Some(match job["status"].as_str()? {
        "pending" => JobState::Pending,
        "in_progress" => JobState::Running,
        "completed" => JobState::Succeeded,
        "cancelled" if job.get("execution_start_time").is_some() => JobState::Interrupted,
        "cancelled" => JobState::Cancelled,
        _ => return None,
    })
}

per_version!(list_jobs);
async fn list_jobs(version: &str) {
    if line_of(version) == Line::Legacy {
        // No jobs API: the listing is /queue + /history, paged locally.
        let queue = load(version, "049-");
        let server = server_with(version, &["049-", "020-"]).await;
        let page = adapter(&server, version)
            .list_jobs(&JobQuery {
                limit: Some(2),
                ..JobQuery::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        server.verify().await;
        let q = queue.response_body();
        let mut queued: Vec<(f64, String)> = q["queue_running"]
            .as_array()
            .unwrap()
            .iter()
            .chain(q["queue_pending"].as_array().unwrap())
            .map(|t| (t[0].as_f64().unwrap(), t[1].as_str().unwrap().to_owned()))
            .collect();
        queued.sort_by(|a, b| b.0.total_cmp(&a.0));
        let newest: Vec<&str> = queued.iter().take(2).map(|(_, id)| id.as_str()).collect();
        let got: Vec<&str> = page.jobs.iter().map(|j| j.prompt_id.as_str()).collect();
        assert_eq!(got, newest, "{version}: newest first");
        assert_eq!(page.total, 3, "{version}");
        assert_eq!(page.offset, 0, "{version}");
        assert!(page.has_more, "{version}");
        assert!(
            page.jobs.iter().all(|j| j.state == JobState::Pending),
            "{version}: {:?}",
            page.jobs
        );
        return;
    }
    // 022: nothing ever ran yet, the default query.
    let empty = load(version, "022-");
    let server = server_with(version, &["022-"]).await;
    let page = adapter(&server, version)
        .list_jobs(&JobQuery::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", empty.label()));
    server.verify().await;
    assert!(page.jobs.is_empty(), "{}", empty.label());
    assert_eq!((page.total, page.has_more), (0, false), "{}", empty.label());

    let server = server_with(version, &["050-", "051-", "073-", "074-"]).await;
    let a = adapter(&server, version);
    let queries = [
        ("050-", JobQuery::default()),
        (
            "051-",
            JobQuery {
                states: vec![JobState::Pending, JobState::Running],
                ..JobQuery::default()
            },
        ),
        (
            "073-",
            JobQuery {
                limit: Some(3),
                ..JobQuery::default()
            },
        ),
        (
            "074-",
            JobQuery {
                limit: Some(2),
                offset: Some(1),
                order: SortOrder::Asc,
                ..JobQuery::default()
            },
        ),
    ];
    for (p, query) in queries {
        let ex = load(version, p);
        let ctx = ex.label();
        let page = a
            .list_jobs(&query)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let body = ex.response_body();
        let jobs = body["jobs"].as_array().unwrap();
        let ids: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap()).collect();
        let got: Vec<&str> = page.jobs.iter().map(|j| j.prompt_id.as_str()).collect();
        assert_eq!(got, ids, "{ctx}: ids in server order");
        assert_eq!(
            page.total,
            body["pagination"]["total"].as_u64().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            page.offset,
            body["pagination"]["offset"].as_u64().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            page.has_more,
            body["pagination"]["has_more"].as_bool().unwrap(),
            "{ctx}"
        );
        for (job, wire) in page.jobs.iter().zip(jobs) {
            assert_eq!(
                job.number,
                wire["priority"].as_f64(),
                "{ctx}: {}",
                job.prompt_id
            );
            if let Some(state) = listed_state(wire) {
                assert_eq!(job.state, state, "{ctx}: {}", job.prompt_id);
            }
        }
    }
    server.verify().await;
}

per_version!(queue_snapshot_other_states);
async fn queue_snapshot_other_states(version: &str) {
    // 019 empty, 056 after the delete (a race: see docs/versions.md), 118 final.
    for p in ["019-", "056-", "118-"] {
        let ex = load(version, p);
        let server = server_with(version, &[p]).await;
        let q = adapter(&server, version)
            .queue()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
        server.verify().await;
        let body = ex.response_body();
        let ids = |key: &str| -> Vec<String> {
            body[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t[1].as_str().unwrap().to_owned())
                .collect()
        };
        let running: Vec<String> = q.running.iter().map(|e| e.prompt_id.clone()).collect();
        let pending: Vec<String> = q.pending.iter().map(|e| e.prompt_id.clone()).collect();
        assert_eq!(running, ids("queue_running"), "{}", ex.label());
        assert_eq!(pending, ids("queue_pending"), "{}", ex.label());
    }
}

per_version!(queue_snapshot);
async fn queue_snapshot(version: &str) {
    let ex = load(version, "049-");
    let server = server_with(version, &["049-"]).await;
    let q = adapter(&server, version)
        .queue()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
    server.verify().await;
    let body = ex.response_body();
    let ids = |key: &str| -> Vec<String> {
        body[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t[1].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!((q.running.len(), q.pending.len()), (1, 2), "{}", ex.label());
    let running: Vec<String> = q.running.iter().map(|e| e.prompt_id.clone()).collect();
    let pending: Vec<String> = q.pending.iter().map(|e| e.prompt_id.clone()).collect();
    assert_eq!(running, ids("queue_running"), "{}", ex.label());
    assert_eq!(pending, ids("queue_pending"), "{}", ex.label());
    for e in q.running.iter().chain(&q.pending) {
        assert!(!e.prompt.is_empty(), "{}: {}", ex.label(), e.prompt_id);
        // create_time is absent on 0.3.64 only (docs/versions.md).
        assert_eq!(
            e.created_at_ms.is_some(),
            version != "0.3.64",
            "{}: {}",
            ex.label(),
            e.prompt_id
        );
    }
}

per_version!(queue_remaining);
async fn queue_remaining(version: &str) {
    let ex = load(version, "053-");
    let server = server_with(version, &["053-"]).await;
    let n = adapter(&server, version)
        .queue_remaining()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
    server.verify().await;
    assert_eq!(
        n,
        ex.response_body()["exec_info"]["queue_remaining"]
            .as_u64()
            .unwrap(),
        "{}",
        ex.label()
    );
    assert_eq!(n, 3, "{}", ex.label());
}

per_version!(queue_control);
async fn queue_control(version: &str) {
    // One server: each call must match its own recording (the bodies differ).
    let server = server_with(version, &["054-", "055-", "057-", "062-", "079-", "086-"]).await;
    let a = adapter(&server, version);
    let ids = |p: &str, key: &str| -> Vec<String> {
        load(version, p).request_body()[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    a.delete_pending(&ids("054-", "delete"))
        .await
        .unwrap_or_else(|e| panic!("{version} 054: {e}"));
    let target = load(version, "055-").request_body()["prompt_id"]
        .as_str()
        .unwrap()
        .to_owned();
    a.interrupt(Some(&target))
        .await
        .unwrap_or_else(|e| panic!("{version} 055: {e}"));
    a.interrupt(None)
        .await
        .unwrap_or_else(|e| panic!("{version} 057: {e}"));
    let target = load(version, "086-").request_body()["prompt_id"]
        .as_str()
        .unwrap()
        .to_owned();
    a.interrupt(Some(&target))
        .await
        .unwrap_or_else(|e| panic!("{version} 086: {e}"));
    a.clear_queue()
        .await
        .unwrap_or_else(|e| panic!("{version} 062: {e}"));
    a.delete_history(&ids("079-", "delete"))
        .await
        .unwrap_or_else(|e| panic!("{version} 079: {e}"));
    server.verify().await;
}

per_version!(cancel);
async fn cancel(version: &str) {
    if line_of(version) == Line::CancelApi {
        let server = server_with(version, &["063-", "064-", "065-"]).await;
        let a = adapter(&server, version);
        for (p, expected) in [
            ("063-", CancelOutcome::Cancelled),
            ("064-", CancelOutcome::Cancelled),
            ("065-", CancelOutcome::NotCancellable),
        ] {
            let ex = load(version, p);
            let id = ex
                .path()
                .strip_prefix("/api/jobs/")
                .unwrap()
                .strip_suffix("/cancel")
                .unwrap();
            let got = a
                .cancel(id)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
            assert_eq!(got, expected, "{}", ex.label());
        }
        server.verify().await;
        return;
    }
    // No cancel endpoint (063–065 are 405 here): /queue, then delete and/or interrupt.
    let queue = load(version, "049-");
    let running = queue.response_body()["queue_running"][0][1]
        .as_str()
        .unwrap()
        .to_owned();
    let pending = load(version, "054-").request_body()["delete"][0]
        .as_str()
        .unwrap()
        .to_owned();

    // Running: a targeted interrupt (055 interrupts exactly that id).
    let server = server_with(version, &["049-", "055-"]).await;
    let got = adapter(&server, version).cancel(&running).await;
    server.verify().await;
    assert_eq!(
        got.unwrap_or_else(|e| panic!("{version}: {e}")),
        CancelOutcome::Interrupted,
        "{version}: running"
    );

    // Pending: removed (054), then a targeted interrupt of that id (055's
    // shape with the pending id: no recording sends exactly this).
    let server = server_with(version, &["049-", "054-"]).await;
    let interrupt = load(version, "055-").with_request_body(json!({ "prompt_id": pending }));
    mount(&server, &interrupt).await;
    let got = adapter(&server, version).cancel(&pending).await;
    server.verify().await;
    assert_eq!(
        got.unwrap_or_else(|e| panic!("{version}: {e}")),
        CancelOutcome::RemovedFromQueue,
        "{version}: pending"
    );

    // Unknown: only the queue is read.
    let server = server_with(version, &["019-"]).await;
    let got = adapter(&server, version)
        .cancel("00000000-0000-4000-8000-000000000000")
        .await;
    server.verify().await;
    assert_eq!(
        got.unwrap_or_else(|e| panic!("{version}: {e}")),
        CancelOutcome::NotCancellable,
        "{version}: unknown"
    );
}

// ---------------------------------------------------------------------------
// 5. userdata

/// Replays one userdata write (094–097).
async fn replay_put(
    version: &str,
    prefix: &str,
    options: WriteOptions,
) -> (
    Exchange,
    comfy_adapter::Result<comfy_adapter::model::userdata::UserdataEntry>,
) {
    let ex = load(version, prefix);
    let server = server_with(version, &[prefix]).await;
    let path = userdata_path(userdata_segment(&ex));
    let result = adapter(&server, version)
        .userdata_put(&path, userdata_body(&ex), options)
        .await;
    server.verify().await;
    (ex, result)
}

per_version!(userdata_put_encoded);
async fn userdata_put_encoded(version: &str) {
    let (ex, result) = replay_put(version, "094-", WriteOptions::default()).await;
    let entry = result.unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
    assert_eq!(ex.path(), "/userdata/workflows%2Ffixture_template.json");
    assert_eq!(
        entry.path,
        "workflows/fixture_template.json",
        "{}",
        ex.label()
    );
    assert_eq!(
        (entry.size, entry.modified, entry.created),
        (None, None, None),
        "{}",
        ex.label()
    );
}

per_version!(userdata_put_nested_with_space);
async fn userdata_put_nested_with_space(version: &str) {
    let (ex, result) = replay_put(version, "095-", WriteOptions::default()).await;
    let entry = result.unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
    assert_eq!(ex.path(), "/userdata/workflows%2Fteam%2Fnested%20name.json");
    assert_eq!(
        UserdataPath::new("workflows/team/nested name.json")
            .unwrap()
            .encoded(),
        "workflows%2Fteam%2Fnested%20name.json"
    );
    assert_eq!(
        entry.path,
        "workflows/team/nested name.json",
        "{}",
        ex.label()
    );
}

per_version!(userdata_put_conflict);
async fn userdata_put_conflict(version: &str) {
    let (ex, result) = replay_put(version, "096-", write_options(Overwrite::Deny, false)).await;
    assert_err!(result, ComfyError::Conflict { .. }, ex.label());
}

per_version!(userdata_put_full_info);
async fn userdata_put_full_info(version: &str) {
    let (ex, result) = replay_put(version, "097-", write_options(Overwrite::Allow, true)).await;
    let entry = result.unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
    let body = ex.response_body();
    assert_eq!(entry.path, "workflows/full_info.json", "{}", ex.label());
    assert_eq!(entry.size, Some(121), "{}", ex.label());
    assert_seconds(
        &format!("{} modified", ex.label()),
        entry.modified,
        recorded_seconds(version, &body["modified"]),
    );
    assert_seconds(
        &format!("{} created", ex.label()),
        entry.created,
        recorded_seconds(version, &body["created"]),
    );
}

async fn replay_list(
    version: &str,
    prefix: &str,
) -> (
    Exchange,
    comfy_adapter::Result<Vec<comfy_adapter::model::userdata::UserdataEntry>>,
) {
    let ex = load(version, prefix);
    let q = ex.query();
    let dir = UserdataPath::new(q["dir"].clone()).unwrap();
    let options = ListOptions {
        recurse: q.contains_key("recurse"),
        full_info: q.contains_key("full_info"),
    };
    let server = server_with(version, &[prefix]).await;
    let result = adapter(&server, version).userdata_list(&dir, options).await;
    server.verify().await;
    (ex, result)
}

per_version!(userdata_list_missing_dir);
async fn userdata_list_missing_dir(version: &str) {
    let (ex, result) = replay_list(version, "093-").await;
    assert_err!(result, ComfyError::NotFound { .. }, ex.label());
}

per_version!(userdata_list_plain_and_recursive);
async fn userdata_list_plain_and_recursive(version: &str) {
    // 116: the recursive listing again, after the move and delete.
    for p in ["098-", "099-", "116-"] {
        let (ex, result) = replay_list(version, p).await;
        let entries = result.unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
        let expected: Vec<&str> = ex
            .response_body()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let got: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(got, expected, "{}", ex.label());
        assert!(
            entries
                .iter()
                .all(|e| e.size.is_none() && e.modified.is_none()),
            "{}",
            ex.label()
        );
    }
}

per_version!(userdata_list_full_info);
async fn userdata_list_full_info(version: &str) {
    let (ex, result) = replay_list(version, "100-").await;
    let entries = result.unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
    let expected = ex.response_body().as_array().unwrap();
    assert_eq!(entries.len(), expected.len(), "{}", ex.label());
    assert!(
        entries.iter().any(|e| e.path == "team/nested name.json"),
        "{}: {entries:?}",
        ex.label()
    );
    for (e, w) in entries.iter().zip(expected) {
        let ctx = format!("{} {}", ex.label(), e.path);
        assert_eq!(e.path, w["path"].as_str().unwrap(), "{ctx}");
        assert_eq!(e.size, w["size"].as_u64(), "{ctx}");
        assert_seconds(
            &format!("{ctx} modified"),
            e.modified,
            recorded_seconds(version, &w["modified"]),
        );
        assert_seconds(
            &format!("{ctx} created"),
            e.created,
            recorded_seconds(version, &w["created"]),
        );
    }
}

per_version!(userdata_tree);
async fn userdata_tree(version: &str) {
    for p in ["103-", "104-"] {
        let ex = load(version, p);
        let dir = ex
            .query()
            .get("path")
            .map(|d| UserdataPath::new(d.clone()).unwrap());
        let server = server_with(version, &[p]).await;
        let tree = adapter(&server, version)
            .userdata_tree(dir.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
        server.verify().await;
        let expected = ex.response_body().as_array().unwrap();
        assert_eq!(tree.len(), expected.len(), "{}", ex.label());
        for (t, w) in tree.iter().zip(expected) {
            let ctx = format!("{} {}", ex.label(), t.path);
            assert_eq!(t.name, w["name"].as_str().unwrap(), "{ctx}");
            assert_eq!(t.path, w["path"].as_str().unwrap(), "{ctx}");
            assert_eq!(t.is_dir, w["type"] == "directory", "{ctx}");
            assert_eq!(t.size, w["size"].as_u64(), "{ctx}");
            if t.is_dir {
                assert_eq!(t.modified, None, "{ctx}");
            } else {
                // /v2/userdata stays in seconds on every version.
                assert_seconds(&ctx, t.modified, w["modified"].as_f64().unwrap());
            }
        }
        assert!(
            tree.iter().any(|t| t.path == "workflows/team" && t.is_dir),
            "{}",
            ex.label()
        );
    }
}

per_version!(userdata_get);
async fn userdata_get(version: &str) {
    for p in ["105-", "108-"] {
        let ex = load(version, p);
        let path = userdata_path(userdata_segment(&ex));
        let server = server_with(version, &[p]).await;
        let bytes = adapter(&server, version)
            .userdata_get(&path)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
        server.verify().await;
        let got: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(&got, ex.response_body(), "{}", ex.label());
    }
}

per_version!(userdata_get_missing);
async fn userdata_get_missing(version: &str) {
    let ex = load(version, "109-");
    let path = userdata_path(userdata_segment(&ex));
    let server = server_with(version, &["109-"]).await;
    let result = adapter(&server, version).userdata_get(&path).await;
    server.verify().await;
    assert_err!(result, ComfyError::NotFound { .. }, ex.label());
}

// 110/111 (403 on `..`) cannot be replayed through the adapter: UserdataPath
// refuses a `..` segment before anything is sent, so no adapter call can put
// those wire paths on the wire.
per_version!(userdata_traversal_is_refused_before_sending);
async fn userdata_traversal_is_refused_before_sending(version: &str) {
    for p in ["110-", "111-"] {
        let ex = load(version, p);
        assert_eq!(ex.status(), 403, "{}", ex.label());
        let decoded = percent_encoding::percent_decode_str(userdata_segment(&ex))
            .decode_utf8()
            .unwrap()
            .into_owned();
        assert!(decoded.contains(".."), "{}: {decoded}", ex.label());
        assert_eq!(
            UserdataPath::new(decoded.clone()),
            Err(UserdataPathError::DotSegment(decoded)),
            "{}",
            ex.label()
        );
    }
}

async fn replay_move(
    version: &str,
    prefix: &str,
    options: WriteOptions,
) -> (
    Exchange,
    comfy_adapter::Result<comfy_adapter::model::userdata::UserdataEntry>,
) {
    let ex = load(version, prefix);
    let (from, to) = userdata_segment(&ex).split_once("/move/").unwrap();
    let (from, to) = (userdata_path(from), userdata_path(to));
    let server = server_with(version, &[prefix]).await;
    let result = adapter(&server, version)
        .userdata_move(&from, &to, options)
        .await;
    server.verify().await;
    (ex, result)
}

per_version!(userdata_move);
async fn userdata_move(version: &str) {
    let (ex, result) = replay_move(version, "112-", WriteOptions::default()).await;
    let entry = result.unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
    assert_eq!(entry.path, "workflows/renamed.json", "{}", ex.label());
}

per_version!(userdata_move_conflict);
async fn userdata_move_conflict(version: &str) {
    let (ex, result) = replay_move(version, "113-", write_options(Overwrite::Deny, false)).await;
    assert_err!(result, ComfyError::Conflict { .. }, ex.label());
}

per_version!(userdata_delete);
async fn userdata_delete(version: &str) {
    for p in ["114-", "115-"] {
        let ex = load(version, p);
        let path = userdata_path(userdata_segment(&ex));
        let server = server_with(version, &[p]).await;
        let result = adapter(&server, version).userdata_delete(&path).await;
        server.verify().await;
        if ex.status() == 204 {
            result.unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
        } else {
            assert_err!(result, ComfyError::NotFound { .. }, ex.label());
        }
    }
}

// The matchers are exact: a wrong encoding, an extra or missing query pair,
// or another body does not match a recording.
per_version!(replay_matching_is_exact);
async fn replay_matching_is_exact(version: &str) {
    let server = MockServer::start().await;
    mount(&server, &load(version, "105-")).await;
    mount(&server, &load(version, "098-")).await;
    mount(&server, &load(version, "094-")).await;
    let http = reqwest::Client::new();
    let base = server.uri();
    let status = |r: reqwest::Response| r.status().as_u16();

    let get = |p: &str| http.get(format!("{base}{p}")).send();
    // 107 recorded the unencoded slash as a 404 on the real server too.
    assert_eq!(
        status(
            get("/userdata/workflows/fixture_template.json")
                .await
                .unwrap()
        ),
        404,
        "{version}"
    );
    assert_eq!(
        status(
            get("/userdata/workflows%2ffixture_template.json")
                .await
                .unwrap()
        ),
        404,
        "{version}"
    );
    assert_eq!(
        status(
            get("/userdata/workflows%2Ffixture_template.json?x=1")
                .await
                .unwrap()
        ),
        404,
        "{version}"
    );
    assert_eq!(
        status(get("/userdata").await.unwrap()),
        404,
        "{version}: missing dir"
    );
    assert_eq!(
        status(get("/userdata?dir=workflows&recurse=true").await.unwrap()),
        404,
        "{version}: extra pair"
    );
    assert_eq!(
        status(get("/userdata?dir=workflows&dir=workflows").await.unwrap()),
        404,
        "{version}: repeated"
    );
    let post = http
        .post(format!("{base}/userdata/workflows%2Ffixture_template.json"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(status(post), 404, "{version}: other body");

    // The exact requests match (each mount expects one call).
    let a = adapter(&server, version);
    let template = UserdataPath::new("workflows/fixture_template.json").unwrap();
    a.userdata_get(&template)
        .await
        .unwrap_or_else(|e| panic!("{version}: {e}"));
    a.userdata_list(
        &UserdataPath::new("workflows").unwrap(),
        ListOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{version}: {e}"));
    a.userdata_put(
        &template,
        userdata_body(&load(version, "094-")),
        WriteOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{version}: {e}"));
    server.verify().await;
}

// ---------------------------------------------------------------------------
// 6. view and upload

fn file_from_query(ex: &Exchange) -> FileRef {
    let q = ex.query();
    FileRef {
        filename: q["filename"].clone(),
        subfolder: q.get("subfolder").cloned().unwrap_or_default(),
        folder: FolderType::from_wire(&q["type"]),
    }
}

per_version!(view_image);
async fn view_image(version: &str) {
    let ex = load(version, "089-");
    let server = server_with(version, &["089-"]).await;
    let bytes = adapter(&server, version)
        .view(&file_from_query(&ex))
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
    server.verify().await;
    assert_eq!(Some(bytes.len()), ex.binary_len(), "{}", ex.label());
    assert_eq!(bytes.len(), 423, "{}", ex.label());
}

/// 090/091 were recorded without `subfolder`; the adapter always sends it
/// (empty). ComfyUI's `/view` joins an empty subfolder to the folder, the
/// same directory, so the derived exchange adds `subfolder=` and keeps the
/// recorded answer.
async fn replay_view_error(
    version: &str,
    prefix: &str,
) -> (Exchange, comfy_adapter::Result<Bytes>) {
    let recorded = load(version, prefix);
    assert!(
        !recorded.query().contains_key("subfolder"),
        "{}",
        recorded.label()
    );
    let ex = recorded.with_query("subfolder", "");
    let server = MockServer::start().await;
    mount(&server, &ex).await;
    mount_fallback(&server, version).await;
    let result = adapter(&server, version).view(&file_from_query(&ex)).await;
    server.verify().await;
    (ex, result)
}

per_version!(view_missing);
async fn view_missing(version: &str) {
    let (ex, result) = replay_view_error(version, "090-").await;
    assert_err!(result, ComfyError::NotFound { .. }, ex.label());
}

per_version!(view_traversal);
async fn view_traversal(version: &str) {
    let (ex, result) = replay_view_error(version, "091-").await;
    assert_err!(
        result,
        ComfyError::InvalidInput {
            field: "filename",
            ..
        },
        ex.label()
    );
}

per_version!(upload_image);
async fn upload_image(version: &str) {
    let ex = load(version, "092-");
    // Recorded as a description of the form: match method + path (+ no query) only.
    let server = MockServer::start().await;
    mount_without_body(&server, &ex, 1).await;
    mount_fallback(&server, version).await;
    let png: &[u8] = b"\x89PNG\r\n\x1a\nfixture-bytes";
    let file = adapter(&server, version)
        .upload_image(
            "fixture_upload.png",
            Bytes::from_static(png),
            &UploadOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
    server.verify().await;
    assert_eq!(
        file,
        FileRef {
            filename: "fixture_upload.png".into(),
            subfolder: String::new(),
            folder: FolderType::Input
        },
        "{}",
        ex.label()
    );
    // The form carries what the recording describes: image=fixture_upload.png, type=input, overwrite=true.
    assert_eq!(
        ex.request_body(),
        "multipart: image=fixture_upload.png (1x1 png), type=input, overwrite=true"
    );
    let sent = received(&server, |r| r.url.path() == "/upload/image").await;
    assert_eq!(sent.len(), 1, "{}", ex.label());
    let ct = sent[0]
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        ct.starts_with("multipart/form-data; boundary="),
        "{}: {ct}",
        ex.label()
    );
    let body = String::from_utf8_lossy(&sent[0].body);
    for part in [
        "name=\"image\"; filename=\"fixture_upload.png\"",
        "name=\"type\"\r\n\r\ninput\r\n",
        "name=\"overwrite\"\r\n\r\ntrue\r\n",
        "fixture-bytes",
    ] {
        assert!(
            body.contains(part),
            "{}: {part:?} not in {body:?}",
            ex.label()
        );
    }
}

// ---------------------------------------------------------------------------
// 7. object_info

per_version!(object_info_one_class);
async fn object_info_one_class(version: &str) {
    // 009 EmptyImage, then the other sampled classes (010–015).
    for p in ["009-", "010-", "011-", "012-", "013-", "014-", "015-"] {
        let ex = load(version, p);
        let class = last_segment(&ex);
        if p == "009-" {
            assert_eq!(class, "EmptyImage");
        }
        let server = server_with(version, &[p]).await;
        let map = adapter(&server, version)
            .object_info(Some(&class))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
        server.verify().await;
        assert_eq!(map.len(), 1, "{}", ex.label());
        assert!(map.contains(&class), "{}", ex.label());
        assert_eq!(
            map.node(&class).map(|n| Value::Object(n.unwrap())).as_ref(),
            ex.response_body().get(&class),
            "{}",
            ex.label()
        );
    }
}

per_version!(object_info_unknown_class);
async fn object_info_unknown_class(version: &str) {
    let ex = load(version, "017-");
    let server = server_with(version, &["017-"]).await;
    let result = adapter(&server, version)
        .object_info(Some("NoSuchNode"))
        .await;
    server.verify().await;
    assert_err!(result, ComfyError::NotFound { .. }, ex.label());
}

per_version!(object_info_full);
async fn object_info_full(version: &str) {
    let ex = load(version, "018-");
    let server = server_with(version, &["018-"]).await;
    let map = adapter(&server, version)
        .object_info(None)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", ex.label()));
    server.verify().await;
    let expected = obj(ex.response_body(), &ex.label());
    assert_eq!(map.len(), expected.len(), "{}: node count", ex.label());
    let got: BTreeSet<&str> = map.class_names().collect();
    assert_eq!(
        got,
        expected.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        "{}",
        ex.label()
    );
}

// ---------------------------------------------------------------------------
// 8. free memory (no recording exists: a hand-written mock)

#[tokio::test]
async fn free_memory_posts_free() {
    for line in Line::ALL {
        let version = line.tested_versions()[0];
        let server = MockServer::start().await;
        for (unload, free) in [(true, true), (false, true)] {
            Mock::given(method("POST"))
                .and(RawPath("/free".into()))
                .and(ExactQuery(BTreeMap::new()))
                .and(JsonBody {
                    expected: json!({ "unload_models": unload, "free_memory": free }),
                    generated_prompt_id: false,
                })
                .respond_with(ResponseTemplate::new(200))
                .expect(1)
                .named(format!(
                    "{line}: POST /free unload_models={unload} free_memory={free}"
                ))
                .mount(&server)
                .await;
        }
        mount_fallback(&server, version).await;
        let a = adapter_on(&server, version, line);
        a.free_memory(true, true)
            .await
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        a.free_memory(false, true)
            .await
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        server.verify().await;
    }
}
