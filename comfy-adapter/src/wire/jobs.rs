//! `/api/jobs` (0.6+) and the cancel endpoints (0.26+).

use super::history::ExecutionStatus;
use super::outputs::NodeOutputs;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /api/jobs`.
#[derive(Debug, Clone, Deserialize)]
pub struct JobsList {
    /// The page.
    pub jobs: Vec<JobWire>,
    /// Paging.
    pub pagination: Pagination,
}

/// `pagination`.
#[derive(Debug, Clone, Deserialize)]
pub struct Pagination {
    /// Offset.
    #[serde(default)]
    pub offset: u64,
    /// Limit (null when none was given).
    pub limit: Option<u64>,
    /// Total matching.
    #[serde(default)]
    pub total: u64,
    /// More pages follow.
    #[serde(default)]
    pub has_more: bool,
}

/// A job in a listing or by id. Keys whose value is null are left out by the
/// server, so nearly everything is optional.
#[derive(Debug, Clone, Deserialize)]
pub struct JobWire {
    /// Prompt id.
    pub id: String,
    /// `pending`, `in_progress`, `completed`, `failed`, `cancelled` (0.9+).
    pub status: String,
    /// The queue number.
    pub priority: Option<f64>,
    /// ms.
    pub create_time: Option<i64>,
    /// ms.
    pub execution_start_time: Option<i64>,
    /// ms.
    pub execution_end_time: Option<i64>,
    /// Output count.
    pub outputs_count: Option<u64>,
    /// 0.33+: outputs the UI can preview.
    pub previewable_outputs_count: Option<u64>,
    /// First previewable output.
    pub preview_output: Option<Value>,
    /// Workflow id.
    pub workflow_id: Option<String>,
    /// By id, finished jobs: outputs as in history.
    pub outputs: Option<NodeOutputs>,
    /// By id, finished jobs: the history `status`.
    pub execution_status: Option<ExecutionStatus>,
    /// Failed jobs: the `execution_error` payload.
    pub execution_error: Option<Value>,
    /// By id, finished jobs: `{prompt, extra_data}`.
    pub workflow: Option<Value>,
}

/// Error answers of the jobs API: `{"error": "..."}`.
#[derive(Debug, Clone, Deserialize)]
pub struct JobsError {
    /// Message.
    pub error: String,
    /// 0.26+ batch cancel: the ids it refused.
    #[serde(default)]
    pub invalid_ids: Vec<String>,
}

/// `POST /api/jobs/cancel` body (0.26+).
#[derive(Debug, Clone, Serialize)]
pub struct CancelBatch<'a> {
    /// Ids to cancel.
    pub job_ids: &'a [String],
}

/// Answer of both cancel endpoints (0.26+).
#[derive(Debug, Clone, Deserialize)]
pub struct Cancelled {
    /// Whether anything was cancelled.
    pub cancelled: bool,
}
