//! The emulator against the adapter: `detect()` picks the right line for
//! every recorded version, and prompts run to the state the adapter reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_adapter::model::event::Event;
use comfy_adapter::model::job::{JobState, JobStatus};
use comfy_adapter::model::output::OutputKind;
use comfy_adapter::model::prompt::{PromptRequest, RejectionKind};
use comfy_adapter::{ComfyAdapter, DetectOptions, Line, detect};
use comfy_emulator::{Emulator, EmulatorConfig, Faults, embedded_versions};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn prompt(prefix: &str) -> PromptRequest {
    PromptRequest::from_value(json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }))
    .unwrap()
}

async fn wait_terminal(adapter: &dyn ComfyAdapter, id: &str) -> JobStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = adapter.job(id).await.unwrap();
        if s.state.is_terminal() {
            return s;
        }
        assert!(Instant::now() < deadline, "{id} did not finish: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn detect_picks_the_line_of_every_recorded_version() {
    for v in embedded_versions() {
        let emu = Emulator::start(EmulatorConfig::new(v)).await.unwrap();
        let d = detect(&emu.url(), &DetectOptions::default()).await.unwrap();
        let expected = Line::for_version(&semver::Version::parse(v).unwrap());
        assert_eq!(d.line, expected, "{v}");
        assert!(d.warnings.is_empty(), "{v}: {:?}", d.warnings);
        assert_eq!(d.info.version_string.as_deref(), Some(v));
        assert!(d.capabilities.preview_metadata, "{v}: /features read");
        emu.stop().await;
    }
}

#[tokio::test]
async fn a_prompt_runs_to_succeeded_with_events_on_each_line() {
    for v in ["0.3.64", "0.9.2", "0.11.1", "0.33.0"] {
        let emu = Emulator::start(EmulatorConfig::new(v)).await.unwrap();
        let d = detect(&emu.url(), &DetectOptions::default()).await.unwrap();
        let client = uuid::Uuid::new_v4().to_string();
        let mut events = d.adapter.events(&client).await.unwrap();
        let accepted = d
            .adapter
            .submit(&prompt("ok").with_client_id(&client))
            .await
            .unwrap();
        let mut seen = Vec::new();
        while let Ok(Some(Ok(e))) =
            tokio::time::timeout(Duration::from_secs(5), events.next()).await
        {
            let end = e.prompt_id() == Some(accepted.prompt_id.as_str()) && e.is_terminal();
            seen.push(e);
            if end {
                break;
            }
        }
        assert!(
            matches!(seen.first(), Some(Event::Status { sid: Some(_), .. })),
            "{v}: greeting"
        );
        assert!(
            seen.iter()
                .any(|e| matches!(e, Event::ExecutionStart { .. })),
            "{v}"
        );
        assert!(
            seen.iter()
                .any(|e| matches!(e, Event::Executed { node, .. } if node == "2")),
            "{v}"
        );
        let s = wait_terminal(d.adapter.as_ref(), &accepted.prompt_id).await;
        assert_eq!(s.state, JobState::Succeeded, "{v}: {s:?}");
        assert_eq!(s.outputs.len(), 1, "{v}");
        assert_eq!(s.outputs[0].kind, OutputKind::Image);
        let file = s.outputs[0].file.clone().unwrap();
        assert_eq!(file.filename, "ok_00001_.png");
        assert!(!d.adapter.view(&file).await.unwrap().is_empty());
        emu.stop().await;
    }
}

#[tokio::test]
async fn rejections_and_failures_read_as_on_the_real_lines() {
    for v in ["0.3.64", "0.11.1", "0.33.0"] {
        let emu = Emulator::start(EmulatorConfig::new(v)).await.unwrap();
        let d = detect(&emu.url(), &DetectOptions::default()).await.unwrap();
        let unknown =
            PromptRequest::from_value(json!({"1": {"class_type": "DoesNotExist", "inputs": {}}}))
                .unwrap();
        let err = d.adapter.submit(&unknown).await.unwrap_err();
        let r = err.as_rejection().unwrap();
        assert_eq!(r.kind, RejectionKind::UnknownNodeType, "{v}");
        let expected = if v == "0.33.0" {
            "missing_node_type"
        } else {
            "invalid_prompt"
        };
        assert_eq!(r.server_type, expected);

        let mut small = prompt("x");
        small.prompt["1"]["inputs"]["width"] = json!(0);
        let r = d.adapter.submit(&small).await.unwrap_err();
        let r = r.as_rejection().unwrap();
        assert_eq!(r.kind, RejectionKind::OutputsFailedValidation);
        assert_eq!(r.node_errors[0].node_id, "1");

        let accepted = d.adapter.submit(&prompt("../../outside")).await.unwrap();
        let s = wait_terminal(d.adapter.as_ref(), &accepted.prompt_id).await;
        assert_eq!(s.state, JobState::Failed, "{v}");
        let f = s.failure.unwrap();
        assert_eq!(f.node_type.as_deref(), Some("SaveImage"));
        assert!(
            f.exception_message
                .unwrap()
                .contains("outside the output folder")
        );
        assert!(!f.traceback.is_empty());

        let accepted = d.adapter.submit(&prompt("emulator_oom")).await.unwrap();
        let s = wait_terminal(d.adapter.as_ref(), &accepted.prompt_id).await;
        assert!(s.failure.unwrap().is_out_of_memory(), "{v}");
        emu.stop().await;
    }
}

#[tokio::test]
async fn interrupt_and_cancel_stop_a_stalled_prompt() {
    for v in ["0.3.64", "0.9.2", "0.33.0"] {
        let emu = Emulator::start(EmulatorConfig::new(v)).await.unwrap();
        let d = detect(&emu.url(), &DetectOptions::default()).await.unwrap();
        emu.set_faults(Faults {
            stall: true,
            ..Faults::default()
        });
        let accepted = d.adapter.submit(&prompt("slow")).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while d.adapter.job(&accepted.prompt_id).await.unwrap().state != JobState::Running {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        d.adapter.cancel(&accepted.prompt_id).await.unwrap();
        let s = wait_terminal(d.adapter.as_ref(), &accepted.prompt_id).await;
        assert!(
            matches!(s.state, JobState::Interrupted | JobState::Cancelled),
            "{v}: {s:?}"
        );
        assert_eq!(emu.queue_remaining(), 0);
        emu.stop().await;
    }
}

#[tokio::test]
async fn a_crash_fault_takes_the_server_away_mid_prompt() {
    let emu = Emulator::start(EmulatorConfig::new("0.11.1"))
        .await
        .unwrap();
    let d = detect(&emu.url(), &DetectOptions::default()).await.unwrap();
    let client = uuid::Uuid::new_v4().to_string();
    let mut events = d.adapter.events(&client).await.unwrap();
    emu.set_faults(Faults {
        crash_class: Some("SaveImage".into()),
        ..Faults::default()
    });
    let accepted = d
        .adapter
        .submit(&prompt("crash").with_client_id(&client))
        .await
        .unwrap();
    let node = tokio::time::timeout(Duration::from_secs(5), emu.crashed())
        .await
        .expect("the crash fault fired");
    assert!(node.starts_with("node 2 (SaveImage) of prompt"), "{node}");
    assert!(node.ends_with(accepted.prompt_id.as_str()), "{node}");
    // The socket ends without a terminal event for the prompt ...
    let mut terminal = false;
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_secs(5), events.next()).await {
        terminal |= e.prompt_id() == Some(accepted.prompt_id.as_str()) && e.is_terminal();
    }
    assert!(!terminal, "a crashed server reports no end");
    // ... and the server no longer answers: the adapter says so, typed.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match d.adapter.job(&accepted.prompt_id).await {
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                break;
            }
            Ok(_) => {
                assert!(Instant::now() < deadline, "still answering after the crash");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

#[tokio::test]
async fn the_jobs_api_exists_only_from_0_6_and_cancel_from_0_26() {
    let http = reqwest::Client::new();
    for (v, jobs, cancel) in [
        ("0.3.64", 404, 405),
        ("0.11.1", 400, 405),
        ("0.33.0", 400, 400),
    ] {
        let emu = Emulator::start(EmulatorConfig::new(v)).await.unwrap();
        let r = http
            .get(format!("{}/api/jobs?limit=0", emu.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), jobs, "{v}");
        let r = http
            .post(format!("{}/api/jobs/cancel", emu.url()))
            .json(&json!({"job_ids": ["not-a-uuid"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), cancel, "{v}");
        let body: Value = http
            .post(format!("{}/prompt", emu.url()))
            .json(&json!({"prompt": prompt("p").prompt, "prompt_id": "fixture-prompt-id-0001"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let refused =
            body.pointer("/error/type").and_then(Value::as_str) == Some("invalid_prompt_id");
        assert_eq!(refused, v == "0.33.0", "{v}: {body}");
        emu.stop().await;
    }
}

/// The frontend-made prompts of `workflows/api-ground-truth/1.37.11` get the
/// status and error types 0.11.1 answered (and the same failing nodes).
#[tokio::test]
async fn ground_truth_workflows_validate_as_recorded() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../workflows/api-ground-truth/1.37.11");
    let emu = Emulator::start(EmulatorConfig::new("0.11.1"))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".api.json") else {
            continue;
        };
        let recorded: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("{stem}.submit-response.json"))).unwrap(),
        )
        .unwrap();
        let prompt: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let resp = http
            .post(format!("{}/prompt", emu.url()))
            .json(&json!({"prompt": prompt}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            u64::from(status),
            recorded["status"].as_u64().unwrap(),
            "{stem}: {body}"
        );
        assert_eq!(
            body.pointer("/error/type"),
            recorded["body"].pointer("/error/type"),
            "{stem}"
        );
        let keys = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v["node_errors"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            k.sort();
            k
        };
        assert_eq!(keys(&body), keys(&recorded["body"]), "{stem}: {body}");
        checked += 1;
    }
    assert_eq!(checked, 5);
    emu.stop().await;
}
