//! The node catalogue (`/object_info`): every node class the server knows.
//!
//! A full catalogue is large (1.4 MB with core nodes only, ten times that with
//! custom node packs), and a caller usually needs a handful of classes. The
//! catalogue is therefore split into classes at scan speed and each class is
//! parsed only when asked for.

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Node classes in the server's order, each kept as raw JSON until used.
#[derive(Debug, Clone, Default)]
pub struct NodeCatalogue {
    classes: Vec<(String, Box<RawValue>)>,
    index: HashMap<String, usize>,
}

impl NodeCatalogue {
    /// Splits an `/object_info` body into classes.
    pub fn from_slice(body: &[u8]) -> Result<Self, serde_json::Error> {
        let entries: RawEntries = serde_json::from_slice(body)?;
        Ok(Self::from_entries(entries.0))
    }

    fn from_entries(classes: Vec<(String, Box<RawValue>)>) -> Self {
        let index = classes
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), i))
            .collect();
        NodeCatalogue { classes, index }
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether there are none (an unknown single class answers `{}`).
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// Whether the server knows `class`.
    pub fn contains(&self, class: &str) -> bool {
        self.index.contains_key(class)
    }

    /// Class names in the server's order.
    pub fn class_names(&self) -> impl Iterator<Item = &str> {
        self.classes.iter().map(|(n, _)| n.as_str())
    }

    /// One class's description as raw JSON.
    pub fn raw(&self, class: &str) -> Option<&RawValue> {
        self.index.get(class).map(|&i| &*self.classes[i].1)
    }

    /// One class's description, parsed (`input`, `output`, `category`, ...).
    pub fn node(&self, class: &str) -> Option<Result<Map<String, Value>, serde_json::Error>> {
        self.raw(class).map(|raw| serde_json::from_str(raw.get()))
    }
}

/// A JSON object as `(key, raw value)` pairs in document order: one scan,
/// one copy of each value's bytes.
struct RawEntries(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for RawEntries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = RawEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object_info object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntries, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push(entry);
                }
                Ok(RawEntries(out))
            }
        }
        d.deserialize_map(RawVisitor)
    }
}
