//! The pending prompts: queue entries and the Python heap ComfyUI keeps
//! them in.

use serde_json::{Map, Value, json};

/// One prompt in the queue or running.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Queue number: an int the server counted, or the float a client sent.
    pub(crate) number: Value,
    /// Prompt id.
    pub(crate) id: String,
    /// The graph.
    pub(crate) prompt: Map<String, Value>,
    /// `extra_data` as stored (client_id, create_time on 0.6+).
    pub(crate) extra_data: Map<String, Value>,
    /// Outputs to execute.
    pub(crate) outputs: Vec<String>,
    /// WebSocket client to address.
    pub(crate) client_id: Option<String>,
    /// ms.
    pub(crate) create_time: i64,
    /// ms, once running.
    pub(crate) start_time: Option<i64>,
}

impl Entry {
    /// The queue tuple `[number, id, prompt, extra_data, outputs]`.
    pub(crate) fn tuple(&self) -> Value {
        json!([
            self.number,
            self.id,
            self.prompt,
            self.extra_data,
            self.outputs
        ])
    }

    /// Python's `<` on queue tuples: number first, then prompt id.
    fn before(&self, other: &Entry) -> bool {
        let (a, b) = (
            self.number.as_f64().unwrap_or_default(),
            other.number.as_f64().unwrap_or_default(),
        );
        a < b || (a == b && self.id < other.id)
    }
}

/// The pending prompts as ComfyUI keeps them: a `heapq` list, so
/// `/queue` lists them in heap order, not sorted.
#[derive(Debug, Default)]
pub(crate) struct Heap(Vec<Entry>);

impl Heap {
    /// In heap order.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Entry> {
        self.0.iter()
    }

    /// How many.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// None waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn sift_down(&mut self, start: usize, mut pos: usize) {
        while pos > start {
            let parent = (pos - 1) >> 1;
            if self.0[pos].before(&self.0[parent]) {
                self.0.swap(pos, parent);
                pos = parent;
            } else {
                break;
            }
        }
    }

    fn sift_up(&mut self, mut pos: usize) {
        let (end, start) = (self.0.len(), pos);
        let mut child = 2 * pos + 1;
        while child < end {
            let right = child + 1;
            if right < end && !self.0[child].before(&self.0[right]) {
                child = right;
            }
            self.0.swap(pos, child);
            pos = child;
            child = 2 * pos + 1;
        }
        self.sift_down(start, pos);
    }

    /// `heapq.heappush`.
    pub(crate) fn push(&mut self, e: Entry) {
        self.0.push(e);
        let last = self.0.len() - 1;
        self.sift_down(0, last);
    }

    /// `heapq.heappop`.
    pub(crate) fn pop(&mut self) -> Option<Entry> {
        let last = self.0.pop()?;
        if self.0.is_empty() {
            return Some(last);
        }
        let top = std::mem::replace(&mut self.0[0], last);
        self.sift_up(0);
        Some(top)
    }

    /// Removes the first prompt with this id (`delete_queue_item`), then
    /// `heapq.heapify`.
    pub(crate) fn remove(&mut self, id: &str) -> bool {
        let Some(i) = self.0.iter().position(|e| e.id == id) else {
            return false;
        };
        self.0.remove(i);
        for i in (0..self.0.len() / 2).rev() {
            self.sift_up(i);
        }
        true
    }

    /// Empties the queue.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}
