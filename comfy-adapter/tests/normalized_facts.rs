//! Facts about the recordings that the normalized model must state the same
//! way on every line: the point of the crate is that callers never need to
//! know which line they talk to.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_test_support::replay as support;

use comfy_adapter::model::job::JobState;
use comfy_adapter::model::output::{FolderType, OutputKind};
use comfy_adapter::model::prompt::{InputErrorKind, RejectionKind};
use comfy_adapter::normalize;
use comfy_adapter::wire;
use serde_json::Value;
use support::VERSIONS;

const JOBS_VERSIONS: [&str; 5] = ["0.6.0", "0.9.2", "0.11.1", "0.26.0", "0.33.0"];

fn load(version: &str, prefix: &str) -> Value {
    support::read_fixture(version, prefix).1
}

fn body(x: &Value) -> Value {
    x["response"]["body"].clone()
}

fn history_job(version: &str, prefix: &str) -> comfy_adapter::model::job::JobStatus {
    let entries = normalize::history_entries(&body(&load(version, prefix))).unwrap();
    assert_eq!(entries.len(), 1, "{version} {prefix}: one history entry");
    normalize::job_from_history(entries[0].0.clone(), entries[0].1.clone())
}

fn jobs_job(version: &str, prefix: &str) -> comfy_adapter::model::job::JobStatus {
    let wire: wire::jobs::JobWire = serde_json::from_value(body(&load(version, prefix))).unwrap();
    normalize::job_from_wire(wire)
}

fn rejection(version: &str, prefix: &str) -> comfy_adapter::model::prompt::PromptRejected {
    let x = load(version, prefix);
    normalize::rejection(x["response"]["status"].as_u64().unwrap() as u16, body(&x))
        .unwrap_or_else(|| panic!("{version} {prefix}: not a rejection"))
}

#[test]
fn unknown_node_and_missing_class_are_one_kind_on_every_line() {
    for v in VERSIONS {
        let r = rejection(v, "038-");
        assert_eq!(r.kind, RejectionKind::UnknownNodeType, "{v}");
        assert_eq!(r.class_type.as_deref(), Some("DoesNotExist"), "{v}");
        assert_eq!(r.node_id.as_deref(), Some("1"), "{v}");
        let r = rejection(v, "039-");
        assert_eq!(r.kind, RejectionKind::MissingClassType, "{v}");
        assert_eq!(r.node_id.as_deref(), Some("1"), "{v}");
        assert_eq!(rejection(v, "037-").kind, RejectionKind::NoPrompt, "{v}");
        assert_eq!(rejection(v, "040-").kind, RejectionKind::NoOutputs, "{v}");
    }
}

#[test]
fn validation_errors_name_node_class_input_and_value() {
    for v in VERSIONS {
        let r = rejection(v, "041-");
        assert_eq!(r.kind, RejectionKind::OutputsFailedValidation, "{v}");
        let node = &r.node_errors[0];
        assert_eq!(
            (node.node_id.as_str(), node.class_type.as_deref()),
            ("1", Some("EmptyImage")),
            "{v}"
        );
        assert_eq!(node.dependent_outputs, vec!["2".to_owned()], "{v}");
        let e = &node.errors[0];
        assert_eq!(e.kind, InputErrorKind::ValueSmallerThanMin, "{v}");
        assert_eq!(e.input_name.as_deref(), Some("width"), "{v}");
        assert_eq!(e.received_value, Some(Value::from(0)), "{v}");

        let e = &rejection(v, "042-").node_errors[0].errors[0];
        assert_eq!(
            (e.kind.clone(), e.input_name.as_deref()),
            (InputErrorKind::RequiredInputMissing, Some("height")),
            "{v}"
        );
        let e = &rejection(v, "043-").node_errors[0].errors[0];
        assert_eq!(
            (e.kind.clone(), e.input_name.as_deref()),
            (InputErrorKind::ValueNotInList, Some("ckpt_name")),
            "{v}"
        );
        let e = &rejection(v, "044-").node_errors[0].errors[0];
        assert_eq!(e.kind, InputErrorKind::ExceptionDuringValidation, "{v}");
    }
}

#[test]
fn client_chosen_prompt_id_is_refused_from_0_26() {
    for v in VERSIONS {
        let x = load(v, "035-");
        let refused = x["response"]["status"] == 400;
        assert_eq!(refused, matches!(v, "0.26.0" | "0.33.0"), "{v}");
        if refused {
            assert_eq!(
                rejection(v, "035-").kind,
                RejectionKind::InvalidPromptId,
                "{v}"
            );
        }
    }
    assert!(comfy_adapter::cancel_api_prompt_id_ok(
        "80b8d40e-7a3a-4df7-8b0a-db88ab7d5973"
    ));
    assert!(!comfy_adapter::cancel_api_prompt_id_ok(
        "80B8D40E-7A3A-4DF7-8B0A-DB88AB7D5973"
    ));
    assert!(!comfy_adapter::cancel_api_prompt_id_ok(
        "80b8d40e7a3a4df78b0adb88ab7d5973"
    ));
    assert!(!comfy_adapter::cancel_api_prompt_id_ok(
        "fixture-prompt-id-0001"
    ));
}

#[test]
fn history_and_jobs_agree_on_how_each_run_ended() {
    for v in VERSIONS {
        assert_eq!(history_job(v, "025-").state, JobState::Succeeded, "{v}");
        let failed = history_job(v, "033-");
        assert_eq!(failed.state, JobState::Failed, "{v}");
        let f = failed.failure.unwrap();
        assert_eq!(
            (f.node_id.as_deref(), f.node_type.as_deref()),
            (Some("2"), Some("SaveImage")),
            "{v}"
        );
        assert_eq!(f.exception_type.as_deref(), Some("Exception"), "{v}");
        assert!(!f.traceback.is_empty(), "{v}");
        assert!(
            f.exception_message
                .unwrap()
                .contains("outside the output folder"),
            "{v}"
        );
        let interrupted = history_job(v, "058-");
        assert_eq!(interrupted.state, JobState::Interrupted, "{v}");
        assert!(interrupted.interruption.is_some(), "{v}");
    }
    for v in JOBS_VERSIONS {
        assert_eq!(jobs_job(v, "027-").state, JobState::Succeeded, "{v}");
        let failed = jobs_job(v, "034-");
        assert_eq!(failed.state, JobState::Failed, "{v}");
        assert_eq!(
            failed.failure.unwrap().node_type.as_deref(),
            Some("SaveImage"),
            "{v}"
        );
        // 0.6.0 says `failed`, later lines `cancelled`: both are Interrupted.
        assert_eq!(jobs_job(v, "059-").state, JobState::Interrupted, "{v}");
        assert_eq!(jobs_job(v, "052-").state, JobState::Pending, "{v}");
    }
}

#[test]
fn cached_run_marks_every_output_cached() {
    for v in VERSIONS {
        let job = history_job(v, "030-");
        assert_eq!(job.state, JobState::Succeeded, "{v}");
        assert_eq!(
            job.cached_nodes,
            vec!["1".to_owned(), "2".to_owned()],
            "{v}"
        );
        assert!(
            !job.outputs.is_empty() && job.outputs.iter().all(|o| o.cached),
            "{v}"
        );
        assert!(
            history_job(v, "025-").outputs.iter().all(|o| !o.cached),
            "{v}"
        );
    }
}

#[test]
fn mixed_outputs_are_classified_by_kind() {
    for v in VERSIONS {
        let job = history_job(v, "083-");
        let kinds = |k: OutputKind| {
            job.outputs
                .iter()
                .filter(|o| o.kind == k)
                .collect::<Vec<_>>()
        };
        let video = kinds(OutputKind::Video);
        assert_eq!(
            video.len(),
            1,
            "{v}: SaveVideo's mp4 (reported under `images`)"
        );
        assert!(
            video[0].file.as_ref().unwrap().filename.ends_with(".mp4"),
            "{v}"
        );
        assert_eq!(video[0].file.as_ref().unwrap().subfolder, "video", "{v}");
        assert_eq!(kinds(OutputKind::Audio).len(), 1, "{v}");
        let text = kinds(OutputKind::Text);
        assert_eq!(text[0].text.as_deref(), Some("hello from a fixture"), "{v}");
        let images = kinds(OutputKind::Image);
        assert_eq!(
            images.len(),
            5,
            "{v}: one animated webp and four temp previews"
        );
        assert_eq!(images.iter().filter(|o| o.animated).count(), 1, "{v}");
        assert_eq!(
            images
                .iter()
                .filter(|o| o.file.as_ref().unwrap().folder == FolderType::Temp)
                .count(),
            4,
            "{v}"
        );
        for o in &job.outputs {
            if let Some(f) = &o.file {
                let url = o.view_url.as_deref().unwrap();
                assert!(
                    url.starts_with("/view?filename=")
                        && url.contains(&format!("type={}", f.folder.as_str())),
                    "{v}: {url}"
                );
            }
        }
    }
}

#[test]
fn queue_while_busy_has_one_running_and_pending_behind_it() {
    for v in VERSIONS {
        let q: wire::queue::QueueWire = serde_json::from_value(body(&load(v, "049-"))).unwrap();
        let snap = normalize::queue_snapshot(&q);
        assert_eq!(snap.running.len(), 1, "{v}");
        assert!(!snap.pending.is_empty(), "{v}");
        assert_eq!(
            snap.running[0].outputs_to_execute,
            vec!["3".to_owned()],
            "{v}"
        );
        // create_time arrives with 0.6.0.
        assert_eq!(
            snap.running[0].created_at_ms.is_some(),
            v != "0.3.64",
            "{v}"
        );
    }
}

#[test]
fn userdata_times_are_seconds_on_every_line() {
    for v in VERSIONS {
        let line = comfy_adapter::Line::for_version(&normalize::parse_version(v).unwrap());
        let w: wire::userdata::FileInfoWire =
            serde_json::from_value(body(&load(v, "097-"))).unwrap();
        let e = normalize::file_info(w, line);
        let modified = e.modified.unwrap();
        // The recordings were made in 2026: 1.79e9 seconds since the epoch.
        assert!(
            (1.7e9..1.9e9).contains(&modified),
            "{v}: {modified} is not in seconds"
        );
        assert_eq!(e.size, Some(121), "{v}");
    }
}

#[test]
fn version_strings_parse() {
    for v in VERSIONS {
        let x = load(v, "001-");
        let stats: wire::system::SystemStats = serde_json::from_value(body(&x)).unwrap();
        let info = normalize::server_info(stats);
        assert_eq!(info.version_string.as_deref(), Some(v));
        assert_eq!(info.version.clone().unwrap().to_string(), v);
        assert!(!info.multi_user(), "{v}: recorded without --multi-user");
        assert_eq!(
            info.packages.is_empty(),
            v != "0.26.0" && v != "0.33.0",
            "{v}: comfy_package_versions"
        );
    }
    assert_eq!(
        normalize::parse_version("v0.11.1").unwrap().to_string(),
        "0.11.1"
    );
    assert_eq!(
        normalize::parse_version("0.11").unwrap().to_string(),
        "0.11.0"
    );
    assert!(normalize::parse_version("banana").is_none());
    assert!(normalize::parse_version("").is_none());
}

#[test]
fn custom_node_outputs_keep_files_and_raw_unknowns() {
    use serde_json::json;
    // VideoHelperSuite-style: a file reference with extra fields under `gifs`.
    let ui = json!({
        "gifs": [{"filename": "clip_00001.mp4", "subfolder": "", "type": "output", "format": "video/h264-mp4", "frame_rate": 8}],
        "mesh": {"filename": "m.glb", "type": "output"},
        "scores": [0.5, {"label": "cat"}],
        "text": "single string",
        "animated": [false]
    });
    let outs = normalize::outputs_from_ui("12", &ui, true);
    let kinds: Vec<OutputKind> = outs.iter().map(|o| o.kind).collect();
    assert_eq!(
        kinds,
        vec![
            OutputKind::Video,
            OutputKind::Model3d,
            OutputKind::Unknown,
            OutputKind::Unknown,
            OutputKind::Text
        ]
    );
    assert!(outs.iter().all(|o| o.cached && o.node_id == "12"));
    assert_eq!(
        outs[1].file.as_ref().unwrap().subfolder,
        "",
        "absent subfolder reads as empty"
    );
    assert_eq!(outs[2].raw, Some(json!(0.5)));
    assert_eq!(outs[3].raw, Some(json!({"label": "cat"})));
    assert_eq!(outs[4].text.as_deref(), Some("single string"));
    assert!(outs.iter().all(|o| o.file.is_none() || o.raw.is_none()));
    assert!(normalize::outputs_from_ui("1", &json!([1, 2]), false).is_empty());
    assert!(normalize::outputs_from_ui("1", &json!(null), false).is_empty());
}
