//! `record` leaves the server as it found it: the history and userdata it
//! created are gone afterwards, also when it is stopped half-way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_emulator::{Emulator, EmulatorConfig};
use comfyctl::record::{self, Outcome, Progress, RecordError, RecordOptions};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Fires when probe `at` has been written.
struct StopAt {
    at: usize,
    fire: Arc<Notify>,
}

impl Progress for StopAt {
    fn probe(&self, number: usize, _: &str, _: &Outcome) {
        if number == self.at {
            self.fire.notify_one();
        }
    }
}

async fn get(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn assert_as_found(base: &str, when: &str) {
    let (_, history) = get(&format!("{base}/history")).await;
    assert_eq!(history, serde_json::json!({}), "{when}: history emptied");
    let (_, queue) = get(&format!("{base}/queue")).await;
    assert_eq!(queue["queue_running"], serde_json::json!([]), "{when}");
    assert_eq!(queue["queue_pending"], serde_json::json!([]), "{when}");
    let (status, files) = get(&format!("{base}/userdata?dir=workflows&recurse=true")).await;
    assert!(
        status == 404 || files == serde_json::json!([]),
        "{when}: userdata files removed, got {status} {files}"
    );
}

#[tokio::test]
async fn a_finished_recording_deletes_what_it_created() {
    let emu = Emulator::start(EmulatorConfig::new("0.11.1").node_time(Duration::from_millis(2)))
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut options = RecordOptions::new(emu.url(), out.path().join("set"));
    options.job_timeout = Duration::from_secs(20);
    let report = record::record(&options, &record::Quiet).await.unwrap();
    assert_eq!(report.written(), record::PROBE_COUNT);
    assert!(report.cleaned.iter().any(|c| c.starts_with("history: ")));
    assert_as_found(&emu.url(), "after a full recording").await;
}

#[tokio::test]
async fn a_stopped_recording_still_cleans_up() {
    // Stopped right after the nested userdata file is written (095), with
    // prompts in history and two workflow files on the server.
    let emu = Emulator::start(EmulatorConfig::new("0.26.0").node_time(Duration::from_millis(2)))
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut options = RecordOptions::new(emu.url(), out.path().join("set"));
    options.job_timeout = Duration::from_secs(20);
    let fire = Arc::new(Notify::new());
    let progress = StopAt {
        at: 95,
        fire: fire.clone(),
    };
    let err = record::record_until(&options, &progress, fire.notified())
        .await
        .unwrap_err();
    assert!(matches!(err, RecordError::Stopped), "{err}");
    assert_as_found(&emu.url(), "after a stopped recording").await;
    let written = std::fs::read_dir(out.path().join("set")).unwrap().count();
    assert!(
        (95..118).contains(&written),
        "{written} files written before the stop"
    );
}

#[tokio::test]
async fn userdata_the_probes_would_overwrite_is_refused_untouched() {
    let emu = Emulator::start(EmulatorConfig::new("0.33.0"))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let mine = format!("{}/userdata/workflows%2Ffixture_template.json", emu.url());
    client
        .post(&mine)
        .body("{\"mine\": true}")
        .send()
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = RecordOptions::new(emu.url(), out.path().join("set"));
    let err = record::record(&options, &record::Quiet).await.unwrap_err();
    assert!(
        matches!(&err, RecordError::WouldOverwrite(p) if p == "workflows/fixture_template.json"),
        "{err}"
    );
    let kept = client
        .get(&mine)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(kept, "{\"mine\": true}");
}
