//! `comfyctl detect` as a user runs it, against a wiremock server replaying
//! each version's recorded detection exchanges.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_test_support::replay as support;

use serde_json::Value;
use support::{VERSIONS, line_of, load, mount, mount_fallback, mount_times};
use tokio::process::Command;
use wiremock::MockServer;

async fn replayed_server(version: &str) -> MockServer {
    let server = MockServer::start().await;
    for p in ["001-", "003-", "076-"] {
        mount(&server, &load(version, p)).await;
    }
    let cancel_probe = load(version, "067-");
    mount_times(
        &server,
        &cancel_probe,
        u64::from(line_of(version) != comfy_adapter::Line::Legacy),
    )
    .await;
    mount_fallback(&server, version).await;
    server
}

async fn comfyctl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_comfyctl"))
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detect_json_reports_each_version() {
    for version in VERSIONS {
        let server = replayed_server(version).await;
        let (ok, stdout, stderr) = comfyctl(&["detect", "--url", &server.uri(), "--json"]).await;
        assert!(ok, "{version}: {stderr}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["version"], version, "{version}");
        let line = serde_json::to_value(line_of(version)).unwrap();
        assert_eq!(v["line"], line, "{version}");
        assert_eq!(
            v["capabilities"]["jobs_api"],
            version != "0.3.64",
            "{version}"
        );
        assert_eq!(
            v["capabilities"]["jobs_cancel_api"],
            matches!(version, "0.26.0" | "0.33.0"),
            "{version}"
        );
        assert_eq!(v["warnings"], serde_json::json!([]), "{version}");
        server.verify().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detect_text_is_for_people() {
    let server = replayed_server("0.11.1").await;
    let (ok, stdout, stderr) = comfyctl(&["detect", "--url", &server.uri()]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("version:  0.11.1"), "{stdout}");
    assert!(stdout.contains("line:     jobs-api (0.6-0.25)"), "{stdout}");
    assert!(
        stdout.contains("jobs API (/api/jobs)          yes"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_clear_line_and_a_failure_code() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (ok, _, stderr) = comfyctl(&["detect", "--url", &format!("http://127.0.0.1:{port}")]).await;
    assert!(!ok);
    assert!(stderr.contains("cannot connect"), "{stderr}");

    let (ok, _, stderr) = comfyctl(&["detect", "--url", "ftp://example"]).await;
    assert!(!ok);
    assert!(stderr.contains("scheme must be http or https"), "{stderr}");

    let (ok, _, stderr) = comfyctl(&["detect", "--timeout", "0"]).await;
    assert!(!ok);
    assert!(stderr.contains("between 0 and 3600"), "{stderr}");

    let (ok, stdout, _) = comfyctl(&["--help"]).await;
    assert!(ok && stdout.contains("detect"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_prints_json_text_and_markdown_and_can_gate_on_breaking() {
    let a = support::fixture_dir("0.11.1");
    let b = support::fixture_dir("0.26.0");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let (ok, stdout, stderr) = comfyctl(&["diff", a, b, "--json"]).await;
    assert!(ok, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (v["a"].as_str(), v["b"].as_str()),
        (Some("0.11.1"), Some("0.26.0"))
    );
    assert!(
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["probe"] == "prompt-unknown-class" && c["class"] == "breaking")
    );

    let (ok, stdout, _) = comfyctl(&["diff", a, b]).await;
    assert!(
        ok && stdout.starts_with("ComfyUI 0.11.1 → 0.26.0"),
        "{stdout}"
    );
    let (ok, stdout, _) = comfyctl(&["diff", a, b, "--markdown"]).await;
    assert!(
        ok && stdout.starts_with("# ComfyUI 0.11.1 → 0.26.0"),
        "{stdout}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_comfyctl"))
        .args(["diff", a, b, "--fail-on-breaking"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let out = Command::new(env!("CARGO_BIN_EXE_comfyctl"))
        .args(["diff", a, a, "--fail-on-breaking"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));

    let (ok, _, stderr) = comfyctl(&["diff", a, "/nonexistent/fixtures"]).await;
    assert!(!ok && stderr.contains("cannot read"), "{stderr}");
}
