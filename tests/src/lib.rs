//! Helpers of the end-to-end tests (`tests/tests/*.rs`): a queue (SQLite or
//! a private Redis), emulated ComfyUI servers and in-process workers with
//! short leases and fast polls, so the suite stays quick. The private Redis,
//! free ports and seeds come from `comfy-test-support`, re-exported here.

pub mod balancer;
pub mod timeline;

pub use comfy_test_support::ports::free_port;
pub use comfy_test_support::seed::seed;

use comfy_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use comfy_queue::Settings;
use comfy_stack::{Backend, QueueOptions, RunningQueue, UserApi, start_queue};
use comfy_test_support::redis::RedisServer;
use comfy_worker::Worker;
use comfy_worker::config::Config;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Lease used by the tests.
pub const LEASE: Duration = Duration::from_secs(2);

/// The API prompt of fixture 023 (EmptyImage → SaveImage) with a prefix.
pub fn image_prompt(prefix: &str) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}, "_meta": {"title": "EmptyImage"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}, "_meta": {"title": "Save Image"}},
    })
}

/// The seed's metadata for a single submission.
pub fn seed_metadata() -> Value {
    json!({"batch_index": 0, "batch_total": 1})
}

/// The classified error a worker reported, parsed.
pub fn reported_error(job: &Value) -> Value {
    job["error"]
        .as_str()
        .and_then(|e| serde_json::from_str(e).ok())
        .unwrap_or(Value::Null)
}

/// A queue with its store kept alive.
#[derive(Debug)]
pub struct TestQueue {
    /// The queue.
    pub queue: RunningQueue,
    /// A user-side client.
    pub api: UserApi,
    _dir: Option<tempfile::TempDir>,
    _redis: Option<RedisServer>,
}

impl TestQueue {
    /// Its URL.
    pub fn url(&self) -> String {
        self.queue.url()
    }

    /// Submits `prompt` as `user` with the seed's single-job metadata;
    /// returns the new job's id (panics on any other answer).
    pub async fn submit(&self, user: &str, prompt: &Value) -> String {
        let job = self
            .api
            .submit(user, prompt, seed_metadata())
            .await
            .unwrap_or_else(|e| panic!("submit as {user}: {e}"));
        job["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {job}"))
            .to_owned()
    }
}

/// A queue on a SQLite file in `dir` (its files in `dir/files`) with auth on:
/// these worker and admin tokens, users named by `X-Forwarded-User`; no caps.
pub fn authed_sqlite_options(
    dir: &std::path::Path,
    worker_token: &str,
    admin_token: &str,
) -> QueueOptions {
    let mut o = QueueOptions::sqlite("unused").short_leases(LEASE);
    o.backend = Backend::Sqlite(dir.join("queue.db"));
    o.files_dir = dir.join("files");
    o.settings.max_pending = 0;
    o.settings.max_wait_secs = 2.0;
    o.settings.auth = comfy_queue::auth::AuthConfig {
        worker_token: Some(worker_token.into()),
        admin_token: Some(admin_token.into()),
        user_header: "X-Forwarded-User".into(),
    };
    o
}

/// Asserts that `names` holds `wanted` in this order (other names in between).
pub fn assert_in_order(names: &[&str], wanted: &[&str]) {
    let mut rest = wanted.iter().peekable();
    for n in names {
        if rest.peek() == Some(&n) {
            rest.next();
        }
    }
    assert!(
        rest.peek().is_none(),
        "missing {:?} in {names:?}",
        rest.peek()
    );
}

fn options(backend: Backend, max_attempts: u32) -> QueueOptions {
    let mut o = QueueOptions::sqlite("unused").short_leases(LEASE);
    o.backend = backend;
    o.settings.max_attempts = max_attempts;
    o.settings.max_pending = 0;
    o.settings.max_wait_secs = 2.0;
    // Retried jobs wait this long before they can be claimed again.
    o.settings.retry_delay_ms = 100;
    o
}

/// A queue on a fresh SQLite file.
pub async fn sqlite_queue(max_attempts: u32) -> TestQueue {
    sqlite_queue_with(max_attempts, |_| {}).await
}

/// A queue on a fresh SQLite file, its settings changed by `tune` first.
pub async fn sqlite_queue_with(max_attempts: u32, tune: impl FnOnce(&mut Settings)) -> TestQueue {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut o = options(Backend::Sqlite(dir.path().join("queue.db")), max_attempts);
    tune(&mut o.settings);
    o.files_dir = dir.path().join("files");
    let queue = start_queue(o)
        .await
        .unwrap_or_else(|e| panic!("queue: {e:#}"));
    TestQueue {
        api: UserApi::new(&queue.url()),
        queue,
        _dir: Some(dir),
        _redis: None,
    }
}

/// A queue on a private redis-server (`comfy_test_support::redis`); tests
/// using it are ignored where redis-server is not installed (`build.rs`).
pub async fn redis_queue(max_attempts: u32) -> TestQueue {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut o = options(Backend::Redis(redis.url(), "e2e".into()), max_attempts);
    o.files_dir = dir.path().join("files");
    let queue = start_queue(o)
        .await
        .unwrap_or_else(|e| panic!("queue: {e:#}"));
    TestQueue {
        api: UserApi::new(&queue.url()),
        queue,
        _dir: Some(dir),
        _redis: Some(redis),
    }
}

/// An emulator of `version` with `node_ms` per node.
pub async fn emulator(version: &str, node_ms: u64) -> EmulatorHandle {
    Emulator::start(EmulatorConfig::new(version).node_time(Duration::from_millis(node_ms)))
        .await
        .unwrap_or_else(|e| panic!("emulator: {e}"))
}

/// Worker settings for tests: fast polls, short pauses, no health port.
pub fn worker_config(queue_url: &str, comfy_url: &str, id: &str) -> Config {
    let mut c = Config::for_urls(queue_url, comfy_url);
    c.worker_id = Some(id.to_owned());
    c.poll_wait_secs = 1.0;
    c.status_poll_secs = 0.1;
    c.ws_silence_secs = 1.0;
    c.unreachable_secs = 1.0;
    c.heartbeat_secs = Some(0.3);
    c.backoff_min_secs = 0.05;
    c.backoff_max_secs = 0.5;
    c.shutdown_grace_secs = 1.0;
    c.health_listen = "off".into();
    c
}

/// A worker running as a task of this process.
#[derive(Debug)]
pub struct TestWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
    /// Its health record.
    pub health: std::sync::Arc<comfy_worker::health::Health>,
}

impl TestWorker {
    /// Starts a worker.
    pub fn start(config: Config) -> TestWorker {
        let worker = Worker::new(config).unwrap_or_else(|e| panic!("worker: {e:#}"));
        let health = worker.health();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(worker.run(rx));
        TestWorker { stop, task, health }
    }

    /// Asks it to stop and waits.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A binary of another workspace package (`comfy-worker`, `comfy-stack`),
/// found beside this test's executable in the same target directory.
/// `cargo test --workspace` builds every package's binaries (each of those
/// packages has integration tests); with `-p comfy-e2e` alone, build them
/// first (`cargo build -p comfy-worker -p comfy-stack`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is not built: run `cargo test --workspace`, or `cargo build -p {name}` first",
        bin.display()
    );
    bin
}

/// The `comfy-worker` binary as a child process on `queue_url` and `comfy_url`, with the
/// suite's short timings (1 s long-polls, 0.3 s heartbeats, fast backoff); the caller picks
/// where its output goes and spawns it.
pub fn worker_command(queue_url: &str, comfy_url: &str, id: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(workspace_bin("comfy-worker"));
    cmd.args([
        "--queue-url",
        queue_url,
        "--comfy-url",
        comfy_url,
        "--worker-id",
        id,
    ])
    .args([
        "--health-listen",
        "off",
        "--poll-wait-secs",
        "1",
        "--status-poll-secs",
        "0.1",
    ])
    .args([
        "--heartbeat-secs",
        "0.3",
        "--unreachable-secs",
        "1",
        "--ws-silence-secs",
        "1",
    ])
    .args(["--backoff-min-secs", "0.05", "--backoff-max-secs", "0.5"])
    .args(["--shutdown-grace-secs", "0.5"])
    .env("RUST_LOG", "warn");
    cmd
}
