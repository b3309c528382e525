//! `comfyctl` run outside the checkout, with no fixture folder at hand: the
//! recordings it needs are built in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn comfyctl(cwd: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_comfyctl"));
    c.current_dir(cwd).env_remove("COMFY_FIXTURES");
    c
}

#[test]
fn emulate_runs_from_any_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = comfyctl(cwd.path())
        .args(["emulate", "--version", "0.33.0", "--port", "0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("comfyctl emulate never said where it listens");
        if let Some(at) = line.find("http://") {
            let url: String = line[at..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            break url;
        }
    };
    let stats: serde_json::Value = get_json(&format!("{url}/system_stats"));
    assert_eq!(stats["system"]["comfyui_version"], "0.33.0");
    let info: serde_json::Value = get_json(&format!("{url}/object_info/SaveImage"));
    assert!(info["SaveImage"].is_object(), "{info}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn check_and_convert_by_version_run_from_any_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let workflow = repo.join("workflows/ui/tiny_bypass_mute.json");
    let out = comfyctl(cwd.path())
        .arg("convert")
        .arg(&workflow)
        .args(["--version", "0.11.1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prompt: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        prompt.as_object().is_some_and(|p| !p.is_empty()),
        "{prompt}"
    );

    let out = comfyctl(cwd.path())
        .arg("check")
        .arg(&workflow)
        .args(["--version", "0.7.0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0.7.0 is not built in"), "{stderr}");
}

/// A GET answered with JSON, from this synchronous test.
fn get_json(url: &str) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
        serde_json::from_slice(&body).unwrap()
    })
}
