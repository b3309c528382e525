//! The benchmark's client, `queue-load`, against the real `comfy-queue` process: in this
//! queue's dialect with tokens on, in the original contract's, and in its depth mode. The
//! figures it prints are only worth something if they count real work, so each run is
//! checked against what the queue says it completed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use comfy_test_support::http::{Client, wait_until_up};
use comfy_test_support::ports::free_port;
use serde_json::Value;

use comfy_test_support::process::KillOnDrop as Proc;

const ADMIN: &str = "load-admin-token";
const WORKER: &str = "load-worker-token";

/// A running queue: its process, its URL and whether it asks for tokens.
struct Queue {
    _proc: Proc,
    url: String,
    auth: bool,
}

/// A queue on a fresh SQLite file, with tokens when `auth`.
async fn start(dir: &std::path::Path, auth: bool) -> Queue {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_comfy-queue"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--db")
        .arg(dir.join("load.db"))
        .args(["--max-pending", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if auth {
        cmd.args(["--admin-token", ADMIN, "--worker-token", WORKER]);
    }
    let proc = Proc(cmd.spawn().unwrap());
    let url = format!("http://127.0.0.1:{port}");
    wait_until_up(&url, Duration::from_secs(10), "the queue").await;
    Queue {
        _proc: proc,
        url,
        auth,
    }
}

/// Runs `queue-load` on `q` (with the queue's tokens when it asks for them).
fn load(q: &Queue, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_queue-load"));
    cmd.args(["--url", &q.url]).args(args);
    if q.auth {
        cmd.env("QUEUE_ADMIN_TOKEN", ADMIN)
            .env("QUEUE_WORKER_TOKEN", WORKER);
    } else {
        cmd.env_remove("QUEUE_ADMIN_TOKEN")
            .env_remove("QUEUE_WORKER_TOKEN");
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    let out = String::from_utf8_lossy(&stdout).into_owned();
    assert!(
        status.success(),
        "queue-load {args:?} failed:\n{out}\n{}",
        String::from_utf8_lossy(&stderr)
    );
    out
}

/// The lifecycles of each concurrency row (`concurrency lifecycles ...`).
fn lifecycles(out: &str, levels: &[u64]) -> Vec<u64> {
    levels
        .iter()
        .map(|c| {
            out.lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    let level: u64 = w.next()?.parse().ok()?;
                    let n: u64 = w.next()?.parse().ok()?;
                    (level == *c).then_some(n)
                })
                .next()
                .unwrap_or_else(|| panic!("no row for concurrency {c} in:\n{out}"))
        })
        .collect()
}

/// `GET /api/queue/status`, as the admin.
async fn status(url: &str) -> Value {
    let r = Client::new(url)
        .as_admin(ADMIN)
        .get("/api/queue/status")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

async fn completed(url: &str) -> u64 {
    let status = status(url).await;
    status["completed_jobs"]
        .as_u64()
        .unwrap_or_else(|| panic!("no completed count in {status}"))
}

#[tokio::test]
async fn native_lifecycles_with_tokens_are_the_jobs_the_queue_completed() {
    let dir = tempfile::tempdir().unwrap();
    let q = start(dir.path(), true).await;
    let out = load(
        &q,
        &[
            "--concurrency",
            "1,4",
            "--seconds",
            "0.5",
            "--handoffs",
            "5",
        ],
    );
    let n = lifecycles(&out, &[1, 4]);
    assert!(
        n.iter().all(|&x| x > 0),
        "every level ran lifecycles: {out}"
    );
    assert!(out.contains("idle long-poll hand-off over 5 jobs"), "{out}");
    // Every lifecycle and every hand-off completed one job, and nothing else did.
    assert_eq!(completed(&q.url).await, n.iter().sum::<u64>() + 5, "{out}");
}

#[tokio::test]
async fn the_contract_dialect_sends_no_token_and_completes_by_job_id() {
    let dir = tempfile::tempdir().unwrap();
    let q = start(dir.path(), false).await;
    let out = load(
        &q,
        &["--contract", "--concurrency", "2", "--seconds", "0.5"],
    );
    let n = lifecycles(&out, &[2]);
    assert!(n[0] > 0, "{out}");
    assert!(out.contains("contract dialect"), "{out}");
    assert_eq!(completed(&q.url).await, n[0], "{out}");
}

#[tokio::test]
async fn the_depth_mode_holds_each_depth_and_cancels_what_it_added_on_top() {
    let dir = tempfile::tempdir().unwrap();
    let q = start(dir.path(), false).await;
    let out = load(
        &q,
        &[
            "--depth",
            "0,40",
            "--samples",
            "10",
            "--rate-seconds",
            "0.2",
        ],
    );
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("40 ")),
        "a row at 40 pending: {out}"
    );
    let status = status(&q.url).await;
    // The fill stays (it is the next level's start): 40 pending, less the 10 the claim
    // figure took from the front; the submits timed on top of it were cancelled.
    assert_eq!(status["pending_jobs"], 30, "{status}\n{out}");
    assert_eq!(
        status["completed_jobs"], 20,
        "two levels of 10 claims: {status}"
    );
}

#[test]
fn a_url_the_tool_cannot_use_is_refused_with_a_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_queue-load"))
        .args(["--url", "https://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only http://"), "{err}");
}
