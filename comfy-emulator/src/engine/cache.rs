//! The output cache's keys.

use crate::nodes;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Cache keys: a node's class and inputs, links replaced by the key of the
/// node they come from.
pub(super) fn signatures(prompt: &Map<String, Value>) -> HashMap<String, String> {
    fn sig(
        prompt: &Map<String, Value>,
        id: &str,
        memo: &mut HashMap<String, String>,
        depth: usize,
    ) -> String {
        if let Some(s) = memo.get(id) {
            return s.clone();
        }
        let node = prompt.get(id).cloned().unwrap_or(Value::Null);
        let mut inputs = Map::new();
        for (k, v) in node
            .get("inputs")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let v = match nodes::link(v) {
                Some((from, slot)) if depth < 64 && prompt.contains_key(from) => {
                    json!({"from": sig(prompt, from, memo, depth + 1), "slot": slot})
                }
                _ => v.clone(),
            };
            inputs.insert(k.clone(), v);
        }
        let s = json!([node.get("class_type"), inputs]).to_string();
        memo.insert(id.to_owned(), s.clone());
        s
    }
    let mut memo = HashMap::new();
    for id in prompt.keys() {
        sig(prompt, id, &mut memo, 0);
    }
    memo
}
