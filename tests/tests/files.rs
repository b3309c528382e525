//! A job's files end to end: a prompt naming a file of ComfyUI's input
//! folder that nobody gave fails at once, as `missing_input`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_e2e::*;
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// The prompt of a job that reads `photo.png`.
fn loader_prompt(prefix: &str) -> Value {
    json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_naming_a_file_nobody_gave_fails_as_missing_input_at_once() {
    let q = sqlite_queue(3).await;
    let emu = emulator("0.3.64", 10).await;
    let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "w-missing"));
    let id = q.submit("user001", &loader_prompt("missing")).await;
    let done = q.api.wait_terminal(&id, T).await.unwrap();
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["attempts"], 1, "not retried: {done}");
    let err = reported_error(&done);
    assert_eq!(err["class"], "missing_input", "{err}");
    assert_eq!(err["detail"]["missing"][0]["node_id"], "1");
    assert_eq!(err["detail"]["missing"][0]["file"], "photo.png");
    worker.stop().await;
    emu.stop().await;
}
