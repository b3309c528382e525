//! Prompt submission: the request, the acceptance, and the typed rejection.

use super::{NodeId, PromptId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a prompt goes in ComfyUI's queue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QueuePosition {
    /// At the back (the server assigns the next number).
    #[default]
    Back,
    /// At the front (`front: true`).
    Front,
    /// An explicit queue number (lower runs first).
    Number(f64),
}

/// A prompt to submit: an API-format graph plus how to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptRequest {
    /// The API-format graph: `{node_id: {class_type, inputs}}`.
    pub prompt: Map<String, Value>,
    /// The WebSocket client id that should receive this prompt's events.
    /// Without one, ComfyUI sends almost no events for the prompt.
    pub client_id: Option<String>,
    /// A prompt id chosen by the caller. When `None` the adapter generates a
    /// UUID (valid on every line), so the caller always knows the id.
    pub prompt_id: Option<PromptId>,
    /// Extra data stored with the job (`extra_pnginfo`, ...).
    pub extra_data: Map<String, Value>,
    /// Queue position.
    pub position: QueuePosition,
    /// Run only these output nodes (`partial_execution_targets`).
    pub partial_execution_targets: Option<Vec<NodeId>>,
}

impl PromptRequest {
    /// A request for `prompt` with defaults for everything else.
    pub fn new(prompt: Map<String, Value>) -> Self {
        PromptRequest {
            prompt,
            client_id: None,
            prompt_id: None,
            extra_data: Map::new(),
            position: QueuePosition::Back,
            partial_execution_targets: None,
        }
    }

    /// Builds a request from a JSON value that must be an object (an API-format prompt).
    pub fn from_value(prompt: Value) -> Option<Self> {
        match prompt {
            Value::Object(map) => Some(Self::new(map)),
            _ => None,
        }
    }

    /// Sets the WebSocket client id.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Sets a caller-chosen prompt id.
    pub fn with_prompt_id(mut self, prompt_id: impl Into<String>) -> Self {
        self.prompt_id = Some(prompt_id.into());
        self
    }
}

/// ComfyUI accepted the prompt (HTTP 200).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    /// The prompt id (the job id in ComfyUI).
    pub prompt_id: PromptId,
    /// The queue number (a float when the client sent one).
    pub number: f64,
    /// Per-node errors of outputs that failed validation while others passed.
    /// Non-fatal: the prompt runs the outputs that validated.
    pub node_errors: Vec<NodeError>,
}

/// Why ComfyUI refused a prompt, with every server spelling mapped to one enum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionKind {
    /// The body had no `prompt` (`no_prompt`).
    NoPrompt,
    /// A node's class is not installed: `invalid_prompt` "node X does not
    /// exist" before 0.26, `missing_node_type` from 0.26.
    UnknownNodeType,
    /// A node has no `class_type`: `invalid_prompt` before 0.26,
    /// `missing_node_type` with a null class from 0.26.
    MissingClassType,
    /// The client-chosen prompt id is not a canonical UUID (`invalid_prompt_id`, 0.26+).
    InvalidPromptId,
    /// The prompt has no output node (`prompt_no_outputs`).
    NoOutputs,
    /// Every output failed validation; see the node errors
    /// (`prompt_outputs_failed_validation`).
    OutputsFailedValidation,
    /// Another `invalid_prompt` (the prompt's structure is wrong).
    InvalidPrompt,
    /// A spelling this crate does not know yet (kept verbatim).
    Other(String),
}

/// A typed prompt rejection (HTTP 400 from `POST /prompt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptRejected {
    /// The normalized kind.
    pub kind: RejectionKind,
    /// The server's own spelling of the kind (`error.type`).
    pub server_type: String,
    /// `error.message`.
    pub message: String,
    /// `error.details`.
    pub details: String,
    /// The node the error names, when the server says (0.26+ `extra_info.node_id`,
    /// older lines `details: "Node ID '#1'"`).
    pub node_id: Option<NodeId>,
    /// The class the error names (unknown node type), when known.
    pub class_type: Option<String>,
    /// `error.extra_info` verbatim.
    pub extra_info: Value,
    /// Per-node validation errors.
    pub node_errors: Vec<NodeError>,
    /// HTTP status of the answer (400).
    pub status: u16,
    /// The raw response body.
    pub raw: Value,
}

impl std::fmt::Display for PromptRejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.server_type)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        for node in &self.node_errors {
            for e in &node.errors {
                write!(
                    f,
                    "; node {} ({}): {}",
                    node.node_id,
                    node.class_type.as_deref().unwrap_or("?"),
                    e.message
                )?;
                if let Some(input) = &e.input_name {
                    write!(f, " [{input}]")?;
                }
            }
        }
        Ok(())
    }
}

/// The validation errors of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeError {
    /// The node id.
    pub node_id: NodeId,
    /// Its class, when the server says.
    pub class_type: Option<String>,
    /// Output nodes that depend on it.
    pub dependent_outputs: Vec<NodeId>,
    /// One entry per failing input (or per exception).
    pub errors: Vec<InputError>,
}

/// One validation error of one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputError {
    /// The normalized kind.
    pub kind: InputErrorKind,
    /// The server's spelling.
    pub server_type: String,
    /// Human message (`Value 0 smaller than min of 1`).
    pub message: String,
    /// Server details.
    pub details: String,
    /// The input concerned (`extra_info.input_name`).
    pub input_name: Option<String>,
    /// The value the server received (`extra_info.received_value`).
    pub received_value: Option<Value>,
    /// `extra_info` verbatim (input config, traceback, ...).
    pub extra_info: Value,
}

/// Per-input validation error kinds, as ComfyUI's `validate_inputs` names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputErrorKind {
    /// A required input is absent.
    RequiredInputMissing,
    /// A link points at a node or output that does not exist or is malformed.
    BadLinkedInput,
    /// A link's type does not match the input's.
    ReturnTypeMismatch,
    /// A node's own `VALIDATE_INPUTS` raised.
    ExceptionDuringInnerValidation,
    /// A value could not be converted to the input's type.
    InvalidInputType,
    /// Below `min`.
    ValueSmallerThanMin,
    /// Above `max`.
    ValueBiggerThanMax,
    /// Not one of the allowed values (a missing model file shows up here).
    ValueNotInList,
    /// A node's custom validation returned an error.
    CustomValidationFailed,
    /// Validation itself raised (e.g. a link to a missing node).
    ExceptionDuringValidation,
    /// A spelling this crate does not know yet (kept verbatim).
    Other(String),
}

impl InputErrorKind {
    /// Maps a server spelling.
    pub fn from_server(s: &str) -> Self {
        match s {
            "required_input_missing" => Self::RequiredInputMissing,
            "bad_linked_input" => Self::BadLinkedInput,
            "return_type_mismatch" => Self::ReturnTypeMismatch,
            "exception_during_inner_validation" => Self::ExceptionDuringInnerValidation,
            "invalid_input_type" => Self::InvalidInputType,
            "value_smaller_than_min" => Self::ValueSmallerThanMin,
            "value_bigger_than_max" => Self::ValueBiggerThanMax,
            "value_not_in_list" => Self::ValueNotInList,
            "custom_validation_failed" => Self::CustomValidationFailed,
            "exception_during_validation" => Self::ExceptionDuringValidation,
            other => Self::Other(other.to_owned()),
        }
    }
}
