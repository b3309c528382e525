//! The queue tuple ComfyUI uses in `/queue` and `/history`:
//! `[number, prompt_id, prompt, extra_data, outputs_to_execute, ...]`.
//!
//! Deserialized element by element: the graph is kept as raw JSON (it is the
//! bulk of the bytes and nothing is normalized from it) and `extra_data` is
//! read for the few fields the model needs (the frontend puts the whole UI
//! workflow under `extra_pnginfo`; it is skipped, not built).

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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
    /// The API-format graph, as sent (`/queue`; `None` in a history entry,
    /// whose graph is skipped: nothing is normalized from it).
    pub prompt: Option<Box<RawValue>>,
    /// What the model needs from `extra_data`.
    pub extra_data: ExtraData,
    /// Output node ids (strings, or numbers from odd clients).
    pub outputs_to_execute: Vec<Value>,
}

/// The parts of `extra_data` the model uses. Read leniently and in one
/// pass: other keys (the whole UI workflow under `extra_pnginfo`) are
/// skipped without being built, a field of another type is absent, and a
/// value that is not an object is an empty `extra_data`.
#[derive(Debug, Clone, Default)]
pub struct ExtraData {
    /// WebSocket client id.
    pub client_id: Option<String>,
    /// ms since the epoch (0.6+).
    pub create_time: Option<f64>,
    /// `extra_pnginfo` (only `workflow.id` is read).
    pub extra_pnginfo: Option<PngInfo>,
}

/// `extra_data.extra_pnginfo`.
#[derive(Debug, Clone, Default)]
pub struct PngInfo {
    /// The UI workflow (only `id` is read).
    pub workflow: Option<WorkflowRef>,
}

/// `extra_pnginfo.workflow`.
#[derive(Debug, Clone, Default)]
pub struct WorkflowRef {
    /// The workflow id.
    pub id: Option<Value>,
}

impl<'de> Deserialize<'de> for ExtraData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ExtraData;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("extra_data")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ExtraData, A::Error> {
                let mut out = ExtraData::default();
                while let Some(key) = map.next_key::<super::Key<'de>>()? {
                    match key.as_str() {
                        "client_id" => {
                            out.client_id = map.next_value::<Value>()?.as_str().map(str::to_owned);
                        }
                        "create_time" => out.create_time = map.next_value::<Value>()?.as_f64(),
                        "extra_pnginfo" => out.extra_pnginfo = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
            super::default_for_non_objects!(ExtraData);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for PngInfo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PngInfo;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("extra_pnginfo")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PngInfo, A::Error> {
                let mut out = PngInfo::default();
                while let Some(key) = map.next_key::<super::Key<'de>>()? {
                    if key.as_str() == "workflow" {
                        out.workflow = Some(map.next_value()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(out)
            }
            super::default_for_non_objects!(PngInfo);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for WorkflowRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WorkflowRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a UI workflow")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WorkflowRef, A::Error> {
                let mut out = WorkflowRef::default();
                while let Some(key) = map.next_key::<super::Key<'de>>()? {
                    if key.as_str() == "id" {
                        out.id = Some(map.next_value()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(out)
            }
            super::default_for_non_objects!(WorkflowRef);
        }
        d.deserialize_any(V)
    }
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
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<QueueTuple, A::Error> {
                QueueTuple::from_seq(seq, true)
            }
        }
        d.deserialize_seq(TupleVisitor)
    }
}

impl QueueTuple {
    /// Reads a tuple's elements (the visitor's `visit_seq`, shared with the
    /// history entry's lenient reader). Without `keep_graph` the graph is
    /// skipped, not copied: a history entry's graph is the bulk of its bytes
    /// and nothing is normalized from it.
    pub(crate) fn from_seq<'de, A: SeqAccess<'de>>(
        mut seq: A,
        keep_graph: bool,
    ) -> Result<QueueTuple, A::Error> {
        let number = lenient::<f64, _>(&mut seq)?;
        let prompt_id = lenient::<String, _>(&mut seq)?;
        let prompt: Option<Box<RawValue>> = if keep_graph {
            seq.next_element()?
        } else {
            seq.next_element::<IgnoredAny>()?;
            None
        };
        let extra_data: Option<ExtraData> = seq.next_element()?;
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

    /// Parses the graph, when there is one and it is an object.
    pub fn graph(&self) -> serde_json::Map<String, Value> {
        self.prompt
            .as_ref()
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default()
    }
}
