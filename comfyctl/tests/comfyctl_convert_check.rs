//! `comfyctl convert` and `comfyctl check` as a user runs them: fixture
//! sets, plain object_info files, a replayed server (`--url`), folders of
//! workflows, JSON output, exit codes and one-line errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_test_support::replay as support;

use serde_json::Value;
use std::path::PathBuf;
use support::{
    PAIRS, WORKFLOWS, line_of, load, mount, mount_fallback, mount_times, read_json, repo,
};
use tokio::process::Command;
use wiremock::MockServer;

fn p(rel: &str) -> String {
    repo().join(rel).display().to_string()
}

/// (exit code, stdout, stderr)
async fn comfyctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_comfyctl"))
        .args(args)
        .current_dir(repo())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("comfyctl-cc-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn convert_equals_every_frontend_through_the_cli() {
    for (frontend, server) in PAIRS {
        for name in WORKFLOWS {
            let ui = p(&format!("workflows/ui/{name}.json"));
            let dir = p(&format!("fixtures/comfyui-{server}"));
            let (code, stdout, stderr) = comfyctl(&["convert", &ui, "--object-info", &dir]).await;
            assert_eq!(code, 0, "{name} {server}: {stderr}");
            let got: Value = serde_json::from_str(&stdout).unwrap();
            let want = read_json(&repo().join(format!(
                "workflows/api-ground-truth/{frontend}/{name}.api.json"
            )));
            assert_eq!(got, want, "{name} × {frontend}");
        }
    }
}

#[tokio::test]
async fn convert_by_version_to_a_file_as_a_request_body() {
    let out = scratch("body").join("prompt.json");
    let (code, stdout, stderr) = comfyctl(&[
        "convert",
        "workflows/ui/tiny_bypass_mute.json",
        "--version",
        "0.11.1",
        "--body",
        "-o",
        out.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty());
    let body = read_json(&out);
    let want =
        read_json(&repo().join("workflows/api-ground-truth/1.37.11/tiny_bypass_mute.api.json"));
    assert_eq!(body["prompt"], want);
}

#[tokio::test]
async fn convert_errors_are_one_line() {
    // A catalogue without one class the workflow uses: the error names the node.
    let raw = read_json(&repo().join("fixtures/comfyui-0.11.1/018-object_info-full.json"));
    let mut body = raw["response"]["body"].as_object().unwrap().clone();
    body.remove("LTXVCropGuides");
    let file = scratch("missing").join("object_info.json");
    std::fs::write(&file, serde_json::to_vec(&body).unwrap()).unwrap();
    let (code, stdout, stderr) = comfyctl(&[
        "convert",
        "workflows/ui/video_ltx2_t2v.json",
        "--object-info",
        file.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("92:81") && stderr.contains("LTXVCropGuides"),
        "{stderr}"
    );

    // An API prompt is not converted.
    let (code, _, stderr) = comfyctl(&[
        "convert",
        "workflows/api-ground-truth/1.37.11/tiny_bypass_mute.api.json",
        "--version",
        "0.11.1",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("not a UI workflow"), "{stderr}");

    // No server named, an unknown version, a missing file.
    for args in [
        vec!["convert", "workflows/ui/tiny_bypass_mute.json"],
        vec![
            "convert",
            "workflows/ui/tiny_bypass_mute.json",
            "--version",
            "9.9.9",
        ],
        vec!["convert", "nope.json", "--version", "0.11.1"],
    ] {
        let (code, _, stderr) = comfyctl(&args).await;
        assert_eq!(code, 1, "{args:?}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("comfyctl: "), "{stderr}");
    }
}

#[tokio::test]
async fn check_a_folder_as_json() {
    let (code, stdout, stderr) = comfyctl(&[
        "check",
        "workflows/api-ground-truth/1.37.11",
        "--version",
        "0.11.1",
        "--json",
    ])
    .await;
    assert_eq!(code, 3, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["version"], "0.11.1");
    assert_eq!(v["summary"]["files"], 5);
    assert_eq!(v["summary"]["failing"], 4);
    let files = v["files"].as_array().unwrap();
    let tiny = files
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .ends_with("tiny_bypass_mute.api.json")
        })
        .unwrap();
    assert_eq!(tiny["errors"], 0);
    assert!(
        files.iter().any(|f| f["skipped"] == "not a workflow"),
        "submit responses are skipped"
    );
    // Same nodes and inputs as the server's verdict for each failing file.
    for f in files.iter().filter(|f| f["errors"].as_u64() > Some(0)) {
        let path = PathBuf::from(f["path"].as_str().unwrap());
        let verdict = path
            .to_str()
            .unwrap()
            .replace(".api.json", ".submit-response.json");
        let verdict = read_json(&repo().join(verdict));
        let mut server: Vec<(String, String)> = Vec::new();
        for (id, n) in verdict["body"]["node_errors"].as_object().unwrap() {
            for e in n["errors"].as_array().unwrap() {
                server.push((
                    id.clone(),
                    e["extra_info"]["input_name"].as_str().unwrap().into(),
                ));
            }
        }
        let mut mine: Vec<(String, String)> = f["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["severity"] == "error")
            .map(|x| {
                assert_eq!(x["kind"], "not_in_list");
                (
                    x["node_id"].as_str().unwrap().into(),
                    x["input"].as_str().unwrap().into(),
                )
            })
            .collect();
        server.sort();
        mine.sort();
        assert_eq!(mine, server, "{}", path.display());
    }
}

#[tokio::test]
async fn check_text_and_exit_codes() {
    // A UI workflow that runs: exit 0.
    let (code, stdout, stderr) = comfyctl(&[
        "check",
        "workflows/ui/tiny_bypass_mute.json",
        "--object-info",
        "fixtures/comfyui-0.33.0/018-object_info-full.json",
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("tiny_bypass_mute.json: ok"), "{stdout}");
    assert!(stdout.contains("0 would fail"), "{stdout}");

    // UI workflows needing models: one line per finding, exit 3.
    let (code, stdout, _) = comfyctl(&["check", "workflows/ui", "--version", "0.9.2"]).await;
    assert_eq!(code, 3);
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("error")
            && l.contains("flux-2-klein-base-4b.safetensors")),
        "{stdout}"
    );
    assert!(
        stdout.contains("checked 5 workflow(s) against 0.9.2"),
        "{stdout}"
    );

    // --models-elsewhere: missing models are warnings, the gate passes.
    let (code, stdout, _) = comfyctl(&[
        "check",
        "workflows/ui",
        "--version",
        "0.9.2",
        "--models-elsewhere",
    ])
    .await;
    assert_eq!(code, 0, "{stdout}");

    // A SaveVideo without codec on 0.33.0.
    let dir = scratch("savevideo");
    let file = dir.join("video.json");
    std::fs::write(
        &file,
        r#"{"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
            "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 24}},
            "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "v", "format": "auto"}}}"#,
    )
    .unwrap();
    let (code, stdout, _) =
        comfyctl(&["check", file.to_str().unwrap(), "--version", "0.33.0"]).await;
    assert_eq!(code, 3);
    assert!(
        stdout.contains("dynamic input \"codec\" is missing"),
        "{stdout}"
    );

    // --version also takes a fixture set's folder.
    let (code, stdout, stderr) = comfyctl(&[
        "check",
        "workflows/ui/tiny_bypass_mute.json",
        "--version",
        "fixtures/comfyui-0.26.0",
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("against 0.26.0"), "{stdout}");

    // A file that is no workflow, named explicitly: an error, not a skip.
    let (code, _, stderr) = comfyctl(&[
        "check",
        "workflows/api-ground-truth/1.37.11/tiny_bypass_mute.submit-response.json",
        "--version",
        "0.11.1",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("not a workflow"), "{stderr}");
}

#[tokio::test]
async fn help_says_what_they_do() {
    let (code, stdout, _) = comfyctl(&["check", "--help"]).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("status 3") && stdout.contains("--object-info"));
    let (code, stdout, _) = comfyctl(&["convert", "--help"]).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("--url") && stdout.contains("FILE_OR_FIXTURE_DIR"));
}

async fn replayed_server(version: &str) -> MockServer {
    let server = MockServer::start().await;
    for p in ["001-", "003-", "076-", "018-"] {
        mount(&server, &load(version, p)).await;
    }
    mount_times(
        &server,
        &load(version, "067-"),
        u64::from(line_of(version) != comfy_adapter::Line::Legacy),
    )
    .await;
    mount_fallback(&server, version).await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_fetches_object_info_from_the_server() {
    let server = replayed_server("0.33.0").await;
    let (code, stdout, stderr) = comfyctl(&[
        "convert",
        "workflows/ui/video_ltx2_t2v.json",
        "--url",
        &server.uri(),
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let got: Value = serde_json::from_str(&stdout).unwrap();
    let want = read_json(&repo().join("workflows/api-ground-truth/1.48.7/video_ltx2_t2v.api.json"));
    assert_eq!(
        got, want,
        "the detected 0.33.0 renumbers like frontend 1.48.7"
    );

    let server = replayed_server("0.11.1").await;
    let (code, stdout, stderr) = comfyctl(&[
        "check",
        "workflows/ui/tiny_bypass_mute.json",
        "--url",
        &server.uri(),
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["version"], "0.11.1");
    assert_eq!(v["summary"]["errors"], 0);
}

#[tokio::test]
async fn convert_for_another_frontend_than_the_pinned_one() {
    // 0.33.0 pins 1.48.7, whose bundled locale titles LTXVConcatAVLatent by
    // its class name; 1.58.1 takes the server's "Concat AV Latent".
    let titles = |out: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(out).unwrap();
        v.as_object()
            .unwrap()
            .values()
            .filter(|n| n["class_type"] == "LTXVConcatAVLatent")
            .map(|n| n["_meta"]["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let ui = "workflows/ui/video_ltx2_t2v.json";
    let (code, pinned, stderr) = comfyctl(&["convert", ui, "--version", "0.33.0"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(titles(&pinned).iter().all(|t| t == "LTXVConcatAVLatent"));
    let (code, newer, stderr) =
        comfyctl(&["convert", ui, "--version", "0.33.0", "--frontend", "1.58.1"]).await;
    assert_eq!(code, 0, "{stderr}");
    let got = titles(&newer);
    assert!(
        !got.is_empty() && got.iter().all(|t| t == "Concat AV Latent"),
        "{got:?}"
    );
    // The old frontend on the new catalogue keeps its ids (no renumbering).
    let (code, old, stderr) = comfyctl(&[
        "convert",
        ui,
        "--version",
        "0.33.0",
        "--frontend",
        "1.37.11",
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let old: Value = serde_json::from_str(&old).unwrap();
    assert!(old.get("92:94").is_some() && old.get("92:103").is_none());

    let (code, _, stderr) =
        comfyctl(&["convert", ui, "--version", "0.33.0", "--frontend", "newest"]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("frontend version"), "{stderr}");
}
