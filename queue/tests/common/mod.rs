//! Test support shared by the integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::any::Any;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use comfy_queue::clock::ManualClock;
use comfy_queue::store::Store;
use comfy_queue::store::sqlite::SqliteStore;

/// A store under test, its clock, and whatever must live as long as it.
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub clock: ManualClock,
    pub guard: Box<dyn Any + Send>,
}

pub async fn sqlite_harness() -> Option<Harness> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("nested/queue.db")).unwrap();
    Some(Harness {
        store: Arc::new(store),
        clock: ManualClock::default(),
        guard: Box::new(dir),
    })
}

pub async fn redis_harness() -> Option<Harness> {
    let server = RedisServer::start()?;
    let store = comfy_queue::store::redis::RedisStore::connect(&server.url(), "test")
        .await
        .unwrap();
    Some(Harness {
        store: Arc::new(store),
        clock: ManualClock::default(),
        guard: Box::new(server),
    })
}

/// A private `redis-server` on a free port in a temp dir, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

const REDIS_BIN: &str = "redis-server";

fn redis_binary() -> Option<PathBuf> {
    for p in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] {
        let p = PathBuf::from(p);
        if p.exists() {
            return Some(p);
        }
    }
    let ok = Command::new(REDIS_BIN)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| PathBuf::from(REDIS_BIN))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Start a server, or `None` (with a message) when redis-server is not installed.
    /// With `COMFY_REQUIRE_REDIS=1` a missing server is a failure instead.
    pub fn start() -> Option<RedisServer> {
        let Some(bin) = redis_binary() else {
            if std::env::var("COMFY_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("redis-server not found and COMFY_REQUIRE_REDIS=1");
            }
            eprintln!("SKIPPED: redis-server not found; Redis backend tests skipped");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut s = RedisServer {
            child: None,
            port,
            dir,
        };
        s.spawn(&bin);
        Some(s)
    }

    fn spawn(&mut self, bin: &PathBuf) {
        let child = Command::new(bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kill and start again on the same port (all data is lost: `--save ""`).
    pub fn restart(&mut self) {
        self.stop();
        let bin = redis_binary().unwrap();
        self.spawn(&bin);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- HTTP helpers -------------------------------------------------------------------

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use comfy_queue::{AppState, Settings};
use serde_json::Value;
use tower::ServiceExt;

/// An app on a fresh SQLite file with a manual clock.
pub struct TestApp {
    pub app: Router,
    pub state: AppState,
    pub clock: ManualClock,
    _dir: Box<dyn Any + Send>,
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
    let state = AppState::new(store, Arc::new(clock.clone()), settings);
    TestApp {
        app: comfy_queue::app(state.clone()),
        state,
        clock,
        _dir: guard,
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl TestApp {
    pub async fn req(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some(bytes) => b
                .header("content-type", "application/json")
                .body(Body::from(bytes))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
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
