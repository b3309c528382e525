//! `comfyctl emulate`, `record` and `diff URL` as a user runs them: an
//! emulated server on a free port, recorded, diffed against its recording.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_test_support::replay as support;

use serde_json::Value;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn comfyctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_comfyctl"));
    c.env("COMFY_FIXTURES", support::repo().join("fixtures"));
    c.kill_on_drop(true);
    c
}

/// Starts `comfyctl emulate` on a free port; returns it and its URL (read
/// from the line it prints on stderr).
type StderrLines = tokio::io::Lines<BufReader<tokio::process::ChildStderr>>;

async fn emulate(version: &str, extra: &[&str]) -> (Child, String, StderrLines) {
    let mut child = comfyctl()
        .args([
            "emulate",
            "--version",
            version,
            "--port",
            "0",
            "--node-time-ms",
            "5",
        ])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("emulate printed its address")
        .unwrap()
        .unwrap();
    assert!(
        line.starts_with(&format!("emulated ComfyUI {version} listening on http://")),
        "{line}"
    );
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    (child, url, lines)
}

/// The rest of a child's stderr.
async fn rest_of_stderr(lines: &mut StderrLines) -> String {
    let mut s = String::new();
    while let Ok(Some(l)) = lines.next_line().await {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

async fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_an_emulated_server_then_diff_it_live() {
    let (_emulator, url, _) = emulate("0.26.0", &[]).await;
    let out = tempfile::tempdir().unwrap();
    let set = out.path().join("set");

    let (ok, stdout, stderr) = run(comfyctl().args([
        "record",
        "--url",
        &url,
        "--out",
        set.to_str().unwrap(),
        "--json",
    ]))
    .await;
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["comfyui_version"], "0.26.0");
    let probes = report["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 118);
    assert!(probes.iter().all(|p| p["outcome"] == "written"), "{stdout}");
    assert_eq!(std::fs::read_dir(&set).unwrap().count(), 118);
    assert!(
        report["cleaned"][0]
            .as_str()
            .unwrap()
            .starts_with("history: "),
        "{stdout}"
    );

    // The same folder again is refused: sets are never mixed.
    let (ok, _, stderr) =
        run(comfyctl().args(["record", "--url", &url, "--out", set.to_str().unwrap()])).await;
    assert!(!ok);
    assert!(stderr.contains("already holds recorded probes"), "{stderr}");

    // A live URL on one side is recorded first, then diffed.
    let fixtures = support::fixture_dir("0.26.0");
    let (ok, stdout, stderr) =
        run(comfyctl().args(["diff", fixtures.to_str().unwrap(), &url, "--json"])).await;
    assert!(ok, "{stderr}");
    let d: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(d["a"], "0.26.0");
    assert_eq!(d["b"], "0.26.0");
    assert_eq!(d["probes_compared"], 118);
    assert!(stderr.contains("recorded 118 of 118 probes"), "{stderr}");
}

#[tokio::test]
async fn emulate_refuses_an_unrecorded_version_and_a_missing_fixture_dir() {
    let (ok, _, stderr) = run(comfyctl().args(["emulate", "--version", "0.7.0"])).await;
    assert!(!ok);
    assert!(stderr.contains("possible values: 0.3.64"), "{stderr}");
    let (ok, _, stderr) = run(comfyctl().args([
        "emulate",
        "--version",
        "0.11.1",
        "--fixtures",
        "/nonexistent-fixtures",
    ]))
    .await;
    assert!(!ok);
    assert!(stderr.contains("no fixture set comfyui-0.11.1"), "{stderr}");
}

#[tokio::test]
async fn record_refuses_a_server_that_is_not_there() {
    let out = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run(comfyctl().args([
        "record",
        "--url",
        "http://127.0.0.1:9",
        "--out",
        out.path().join("set").to_str().unwrap(),
        "--timeout",
        "2",
    ]))
    .await;
    assert!(!ok);
    assert!(
        stderr.starts_with("comfyctl: recording http://127.0.0.1:9"),
        "{stderr}"
    );
    assert!(!out.path().join("set").exists(), "nothing created");
}

#[tokio::test]
async fn emulate_with_a_crash_class_dies_when_that_node_starts() {
    let (mut child, url, mut lines) = emulate("0.9.2", &["--crash-class", "SaveImage"]).await;
    let prompt = serde_json::json!({"prompt": {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }});
    let resp = reqwest::Client::new()
        .post(format!("{url}/prompt"))
        .json(&prompt)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("the emulator exits on the crash")
        .unwrap();
    assert_eq!(status.code(), Some(3));
    let stderr = rest_of_stderr(&mut lines).await;
    assert!(stderr.contains("crashed at node 2 (SaveImage)"), "{stderr}");
}
