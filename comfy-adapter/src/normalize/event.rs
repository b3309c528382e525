use super::history::{failure_from, interruption_from};
use super::outputs::outputs_from_ui;
use super::{i64_field, id_list, str_field};
use crate::model::event::{Event, NodeProgress};
use crate::wire::ws::WsMessage;
use serde_json::Value;

/// Why a WebSocket frame could not be turned into an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The text frame is not `{"type": ..., "data": ...}` JSON.
    #[error("not a ComfyUI message: {0}")]
    NotAMessage(String),
    /// A known message type whose data lacks a required field.
    #[error("malformed {kind} message: missing or wrong {field}")]
    Malformed {
        /// Message type.
        kind: String,
        /// The field.
        field: &'static str,
    },
    /// A binary frame shorter than its headers say.
    #[error("truncated binary frame: {0}")]
    Truncated(&'static str),
}

fn need_str(data: &Value, kind: &str, field: &'static str) -> Result<String, EventError> {
    str_field(data, field).ok_or_else(|| EventError::Malformed {
        kind: kind.to_owned(),
        field,
    })
}

/// Parses a text frame. Unknown types become [`Event::Unknown`]; a known type
/// with broken data is an error, never a panic.
pub fn parse_text_frame(text: &str) -> Result<Event, EventError> {
    let msg: WsMessage =
        serde_json::from_str(text).map_err(|e| EventError::NotAMessage(e.to_string()))?;
    let kind = msg.kind.as_str();
    let d = &msg.data;
    let prompt_id = || need_str(d, kind, "prompt_id");
    Ok(match kind {
        "status" => Event::Status {
            queue_remaining: d
                .pointer("/status/exec_info/queue_remaining")
                .and_then(Value::as_u64)
                .ok_or(EventError::Malformed {
                    kind: msg.kind.clone(),
                    field: "status.exec_info.queue_remaining",
                })?,
            sid: str_field(d, "sid"),
        },
        "execution_start" => Event::ExecutionStart {
            prompt_id: prompt_id()?,
            timestamp_ms: i64_field(d, "timestamp"),
        },
        "execution_cached" => Event::ExecutionCached {
            prompt_id: prompt_id()?,
            nodes: id_list(d.get("nodes")),
            timestamp_ms: i64_field(d, "timestamp"),
        },
        "executing" => Event::Executing {
            prompt_id: str_field(d, "prompt_id"),
            node: str_field(d, "node"),
            display_node: str_field(d, "display_node"),
        },
        "progress" => Event::Progress {
            prompt_id: str_field(d, "prompt_id"),
            node: str_field(d, "node"),
            value: d.get("value").and_then(Value::as_f64).unwrap_or(0.0),
            max: d.get("max").and_then(Value::as_f64).unwrap_or(0.0),
        },
        "progress_state" => Event::ProgressState {
            prompt_id: prompt_id()?,
            nodes: d
                .get("nodes")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(id, p)| (id.clone(), node_progress(p)))
                        .collect()
                })
                .unwrap_or_default(),
        },
        "executed" => {
            let node = need_str(d, kind, "node")?;
            let outputs = d
                .get("output")
                .map(|ui| outputs_from_ui(&node, ui, false))
                .unwrap_or_default();
            Event::Executed {
                prompt_id: prompt_id()?,
                display_node: str_field(d, "display_node"),
                node,
                outputs,
            }
        }
        "execution_success" => Event::ExecutionSuccess {
            prompt_id: prompt_id()?,
            timestamp_ms: i64_field(d, "timestamp"),
        },
        "execution_error" => Event::ExecutionError {
            prompt_id: prompt_id()?,
            failure: failure_from(d),
        },
        "execution_interrupted" => Event::ExecutionInterrupted {
            prompt_id: prompt_id()?,
            interruption: interruption_from(d),
        },
        "feature_flags" => Event::FeatureFlags { flags: msg.data },
        _ => Event::Unknown {
            kind: msg.kind,
            data: msg.data,
        },
    })
}

fn node_progress(p: &Value) -> NodeProgress {
    NodeProgress {
        value: p.get("value").and_then(Value::as_f64).unwrap_or(0.0),
        max: p.get("max").and_then(Value::as_f64).unwrap_or(0.0),
        state: str_field(p, "state").unwrap_or_default(),
        display_node_id: str_field(p, "display_node_id"),
        parent_node_id: str_field(p, "parent_node_id"),
        real_node_id: str_field(p, "real_node_id"),
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// Parses a binary frame: a big-endian u32 event type, then its payload.
/// 1 = preview image (u32 format: 1 JPEG, 2 PNG), 3 = text (u32 length,
/// node id, text), 4 = preview with JSON metadata (u32 length, metadata,
/// image). Other types are [`Event::UnknownBinary`].
pub fn parse_binary_frame(frame: &[u8]) -> Result<Event, EventError> {
    let event_type = u32_at(frame, 0).ok_or(EventError::Truncated("event type"))?;
    let payload = &frame[4..];
    Ok(match event_type {
        1 => {
            let format = u32_at(payload, 0).ok_or(EventError::Truncated("image format"))?;
            let mime = match format {
                1 => Some("image/jpeg".to_owned()),
                2 => Some("image/png".to_owned()),
                _ => None,
            };
            Event::Preview {
                mime,
                node_id: None,
                prompt_id: None,
                bytes: payload.len() - 4,
                image: bytes::Bytes::copy_from_slice(&payload[4..]),
            }
        }
        3 => {
            let len =
                u32_at(payload, 0).ok_or(EventError::Truncated("text node id length"))? as usize;
            let node = payload
                .get(4..4usize.saturating_add(len))
                .ok_or(EventError::Truncated("text node id"))?;
            let text = &payload[4 + len..];
            Event::Text {
                node_id: String::from_utf8_lossy(node).into_owned(),
                text: String::from_utf8_lossy(text).into_owned(),
            }
        }
        4 => {
            let len = u32_at(payload, 0).ok_or(EventError::Truncated("metadata length"))? as usize;
            let meta = payload
                .get(4..4usize.saturating_add(len))
                .ok_or(EventError::Truncated("metadata"))?;
            let meta: Value = serde_json::from_slice(meta).unwrap_or(Value::Null);
            Event::Preview {
                mime: str_field(&meta, "image_type"),
                node_id: str_field(&meta, "node_id"),
                prompt_id: str_field(&meta, "prompt_id"),
                bytes: payload.len() - 4 - len,
                image: bytes::Bytes::copy_from_slice(&payload[4 + len..]),
            }
        }
        other => Event::UnknownBinary {
            event_type: other,
            bytes: payload.len(),
        },
    })
}
