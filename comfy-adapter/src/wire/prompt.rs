//! `POST /prompt`: request body and both answers.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The request body of `POST /prompt`.
#[derive(Debug, Clone, Serialize)]
pub struct PromptBody<'a> {
    /// The API-format graph.
    pub prompt: &'a Map<String, Value>,
    /// WebSocket client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<&'a str>,
    /// Caller-chosen prompt id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_id: Option<&'a str>,
    /// Extra data.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra_data: &'a Map<String, Value>,
    /// Put at the front of the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub front: Option<bool>,
    /// Explicit queue number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<f64>,
    /// Only these output nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_execution_targets: Option<&'a [String]>,
}

/// 200 answer.
#[derive(Debug, Clone, Deserialize)]
pub struct PromptOk {
    /// The prompt id.
    pub prompt_id: String,
    /// Queue number (int, or float when the client sent `number`).
    pub number: f64,
    /// Non-fatal node errors.
    #[serde(default)]
    pub node_errors: Map<String, Value>,
}

/// 400 answer.
#[derive(Debug, Clone, Deserialize)]
pub struct PromptErrorBody {
    /// The top-level error (always an object on recorded lines).
    pub error: ErrorObject,
    /// Node id → errors.
    #[serde(default)]
    pub node_errors: Map<String, Value>,
}

/// `error` of a 400 answer, and each entry of a node's `errors`.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorObject {
    /// Spelling of the kind.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Human message.
    #[serde(default)]
    pub message: String,
    /// Details.
    #[serde(default)]
    pub details: String,
    /// Extra info (input name, received value, 0.26+ node id and class).
    #[serde(default)]
    pub extra_info: Value,
}

/// One node's entry in `node_errors`.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeErrorsWire {
    /// Errors.
    #[serde(default)]
    pub errors: Vec<ErrorObject>,
    /// Outputs depending on this node.
    #[serde(default)]
    pub dependent_outputs: Vec<Value>,
    /// The node's class.
    pub class_type: Option<String>,
}
