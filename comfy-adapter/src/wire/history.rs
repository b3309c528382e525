//! `GET /history` and `GET /history/{id}`.

use super::outputs::NodeOutputs;
use super::tuple::QueueTuple;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// One history entry (the value under the prompt id key).
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryItem {
    /// The queue tuple `[number, id, prompt, extra_data, outputs_to_execute]`.
    pub prompt: QueueTuple,
    /// Node id → UI dict (free-form keys: `images`, `audio`, `text`, ...).
    #[serde(default)]
    pub outputs: NodeOutputs,
    /// Absent while a prompt is being written.
    pub status: Option<ExecutionStatus>,
    /// Node id → display info (not used by the model; skipped).
    #[serde(default)]
    pub meta: Option<IgnoredAny>,
}

/// `status` of a history entry (`execution_status` in the jobs API).
#[derive(Debug, Clone, Deserialize)]
pub struct ExecutionStatus {
    /// `success` or `error`.
    pub status_str: Option<String>,
    /// Equals success.
    #[serde(default)]
    pub completed: bool,
    /// `[event, data]` pairs.
    #[serde(default)]
    pub messages: Vec<(String, Value)>,
}
