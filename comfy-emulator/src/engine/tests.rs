use super::cache::signatures;
use super::execution_list::ExecutionList;
use super::history::{Done, Outcome};
use super::queue::{Entry, Heap};
use super::state::{MAXIMUM_HISTORY_SIZE, State};
use crate::catalogue::Classes;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::sync::Arc;

fn entry(number: Value, id: &str) -> Entry {
    Entry {
        number,
        id: id.to_owned(),
        prompt: Map::new(),
        extra_data: Map::new(),
        outputs: Vec::new(),
        client_id: None,
        create_time: 0,
        start_time: None,
    }
}

fn ids(h: &Heap) -> Vec<&str> {
    h.iter().map(|e| e.id.as_str()).collect()
}

#[test]
fn the_queue_is_a_python_heap() {
    let mut h = Heap::default();
    for (n, id) in [(json!(3), "c"), (json!(1), "a"), (json!(2), "b")] {
        h.push(entry(n, id));
    }
    // heapq.heappush of 3, 1, 2 leaves [1, 3, 2].
    assert_eq!(ids(&h), ["a", "c", "b"]);
    h.push(entry(json!(-4), "front"));
    h.push(entry(json!(5.0), "explicit"));
    assert_eq!(h.pop().map(|e| e.id), Some("front".to_owned()));
    assert!(h.remove("b"));
    assert!(!h.remove("b"));
    let order: Vec<String> = std::iter::from_fn(|| h.pop().map(|e| e.id)).collect();
    assert_eq!(order, ["a", "c", "explicit"]);
    assert!(h.is_empty());
}

fn mixed_outputs() -> (Map<String, Value>, Classes) {
    let prompt = json!({
        "1": {"class_type": "EmptyImage", "inputs": {}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0]}},
        "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0]}},
        "4": {"class_type": "EmptyAudio", "inputs": {}},
        "5": {"class_type": "SaveAudio", "inputs": {"audio": ["4", 0]}},
        "6": {"class_type": "PrimitiveString", "inputs": {"value": "x"}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
        "8": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["1", 0]}},
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    });
    let classes: Map<String, Value> = [
        "SaveVideo",
        "SaveAudio",
        "PreviewAny",
        "SaveAnimatedWEBP",
        "PreviewImage",
    ]
    .iter()
    .map(|c| ((*c).to_owned(), json!({"output_node": true})))
    .collect();
    (
        prompt.as_object().cloned().unwrap_or_default(),
        Arc::new(classes),
    )
}

fn order(outputs: &[&str], cached: &[&str]) -> Vec<String> {
    let (prompt, classes) = mixed_outputs();
    let cached: HashSet<String> = cached.iter().map(|c| (*c).to_owned()).collect();
    let mut list = ExecutionList::new(&prompt, &classes);
    for o in outputs {
        list.add_node(o, &cached);
    }
    std::iter::from_fn(|| {
        let n = list.next()?;
        list.complete(&n);
        Some(n)
    })
    .collect()
}

#[test]
fn nodes_run_in_the_recorded_order_for_the_same_outputs_list() {
    // History `prompt[4]` and the order of fixture 082 on 0.6.0 and 0.3.64.
    assert_eq!(
        order(&["8", "3", "5", "9", "7"], &[]),
        ["1", "8", "9", "2", "3", "4", "5", "6", "7"]
    );
    assert_eq!(
        order(&["9", "7", "3", "8", "5"], &[]),
        ["1", "9", "8", "6", "7", "2", "3", "4", "5"]
    );
    assert_eq!(
        order(&["8", "3", "9", "7", "5"], &[]),
        ["1", "8", "9", "2", "3", "6", "7", "4", "5"]
    );
    // A cached input is not run again; its consumers are not held back.
    assert_eq!(order(&["9"], &["1"]), ["9"]);
}

#[test]
fn a_changed_input_changes_the_cache_key_downstream() {
    let (mut prompt, _) = mixed_outputs();
    let before = signatures(&prompt);
    prompt["6"]["inputs"]["value"] = json!("y");
    let after = signatures(&prompt);
    assert_eq!(before["1"], after["1"]);
    assert_eq!(before["9"], after["9"]);
    assert_ne!(before["6"], after["6"]);
    assert_ne!(before["7"], after["7"]);
}

#[test]
fn history_keeps_at_most_one_entry_more_than_comfyui_s_maximum() {
    // `PromptQueue.task_done` drops the oldest entry when the history is
    // already longer than MAXIMUM_HISTORY_SIZE, then adds the new one.
    let mut st = State::default();
    for i in 0..MAXIMUM_HISTORY_SIZE + 3 {
        st.record(Done {
            entry: entry(json!(i), &format!("p{i}")),
            outputs: Map::new(),
            outcome: Outcome::Success,
            messages: Vec::new(),
            end_time: 0,
            error: None,
        });
    }
    assert_eq!(st.history.len(), MAXIMUM_HISTORY_SIZE + 1);
    assert!(st.done("p0").is_none() && st.done("p1").is_none());
    assert!(st.done("p2").is_some());
    assert!(st.done(&format!("p{}", MAXIMUM_HISTORY_SIZE + 2)).is_some());
}
