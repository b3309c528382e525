//! `docs/adding-a-release.md`, followed on a synthetic release: a 0.34.0
//! made from the 0.33.0 recordings (its `system_stats` says 0.34.0) stands
//! for a release recorded today.
//!
//! Step 1 records it with the probe suite (the emulator answering from the
//! new folder alone, as `comfyctl emulate --fixtures` does), step 2 diffs
//! it against 0.33.0 and finds it inside the line, and the state before
//! step 3 is what the doc says: the adapter already drives it on its line
//! and only warns that it is outside the tested range, and every
//! per-version suite follows the table and `fixtures/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_adapter::model::job::JobState;
use comfy_adapter::model::prompt::PromptRequest;
use comfy_adapter::releases::{self, RELEASES};
use comfy_adapter::{DetectOptions, Line, detect};
use comfy_emulator::{Emulator, EmulatorConfig, RECORDED_FILES, embedded_versions};
use comfy_test_support::replay as support;
use comfyctl::diff::{self, Class, FixtureSet};
use comfyctl::record::{self, Quiet, RecordOptions};
use std::path::Path;
use std::time::{Duration, Instant};

const NEW: &str = "0.34.0";

/// The files an emulator answers from, copied from `from` with the version
/// in `system_stats` changed to `NEW`.
fn synthetic_set(from: &str, root: &Path) {
    let src = support::fixture_dir(from);
    let dst = root.join(format!("comfyui-{NEW}"));
    std::fs::create_dir_all(&dst).unwrap();
    for file in RECORDED_FILES {
        let mut text = std::fs::read_to_string(src.join(file)).unwrap();
        if file.starts_with("001") {
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v["response"]["body"]["system"]["comfyui_version"] = NEW.into();
            text = serde_json::to_string(&v).unwrap();
        }
        std::fs::write(dst.join(file), text).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_inside_a_line_takes_the_documented_steps() {
    let previous = releases::newest();
    let work = tempfile::tempdir().unwrap();
    let seed = work.path().join("seed");
    synthetic_set(previous.version, &seed);

    // Not in the table: the emulator refuses it without a folder…
    assert!(Emulator::start(EmulatorConfig::new(NEW)).await.is_err());
    // …and emulates it from one.
    let mut config = EmulatorConfig::new(NEW).node_time(Duration::from_millis(5));
    config.fixtures_dir = Some(seed.clone());
    let emu = Emulator::start(config).await.unwrap();

    // Step 1: record it.
    let recorded = work.path().join("fixtures").join(format!("comfyui-{NEW}"));
    let mut opts = RecordOptions::new(emu.url(), recorded.clone());
    opts.job_timeout = Duration::from_secs(20);
    let report = record::record(&opts, &Quiet).await.unwrap();
    assert_eq!(report.written(), record::PROBE_COUNT, "{report:?}");

    // Step 2: compare it with the release before it: inside the line.
    let d = diff::diff(
        &FixtureSet::load(&support::fixture_dir(previous.version)).unwrap(),
        &FixtureSet::load(&recorded).unwrap(),
    );
    let breaking: Vec<_> = d
        .changes
        .iter()
        .filter(|c| c.class == Class::Breaking)
        .collect();
    assert!(breaking.is_empty(), "{breaking:#?}");
    assert!(
        d.changes
            .iter()
            .any(|c| c.probe.ends_with("system_stats") && c.after.as_deref() == Some(NEW)),
        "the version change is reported: {:#?}",
        d.changes
    );

    // Before step 3 (its row): the adapter drives it on the line its
    // number says, with the behaviour of the release before it, and warns
    // only that it is outside the tested range.
    let v = semver::Version::parse(NEW).unwrap();
    assert_eq!(Line::for_version(&v), previous.line);
    assert_eq!(releases::nearest(&v).version, previous.version);
    let found = detect(&emu.url(), &DetectOptions::default()).await.unwrap();
    assert_eq!(found.line, previous.line);
    assert!(
        found
            .warnings
            .iter()
            .any(|w| w.contains("outside the tested range")),
        "{:?}",
        found.warnings
    );
    let strict = DetectOptions {
        strict: true,
        ..DetectOptions::default()
    };
    assert!(detect(&emu.url(), &strict).await.is_err());
    let prompt = serde_json::json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "synthetic"}},
    });
    let accepted = found
        .adapter
        .submit(&PromptRequest::from_value(prompt).unwrap())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = found.adapter.job(&accepted.prompt_id).await.unwrap();
        if status.state == JobState::Succeeded {
            assert!(!status.outputs.is_empty());
            break;
        }
        assert!(Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    emu.stop().await;

    // Steps 3–5: the per-version suites and the emulator follow the table
    // and fixtures/, so the row and the folder are all a release needs.
    let rows: Vec<&str> = RELEASES.iter().map(|r| r.version).collect();
    assert_eq!(support::VERSIONS.to_vec(), rows);
    assert_eq!(embedded_versions(), rows);
}
