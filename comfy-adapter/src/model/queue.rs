//! ComfyUI's own queue (`GET /queue`), normalized.

use super::{NodeId, PromptId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The running and pending prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct QueueSnapshot {
    /// Executing now (at most one on a stock server).
    pub running: Vec<QueueEntry>,
    /// Waiting, in the order the server listed them.
    pub pending: Vec<QueueEntry>,
}

impl QueueSnapshot {
    /// Finds a prompt in either list.
    pub fn find(&self, prompt_id: &str) -> Option<(&QueueEntry, bool)> {
        self.running
            .iter()
            .find(|e| e.prompt_id == prompt_id)
            .map(|e| (e, true))
            .or_else(|| {
                self.pending
                    .iter()
                    .find(|e| e.prompt_id == prompt_id)
                    .map(|e| (e, false))
            })
    }
}

/// One queued prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// Queue number.
    pub number: f64,
    /// Prompt id.
    pub prompt_id: PromptId,
    /// The API-format graph.
    pub prompt: Map<String, Value>,
    /// The WebSocket client id it was submitted with.
    pub client_id: Option<String>,
    /// When it was queued, ms since the epoch (0.6+).
    pub created_at_ms: Option<i64>,
    /// The output nodes it will execute.
    pub outputs_to_execute: Vec<NodeId>,
    /// `extra_data.extra_pnginfo.workflow.id`, when sent.
    pub workflow_id: Option<String>,
}
