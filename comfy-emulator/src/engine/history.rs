//! Finished prompts and how they read as history entries and job
//! statuses.

use super::queue::Entry;
use serde_json::{Map, Value, json};

/// How a prompt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every node ran.
    Success,
    /// A node raised.
    Error,
    /// Interrupted.
    Interrupted,
}

/// A finished prompt.
#[derive(Debug, Clone)]
pub(crate) struct Done {
    /// The prompt as it was queued.
    pub(crate) entry: Entry,
    /// Node id → UI dict, in the order the nodes ran.
    pub(crate) outputs: Map<String, Value>,
    /// How it ended.
    pub(crate) outcome: Outcome,
    /// `[event, data]` pairs of the history `status`.
    pub(crate) messages: Vec<Value>,
    /// ms.
    pub(crate) end_time: i64,
    /// `execution_error` payload.
    pub(crate) error: Option<Value>,
}

impl Done {
    /// The history entry.
    pub(crate) fn history_item(&self) -> Value {
        let meta: Map<String, Value> = self
            .outputs
            .keys()
            .map(|k| {
                (
                    k.clone(),
                    json!({"node_id": k, "display_node": k, "parent_node": null, "real_node_id": k}),
                )
            })
            .collect();
        json!({
            "prompt": self.entry.tuple(),
            "outputs": self.outputs,
            "status": self.status(),
            "meta": meta,
        })
    }

    /// History `status` / jobs `execution_status`.
    pub(crate) fn status(&self) -> Value {
        let ok = self.outcome == Outcome::Success;
        json!({
            "status_str": if ok { "success" } else { "error" },
            "completed": ok,
            "messages": self.messages,
        })
    }
}
