//! Issue 12 item 6: a Redis without an append-only file loses acknowledged jobs in a crash.
//! The queue reads the server's persistence settings at start and refuses such a Redis
//! unless `--allow-volatile-redis` says so. Each test starts its own redis-server, with and
//! without `appendonly yes`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use comfy_queue::scheduler::Requirements;
use comfy_queue::store::redis::RedisStore;
use comfy_queue::store::{Store, SubmitLimits};
use comfy_test_support::ports::free_port;
use comfy_test_support::redis::RedisServer;

const DURABLE: &[&str] = &["--appendonly", "yes", "--appendfsync", "everysec"];

fn job() -> comfy_queue::model::NewJob {
    comfy_queue::model::NewJob {
        user_id: "alice".into(),
        workflow: serde_json::json!({"1": {}}),
        priority: 2,
        metadata: serde_json::json!({}),
        idempotency_key: None,
        requirements: Requirements::default(),
        inputs: Vec::new(),
    }
}

const LIMITS: SubmitLimits = SubmitLimits {
    max_pending: 0,
    max_per_user: 0,
    max_attempts: 3,
};

#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn persistence_is_read_from_the_server() {
    let volatile = RedisServer::start();
    let store = RedisStore::connect(&volatile.url(), "p").await.unwrap();
    let p = store.persistence().await.unwrap();
    assert!(!p.appendonly, "{p:?}");
    assert_eq!(p.save, "");
    let e = p.check(false).unwrap_err();
    assert!(e.window.contains("every job"), "{e}");
    assert_eq!(p.check(true), Ok(()));

    let durable = RedisServer::start_with(DURABLE);
    let store = RedisStore::connect(&durable.url(), "p").await.unwrap();
    let p = store.persistence().await.unwrap();
    assert!(p.appendonly, "{p:?}");
    assert_eq!(p.appendfsync, "everysec");
    assert_eq!(p.check(false), Ok(()));
}

/// What the loss window in docs/queue.md says about a crash of Redis itself: with
/// `appendonly yes` an acknowledged job survives a SIGKILL of redis-server; without it the
/// job is gone.
#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn an_acknowledged_job_survives_a_redis_kill_only_with_appendonly() {
    for (args, survives) in [(DURABLE, true), (&[][..], false)] {
        let mut server = RedisServer::start_with(args);
        let store = RedisStore::connect(&server.url(), "k").await.unwrap();
        let id = store.submit(job(), LIMITS, 0).await.unwrap().job.id;
        server.restart(); // SIGKILL, then start on the same directory
        let after = RedisStore::connect(&server.url(), "k").await.unwrap();
        assert_eq!(
            after.get(id).await.unwrap().is_some(),
            survives,
            "redis-server {args:?}"
        );
    }
}

use comfy_test_support::process::KillOnDrop as Proc;

fn queue(redis: &RedisServer, port: u16, extra: &[&str]) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_comfy-queue"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--redis-url", &redis.url()])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Proc(child)
}

/// Waits until the server answers /health (true) or the process exits (false).
async fn serves(p: &mut Proc, port: u16) -> bool {
    // A guard against a hang only: the outcome is decided by what the process does.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if p.0.try_wait().unwrap().is_some() {
            return false;
        }
        if reqwest::get(format!("http://127.0.0.1:{port}/health"))
            .await
            .is_ok()
        {
            return true;
        }
        assert!(Instant::now() < deadline, "neither serving nor exited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn the_server_refuses_a_volatile_redis_unless_allowed() {
    let volatile = RedisServer::start();
    let port = free_port();
    let mut p = queue(&volatile, port, &[]);
    assert!(!serves(&mut p, port).await, "started on a volatile Redis");
    assert!(!p.0.wait().unwrap().success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut p.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("appendonly no"), "{stderr}");
    assert!(stderr.contains("--allow-volatile-redis"), "{stderr}");

    let port = free_port();
    let mut p = queue(&volatile, port, &["--allow-volatile-redis"]);
    assert!(
        serves(&mut p, port).await,
        "refused despite --allow-volatile-redis"
    );
    drop(p);

    let durable = RedisServer::start_with(DURABLE);
    let port = free_port();
    let mut p = queue(&durable, port, &[]);
    assert!(
        serves(&mut p, port).await,
        "refused a Redis with appendonly yes"
    );
}
