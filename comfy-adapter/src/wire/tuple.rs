//! The queue tuple ComfyUI uses in `/queue` and `/history`:
//! `[number, prompt_id, prompt, extra_data, outputs_to_execute, ...]`.
//!
//! Deserialized element by element: the graph is kept as raw JSON (it is the
//! bulk of the bytes and nothing is normalized from it) and `extra_data` is
//! read for the few fields the model needs (the frontend puts the whole UI
//! workflow under `extra_pnginfo`; it is skipped, not built).

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::fmt;

/// A queue tuple.
#[derive(Debug, Clone, Default)]
pub struct QueueTuple {
    /// Queue number (a float when the client chose it).
    pub number: Option<f64>,
    /// Prompt id.
    pub prompt_id: Option<String>,
    /// The API-format graph, as sent.
    pub prompt: Option<Box<RawValue>>,
    /// What the model needs from `extra_data`.
    pub extra_data: ExtraData,
    /// Output node ids (strings, or numbers from odd clients).
    pub outputs_to_execute: Vec<Value>,
}

/// The parts of `extra_data` the model uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExtraData {
    /// WebSocket client id.
    pub client_id: Option<String>,
    /// ms since the epoch (0.6+).
    pub create_time: Option<f64>,
    /// `extra_pnginfo` (only `workflow.id` is read).
    pub extra_pnginfo: Option<PngInfo>,
}

/// `extra_data.extra_pnginfo`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PngInfo {
    /// The UI workflow (only `id` is read).
    pub workflow: Option<WorkflowRef>,
}

/// `extra_pnginfo.workflow`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WorkflowRef {
    /// The workflow id.
    pub id: Option<Value>,
}

impl ExtraData {
    /// `extra_pnginfo.workflow.id` as a string.
    pub fn workflow_id(&self) -> Option<String> {
        match self
            .extra_pnginfo
            .as_ref()?
            .workflow
            .as_ref()?
            .id
            .as_ref()?
        {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// Accepts any JSON and keeps it only when it has the wanted shape.
fn lenient<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
    seq: &mut A,
) -> Result<Option<T>, A::Error> {
    let v: Option<Value> = seq.next_element()?;
    Ok(v.and_then(|v| T::deserialize(v).ok()))
}

impl<'de> Deserialize<'de> for QueueTuple {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TupleVisitor;
        impl<'de> Visitor<'de> for TupleVisitor {
            type Value = QueueTuple;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a queue tuple [number, prompt_id, prompt, extra_data, outputs]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<QueueTuple, A::Error> {
                let number = lenient::<f64, _>(&mut seq)?;
                let prompt_id = lenient::<String, _>(&mut seq)?;
                let prompt: Option<Box<RawValue>> = seq.next_element()?;
                let extra_data: Option<ExtraData> = match seq.next_element::<Box<RawValue>>()? {
                    Some(raw) => serde_json::from_str(raw.get()).ok(),
                    None => None,
                };
                let outputs_to_execute = lenient::<Vec<Value>, _>(&mut seq)?.unwrap_or_default();
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(QueueTuple {
                    number,
                    prompt_id,
                    prompt,
                    extra_data: extra_data.unwrap_or_default(),
                    outputs_to_execute,
                })
            }
        }
        d.deserialize_seq(TupleVisitor)
    }
}

impl QueueTuple {
    /// Parses the graph, when there is one and it is an object.
    pub fn graph(&self) -> serde_json::Map<String, Value> {
        self.prompt
            .as_ref()
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default()
    }
}
