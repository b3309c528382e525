//! `comfyctl diff` over the recorded fixture sets: what it must say, and the
//! generated upgrade reports and plans (`comfyctl plan`, run as a user runs
//! it) in docs/upgrades/ kept fresh.
//!
//! Regenerate the reports and plans with
//! `UPDATE_UPGRADE_REPORTS=1 cargo test -p comfyctl --test upgrade_reports`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use comfy_test_support::replay as support;
use common::{comfyctl, plan_args};

use comfyctl::diff::{self, Change, Class, Diff, FixtureSet};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn set(version: &str) -> FixtureSet {
    FixtureSet::load(&support::fixture_dir(version)).unwrap()
}

fn between(a: &str, b: &str) -> Diff {
    diff::diff(&set(a), &set(b))
}

fn find<'a>(d: &'a Diff, probe: &str, kind: &str) -> Vec<&'a Change> {
    d.changes
        .iter()
        .filter(|c| c.probe == probe && c.kind == kind)
        .collect()
}

#[test]
fn upgrade_reports_are_fresh() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/upgrades");
    let update = std::env::var_os("UPDATE_UPGRADE_REPORTS").is_some();
    let mut stale = Vec::new();
    for (a, b) in comfy_adapter::releases::neighbours().map(|(a, b)| (a.version, b.version)) {
        let md = diff::markdown(&between(a, b));
        let path = dir.join(format!("{a}-to-{b}.md"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &md).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(md.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale upgrade reports {stale:?}: run UPDATE_UPGRADE_REPORTS=1 cargo test -p comfyctl --test upgrade_reports"
    );
}

#[test]
fn upgrade_plans_are_fresh() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/upgrades");
    let update = std::env::var_os("UPDATE_UPGRADE_REPORTS").is_some();
    let mut stale = Vec::new();
    let mut check = |path: PathBuf, text: String| {
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    };
    for (a, b) in comfy_adapter::releases::neighbours().map(|(a, b)| (a.version, b.version)) {
        let (ok, md, err) = comfyctl(&plan_args(a, b));
        assert!(ok, "{a} → {b}: {err}");
        check(dir.join(format!("{a}-to-{b}.plan.md")), md);
    }
    let mut args = plan_args("0.9.2", "0.11.1");
    args.push("--json");
    let (ok, js, err) = comfyctl(&args);
    assert!(ok, "{err}");
    check(dir.join("0.9.2-to-0.11.1.plan.json"), js);
    assert!(
        stale.is_empty(),
        "stale upgrade plans {stale:?}: run UPDATE_UPGRADE_REPORTS=1 cargo test -p comfyctl --test upgrade_reports"
    );
}

#[test]
fn from_0_9_2_to_0_11_1_only_object_info_gains_fields_and_versions_change() {
    let d = between("0.9.2", "0.11.1");
    let touched: BTreeSet<&str> = d
        .changes
        .iter()
        .filter(|c| c.class != Class::Race)
        .map(|c| c.probe.as_str())
        .collect();
    for probe in &touched {
        assert!(
            probe.starts_with("object_info") || probe.ends_with("system_stats"),
            "unexpected change in {probe}"
        );
    }
    for c in d
        .changes
        .iter()
        .filter(|c| c.probe.ends_with("system_stats"))
    {
        assert_eq!(
            (c.kind.as_str(), c.class),
            ("value", Class::ValueOnly),
            "{c:?}"
        );
        assert!(c.path.ends_with("_version"), "{c:?}");
    }
    let version = find(&d, "system_stats", "value")
        .into_iter()
        .find(|c| c.path == "$.system.comfyui_version")
        .unwrap();
    assert_eq!(
        (version.before.as_deref(), version.after.as_deref()),
        (Some("0.9.2"), Some("0.11.1"))
    );
    for single in ["object_info-EmptyImage", "object_info-KSampler"] {
        let added = find(&d, single, "added");
        assert_eq!(added.len(), 1, "{single}: {added:?}");
        assert_eq!(added[0].path, "$.*.search_aliases");
        assert_eq!(added[0].class, Class::Additive);
    }
}

#[test]
fn from_0_11_1_to_0_26_0_the_breaking_changes_are_named() {
    let d = between("0.11.1", "0.26.0");
    let status = |probe: &str| {
        find(&d, probe, "status")
            .first()
            .map(|c| (c.before.clone().unwrap(), c.after.clone().unwrap(), c.class))
    };
    assert_eq!(
        status("prompt-with-prompt_id-and-number"),
        Some(("200".into(), "400".into(), Class::Breaking))
    );
    assert_eq!(
        status("jobs-cancel-pending"),
        Some(("405".into(), "200".into(), Class::Additive))
    );
    assert_eq!(
        status("jobs-by-id-after-cancel-pending"),
        Some(("200".into(), "404".into(), Class::Breaking))
    );
    let kind = find(&d, "prompt-unknown-class", "value")
        .into_iter()
        .find(|c| c.path == "$.error.type")
        .unwrap();
    assert_eq!(
        (kind.before.as_deref(), kind.after.as_deref(), kind.class),
        (
            Some("invalid_prompt"),
            Some("missing_node_type"),
            Class::Breaking
        )
    );
    let retyped = find(&d, "userdata-post-full_info", "retyped");
    assert!(
        retyped.iter().any(|c| c.path == "$.modified"
            && c.before.as_deref() == Some("float")
            && c.after.as_deref() == Some("int")),
        "{retyped:?}"
    );
    assert!(
        find(&d, "features", "added")
            .iter()
            .any(|c| c.path == "$.node_replacements")
    );
}

#[test]
fn from_0_3_64_to_0_6_0_the_jobs_api_appears() {
    let d = between("0.3.64", "0.6.0");
    let s = find(&d, "jobs-empty", "status");
    assert_eq!(
        (s[0].before.as_deref(), s[0].after.as_deref(), s[0].class),
        (Some("404"), Some("200"), Class::Additive)
    );
    assert!(
        find(&d, "queue-busy", "added")
            .iter()
            .any(|c| c.path.ends_with(".create_time")),
        "create_time arrives in queue items"
    );
}

#[test]
fn a_set_compared_with_itself_has_no_changes_and_bad_input_is_an_error() {
    let d = between("0.33.0", "0.33.0");
    assert!(d.changes.is_empty(), "{:?}", d.changes.first());
    assert_eq!(d.probes_compared, 118);
    let empty = std::env::temp_dir().join(format!("comfy-diff-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    assert!(matches!(
        FixtureSet::load(&empty),
        Err(diff::LoadError::Empty(_))
    ));
    assert!(matches!(
        FixtureSet::load(&empty.join("missing")),
        Err(diff::LoadError::Io { .. })
    ));
    std::fs::remove_dir_all(&empty).unwrap();
}
