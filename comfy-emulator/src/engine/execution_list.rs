//! Which node runs next, as ComfyUI's `ExecutionList` picks it.

use crate::catalogue::Classes;
use crate::nodes;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// ComfyUI's `ExecutionList`: which node runs next.
pub(super) struct ExecutionList<'a> {
    prompt: &'a Map<String, Value>,
    classes: &'a Classes,
    /// Staged nodes in the order they were added.
    pending: Vec<String>,
    block_count: HashMap<String, usize>,
    /// Node → nodes waiting for it.
    blocking: HashMap<String, Vec<String>>,
}

impl<'a> ExecutionList<'a> {
    pub(super) fn new(prompt: &'a Map<String, Value>, classes: &'a Classes) -> Self {
        ExecutionList {
            prompt,
            classes,
            pending: Vec::new(),
            block_count: HashMap::new(),
            blocking: HashMap::new(),
        }
    }

    /// `add_node`: the node and every uncached node it needs.
    pub(super) fn add_node(&mut self, id: &str, cached: &HashSet<String>) {
        let mut stack = vec![id.to_owned()];
        let mut links = Vec::new();
        while let Some(n) = stack.pop() {
            if self.pending.contains(&n) {
                continue;
            }
            self.pending.push(n.clone());
            self.block_count.entry(n.clone()).or_insert(0);
            let inputs = self
                .prompt
                .get(&n)
                .and_then(|v| v.get("inputs"))
                .and_then(Value::as_object);
            for v in inputs.into_iter().flat_map(|m| m.values()) {
                if let Some((from, _)) = nodes::link(v)
                    && self.prompt.contains_key(from)
                    && !cached.contains(from)
                {
                    stack.push(from.to_owned());
                    links.push((from.to_owned(), n.clone()));
                }
            }
        }
        for (from, to) in links {
            let waiting = self.blocking.entry(from).or_default();
            if !waiting.contains(&to) {
                waiting.push(to.clone());
                *self.block_count.entry(to).or_insert(0) += 1;
            }
        }
    }

    fn is_output(&self, id: &str) -> bool {
        self.prompt
            .get(id)
            .and_then(|n| n.get("class_type"))
            .and_then(Value::as_str)
            .and_then(|c| self.classes.get(c))
            .and_then(|d| d.get("output_node"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    fn blocks_output(&self, id: &str, depth: usize) -> bool {
        self.blocking.get(id).is_some_and(|w| {
            w.iter().any(|b| {
                if depth == 0 {
                    self.is_output(b)
                } else {
                    self.blocks_output(b, depth - 1)
                }
            })
        })
    }

    /// `stage_node_execution` with `ux_friendly_pick_node`: an output node
    /// first, then a node an output waits for, then one two steps away.
    pub(super) fn next(&mut self) -> Option<String> {
        let available: Vec<&String> = self
            .pending
            .iter()
            .filter(|n| self.block_count.get(*n).copied().unwrap_or(0) == 0)
            .collect();
        let pick = available
            .iter()
            .find(|n| self.is_output(n))
            .or_else(|| available.iter().find(|n| self.blocks_output(n, 0)))
            .or_else(|| available.iter().find(|n| self.blocks_output(n, 1)))
            .or_else(|| available.first())
            .map(|n| (*n).clone())?;
        self.pending.retain(|n| *n != pick);
        Some(pick)
    }

    /// `complete_node_execution`.
    pub(super) fn complete(&mut self, id: &str) {
        for w in self.blocking.remove(id).unwrap_or_default() {
            if let Some(c) = self.block_count.get_mut(&w) {
                *c = c.saturating_sub(1);
            }
        }
    }
}
