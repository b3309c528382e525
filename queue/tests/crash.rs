//! Crash test: SIGKILL the real `comfy-queue` process (SQLite backend) while jobs are being
//! submitted and one is leased, restart it on the same file, and check that every job that
//! was acknowledged with 201 is still there and the leased one is taken back after its
//! lease runs out (nothing in flight lived only in memory).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use comfy_test_support::http::wait_until_up;
use comfy_test_support::process::KillOnDrop as Proc;

async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> T {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

async fn start(db: &std::path::Path, port: u16) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_comfy-queue"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--db")
        .arg(db)
        .args([
            "--lease-secs",
            "1",
            "--reap-interval-secs",
            "0.1",
            "--max-pending",
            "0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proc = Proc(child);
    wait_until_up(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(10),
        "the queue",
    )
    .await;
    proc
}

#[tokio::test]
async fn sigkill_loses_no_acknowledged_job_and_requeues_the_leased_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let port = comfy_test_support::ports::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let mut server = start(&db, port).await;
    http.post(format!("{base}/api/workers/register"))
        .json(&json!({"worker_id": "gpu-1", "comfyui_version": "0.9.2"}))
        .send()
        .await
        .unwrap();
    let first = http
        .post(format!("{base}/api/jobs"))
        .json(&json!({"user_id": "alice", "workflow": {"1": {}}}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let leased: Value = get_json(
        &http,
        &format!("{base}/api/workers/next-job?worker_id=gpu-1"),
    )
    .await;
    assert_eq!(leased["job"]["id"], first["id"]);

    // Submit continuously from 4 clients, and kill the server in the middle of it.
    let mut submitters = Vec::new();
    for c in 0..4 {
        let http = http.clone();
        let base = base.clone();
        submitters.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..10_000 {
                let r = http
                    .post(format!("{base}/api/jobs"))
                    .json(&json!({"user_id": format!("u{c}"), "workflow": {"1": {"i": i}}}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        let v: Value = match r.json().await {
                            Ok(v) => v,
                            Err(_) => break,
                        };
                        acked.push(v["id"].as_str().unwrap().to_owned());
                    }
                    _ => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    let mut acked = Vec::new();
    for s in submitters {
        acked.extend(s.await.unwrap());
    }
    assert!(
        acked.len() > 10,
        "the kill came too early to prove anything ({})",
        acked.len()
    );

    let _server = start(&db, port).await;
    let mut stored = std::collections::HashSet::new();
    let mut offset = 0;
    while stored.len() < acked.len() {
        let page: Vec<Value> = get_json(
            &http,
            &format!("{base}/api/jobs?limit=1000&status=pending&offset={offset}"),
        )
        .await;
        if page.is_empty() {
            break;
        }
        stored.extend(page.iter().map(|j| j["id"].as_str().unwrap().to_owned()));
        offset += 1000;
    }
    for id in &acked {
        assert!(stored.contains(id), "acknowledged job {id} was lost");
    }
    eprintln!("{} acknowledged jobs survived the SIGKILL", acked.len());

    // The job leased before the crash is still leased (its lease is on disk) ...
    let id = first["id"].as_str().unwrap();
    let job: Value = get_json(&http, &format!("{base}/api/jobs/{id}")).await;
    assert!(
        job["status"] == "running" || job["status"] == "pending",
        "{job}"
    );
    // ... and the reaper takes it back once the 1 s lease is over.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job: Value = get_json(&http, &format!("{base}/api/jobs/{id}")).await;
        if job["status"] == "pending" {
            assert_eq!(job["history"][0]["outcome"], "lease_expired");
            assert_eq!(job["attempts"], 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leased job was never requeued: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
