//! `comfyctl plan` as a user runs it: the binary, from the workspace root,
//! over the recorded fixture sets. (`tests/upgrade_reports.rs` keeps the
//! plans in docs/upgrades/ fresh.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use comfy_adapter::releases;
use common::{comfyctl, plan_args, root};
use serde_json::{Value, json};
use std::path::Path;

fn plan_json(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let (ok, out, err) = comfyctl(&args);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn from_0_9_2_to_0_11_1_the_removed_class_and_the_pinned_frontends_are_in_the_plan() {
    let p = plan_json(&plan_args("0.9.2", "0.11.1"));
    for key in [
        "from",
        "to",
        "verdict",
        "reasons",
        "api",
        "workflows",
        "frontend_gateway",
        "steps",
    ] {
        assert!(p.get(key).is_some(), "no {key} in {p}");
    }
    assert_eq!(
        p["api"]["node_classes_removed"],
        json!(["ByteDanceImageEditNode"])
    );
    assert!(
        p["api"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["class"] == "breaking"
                && c["kind"] == "node-class"
                && c["path"] == "ByteDanceImageEditNode"),
        "{}",
        p["api"]
    );
    let (old, new) = (
        releases::find("0.9.2").unwrap(),
        releases::find("0.11.1").unwrap(),
    );
    assert_eq!(p["from"]["frontend"], old.frontend);
    assert_eq!(p["to"]["frontend"], new.frontend);
    assert_eq!(p["from"]["line"], "jobs-api");
    let fg = &p["frontend_gateway"];
    assert_eq!(
        (&fg["from_frontend"], &fg["to_frontend"]),
        (&json!(old.frontend), &json!(new.frontend))
    );
    let pinned = fg["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["topic"].as_str().unwrap().starts_with("frontend pinned"))
        .unwrap();
    assert_eq!(pinned["changes"], true);
    // Every workflow of the folder on both sides; none of them needs the
    // removed class, so nothing is pinned.
    assert!(p["workflows"]["checked"].as_u64().unwrap() >= 10);
    assert_eq!(p["workflows"]["stay_on_from"], json!([]));
    assert_eq!(p["verdict"], "safe");

    let (ok, md, err) = comfyctl(&plan_args("0.9.2", "0.11.1"));
    assert!(ok, "{err}");
    for needle in [
        "ByteDanceImageEditNode",
        old.frontend,
        new.frontend,
        "POST /api/workers/{id}/drain",
        "**Verdict: safe.**",
    ] {
        assert!(md.contains(needle), "no {needle:?} in the Markdown plan");
    }
}

#[test]
fn from_0_11_1_to_0_26_0_the_gateway_gains_the_cancel_routes_and_the_new_wording() {
    let p = plan_json(&["plan", "--from", "0.11.1", "--to", "0.26.0"]);
    let row = |prefix: &str| {
        p["frontend_gateway"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["topic"].as_str().unwrap().starts_with(prefix))
            .cloned()
            .unwrap()
    };
    let cancel = row("cancel routes");
    assert_eq!(
        (&cancel["from"], &cancel["to"]),
        (&json!("no"), &json!("yes"))
    );
    let unknown = row("an unknown node class");
    assert_eq!(unknown["to"], "`missing_node_type`");
    assert_eq!(p["to"]["line"], "cancel-api");
    assert!(p["workflows"].is_null());
}

fn write(dir: &Path, name: &str, v: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    path.display().to_string()
}

#[test]
fn a_workflow_using_a_node_removed_in_b_breaks_on_b_and_stays_on_a() {
    let dir = tempfile::tempdir().unwrap();
    let uses_removed = write(
        dir.path(),
        "edit.json",
        &json!({
            "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
            "2": {"class_type": "ByteDanceImageEditNode", "inputs": {"model": "seededit-3-0-i2i-250628", "image": ["1", 0], "prompt": "sharper"}},
            "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "edit", "images": ["2", 0]}}
        }),
    );
    let fine = write(
        dir.path(),
        "tiny.json",
        &json!({
            "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
            "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "tiny", "images": ["1", 0]}}
        }),
    );
    write(dir.path(), "notes.json", &json!({"not": "a workflow"}));
    let d = dir.path().display().to_string();
    let p = plan_json(&[
        "plan",
        "--from",
        "0.9.2",
        "--to",
        "0.11.1",
        "--workflows",
        &d,
    ]);
    let w = &p["workflows"];
    assert_eq!(w["checked"], 2, "{w}");
    assert_eq!(w["skipped"].as_array().unwrap().len(), 1, "{w}");
    assert_eq!(w["stay_on_from"], json!([uses_removed]));
    let file = |path: &str| {
        w["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .cloned()
            .unwrap()
    };
    let edit = file(&uses_removed);
    assert_eq!(
        (&edit["from"]["status"], &edit["to"]["status"]),
        (&json!("ok"), &json!("breaks"))
    );
    let new = edit["new_on_to"].as_array().unwrap();
    assert!(
        new.iter().any(|f| f["kind"] == "missing_node_type"
            && f["class_type"] == "ByteDanceImageEditNode"
            && f["text"]
                .as_str()
                .unwrap()
                .contains("ByteDanceImageEditNode")),
        "{new:?}"
    );
    let tiny = file(&fine);
    assert_eq!(
        (&tiny["from"]["status"], &tiny["to"]["status"]),
        (&json!("ok"), &json!("ok"))
    );
    assert_eq!(p["verdict"], "safe-with-pinned-workflows");
    let steps = p["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| {
            let s = s.as_str().unwrap();
            s.contains("metadata.requires.comfyui") && s.contains(&uses_removed)
        }),
        "{steps:?}"
    );
    let (ok, md, _) = comfyctl(&[
        "plan",
        "--from",
        "0.9.2",
        "--to",
        "0.11.1",
        "--workflows",
        &d,
    ]);
    assert!(ok);
    assert!(
        md.contains("**Verdict: safe with pinned workflows.**"),
        "{md}"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let (ok, _, err) = comfyctl(&["plan", "--from", "0.10.0", "--to", "0.11.1"]);
    assert!(!ok);
    assert!(err.contains("--from 0.10.0: unknown version"), "{err}");
    for v in releases::versions() {
        assert!(err.contains(v), "{v} not listed as known: {err}");
    }
    let (ok, _, err) = comfyctl(&[
        "plan",
        "--from",
        "0.9.2",
        "--to",
        "0.11.1",
        "--workflows",
        "no/such/dir",
    ]);
    assert!(!ok);
    assert!(
        err.contains("--workflows no/such/dir: no such folder"),
        "{err}"
    );
    let (ok, _, err) = comfyctl(&["plan", "--from", "no/such/set", "--to", "0.11.1"]);
    assert!(!ok);
    assert!(err.contains("--from no/such/set: no such folder"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let d = empty.path().display().to_string();
    let (ok, _, err) = comfyctl(&["plan", "--from", "0.9.2", "--to", &d]);
    assert!(!ok);
    assert!(err.contains("holds no recorded probes"), "{err}");
}

#[test]
fn a_release_the_table_lacks_with_breaking_changes_is_blocking() {
    // The newest recorded set, relabelled as a release nobody recorded.
    let newest = releases::newest();
    let (version, frontend) = ("0.99.0", "1.99.0");
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(root().join("fixtures").join(newest.fixture_dir())).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text
            .replace(
                &format!("\"{}\"", newest.version),
                &format!("\"{version}\""),
            )
            .replace(
                &format!("\"{}\"", newest.frontend),
                &format!("\"{frontend}\""),
            );
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    let d = dir.path().display().to_string();
    let p = plan_json(&["plan", "--from", "0.11.1", "--to", &d]);
    assert_eq!(p["to"]["version"], version);
    assert_eq!(p["to"]["recorded"], false);
    assert_eq!(p["to"]["behaves_as"], newest.version);
    // Its own /system_stats names the frontend it pins.
    assert_eq!(p["to"]["frontend"], frontend);
    assert!(p["api"]["breaking"].as_u64().unwrap() > 0);
    assert_eq!(p["verdict"], "blocking");
    assert!(
        p["reasons"][0]
            .as_str()
            .unwrap()
            .contains("not a recorded release"),
        "{}",
        p["reasons"]
    );
}
