//! `comfyctl check` on what a folder of workflows can hold besides
//! workflows: a symbolic-link loop, two links to one file, a device, a file
//! too large to be a workflow. Each ends quickly with a clear answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_comfyctl"))
        .arg("check")
        .args(args)
        .args(["--version", "0.11.1", "--json"])
        .env_remove("COMFY_FIXTURES")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_symlink_loop_and_duplicate_links_visit_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let wf = repo().join("workflows/ui/tiny_bypass_mute.json");
    std::fs::copy(&wf, dir.path().join("a.json")).unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("a.json"), dir.path().join("b.json")).unwrap();
    let (ok, stdout, stderr) = check(&[dir.path().as_os_str()]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{stdout}");
}

#[test]
fn a_device_is_refused_without_reading_it() {
    let (ok, _, stderr) = check(&[std::ffi::OsStr::new("/dev/zero")]);
    assert!(!ok);
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

#[test]
fn a_file_past_the_size_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(65 * 1024 * 1024).unwrap();
    let (ok, _, stderr) = check(&[big.as_os_str()]);
    assert!(!ok);
    assert!(stderr.contains("the limit is"), "{stderr}");
}

#[test]
fn a_prompt_whose_links_form_a_cycle_is_an_error() {
    // Three nodes feeding each other in a circle, and one output on the
    // circle: it can never run, and ComfyUI refuses it.
    let prompt = serde_json::json!({
        "1": {"class_type": "ImageInvert", "inputs": {"image": ["3", 0]}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "cycle"}},
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cycle.json");
    std::fs::write(&file, prompt.to_string()).unwrap();
    let (ok, stdout, stderr) = check(&[file.as_os_str()]);
    assert!(!ok, "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    let findings = v["files"][0]["findings"].as_array().unwrap();
    let cycle = findings
        .iter()
        .find(|f| f["kind"] == "dependency_cycle" || f.get("nodes").is_some())
        .unwrap_or_else(|| panic!("no cycle finding: {stdout}"));
    assert_eq!(cycle["severity"], "error", "{cycle}");
    assert_eq!(
        cycle["nodes"],
        serde_json::json!(["1", "3", "2"]),
        "{cycle}"
    );
}
