//! `GET /history` and `GET /history/{id}`.
//!
//! Read in one pass straight from the body: an entry is an object with a
//! queue tuple under `prompt`; its other fields are read leniently (a field
//! of another shape is absent, not an error), and a value that is no such
//! entry is skipped without failing the others.

use super::outputs::NodeOutputs;
use super::tuple::QueueTuple;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// One history entry (the value under the prompt id key).
#[derive(Debug, Clone)]
pub struct HistoryItem {
    /// The queue tuple `[number, id, prompt, extra_data, outputs_to_execute]`
    /// (its graph skipped: see [`QueueTuple::prompt`]).
    pub prompt: QueueTuple,
    /// Node id → UI dict (free-form keys: `images`, `audio`, `text`, ...).
    pub outputs: NodeOutputs,
    /// Absent while a prompt is being written.
    pub status: Option<ExecutionStatus>,
}

/// `status` of a history entry (`execution_status` in the jobs API).
#[derive(Debug, Clone, Default)]
pub struct ExecutionStatus {
    /// `success` or `error`.
    pub status_str: Option<String>,
    /// Equals success.
    pub completed: bool,
    /// The `[event, data]` pairs, in order.
    pub messages: Vec<StatusMessage>,
}

/// One `[event, data]` status message. The payloads of `execution_error`
/// and `execution_interrupted` are kept whole (the failure is read from
/// them); of the others only what the model uses is read (`timestamp`, and
/// `nodes` of `execution_cached`) and the rest is skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusMessage {
    /// `execution_start`, `execution_cached`, `execution_success`, ...
    pub event: String,
    /// `data.timestamp` (ms; floats truncated).
    pub timestamp: Option<i64>,
    /// `data.nodes` (`execution_cached`), numbers written out.
    pub nodes: Vec<String>,
    /// The whole payload of `execution_error` and `execution_interrupted`.
    pub payload: Option<Value>,
}

/// Events whose payload is kept whole.
const FULL_PAYLOAD: [&str; 2] = ["execution_error", "execution_interrupted"];

/// `data.timestamp` as the model reads it.
fn timestamp_of(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|x| x as i64))
}

/// `data.nodes` as the model reads it (non-strings skipped, numbers written out).
fn nodes_of(v: Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .into_iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A history body's entries in the server's order (see the module docs).
#[derive(Debug, Default)]
pub struct HistoryEntries(pub Vec<(String, HistoryItem)>);

/// An entry, or `None` for a value that is not one.
#[derive(Default)]
struct MaybeItem(Option<HistoryItem>);

/// A queue tuple, or `None` for a value that is not a list.
#[derive(Default)]
struct MaybeTuple(Option<QueueTuple>);

/// A `status`, or `None` for a value that is not an object.
#[derive(Default)]
struct MaybeStatus(Option<ExecutionStatus>);

impl<'de> Deserialize<'de> for HistoryEntries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HistoryEntries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of history entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HistoryEntries, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((id, MaybeItem(item))) = map.next_entry::<String, MaybeItem>()? {
                    if let Some(item) = item {
                        out.push((id, item));
                    }
                }
                Ok(HistoryEntries(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for HistoryItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MaybeItem::deserialize(d)?
            .0
            .ok_or_else(|| de::Error::custom("not a history entry (no queue tuple under `prompt`)"))
    }
}

impl<'de> Deserialize<'de> for MaybeItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeItem;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a history entry")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeItem, A::Error> {
                let (mut prompt, mut outputs, mut status) = (None, NodeOutputs::default(), None);
                while let Some(key) = map.next_key::<super::Key<'de>>()? {
                    match key.as_str() {
                        "prompt" => prompt = map.next_value::<MaybeTuple>()?.0,
                        "outputs" => outputs = map.next_value()?,
                        "status" => status = map.next_value::<MaybeStatus>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(MaybeItem(prompt.map(|prompt| HistoryItem {
                    prompt,
                    outputs,
                    status,
                })))
            }
            super::default_for_non_objects!(MaybeItem);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for MaybeTuple {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeTuple;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a queue tuple")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<MaybeTuple, A::Error> {
                QueueTuple::from_seq(seq, false).map(|t| MaybeTuple(Some(t)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeTuple, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeTuple(None))
            }
            super::default_for_scalars!(MaybeTuple);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ExecutionStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MaybeStatus::deserialize(d)?
            .0
            .ok_or_else(|| de::Error::custom("an execution status is an object"))
    }
}

impl<'de> Deserialize<'de> for MaybeStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeStatus;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an execution status")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeStatus, A::Error> {
                let mut out = ExecutionStatus::default();
                while let Some(key) = map.next_key::<super::Key<'de>>()? {
                    match key.as_str() {
                        "status_str" => {
                            out.status_str = match map.next_value::<Value>()? {
                                Value::String(s) => Some(s),
                                _ => None,
                            }
                        }
                        "completed" => {
                            out.completed = map.next_value::<Value>()?.as_bool().unwrap_or(false);
                        }
                        "messages" => out.messages = map.next_value::<Messages>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(MaybeStatus(Some(out)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MaybeStatus, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStatus(None))
            }
            super::default_for_scalars!(MaybeStatus);
        }
        d.deserialize_any(V)
    }
}

/// `status.messages`: `[event, data]` pairs; a pair of another shape is
/// skipped, a value that is not a list is no messages.
#[derive(Default)]
struct Messages(Vec<StatusMessage>);

/// One pair, or `None` for a value of another shape.
#[derive(Default)]
struct MaybeMessage(Option<StatusMessage>);

/// What is read from a payload that is not kept whole.
#[derive(Default)]
struct Light {
    timestamp: Option<i64>,
    nodes: Vec<String>,
}

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Messages;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("status messages")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Messages, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some(MaybeMessage(m)) = seq.next_element()? {
                    out.extend(m);
                }
                Ok(Messages(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Messages, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Messages::default())
            }
            super::default_for_scalars!(Messages);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for MaybeMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeMessage;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an [event, data] pair")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MaybeMessage, A::Error> {
                let event = match seq.next_element::<Value>()? {
                    Some(Value::String(e)) => e,
                    Some(_) => {
                        while seq.next_element::<IgnoredAny>()?.is_some() {}
                        return Ok(MaybeMessage(None));
                    }
                    None => return Ok(MaybeMessage(None)),
                };
                let message = if FULL_PAYLOAD.contains(&event.as_str()) {
                    seq.next_element::<Value>()?.map(|data| StatusMessage {
                        timestamp: data.get("timestamp").and_then(timestamp_of),
                        nodes: Vec::new(),
                        payload: Some(data),
                        event,
                    })
                } else {
                    seq.next_element::<Light>()?.map(|l| StatusMessage {
                        event,
                        timestamp: l.timestamp,
                        nodes: l.nodes,
                        payload: None,
                    })
                };
                // A pair has two elements; anything longer is not a pair.
                let mut longer = false;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    longer = true;
                }
                Ok(MaybeMessage(message.filter(|_| !longer)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeMessage, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeMessage(None))
            }
            super::default_for_scalars!(MaybeMessage);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Light {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Light;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status message's data")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Light, A::Error> {
                let mut out = Light::default();
                while let Some(key) = map.next_key::<super::Key<'de>>()? {
                    match key.as_str() {
                        "timestamp" => out.timestamp = timestamp_of(&map.next_value::<Value>()?),
                        "nodes" => out.nodes = nodes_of(map.next_value::<Value>()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
            super::default_for_non_objects!(Light);
        }
        d.deserialize_any(V)
    }
}
