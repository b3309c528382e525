//! The output cache's keys.

use crate::nodes;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};

/// Cache keys: a node's class and inputs, links replaced by a digest of the
/// key of the node they come from. Each key is worked out once and holds a
/// fixed-size digest per link (not the linked key itself, which doubles per
/// level when a node takes two inputs from one node); a link back into the
/// path being followed (a cycle, which ComfyUI never runs) is keyed by the
/// node it names. So the work and the keys stay linear in the size of the
/// prompt.
pub(super) fn signatures(prompt: &Map<String, Value>) -> HashMap<String, String> {
    struct Keys<'a> {
        prompt: &'a Map<String, Value>,
        memo: HashMap<String, String>,
        open: HashSet<&'a str>,
    }
    impl<'a> Keys<'a> {
        fn sig(&mut self, id: &'a str, depth: usize) -> String {
            if let Some(s) = self.memo.get(id) {
                return s.clone();
            }
            self.open.insert(id);
            let node = self.prompt.get(id);
            let mut inputs = Map::new();
            for (k, v) in node
                .and_then(|n| n.get("inputs"))
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let v = match nodes::link(v) {
                    Some((from, slot)) if self.open.contains(from) => {
                        json!({"cycle": from, "slot": slot})
                    }
                    Some((from, slot)) if depth < 64 && self.prompt.contains_key(from) => {
                        json!({"from": digest(&self.sig(from, depth + 1)), "slot": slot})
                    }
                    _ => v.clone(),
                };
                inputs.insert(k.clone(), v);
            }
            let s = json!([node.and_then(|n| n.get("class_type")), inputs]).to_string();
            self.open.remove(id);
            self.memo.insert(id.to_owned(), s.clone());
            s
        }
    }
    let mut keys = Keys {
        prompt,
        memo: HashMap::new(),
        open: HashSet::new(),
    };
    for id in prompt.keys() {
        keys.sig(id, 0);
    }
    keys.memo
}

/// A 128-bit digest of a key (two SipHash runs with fixed keys: the same
/// for the same text for as long as the emulator runs, which is as long as
/// its cache lives).
fn digest(key: &str) -> String {
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        let mut h = std::hash::DefaultHasher::new();
        salt.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    format!("{:016x}{:016x}", half(0), half(1))
}
