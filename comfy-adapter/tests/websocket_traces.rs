//! Every recorded WebSocket trace parses into events, ends the way its run
//! ended, and reports the same outputs as the history entry of that run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_test_support::replay as support;

use comfy_adapter::model::event::Event;
use comfy_adapter::normalize::{self, EventError, parse_binary_frame, parse_text_frame};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use support::VERSIONS;

fn load(version: &str, prefix: &str) -> Value {
    support::read_fixture(version, prefix).1
}

fn events(trace: &Value) -> Vec<Event> {
    trace["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| parse_text_frame(&m.to_string()).unwrap())
        .collect()
}

/// (trace, history of the same run, how it must end)
const RUNS: [(&str, &str, &str); 4] = [
    ("024-", "025-", "success"),
    ("029-", "030-", "success"),
    ("032-", "033-", "error"),
    ("082-", "083-", "success"),
];

#[test]
fn traces_parse_and_end_like_their_run() {
    for v in VERSIONS {
        for (trace, _, end) in RUNS.iter().chain(&[("087-", "088-", "interrupted")]) {
            let t = load(v, trace);
            let evs = events(&t);
            let prompt_id = t["prompt_id"].as_str().unwrap();
            assert!(
                matches!(evs[0], Event::Status { sid: Some(_), .. }),
                "{v} {trace}: greeting first"
            );
            assert!(
                !evs.iter().any(|e| matches!(e, Event::Unknown { .. })),
                "{v} {trace}: every recorded type is known"
            );
            let terminal: Vec<&Event> = evs.iter().filter(|e| e.is_terminal()).collect();
            let ok = match *end {
                "success" => terminal.iter().any(|e| matches!(e, Event::ExecutionSuccess { .. })),
                "error" => terminal.iter().any(|e| matches!(e, Event::ExecutionError { failure, .. } if failure.node_type.as_deref() == Some("SaveImage"))),
                _ => terminal.iter().any(|e| matches!(e, Event::ExecutionInterrupted { .. })),
            };
            assert!(ok, "{v} {trace}: ends with {end}");
            assert!(
                terminal.iter().all(|e| e.prompt_id() == Some(prompt_id)),
                "{v} {trace}: terminal events name the run"
            );
        }
    }
}

#[test]
fn executed_events_carry_the_outputs_history_records() {
    for v in VERSIONS {
        for (trace, history, _) in RUNS {
            let from_ws: BTreeSet<(String, String)> = events(&load(v, trace))
                .into_iter()
                .flat_map(|e| match e {
                    Event::Executed { outputs, .. } => outputs,
                    _ => Vec::new(),
                })
                .filter_map(|o| Some((o.node_id, o.file?.filename)))
                .collect();
            let entries =
                normalize::history_entries(&load(v, history)["response"]["body"]).unwrap();
            let job = normalize::job_from_history(entries[0].0.clone(), entries[0].1.clone());
            let from_history: BTreeSet<(String, String)> = job
                .outputs
                .into_iter()
                .filter_map(|o| Some((o.node_id, o.file?.filename)))
                .collect();
            assert_eq!(from_ws, from_history, "{v} {trace} vs {history}");
        }
    }
}

#[test]
fn cached_run_announces_its_cached_nodes() {
    for v in VERSIONS {
        let evs = events(&load(v, "029-"));
        let cached = evs.iter().find_map(|e| match e {
            Event::ExecutionCached { nodes, .. } => Some(nodes.clone()),
            _ => None,
        });
        assert_eq!(cached, Some(vec!["1".to_owned(), "2".to_owned()]), "{v}");
    }
}

#[test]
fn unknown_and_malformed_messages_do_not_break_parsing() {
    let e = parse_text_frame(r#"{"type":"crystools.monitor","data":{"cpu":3}}"#).unwrap();
    assert_eq!(
        e,
        Event::Unknown {
            kind: "crystools.monitor".into(),
            data: json!({"cpu": 3})
        }
    );
    assert!(matches!(
        parse_text_frame("not json"),
        Err(EventError::NotAMessage(_))
    ));
    assert!(matches!(
        parse_text_frame(r#"{"type":"execution_start","data":{}}"#),
        Err(EventError::Malformed {
            field: "prompt_id",
            ..
        })
    ));
    let done =
        parse_text_frame(r#"{"type":"executing","data":{"node":null,"prompt_id":"p"}}"#).unwrap();
    assert!(done.is_terminal());
    let flags =
        parse_text_frame(r#"{"type":"feature_flags","data":{"supports_preview_metadata":true}}"#)
            .unwrap();
    assert!(matches!(flags, Event::FeatureFlags { .. }));
}

fn frame(event_type: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = event_type.to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

#[test]
fn binary_preview_frames_are_recognized() {
    let mut png = 2u32.to_be_bytes().to_vec();
    png.extend_from_slice(&[0x89, b'P', b'N', b'G']);
    assert_eq!(
        parse_binary_frame(&frame(1, &png)).unwrap(),
        Event::Preview {
            mime: Some("image/png".into()),
            node_id: None,
            prompt_id: None,
            bytes: 4,
            image: bytes::Bytes::from_static(&[0x89, b'P', b'N', b'G']),
        }
    );

    let meta = br#"{"node_id":"9","prompt_id":"p1","image_type":"image/jpeg"}"#;
    let mut with_meta = (meta.len() as u32).to_be_bytes().to_vec();
    with_meta.extend_from_slice(meta);
    with_meta.extend_from_slice(&[0xff, 0xd8, 0xff]);
    assert_eq!(
        parse_binary_frame(&frame(4, &with_meta)).unwrap(),
        Event::Preview {
            mime: Some("image/jpeg".into()),
            node_id: Some("9".into()),
            prompt_id: Some("p1".into()),
            bytes: 3,
            image: bytes::Bytes::from_static(&[0xff, 0xd8, 0xff]),
        }
    );

    let mut text = 2u32.to_be_bytes().to_vec();
    text.extend_from_slice(b"12step 3/20");
    assert_eq!(
        parse_binary_frame(&frame(3, &text)).unwrap(),
        Event::Text {
            node_id: "12".into(),
            text: "step 3/20".into()
        }
    );

    assert_eq!(
        parse_binary_frame(&frame(7, b"xyz")).unwrap(),
        Event::UnknownBinary {
            event_type: 7,
            bytes: 3
        }
    );
    assert!(parse_binary_frame(&[0, 0]).is_err());
    assert!(parse_binary_frame(&frame(1, &[0, 0])).is_err());
    assert!(parse_binary_frame(&frame(4, &[0, 0, 0, 200, b'{'])).is_err());
    assert!(parse_binary_frame(&frame(3, &[255, 255, 255, 255])).is_err());
}
