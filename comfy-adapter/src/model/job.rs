//! Job status, normalized across `/api/jobs` and `/queue` + `/history`.

use super::output::Output;
use super::{NodeId, PromptId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a prompt is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Queued, not started.
    Pending,
    /// Executing now.
    Running,
    /// Finished with success.
    Succeeded,
    /// Finished with an execution error.
    Failed,
    /// Stopped by an interrupt while running.
    Interrupted,
    /// Cancelled without an interrupt record (the jobs API says `cancelled`).
    Cancelled,
    /// The server does not know this prompt (never submitted, deleted while
    /// pending, or removed from history).
    Unknown,
}

impl JobState {
    /// Whether the prompt will not change state any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Interrupted | Self::Cancelled
        )
    }
}

/// A prompt's status with everything the server knows about how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The prompt id.
    pub prompt_id: PromptId,
    /// Normalized state.
    pub state: JobState,
    /// Queue number (`priority` in the jobs API).
    pub number: Option<f64>,
    /// When the prompt was queued, ms since the epoch (0.6+).
    pub created_at_ms: Option<i64>,
    /// When execution started, ms since the epoch.
    pub started_at_ms: Option<i64>,
    /// When execution ended, ms since the epoch.
    pub finished_at_ms: Option<i64>,
    /// `extra_data.extra_pnginfo.workflow.id`, when the client sent one.
    pub workflow_id: Option<String>,
    /// Number of outputs, as the server counts them (jobs API) or as counted
    /// from history.
    pub outputs_count: Option<u64>,
    /// Nodes whose results came from cache.
    pub cached_nodes: Vec<NodeId>,
    /// The execution error, when the job failed.
    pub failure: Option<Failure>,
    /// Where it stopped, when it was interrupted.
    pub interruption: Option<Interruption>,
    /// Outputs, when the answer carried them (finished jobs).
    pub outputs: Vec<Output>,
}

impl JobStatus {
    /// A status for a prompt the server does not know.
    pub fn unknown(prompt_id: impl Into<String>) -> Self {
        JobStatus {
            prompt_id: prompt_id.into(),
            state: JobState::Unknown,
            number: None,
            created_at_ms: None,
            started_at_ms: None,
            finished_at_ms: None,
            workflow_id: None,
            outputs_count: None,
            cached_nodes: Vec::new(),
            failure: None,
            interruption: None,
            outputs: Vec::new(),
        }
    }

    /// Execution time in ms, when both ends are known.
    pub fn execution_ms(&self) -> Option<i64> {
        Some(self.finished_at_ms? - self.started_at_ms?)
    }
}

/// An execution error inside a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The node that raised.
    pub node_id: Option<NodeId>,
    /// Its class.
    pub node_type: Option<String>,
    /// Python exception type (`Exception`, `torch.OutOfMemoryError`, ...).
    pub exception_type: Option<String>,
    /// Exception message.
    pub exception_message: Option<String>,
    /// Traceback lines.
    pub traceback: Vec<String>,
    /// Nodes that had executed before the error.
    pub executed: Vec<NodeId>,
    /// The failing node's inputs as the server printed them.
    pub current_inputs: Value,
    /// When, ms since the epoch.
    pub timestamp_ms: Option<i64>,
}

impl Failure {
    /// Whether the error looks like the GPU (or host) ran out of memory:
    /// worth retrying elsewhere rather than a problem of the workflow.
    pub fn is_out_of_memory(&self) -> bool {
        let t = self.exception_type.as_deref().unwrap_or_default();
        let m = self.exception_message.as_deref().unwrap_or_default();
        t.contains("OutOfMemory")
            || m.contains("out of memory")
            || m.contains("Allocation on device")
    }
}

/// Where an interrupted prompt stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interruption {
    /// The node that was running.
    pub node_id: Option<NodeId>,
    /// Its class.
    pub node_type: Option<String>,
    /// Nodes that had finished.
    pub executed: Vec<NodeId>,
    /// When, ms since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// Sort order of a job listing by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Newest first (the server default).
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

/// What to list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JobQuery {
    /// Only these states (empty = all).
    pub states: Vec<JobState>,
    /// At most this many.
    pub limit: Option<u32>,
    /// Skip this many.
    pub offset: Option<u32>,
    /// Order by creation time.
    pub order: SortOrder,
    /// Only jobs of this workflow id.
    pub workflow_id: Option<String>,
}

/// One page of jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPage {
    /// The jobs on this page.
    pub jobs: Vec<JobStatus>,
    /// Total matching jobs.
    pub total: u64,
    /// Offset of this page.
    pub offset: u64,
    /// Whether more pages follow.
    pub has_more: bool,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// It was pending and has been removed from the queue.
    RemovedFromQueue,
    /// It was running and has been interrupted.
    Interrupted,
    /// The server said it cancelled it (0.26+ cancel API, state not told).
    Cancelled,
    /// Nothing to cancel: unknown or already finished.
    NotCancellable,
}
