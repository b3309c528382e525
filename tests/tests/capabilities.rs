//! One vocabulary of capabilities: a job that requires a capability spelled
//! exactly as `comfyctl detect --json` prints it is routed to a worker whose
//! ComfyUI has it, on every line, and a job requiring one the worker lacks
//! is not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_e2e::{TestWorker, emulator, image_prompt, sqlite_queue, worker_config, workspace_bin};
use serde_json::{Value, json};
use std::time::Duration;

/// `comfyctl detect --url URL --json`, run as a user runs it.
fn detect_json(url: &str) -> Value {
    let out = std::process::Command::new(workspace_bin("comfyctl"))
        .args(["detect", "--url", url, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn routes_every_detected_capability(version: &str) {
    let q = sqlite_queue(1).await;
    let emu = emulator(version, 2).await;
    let detected = detect_json(&emu.url());
    let caps = detected["capabilities"].as_object().unwrap();
    let named = |on: bool| -> Vec<String> {
        caps.iter()
            .filter(|(_, v)| v.as_bool() == Some(on))
            .map(|(k, _)| k.clone())
            .collect()
    };
    let (have, lack) = (named(true), named(false));
    assert!(!have.is_empty(), "{detected}");
    let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "caps"));

    let mut ids = Vec::new();
    for name in &have {
        let meta = json!({"batch_index": 0, "batch_total": 1,
                          "requires": {"capabilities": [name]}});
        let job = q
            .api
            .submit("user001", &image_prompt(&format!("cap_{name}")), meta)
            .await
            .unwrap();
        ids.push((name.clone(), job["id"].as_str().unwrap().to_owned()));
    }
    for (name, id) in &ids {
        let job = q
            .api
            .wait_for(id, Duration::from_secs(30), |j| j["status"] == "completed")
            .await
            .unwrap_or_else(|e| panic!("{version}: a job requiring {name:?} was not run: {e}"));
        assert_eq!(job["status"], "completed", "{version} {name}: {job}");
    }

    // A capability the server lacks (as detect printed it) is not routed there.
    if let Some(name) = lack.first() {
        let meta = json!({"batch_index": 0, "batch_total": 1,
                          "requires": {"capabilities": [name]}});
        let job = q
            .api
            .submit("user001", &image_prompt("cap_missing"), meta)
            .await
            .unwrap();
        let id = job["id"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let job = q.api.job(&id).await.unwrap();
        assert_eq!(job["status"], "pending", "{version} {name}: {job}");
    }
    worker.stop().await;
    emu.stop().await;
    q.queue.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_requiring_what_detect_printed_is_routed_on_each_line() {
    for line in comfy_adapter::Line::ALL {
        let newest = comfy_adapter::releases::of_line(line).last().unwrap();
        routes_every_detected_capability(newest.version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_registers_the_line_and_capabilities_detect_prints() {
    let q = sqlite_queue(1).await;
    let emu = emulator(comfy_adapter::releases::newest().version, 2).await;
    let detected = detect_json(&emu.url());
    let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "caps-reg"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let registered = loop {
        let workers = q.api.workers().await.unwrap();
        if let Some(w) = workers
            .as_array()
            .or_else(|| workers["workers"].as_array())
            .and_then(|ws| {
                ws.iter()
                    .find(|w| w["id"] == "caps-reg" || w["worker_id"] == "caps-reg")
            })
            && w["capabilities"].is_array()
        {
            break w.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never registered: {workers}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let printed: Vec<&str> = detected["capabilities"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.as_bool() == Some(true))
        .map(|(k, _)| k.as_str())
        .collect();
    let mut sent: Vec<&str> = registered["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut printed_sorted = printed.clone();
    printed_sorted.sort_unstable();
    sent.sort_unstable();
    assert_eq!(sent, printed_sorted, "{registered}");
    assert_eq!(registered["line"], detected["line"], "{registered}");
    worker.stop().await;
    emu.stop().await;
    q.queue.stop().await;
}
