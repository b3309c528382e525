//! WebSocket text frames: `{"type": T, "data": D}`.

use serde::Deserialize;
use serde_json::Value;

/// A text frame.
#[derive(Debug, Clone, Deserialize)]
pub struct WsMessage {
    /// Message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Payload.
    #[serde(default)]
    pub data: Value,
}
