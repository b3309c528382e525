//! Test support shared by the queue's integration tests: what needs the
//! queue's own types (stores, the in-process app). The private Redis, free
//! ports, HTTP callers and the browser are in `comfy-test-support`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::any::Any;
use std::sync::Arc;

use comfy_artifacts::{BlobStore, LocalStore};
use comfy_queue::clock::ManualClock;
use comfy_queue::store::Store;
use comfy_queue::store::sqlite::SqliteStore;
pub use comfy_test_support::redis::RedisServer;

/// A store under test, its clock, and whatever must live as long as it.
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub clock: ManualClock,
    pub guard: Box<dyn Any + Send>,
}

pub async fn sqlite_harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("nested/queue.db")).unwrap();
    Harness {
        store: Arc::new(store),
        clock: ManualClock::default(),
        guard: Box::new(dir),
    }
}

/// A store on a private redis-server (`comfy_test_support::redis`); tests
/// using it are ignored where redis-server is not installed (`build.rs`).
pub async fn redis_harness() -> Harness {
    let server = RedisServer::start();
    let store = comfy_queue::store::redis::RedisStore::connect(&server.url(), "test")
        .await
        .unwrap();
    Harness {
        store: Arc::new(store),
        clock: ManualClock::default(),
        guard: Box::new(server),
    }
}

// ---- HTTP helpers -------------------------------------------------------------------

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use comfy_queue::{AppState, Settings};
use serde_json::Value;
use tower::ServiceExt;

/// A local file store in `dir`, opened on a runtime of its own (sync helpers call it, also
/// from inside a test's runtime).
pub fn local_files(dir: &std::path::Path) -> Arc<dyn BlobStore> {
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(LocalStore::open(dir))
            .unwrap()
    })
    .join()
    .map(|s| Arc::new(s) as Arc<dyn BlobStore>)
    .unwrap()
}

/// An app on a fresh SQLite file with a manual clock.
pub struct TestApp {
    pub app: Router,
    pub state: AppState,
    pub clock: ManualClock,
    /// Root of the app's local file store.
    pub files_dir: std::path::PathBuf,
    _dir: Box<dyn Any + Send>,
    _files: tempfile::TempDir,
}

pub fn test_app(settings: Settings) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("q.db")).unwrap();
    test_app_with(Arc::new(store), settings, Box::new(dir))
}

/// An app over any store; `guard` lives as long as the app.
pub fn test_app_with(
    store: Arc<dyn Store>,
    settings: Settings,
    guard: Box<dyn Any + Send>,
) -> TestApp {
    let clock = ManualClock::default();
    let files_tmp = tempfile::tempdir().unwrap();
    let files_dir = files_tmp.path().join("files");
    let files = local_files(&files_dir);
    let state = AppState::new(store, files, Arc::new(clock.clone()), settings);
    TestApp {
        app: comfy_queue::app(state.clone()),
        state,
        clock,
        files_dir,
        _dir: guard,
        _files: files_tmp,
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub text: String,
    pub json: Value,
    pub bytes: Vec<u8>,
}

impl TestApp {
    pub async fn req(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let content_type = body.as_ref().map(|_| "application/json");
        self.req_typed(method, uri, headers, content_type, body.unwrap_or_default())
            .await
    }

    /// A request with exactly this `Content-Type` (none for `None`) and body.
    pub async fn req_typed(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(t) = content_type {
            b = b.header("content-type", t);
        }
        let req = b.body(Body::from(body)).unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
            bytes: bytes.to_vec(),
        }
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.req("GET", uri, &[], None).await
    }

    pub async fn post_json(&self, uri: &str, body: &Value) -> Resp {
        self.req("POST", uri, &[], Some(serde_json::to_vec(body).unwrap()))
            .await
    }

    /// Submit a small job for `user`, returning its id.
    pub async fn submit(&self, user: &str, priority: u8) -> String {
        let r = self
            .post_json(
                "/api/jobs",
                &serde_json::json!({"user_id": user, "workflow": {"1": {"class_type": "X"}}, "priority": priority}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json["id"].as_str().unwrap().to_owned()
    }
}

/// The worker token of [`authed_settings`], as a header.
pub const WORKER: (&str, &str) = ("authorization", "Bearer wtok");
/// The admin token of [`authed_settings`], as a header.
pub const ADMIN: (&str, &str) = ("authorization", "Bearer atok");
/// The user alice, named by the trusted header of [`authed_settings`].
pub const ALICE: (&str, &str) = ("x-forwarded-user", "alice");
/// The user bob.
pub const BOB: (&str, &str) = ("x-forwarded-user", "bob");

/// Settings with auth on: worker token `wtok`, admin token `atok`, users in
/// `X-Forwarded-User`.
pub fn authed_settings() -> Settings {
    Settings {
        auth: comfy_queue::auth::AuthConfig {
            worker_token: Some("wtok".into()),
            admin_token: Some("atok".into()),
            user_header: "X-Forwarded-User".into(),
        },
        ..Settings::default()
    }
}

/// Asserts the answer is `status` with the API's error `code`.
pub fn assert_error(r: &Resp, status: axum::http::StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json["error"]["code"], code, "{}", r.text);
}

/// An API prompt of `nodes` nodes, as the submit-memory benchmark sends it.
pub fn big_submit(nodes: usize) -> Vec<u8> {
    let mut w = serde_json::Map::new();
    for i in 0..nodes {
        w.insert(
            i.to_string(),
            serde_json::json!({"class_type": "EmptyImage",
                "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": i},
                "_meta": {"title": format!("Empty Image number {i}")}}),
        );
    }
    serde_json::to_vec(&serde_json::json!({"user_id": "u1", "workflow": w})).unwrap()
}

/// Submits one large body to `a` and asserts that the live bytes of the test
/// binary (read from its counting allocator through `usage`, `reset_peak`
/// and `peak`) peaked at most 3× the body over where they started.
pub async fn one_large_submit_within_three_bodies(
    a: &TestApp,
    usage: impl Fn() -> usize,
    reset_peak: impl Fn(),
    peak: impl Fn() -> usize,
) {
    // The first submit allocates what every later one reuses (statements, caches).
    a.submit("u1", 2).await;
    let body = big_submit(25_000);
    let len = body.len();
    let req = Request::builder()
        .method("POST")
        .uri("/api/jobs")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let base = usage();
    reset_peak();
    let resp = a.app.clone().oneshot(req).await.unwrap();
    let held = peak().saturating_sub(base);
    let status = resp.status();
    drop(resp);
    println!(
        "body {len} bytes, peak {held} bytes over the start: {:.2}x",
        held as f64 / len as f64
    );
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        held <= 3 * len,
        "one submit of {len} bytes held {held} bytes at its peak ({:.1}x the body; at most 3x)",
        held as f64 / len as f64
    );
    // The job is stored and listed as any other.
    let jobs = a.get("/api/jobs").await;
    assert_eq!(jobs.json.as_array().map(Vec::len), Some(2), "{}", jobs.text);
}

/// Files below `dir`, counted through its subfolders (0 when it does not exist).
pub fn file_count(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                file_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}

impl TestApp {
    /// Blobs in the app's local file store.
    pub fn blob_count(&self) -> usize {
        file_count(&self.files_dir.join("sha256"))
    }

    /// Temporary files the app's local file store holds (puts under way or broken off).
    pub fn temp_file_count(&self) -> usize {
        file_count(&self.files_dir.join("tmp"))
    }
}
