//! Arbitrary JSON (and bytes) through the history, jobs, queue, prompt-error
//! and WebSocket parsers: a value or a typed error, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_adapter::model::userdata::UserdataPath;
use comfy_adapter::normalize;
use comfy_adapter::wire;
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Arbitrary JSON, biased towards the keys ComfyUI uses so the parsers get
/// past their first checks.
fn arb_json() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "prompt",
        "outputs",
        "status",
        "status_str",
        "messages",
        "images",
        "filename",
        "subfolder",
        "type",
        "jobs",
        "pagination",
        "id",
        "priority",
        "error",
        "node_errors",
        "errors",
        "extra_info",
        "node_id",
        "prompt_id",
        "data",
        "nodes",
        "node",
        "output",
        "exec_info",
        "queue_remaining",
        "timestamp",
        "animated",
        "text",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z0-9_ ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|kv| Value::Object(
                kv.into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect::<Map<_, _>>()
            )),
        ]
    })
}

fn exercise(v: &Value) {
    if let Ok(entries) = normalize::history_entries(v) {
        for (id, item) in &entries {
            let _ = normalize::job_from_history(id.clone(), item.clone());
        }
    }
    if let Ok(list) = serde_json::from_value::<wire::jobs::JobsList>(v.clone()) {
        let _ = normalize::job_page(list);
    }
    if let Ok(job) = serde_json::from_value::<wire::jobs::JobWire>(v.clone()) {
        let _ = normalize::job_from_wire(job);
    }
    if let Ok(q) = serde_json::from_value::<wire::queue::QueueWire>(v.clone()) {
        let _ = normalize::queue_snapshot(&q);
    }
    let _ = normalize::rejection(400, v.clone());
    let _ = normalize::outputs_from_ui("1", v, false);
    let _ = normalize::failure_from(v);
    let _ = normalize::parse_text_frame(&v.to_string());
    let _ = normalize::parse_text_frame(&json!({ "type": "executed", "data": v }).to_string());
}

fn is_encoded(e: &comfy_adapter::model::userdata::UserdataPathError) -> bool {
    matches!(
        e,
        comfy_adapter::model::userdata::UserdataPathError::Encoded { .. }
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsers_take_any_json(v in arb_json()) {
        exercise(&v);
        // The same value under each history / ws shape the parsers look into.
        exercise(&json!({ "p1": { "prompt": [1, "p1", v.clone(), v.clone(), v.clone()], "outputs": { "9": v.clone() }, "status": { "status_str": "error", "messages": [["execution_error", v.clone()], ["execution_interrupted", v.clone()]] } } }));
        for kind in ["status", "execution_start", "execution_cached", "executing", "progress", "progress_state", "execution_error", "execution_interrupted", "execution_success"] {
            let _ = normalize::parse_text_frame(&json!({ "type": kind, "data": v }).to_string());
        }
    }

    #[test]
    fn binary_frames_take_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64), kind in 0u32..6) {
        let _ = normalize::parse_binary_frame(&bytes);
        let mut framed = kind.to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        let _ = normalize::parse_binary_frame(&framed);
    }

    #[test]
    fn text_frames_take_any_text(s in ".{0,64}") {
        let _ = normalize::parse_text_frame(&s);
    }

    #[test]
    fn userdata_paths_encode_to_one_segment_and_back(segs in prop::collection::vec("[^/\\\\\u{0}]{1,8}", 1..4)) {
        let path = segs.join("/");
        match UserdataPath::new(path.clone()) {
            Ok(p) => {
                let enc = p.encoded();
                prop_assert!(!enc.contains('/'), "{enc}");
                prop_assert!(!enc.contains(' '), "{enc}");
                prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)), "{enc}");
                prop_assert_eq!(percent_decode_str(&enc).decode_utf8().unwrap(), path.as_str());
            }
            // Refused as written, or (rarely drawn) because its decoded form is.
            Err(e) => prop_assert!(segs.iter().any(|s| s == "." || s == "..") || (path.len() > 1 && path.as_bytes()[1] == b':') || is_encoded(&e)),
        }
    }
}

#[test]
fn userdata_path_refuses_what_could_escape_or_mislead() {
    for bad in [
        "",
        "/etc/passwd",
        "a//b",
        "a/",
        "../x",
        "a/../b",
        "./a",
        "a\\b",
        "a\0b",
        "C:/x",
        "workflows/..",
    ] {
        assert!(UserdataPath::new(bad).is_err(), "{bad:?} must be refused");
    }
    let p = UserdataPath::new("workflows/team/nested name.json").unwrap();
    assert_eq!(p.encoded(), "workflows%2Fteam%2Fnested%20name.json");
    assert_eq!(
        UserdataPath::new("a%b.json").unwrap().encoded(),
        "a%25b.json"
    );
    assert_eq!(
        UserdataPath::new("wf/ü.json").unwrap().encoded(),
        "wf%2F%C3%BC.json"
    );
    let dir = UserdataPath::new("workflows").unwrap();
    assert_eq!(
        dir.join("a b.json").unwrap().encoded(),
        "workflows%2Fa%20b.json"
    );
    assert!(dir.join("../x").is_err());
    assert_eq!(p.to_string(), "workflows/team/nested name.json");
}
