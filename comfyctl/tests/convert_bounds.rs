//! What one UI workflow can make `convert` (and `check`, which converts
//! first) do: subgraphs nested inside subgraphs multiply, and a small file
//! must not expand without bound. 16 levels of 4 instances each (an 11 KB
//! file) would be 4^16 nodes; it is refused with a clear error instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_adapter::model::catalogue::NodeCatalogue;
use comfyctl::convert::{self, ConvertError, ConvertOptions};
use serde_json::{Value, json};

fn catalogue() -> NodeCatalogue {
    let text = comfy_emulator::recorded_object_info("0.11.1").unwrap();
    let doc: Value = serde_json::from_str(text).unwrap();
    NodeCatalogue::from_slice(&serde_json::to_vec(&doc["response"]["body"]).unwrap()).unwrap()
}

fn node(id: i64, kind: &str) -> Value {
    json!({"id": id, "type": kind, "mode": 0, "inputs": [], "outputs": [], "properties": {}, "widgets_values": []})
}

/// `levels` subgraph definitions, each holding `fan` instances of the next;
/// the innermost holds one leaf (`EmptyImage`).
fn nested(levels: usize, fan: i64) -> Value {
    let id = |l: usize| format!("00000000-0000-4000-8000-{l:012}");
    let mut subgraphs = Vec::new();
    for l in 0..levels {
        let nodes: Vec<Value> = if l + 1 == levels {
            vec![
                json!({"id": 1, "type": "EmptyImage", "mode": 0, "inputs": [], "outputs": [],
                        "properties": {}, "widgets_values": [8, 8, 1, 0]}),
            ]
        } else {
            (1..=fan).map(|i| node(i, &id(l + 1))).collect()
        };
        subgraphs.push(json!({
            "id": id(l), "name": format!("level {l}"), "inputs": [], "outputs": [],
            "nodes": nodes, "links": [], "widgets": []
        }));
    }
    json!({
        "last_node_id": fan, "last_link_id": 0,
        "nodes": (1..=fan).map(|i| node(i, &id(0))).collect::<Vec<_>>(),
        "links": [],
        "definitions": {"subgraphs": subgraphs},
        "version": 0.4
    })
}

#[test]
fn a_small_workflow_that_expands_exponentially_is_refused() {
    let doc = nested(16, 4);
    assert!(serde_json::to_vec(&doc).unwrap().len() < 16 * 1024);
    let err = convert::convert(&doc, &catalogue(), &ConvertOptions::default()).unwrap_err();
    assert!(matches!(err, ConvertError::TooManyNodes(_)), "{err}");
    assert!(err.to_string().contains("expands to more than"), "{err}");
}

#[test]
fn nesting_within_the_budget_still_converts() {
    // 4^5 = 1,024 leaves.
    let prompt = convert::convert(&nested(5, 4), &catalogue(), &ConvertOptions::default()).unwrap();
    let nodes = &prompt;
    assert_eq!(nodes.len(), 1024);
    assert!(
        nodes.keys().all(|k| k.matches(':').count() == 5),
        "{:?}",
        nodes.keys().next()
    );
}
