//! `record`'s interrupt probes against a server whose last node never looks
//! at the interrupt flag, as on real 0.9.2, 0.11.1 and 0.33.0 servers, where
//! SaveImage has no interrupt hook: an interrupt sent once the last node runs
//! lets the prompt succeed. The probes send it while an earlier node runs, so
//! the flag stops the prompt as the last node starts, as every recorded set
//! shows (`execution_interrupted` at node 3). The emulator keeps its real
//! clock here (no breakpoints): the slow prompt's nodes take about 0.3 s each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_emulator::{Emulator, EmulatorConfig};
use comfyctl::record::{self, Quiet, RecordOptions};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn recorded(dir: &Path, name: &str) -> Value {
    let suffix = format!("-{name}.json");
    let file = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 3 + suffix.len() && n.ends_with(&suffix))
        })
        .unwrap_or_else(|| panic!("no {name} recorded in {}", dir.display()));
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

/// The one history entry of a recorded `/history/{id}`: its status and
/// outputs.
fn history_entry(file: &Value) -> (String, Vec<(String, Option<String>)>, usize) {
    let body = &file["response"]["body"];
    let (_, entry) = body
        .as_object()
        .and_then(|o| o.iter().next())
        .unwrap_or_else(|| panic!("no history entry: {file}"));
    let status = &entry["status"];
    let messages = status["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m[0].as_str().unwrap().to_owned(),
                m[1]["node_id"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let outputs = entry["outputs"].as_object().map_or(0, |o| o.len());
    (
        status["status_str"].as_str().unwrap_or("").to_owned(),
        messages,
        outputs,
    )
}

async fn interrupt_probes_stop_the_prompt(version: &str) {
    let emu = Emulator::start(EmulatorConfig::new(version).node_time(Duration::from_millis(20)))
        .await
        .unwrap();
    emu.set_uninterruptible_class(Some("SaveImage"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let mut opts = RecordOptions::new(emu.url(), out.clone());
    opts.job_timeout = Duration::from_secs(60);
    let report = record::record(&opts, &Quiet).await.unwrap();
    let interrupts = emu.interrupts();
    emu.stop().await;
    let skipped: Vec<_> = report.skipped().map(|p| p.name.clone()).collect();
    assert!(skipped.is_empty(), "{version}: skipped {skipped:?}");

    // 087: the traced run ends interrupted at its last node, never succeeds.
    let trace = recorded(&out, "ws-run-interrupted");
    let id = trace["prompt_id"].as_str().unwrap();
    let ends: Vec<(String, Option<String>)> = trace["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["data"]["prompt_id"] == id)
        .filter_map(|m| {
            let t = m["type"].as_str()?;
            t.starts_with("execution_").then(|| {
                (
                    t.to_owned(),
                    m["data"]["node_id"].as_str().map(str::to_owned),
                )
            })
        })
        .filter(|(t, _)| t != "execution_start" && t != "execution_cached")
        .collect();
    assert_eq!(
        ends,
        [("execution_interrupted".to_owned(), Some("3".to_owned()))],
        "{version}: how the traced run ended"
    );
    // 088: its history entry says so, without outputs.
    let (status, messages, outputs) =
        history_entry(&recorded(&out, "history-by-id-interrupted-ws"));
    assert_eq!(status, "error", "{version}: {messages:?}");
    assert!(
        messages.contains(&("execution_interrupted".to_owned(), Some("3".to_owned()))),
        "{version}: {messages:?}"
    );
    assert_eq!(outputs, 0, "{version}");
    // 058: the targeted interrupt of the queue probes stopped slow-1 too.
    let (status, messages, outputs) = history_entry(&recorded(&out, "history-by-id-interrupted"));
    assert_eq!(
        status, "error",
        "{version}: slow-1 was not stopped: {messages:?}"
    );
    assert!(
        messages.iter().any(|(t, _)| t == "execution_interrupted"),
        "{version}: {messages:?}"
    );
    assert_eq!(outputs, 0, "{version}");
    assert!(interrupts >= 2, "{version}: {interrupts} interrupts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupts_reach_the_prompt_before_its_uninterruptible_last_node() {
    for version in ["0.9.2", "0.11.1", "0.33.0"] {
        interrupt_probes_stop_the_prompt(version).await;
    }
}
