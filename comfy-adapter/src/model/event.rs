//! WebSocket events (`/ws?clientId=`), one enum for every line.

use super::job::{Failure, Interruption};
use super::output::Output;
use super::{NodeId, PromptId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One message from ComfyUI's WebSocket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Queue size changed (broadcast), or the greeting (with `sid`).
    Status {
        /// Prompts pending + running.
        queue_remaining: u64,
        /// The session id, only in the greeting.
        sid: Option<String>,
    },
    /// A prompt started executing.
    ExecutionStart {
        /// The prompt.
        prompt_id: PromptId,
        /// ms since the epoch.
        timestamp_ms: Option<i64>,
    },
    /// These nodes will be served from cache.
    ExecutionCached {
        /// The prompt.
        prompt_id: PromptId,
        /// Cached node ids.
        nodes: Vec<NodeId>,
        /// ms since the epoch.
        timestamp_ms: Option<i64>,
    },
    /// A node started executing; `node: None` means the prompt is done.
    Executing {
        /// The prompt (absent on some old greetings).
        prompt_id: Option<PromptId>,
        /// The node, or `None` at the end.
        node: Option<NodeId>,
        /// The node shown in the UI (differs inside subgraphs).
        display_node: Option<NodeId>,
    },
    /// A step counter inside a node (sampler steps).
    Progress {
        /// The prompt.
        prompt_id: Option<PromptId>,
        /// The node.
        node: Option<NodeId>,
        /// Current value.
        value: f64,
        /// Maximum.
        max: f64,
    },
    /// Per-node progress of the whole prompt (pending nodes omitted).
    ProgressState {
        /// The prompt.
        prompt_id: PromptId,
        /// Node id → progress.
        nodes: BTreeMap<NodeId, NodeProgress>,
    },
    /// A node finished and returned UI output.
    Executed {
        /// The prompt.
        prompt_id: PromptId,
        /// The node.
        node: NodeId,
        /// The node shown in the UI.
        display_node: Option<NodeId>,
        /// Its outputs, normalized (empty when it returned none).
        outputs: Vec<Output>,
    },
    /// The prompt finished with success.
    ExecutionSuccess {
        /// The prompt.
        prompt_id: PromptId,
        /// ms since the epoch.
        timestamp_ms: Option<i64>,
    },
    /// The prompt failed in a node.
    ExecutionError {
        /// The prompt.
        prompt_id: PromptId,
        /// What failed.
        failure: Failure,
    },
    /// The prompt was interrupted. Arrives possibly before history has the
    /// entry: poll the job until it says it ended.
    ExecutionInterrupted {
        /// The prompt.
        prompt_id: PromptId,
        /// Where it stopped.
        interruption: Interruption,
    },
    /// The server's feature flags (answer to our own `feature_flags`).
    FeatureFlags {
        /// The flags.
        flags: Value,
    },
    /// A binary preview image.
    Preview {
        /// `image/png`, `image/jpeg`, or `None` when the format code is unknown.
        mime: Option<String>,
        /// Node, when the frame carried metadata (type 4).
        node_id: Option<NodeId>,
        /// Prompt, when the frame carried metadata (type 4).
        prompt_id: Option<PromptId>,
        /// Image size in bytes.
        bytes: usize,
        /// The image itself (kept so it can be forwarded; not serialized: the normalized
        /// event names only its size and type).
        #[serde(skip)]
        image: bytes::Bytes,
    },
    /// A binary text frame (progress text of a node).
    Text {
        /// The node.
        node_id: NodeId,
        /// The text.
        text: String,
    },
    /// A message type this crate does not know (custom nodes' `send_sync`,
    /// `logs`, future types): kept raw.
    Unknown {
        /// The `type` field.
        kind: String,
        /// The `data` field.
        data: Value,
    },
    /// A binary frame of an unknown event type.
    UnknownBinary {
        /// The leading big-endian u32.
        event_type: u32,
        /// Payload size after the type.
        bytes: usize,
    },
}

impl Event {
    /// The prompt this event is about, when it names one.
    pub fn prompt_id(&self) -> Option<&str> {
        match self {
            Event::ExecutionStart { prompt_id, .. }
            | Event::ExecutionCached { prompt_id, .. }
            | Event::ProgressState { prompt_id, .. }
            | Event::Executed { prompt_id, .. }
            | Event::ExecutionSuccess { prompt_id, .. }
            | Event::ExecutionError { prompt_id, .. }
            | Event::ExecutionInterrupted { prompt_id, .. } => Some(prompt_id),
            Event::Executing { prompt_id, .. }
            | Event::Progress { prompt_id, .. }
            | Event::Preview { prompt_id, .. } => prompt_id.as_deref(),
            _ => None,
        }
    }

    /// Whether this event ends the prompt it names (success, error,
    /// interrupt, or the final `executing` with no node).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::ExecutionSuccess { .. }
                | Event::ExecutionError { .. }
                | Event::ExecutionInterrupted { .. }
                | Event::Executing {
                    node: None,
                    prompt_id: Some(_),
                    ..
                }
        )
    }
}

/// Progress of one node in a `progress_state` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeProgress {
    /// Current value.
    pub value: f64,
    /// Maximum.
    pub max: f64,
    /// `running`, `finished`, `error`, ...
    pub state: String,
    /// The node shown in the UI.
    pub display_node_id: Option<NodeId>,
    /// Parent node inside a subgraph.
    pub parent_node_id: Option<NodeId>,
    /// The real node id.
    pub real_node_id: Option<NodeId>,
}
