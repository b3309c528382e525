//! `GET /queue`.

use super::tuple::QueueTuple;
use serde::Deserialize;

/// `GET /queue`. Items are queue tuples
/// `[number, prompt_id, prompt, extra_data, outputs_to_execute]`.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueWire {
    /// Running tuples.
    #[serde(default)]
    pub queue_running: Vec<QueueTuple>,
    /// Pending tuples.
    #[serde(default)]
    pub queue_pending: Vec<QueueTuple>,
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
