//! `GET /queue`.

use serde::Deserialize;
use serde_json::Value;

/// `GET /queue`. Items are queue tuples
/// `[number, prompt_id, prompt, extra_data, outputs_to_execute]`.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueWire {
    /// Running tuples.
    #[serde(default)]
    pub queue_running: Vec<Vec<Value>>,
    /// Pending tuples.
    #[serde(default)]
    pub queue_pending: Vec<Vec<Value>>,
}

/// `GET /prompt`.
#[derive(Debug, Clone, Deserialize)]
pub struct PromptInfo {
    /// `{queue_remaining}`.
    pub exec_info: ExecInfo,
}

/// `exec_info`.
#[derive(Debug, Clone, Deserialize)]
pub struct ExecInfo {
    /// Pending + running.
    pub queue_remaining: u64,
}
