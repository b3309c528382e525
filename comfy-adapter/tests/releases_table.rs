//! The releases table is the one place that names a ComfyUI release: every
//! recorded set under `fixtures/` has a row, every row has a set, and no
//! production source names a recorded version anywhere else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_adapter::Line;
use comfy_adapter::releases::{self, RELEASES};
use comfy_test_support::replay::repo;
use comfy_test_support::sources;
use std::collections::BTreeSet;

/// Crates whose `src/` is production code.
const PRODUCTION: &[&str] = &[
    "comfy-adapter",
    "comfy-emulator",
    "comfyctl",
    "comfy-queue-api",
    "queue",
    "worker",
    "comfy-stack",
];

/// Places allowed to write a recorded version, and why.
const ALLOWED: &[(&str, &str)] = &[
    // The table itself.
    ("comfy-adapter/src/releases.rs", ""),
    // A choice, not a fact: the demo emulates the release the platform
    // runs today (README's first command).
    ("comfy-stack/src/main.rs", "default_value = \"0.11.1\""),
];

#[test]
fn every_fixture_set_has_a_row_and_every_row_a_set() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo().join("fixtures"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_prefix("comfyui-").map(str::to_owned)
        })
        .collect();
    let rows: BTreeSet<String> = releases::versions().map(str::to_owned).collect();
    assert_eq!(on_disk, rows, "fixtures/comfyui-* and RELEASES differ");
}

#[test]
fn each_row_names_the_frontend_its_recording_pins() {
    for r in RELEASES {
        let path = repo()
            .join("fixtures")
            .join(r.fixture_dir())
            .join("001-system_stats.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let system = &v["response"]["body"]["system"];
        assert_eq!(system["comfyui_version"], r.version, "{}", path.display());
        assert_eq!(
            system["required_frontend_version"],
            r.frontend,
            "{}",
            path.display()
        );
    }
}

#[test]
fn lines_read_the_table() {
    for line in Line::ALL {
        assert_eq!(
            line.tested_versions(),
            releases::of_line(line)
                .map(|r| r.version)
                .collect::<Vec<_>>()
        );
        assert_eq!(Line::from_name(line.name()), Some(line));
    }
    assert_eq!(Line::JobsApi.range(), "0.6-0.25");
    assert_eq!(Line::Legacy.range(), "0.3-0.5");
    assert_eq!(Line::CancelApi.range(), "0.26+");
    let v = releases::newest().semver();
    assert_eq!(comfy_adapter::newest_tested(), (v.major, v.minor));
}

#[test]
fn the_capability_vocabulary_is_the_field_names_detect_prints() {
    let caps = comfy_adapter::Capabilities::for_line(Line::CancelApi, None);
    let printed = serde_json::to_value(&caps).unwrap();
    let bool_fields: Vec<&str> = printed
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.is_boolean())
        .map(|(k, _)| k.as_str())
        .collect();
    let names: Vec<&str> = comfy_adapter::Capability::ALL
        .iter()
        .map(|c| c.name())
        .collect();
    assert_eq!(bool_fields, names);
    for c in comfy_adapter::Capability::ALL {
        assert_eq!(printed[c.name()], caps.has(c), "{c}");
        assert_eq!(serde_json::to_value(c).unwrap(), c.name());
        assert_eq!(comfy_adapter::Capability::from_name(c.name()), Some(c));
    }
}

#[test]
fn no_production_source_names_a_release_outside_the_table() {
    let quoted: Vec<String> = releases::versions().map(|v| format!("\"{v}\"")).collect();
    let mut found = Vec::new();
    for krate in PRODUCTION {
        for file in sources::rust_files(&repo().join(krate).join("src")) {
            let rel = file
                .strip_prefix(repo())
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in sources::code_lines(&text) {
                let allowed = ALLOWED
                    .iter()
                    .any(|(f, what)| *f == rel && (what.is_empty() || line.contains(what)));
                if !allowed && quoted.iter().any(|q| line.contains(q.as_str())) {
                    found.push(format!("{rel}:{n}: {}", line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "release versions outside comfy-adapter/src/releases.rs:\n{}",
        found.join("\n")
    );
}
