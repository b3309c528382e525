//! Replays every recorded response of every version through the crate's
//! normalizers and snapshots the normalized result, one snapshot per version.
//!
//! Each fixture file is classified by its request (method + path) into the
//! normalizer the adapter uses for that endpoint; a file no normalizer
//! claims fails `every_fixture_is_consumed`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_test_support::replay as support;

use comfy_adapter::model::server::{Capabilities, Line};
use comfy_adapter::normalize;
use comfy_adapter::wire;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use support::VERSIONS;

fn files(version: &str) -> Vec<(String, Value)> {
    support::all_fixtures(version)
}

fn line_of(version: &str) -> Line {
    Line::for_version(&normalize::parse_version(version).unwrap())
}

fn status(x: &Value) -> u16 {
    x["response"]["status"].as_u64().unwrap() as u16
}

fn body(x: &Value) -> &Value {
    &x["response"]["body"]
}

fn to_json<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap()
}

/// What a non-2xx answer means to a caller (mirrors `Response::into_error`).
fn error_kind(x: &Value) -> Value {
    let s = status(x);
    let kind = match s {
        404 => "not_found",
        409 => "conflict",
        403 => "forbidden",
        405 => "method_not_allowed",
        s if s >= 500 => "server_error",
        _ => "bad_request",
    };
    json!({ "status": s, "error": kind, "body": body(x) })
}

/// A userdata/jobs answer body that is `{"_binary_bytes": N}` or text.
fn opaque(x: &Value) -> Value {
    match body(x) {
        Value::Object(o) if o.contains_key("_binary_bytes") => {
            json!({ "bytes": o["_binary_bytes"], "content_type": o["_content_type"] })
        }
        other => other.clone(),
    }
}

fn history(x: &Value) -> Value {
    if status(x) != 200 {
        return error_kind(x);
    }
    let entries = normalize::history_entries(body(x)).unwrap();
    Value::Array(
        entries
            .iter()
            .map(|(id, item)| to_json(normalize::job_from_history(id.clone(), item.clone())))
            .collect(),
    )
}

fn jobs(x: &Value) -> Value {
    match status(x) {
        200 => {
            let b = body(x);
            if b.get("jobs").is_some() {
                let list: wire::jobs::JobsList = serde_json::from_value(b.clone()).unwrap();
                to_json(normalize::job_page(list))
            } else {
                let job: wire::jobs::JobWire = serde_json::from_value(b.clone()).unwrap();
                to_json(normalize::job_from_wire(job))
            }
        }
        400 => {
            let e: wire::jobs::JobsError = serde_json::from_value(body(x).clone()).unwrap();
            json!({ "status": 400, "error": e.error, "invalid_ids": e.invalid_ids })
        }
        _ => error_kind(x),
    }
}

fn prompt(x: &Value) -> Value {
    let s = status(x);
    if s == 200 {
        let ok: wire::prompt::PromptOk = serde_json::from_value(body(x).clone()).unwrap();
        return to_json(normalize::accepted(ok));
    }
    match normalize::rejection(s, body(x).clone()) {
        Some(mut r) => {
            r.raw = Value::Null; // the raw body is the fixture itself
            json!({ "rejected": r })
        }
        None => error_kind(x),
    }
}

fn object_info(x: &Value, path: &str) -> Value {
    let b = body(x).as_object().unwrap();
    if path == "/object_info" && b.contains_key("node_count") {
        // 016 is the recorder's own summary of the catalogue, not a server answer.
        return json!({ "summary_of_catalogue": { "node_count": b["node_count"], "classes": b["node_classes"].as_array().map(Vec::len) } });
    }
    let catalogue =
        normalize::object_info_from_slice(&serde_json::to_vec(body(x)).unwrap()).unwrap();
    if path == "/object_info" {
        let mut names: Vec<&str> = catalogue.class_names().collect();
        names.sort_unstable();
        return json!({ "node_count": catalogue.len(), "first": names.iter().take(3).collect::<Vec<_>>() });
    }
    if catalogue.is_empty() {
        return json!({ "unknown_class": true });
    }
    let summary: BTreeMap<&str, Value> = catalogue
        .class_names()
        .map(|class| {
            let info = Value::Object(catalogue.node(class).unwrap().unwrap());
            let inputs = |kind: &str| -> Vec<String> {
                info["input"][kind].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
            };
            let mut keys: Vec<&String> = info.as_object().map(|m| m.keys().collect()).unwrap_or_default();
            keys.sort();
            (class, json!({ "required": inputs("required"), "optional": inputs("optional"), "output": info["output"], "output_node": info["output_node"], "keys": keys }))
        })
        .collect();
    to_json(summary)
}

fn userdata(x: &Value, method: &str, path: &str, line: Line) -> Value {
    let s = status(x);
    if !(200..300).contains(&s) {
        return error_kind(x);
    }
    let q = &x["request"]["query"];
    let full_info = q["full_info"] == "true";
    match (method, path.starts_with("/v2/")) {
        ("GET", true) => {
            let list: Vec<wire::userdata::TreeEntryWire> =
                serde_json::from_value(body(x).clone()).unwrap();
            to_json(
                list.into_iter()
                    .map(normalize::tree_entry)
                    .collect::<Vec<_>>(),
            )
        }
        ("GET", false) if path.ends_with("/userdata") => {
            if full_info {
                let list: Vec<wire::userdata::FileInfoWire> =
                    serde_json::from_value(body(x).clone()).unwrap();
                to_json(
                    list.into_iter()
                        .map(|w| normalize::file_info(w, line))
                        .collect::<Vec<_>>(),
                )
            } else if q["split"] == "true" {
                // split=true: [full, dir..., name]; the adapter derives this from the path.
                let rows: Vec<Vec<String>> = serde_json::from_value(body(x).clone()).unwrap();
                json!({ "split": rows })
            } else {
                let list: Vec<String> = serde_json::from_value(body(x).clone()).unwrap();
                json!({ "files": list })
            }
        }
        ("GET", false) => json!({ "file": opaque(x) }),
        ("POST", false) if full_info => {
            let w: wire::userdata::FileInfoWire = serde_json::from_value(body(x).clone()).unwrap();
            to_json(normalize::file_info(w, line))
        }
        ("POST", false) => json!({ "written": body(x).as_str().unwrap() }),
        ("DELETE", false) => json!({ "deleted": s }),
        _ => panic!("unclassified userdata call {method} {path}"),
    }
}

/// Classifies one fixture by its request and normalizes it. `None` means no
/// normalizer claims it.
fn normalize_exchange(version: &str, x: &Value) -> Option<Value> {
    let line = line_of(version);
    if let Some(messages) = x.get("messages") {
        return Some(ws_trace(messages));
    }
    let method = x["request"]["method"].as_str()?;
    let path = x["request"]["path"].as_str()?;
    let path_no_api = path
        .strip_prefix("/api")
        .filter(|p| !p.starts_with("/jobs"))
        .unwrap_or(path);
    Some(match (method, path_no_api) {
        ("GET", "/system_stats") => {
            let stats: wire::system::SystemStats = serde_json::from_value(body(x).clone()).unwrap();
            let info = normalize::server_info(stats);
            let by_version = Line::for_version(info.version.as_ref().unwrap());
            json!({ "info": info, "line": by_version, "capabilities": Capabilities::for_line(by_version, info.version.as_ref()) })
        }
        ("GET", "/features") => {
            let f: wire::system::Features = serde_json::from_value(body(x).clone()).unwrap();
            let mut caps = Capabilities::for_line(line, None);
            normalize::capabilities_from_features(&mut caps, &f);
            json!({ "preview_metadata": caps.preview_metadata, "max_upload_size": caps.max_upload_size, "flags": f.other.keys().collect::<Vec<_>>() })
        }
        ("GET", "/users") => {
            json!({ "multi_user": body(x).get("users").is_some(), "storage": body(x)["storage"] })
        }
        ("GET", "/settings") => json!({ "settings": body(x) }),
        ("GET", "/embeddings") | ("GET", "/extensions") => {
            let names: Vec<String> = serde_json::from_value(body(x).clone()).unwrap();
            json!({ "count": names.len() })
        }
        ("GET", p) if p == "/models" || p.starts_with("/models/") => {
            let names: Vec<String> = serde_json::from_value(body(x).clone()).unwrap();
            json!({ "names": names })
        }
        ("GET", p) if p.starts_with("/object_info") => object_info(x, p),
        ("GET", "/queue") => {
            let q: wire::queue::QueueWire = serde_json::from_value(body(x).clone()).unwrap();
            let snap = normalize::queue_snapshot(&q);
            // Queue numbers and prompts are kept; the graphs are long: keep their node count.
            let entries = |es: &Vec<comfy_adapter::model::queue::QueueEntry>| -> Vec<Value> {
                es.iter().map(|e| json!({ "number": e.number, "prompt_id": e.prompt_id, "nodes": e.prompt.len(), "client_id": e.client_id, "created_at_ms": e.created_at_ms, "outputs_to_execute": e.outputs_to_execute })).collect()
            };
            json!({ "running": entries(&snap.running), "pending": entries(&snap.pending) })
        }
        ("GET", "/prompt") => {
            let info: wire::queue::PromptInfo = serde_json::from_value(body(x).clone()).unwrap();
            json!({ "queue_remaining": info.exec_info.queue_remaining })
        }
        ("POST", "/prompt") => prompt(x),
        ("POST", "/queue") | ("POST", "/interrupt") | ("POST", "/history") => {
            json!({ "status": status(x), "request": x["request"]["body"] })
        }
        ("GET", p) if p.starts_with("/history") => history(x),
        (_, p) if p.starts_with("/api/jobs") || p == "/jobs" => {
            if method == "POST" && status(x) == 200 {
                let c: wire::jobs::Cancelled = serde_json::from_value(body(x).clone()).unwrap();
                json!({ "cancelled": c.cancelled })
            } else {
                jobs(x)
            }
        }
        ("GET", "/view") => match status(x) {
            200 => json!({ "file": opaque(x) }),
            _ => error_kind(x),
        },
        ("POST", "/upload/image") => {
            let up: wire::userdata::UploadWire = serde_json::from_value(body(x).clone()).unwrap();
            json!({ "name": up.name, "subfolder": up.subfolder, "type": up.kind })
        }
        (_, p) if p.starts_with("/userdata") || p.starts_with("/v2/userdata") => {
            userdata(x, method, p, line)
        }
        _ => return None,
    })
}

fn ws_trace(messages: &Value) -> Value {
    let events: Vec<Value> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            if let Some(t) = m.get("_event_type") {
                // Binary frames are recorded as placeholders; none appear in these traces.
                return json!({ "binary_placeholder": t });
            }
            to_json(normalize::parse_text_frame(&m.to_string()).unwrap())
        })
        .collect();
    Value::Array(events)
}

fn normalized_version(version: &str) -> (BTreeMap<String, Value>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut unclaimed = Vec::new();
    for (name, x) in files(version) {
        match normalize_exchange(version, &x) {
            Some(v) => {
                out.insert(name, v);
            }
            None => unclaimed.push(name),
        }
    }
    (out, unclaimed)
}

#[test]
fn every_fixture_is_consumed() {
    for version in VERSIONS {
        let all = files(version);
        assert_eq!(all.len(), 118, "{version}: expected 118 recorded probes");
        let (_, unclaimed) = normalized_version(version);
        assert!(
            unclaimed.is_empty(),
            "{version}: fixtures no test consumes: {unclaimed:?}"
        );
    }
}

/// Replaces a value that is present; a null stays null, so the snapshot
/// still shows which fields a line leaves empty.
fn redact(placeholder: &'static str) -> insta::internals::Redaction {
    insta::dynamic_redaction(move |value, _path| {
        if value.is_nil() {
            value
        } else {
            placeholder.into()
        }
    })
}

macro_rules! snapshot_version {
    ($name:ident, $version:literal) => {
        #[test]
        fn $name() {
            let (normalized, _) = normalized_version($version);
            insta::with_settings!({ snapshot_suffix => $version, prepend_module_to_snapshot => false }, {
                insta::assert_json_snapshot!("replay", normalized, {
                    ".**.prompt_id" => redact("[prompt_id]"),
                    ".**.client_id" => redact("[client_id]"),
                    ".**.sid" => redact("[sid]"),
                    ".**.timestamp_ms" => redact("[ts]"),
                    ".**.created_at_ms" => redact("[ts]"),
                    ".**.started_at_ms" => redact("[ts]"),
                    ".**.finished_at_ms" => redact("[ts]"),
                    ".**.modified" => redact("[ts]"),
                    ".**.created" => redact("[ts]"),
                    ".**.ram_free" => redact("[bytes]"),
                    ".**.vram_free" => redact("[bytes]"),
                });
            });
        }
    };
}

snapshot_version!(replay_0_3_64, "0.3.64");
snapshot_version!(replay_0_6_0, "0.6.0");
snapshot_version!(replay_0_9_2, "0.9.2");
snapshot_version!(replay_0_11_1, "0.11.1");
snapshot_version!(replay_0_26_0, "0.26.0");
snapshot_version!(replay_0_33_0, "0.33.0");
