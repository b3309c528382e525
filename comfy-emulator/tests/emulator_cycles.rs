//! Prompts whose links go round in a circle, and prompts whose shape could
//! make the emulator's work explode.
//!
//! ComfyUI's `validate_inputs` recurses into each linked node before it
//! records the node as validated, so a cycle that an output depends on
//! recurses until Python's recursion limit; the `RecursionError` is caught,
//! and every node of the cycle ends up recorded invalid with no reason of
//! its own. The output fails validation with nothing to show:
//! `prompt_outputs_failed_validation` with empty details and no node
//! errors. A cycle no output depends on is never looked at: the prompt runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_emulator::{Emulator, EmulatorConfig, EmulatorHandle, embedded_versions};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// Three `ImageBlend` nodes in a circle (each takes both its images from
/// the one before).
fn cycle() -> serde_json::Map<String, Value> {
    let blend = |from: &str| {
        json!({"class_type": "ImageBlend", "inputs": {
            "image1": [from, 0], "image2": [from, 0], "blend_factor": 0.5, "blend_mode": "normal"}})
    };
    json!({"1": blend("3"), "2": blend("1"), "3": blend("2")})
        .as_object()
        .cloned()
        .unwrap()
}

async fn start(version: &str) -> EmulatorHandle {
    let config = EmulatorConfig::new(version).node_time(Duration::ZERO);
    Emulator::start(config).await.unwrap()
}

async fn post_prompt(emu: &EmulatorHandle, prompt: serde_json::Map<String, Value>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/prompt", emu.url()))
        .json(&json!({"prompt": prompt}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_an_output_depends_on_fails_validation_with_no_node_errors() {
    for v in embedded_versions() {
        let emu = start(v).await;
        let mut prompt = cycle();
        prompt.insert(
            "4".into(),
            json!({"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "cycle"}}),
        );
        let (status, body) = post_prompt(&emu, prompt).await;
        assert_eq!(status, 400, "{v}: {body}");
        assert_eq!(
            body,
            json!({
                "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
                "node_errors": {},
            }),
            "{v}"
        );
        assert_eq!(emu.submitted(), 0, "{v}");
        emu.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_beside_a_good_output_leaves_that_output_to_run() {
    let emu = start("0.33.0").await;
    let mut prompt = cycle();
    prompt.insert(
        "4".into(),
        json!({"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "cycle"}}),
    );
    prompt.insert(
        "5".into(),
        json!({"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}),
    );
    prompt.insert(
        "6".into(),
        json!({"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "good"}}),
    );
    let (status, body) = post_prompt(&emu, prompt).await;
    // The failed output has no reasons, so it is not in node_errors.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["node_errors"], json!({}), "{body}");
    let id = body["prompt_id"].as_str().unwrap();
    let entry = finished(&emu, id).await;
    assert_eq!(entry["status"]["status_str"], "success", "{entry}");
    assert_eq!(entry["prompt"][4], json!(["6"]), "{entry}");
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_no_output_depends_on_is_never_looked_at() {
    let emu = start("0.9.2").await;
    let mut prompt = cycle();
    prompt.insert(
        "5".into(),
        json!({"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}),
    );
    prompt.insert(
        "6".into(),
        json!({"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "good"}}),
    );
    let (status, body) = post_prompt(&emu, prompt).await;
    assert_eq!(status, 200, "{body}");
    let entry = finished(&emu, body["prompt_id"].as_str().unwrap()).await;
    assert_eq!(entry["status"]["status_str"], "success", "{entry}");
    emu.stop().await;
}

/// A prompt's work is linear in its size: a chain of 48 `ImageBlend`s,
/// each blending the one before with itself, runs through (followed
/// naively, each level doubles the work: 2^48 steps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_chain_of_two_input_nodes_runs_through() {
    let emu = start("0.11.1").await;
    let mut prompt = serde_json::Map::new();
    prompt.insert(
        "0".into(),
        json!({"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}),
    );
    for i in 1..=48 {
        let from = (i - 1).to_string();
        prompt.insert(
            i.to_string(),
            json!({"class_type": "ImageBlend", "inputs": {
                "image1": [from, 0], "image2": [from, 0], "blend_factor": 0.5, "blend_mode": "normal"}}),
        );
    }
    prompt.insert(
        "save".into(),
        json!({"class_type": "SaveImage", "inputs": {"images": ["48", 0], "filename_prefix": "deep"}}),
    );
    let (status, body) = post_prompt(&emu, prompt).await;
    assert_eq!(status, 200, "{body}");
    let entry = finished(&emu, body["prompt_id"].as_str().unwrap()).await;
    assert_eq!(entry["status"]["status_str"], "success", "{entry}");
    assert!(entry["outputs"]["save"]["images"].is_array(), "{entry}");
    emu.stop().await;
}

/// The history entry of `id`, once written.
async fn finished(emu: &EmulatorHandle, id: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let h: Value = reqwest::get(format!("{}/history/{id}", emu.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(entry) = h.get(id) {
            return entry.clone();
        }
        assert!(Instant::now() < deadline, "{id} never reached history");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
