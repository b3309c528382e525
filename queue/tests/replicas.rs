//! Several queue replicas on one Redis (issue 14): two `AppState`s, each with its own
//! Redis connections and bus link, served on real sockets, share one private redis-server.
//! Each test makes one replica learn something in memory and checks the other acts on it;
//! without the bus, each of these fails (the long-poll answers no job, the socket hears
//! nothing, the cached registration offers nothing, the progress is missing).
//! The embedded SQLite store refuses a second process instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use comfy_queue::clock::{Clock, SystemClock};
use comfy_queue::replicas::{self, Replica};
use comfy_queue::store::redis::{RedisBus, RedisStore};
use comfy_queue::store::sqlite::SqliteStore;
use comfy_queue::{AppState, Settings, app};
use comfy_test_support::http::Client;
use common::RedisServer;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

struct Replicated {
    a: Node,
    b: Node,
    _files: tempfile::TempDir,
    _redis: RedisServer,
}

struct Node {
    addr: SocketAddr,
    state: AppState,
    http: Client,
    _replica: Replica,
}

async fn node(url: &str, files: &std::path::Path, settings: Settings) -> Node {
    let store = RedisStore::connect(url, "rep").await.unwrap();
    let bus = RedisBus::connect(url, "rep").await.unwrap();
    let (clock, _task) = replicas::server_clock(&bus).await.unwrap();
    let state = AppState::new(Arc::new(store), common::local_files(files), clock, settings);
    let replica = replicas::join(&state, bus).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = state.clone();
    tokio::spawn(async move { axum::serve(listener, app(served)).await });
    Node {
        addr,
        state,
        http: Client::new(format!("http://{addr}")),
        _replica: replica,
    }
}

async fn two(settings: Settings) -> Replicated {
    let redis = RedisServer::start();
    let files = tempfile::tempdir().unwrap();
    let a = node(&redis.url(), files.path(), settings.clone()).await;
    let b = node(&redis.url(), files.path(), settings).await;
    // `b` knew `a` listened when it joined; `a` opens its taps on `b`'s hello.
    until(
        || a._replica.has_peers() && b._replica.has_peers(),
        "the replicas see each other",
    )
    .await;
    Replicated {
        a,
        b,
        _files: files,
        _redis: redis,
    }
}

/// Waits (at most 10 s) until `done`.
async fn until(done: impl Fn() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A replica alone on its Redis sends nothing to replicas that are not there: its taps open
/// when a second joins and close once it has gone.
#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn a_replica_sends_only_while_another_listens() {
    let redis = RedisServer::start();
    let files = tempfile::tempdir().unwrap();
    let a = node(&redis.url(), files.path(), Settings::default()).await;
    assert!(!a._replica.has_peers(), "alone");
    assert!(
        !a.state.events.has_listeners(),
        "no event is built for nobody"
    );
    let b = node(&redis.url(), files.path(), Settings::default()).await;
    assert!(b._replica.has_peers(), "a listened when b joined");
    until(|| a._replica.has_peers(), "a hears b's hello").await;
    assert!(a.state.events.has_listeners());
    drop(b);
    // b's listening connection closes with its task; a's next count sees it gone.
    until(|| !a._replica.has_peers(), "a notices b has gone").await;
    assert!(!a.state.events.has_listeners());
}

async fn submit(n: &Node, user: &str, metadata: Value) -> String {
    let r = n
        .http
        .post(
            "/api/jobs",
            &json!({"user_id": user, "workflow": {"1": {"class_type": "EmptyImage", "inputs": {}}}, "metadata": metadata}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["id"].as_str().unwrap().to_owned()
}

async fn register(n: &Node, worker: &str, version: &str) {
    let r = n
        .http
        .post(
            "/api/workers/register",
            &json!({"worker_id": worker, "comfyui_version": version, "capabilities": ["jobs_api"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn claim(n: &Node, worker: &str, wait: f64) -> Value {
    let r = n
        .http
        .get(&format!(
            "/api/workers/next-job?worker_id={worker}&wait={wait}"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["job"].clone()
}

#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn a_job_submitted_on_one_replica_wakes_a_long_poll_on_the_other() {
    let r = two(Settings::default()).await;
    register(&r.b, "gpu-1", "0.9.2").await;
    let b = r.b.http.clone();
    let waiting = tokio::spawn(async move {
        b.get("/api/workers/next-job?worker_id=gpu-1&wait=8")
            .await
            .json
    });
    // Let the long-poll look once and start waiting (its look finds nothing).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = submit(&r.a, "alice", json!({})).await;
    // Without the wake-up from A, B's long-poll waits out its 8 s and answers no job.
    let got = waiting.await.unwrap();
    assert_eq!(got["job"]["id"], id.as_str(), "{got}");
}

#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn a_socket_on_one_replica_hears_the_jobs_of_the_other() {
    let r = two(Settings::default()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", r.b.addr))
        .await
        .unwrap();
    let id = submit(&r.a, "alice", json!({})).await;
    let ev = next_event(&mut ws).await;
    assert_eq!(ev["type"], "job_created", "{ev}");
    assert_eq!(ev["data"]["id"], id.as_str());
    let del = r.a.http.delete(&format!("/api/jobs/{id}")).await;
    assert_eq!(del.status, 204);
    let ev = next_event(&mut ws).await;
    assert_eq!(ev["type"], "job_updated", "{ev}");
    assert_eq!(ev["data"]["status"], "cancelled");
}

async fn next_event<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no event within 5 s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn a_cancel_on_one_replica_reaches_a_heartbeat_waiting_on_the_other() {
    let r = two(Settings::default()).await;
    register(&r.a, "gpu-1", "0.9.2").await;
    let id = submit(&r.a, "alice", json!({})).await;
    let job = claim(&r.a, "gpu-1", 0.0).await;
    let token = job["lease_token"].as_str().unwrap().to_owned();
    let b = r.b.http.clone();
    let body = json!({"job_id": id, "lease_token": token, "worker_id": "gpu-1"});
    let waiting =
        tokio::spawn(async move { b.post("/api/workers/heartbeat?wait=8", &body).await.json });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let del = r.a.http.delete(&format!("/api/jobs/{id}")).await;
    assert_eq!(del.status, 204, "{}", del.text);
    let hb = waiting.await.unwrap();
    assert_eq!(hb["cancel_requested"], true, "{hb}");
}

#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn a_registration_changed_on_one_replica_is_read_again_on_the_other() {
    let r = two(Settings::default()).await;
    register(&r.a, "gpu-1", "0.9.2").await;
    // B reads and caches gpu-1 as a 0.9.2 worker.
    assert_eq!(claim(&r.b, "gpu-1", 0.0).await, Value::Null);
    // The worker's ComfyUI is upgraded; it registers again, on A.
    register(&r.a, "gpu-1", "0.11.1").await;
    let id = submit(&r.a, "alice", json!({"requires": {"comfyui": ">=0.10"}})).await;
    // The message from A may take a moment; B must not keep its old copy for long.
    let mut got = Value::Null;
    for _ in 0..50 {
        got = claim(&r.b, "gpu-1", 0.0).await;
        if !got.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        got["id"],
        id.as_str(),
        "B still offers by the 0.9.2 registration"
    );
}

#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn progress_reported_on_one_replica_shows_on_the_other() {
    let r = two(Settings::default()).await;
    register(&r.a, "gpu-1", "0.9.2").await;
    let id = submit(&r.a, "alice", json!({})).await;
    let job = claim(&r.a, "gpu-1", 0.0).await;
    let hb =
        r.a.http
            .post(
                "/api/workers/heartbeat",
                &json!({"job_id": id, "lease_token": job["lease_token"], "worker_id": "gpu-1",
                    "progress": {"percent": 42.0, "node": "3"}}),
            )
            .await;
    assert_eq!(hb.status, 200, "{}", hb.text);
    let mut seen = Value::Null;
    for _ in 0..50 {
        seen = r.b.http.get(&format!("/api/jobs/{id}")).await.json;
        if seen["progress"]["percent"] == 42.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen["progress"]["percent"], 42.0, "{seen}");
}

#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn an_expired_lease_is_taken_back_once_by_two_reapers() {
    let r = two(Settings {
        lease_ms: 300,
        ..Settings::default()
    })
    .await;
    register(&r.a, "gpu-1", "0.9.2").await;
    let id = submit(&r.a, "alice", json!({})).await;
    assert!(!claim(&r.a, "gpu-1", 0.0).await.is_null());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (ra, rb) = tokio::join!(r.a.state.reap_once(), r.b.state.reap_once());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(
        ra.requeued.len() + rb.requeued.len(),
        1,
        "one expiry, handled once: {ra:?} {rb:?}"
    );
    let job = r.b.http.get(&format!("/api/jobs/{id}")).await.json;
    assert_eq!(job["status"], "pending", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
}

#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn every_replica_reads_the_redis_servers_clock() {
    let redis = RedisServer::start();
    let bus = RedisBus::connect(&redis.url(), "rep").await.unwrap();
    let (clock, _task) = replicas::server_clock(&bus).await.unwrap();
    let server = bus.server_time().await.unwrap();
    let ours = clock.now_ms();
    // Same machine: the two clocks agree to well within a second.
    assert!((ours - server).abs() < 1_000, "{ours} vs {server}");
    assert!((ours - SystemClock.now_ms()).abs() < 1_000);
}

#[test]
fn a_second_store_on_one_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let first = SqliteStore::open(&path).unwrap();
    let Err(e) = SqliteStore::open(&path) else {
        panic!("a second store opened the same file");
    };
    let text = e.to_string();
    assert!(
        text.contains("another comfy-queue process") && text.contains("--redis-url"),
        "{text}"
    );
    drop(first);
    assert!(
        SqliteStore::open(&path).is_ok(),
        "the lock goes with its store"
    );
}
