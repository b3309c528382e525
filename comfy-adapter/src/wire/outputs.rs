//! Node UI outputs (`history[id].outputs`, jobs `outputs`, WebSocket
//! `executed.output`): node id → `{key: [item, ...]}`, where an item is a
//! file reference, a text, a flag (`animated`) or anything a custom node
//! returns.
//!
//! Read straight into these types rather than a `Value` tree: a history
//! page is mostly these entries, and file references are the common case.

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Node id → its UI dict, in the server's order. A node whose value is not
/// an object has an empty dict.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeOutputs(pub Vec<(String, UiDict)>);

/// One node's UI dict, in the server's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UiDict(pub Vec<(String, Vec<UiItem>)>);

/// One entry under a UI key. A key whose value is not a list holds one item.
#[derive(Debug, Clone, PartialEq)]
pub enum UiItem {
    /// `{"filename", "subfolder", "type"}`.
    File {
        /// File name.
        filename: String,
        /// Sub-folder (absent means "").
        subfolder: Option<String>,
        /// Folder type (absent means output).
        folder: Option<String>,
    },
    /// A string (PreviewAny text, ...).
    Text(String),
    /// A boolean (`animated`).
    Bool(bool),
    /// Anything else, kept as sent.
    Other(Value),
}

impl<'de> Deserialize<'de> for NodeOutputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeOutputs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("node outputs")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeOutputs, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((node, ui)) = map.next_entry::<String, UiDict>()? {
                    out.push((node, ui));
                }
                Ok(NodeOutputs(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Accepts any JSON value; only an object gives entries.
impl<'de> Deserialize<'de> for UiDict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UiDict;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a node's UI dict")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UiDict, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let items = map.next_value::<ItemList>()?.0;
                    out.push((key, items));
                }
                Ok(UiDict(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UiDict, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(UiDict::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<UiDict, E> {
                Ok(UiDict::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<UiDict, E> {
                Ok(UiDict::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<UiDict, E> {
                Ok(UiDict::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<UiDict, E> {
                Ok(UiDict::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<UiDict, E> {
                Ok(UiDict::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<UiDict, E> {
                Ok(UiDict::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of items, or one item standing alone.
struct ItemList(Vec<UiItem>);

impl<'de> Deserialize<'de> for ItemList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ItemList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("UI output items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ItemList, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element::<UiItem>()? {
                    out.push(item);
                }
                Ok(ItemList(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ItemList, A::Error> {
                Ok(ItemList(vec![ItemVisitor.visit_map(map)?]))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ItemList, E> {
                Ok(ItemList(vec![UiItem::Text(s.to_owned())]))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<ItemList, E> {
                Ok(ItemList(vec![UiItem::Bool(b)]))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ItemList, E> {
                Ok(ItemList(vec![UiItem::Other(n.into())]))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ItemList, E> {
                Ok(ItemList(vec![UiItem::Other(n.into())]))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<ItemList, E> {
                Ok(ItemList(vec![UiItem::Other(n.into())]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ItemList, E> {
                Ok(ItemList(vec![UiItem::Other(Value::Null)]))
            }
        }
        d.deserialize_any(V)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = UiItem;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a UI output item")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UiItem, A::Error> {
        // A file reference is the common case: read its three fields without
        // building a map; anything else falls back to a Value object.
        let mut fields: Map<String, Value> = Map::new();
        let (mut filename, mut subfolder, mut folder) = (None, None, None);
        while let Some(key) = map.next_key::<super::Key<'de>>()? {
            let value: Value = map.next_value()?;
            match (key.as_str(), value) {
                ("filename", Value::String(s)) => filename = Some(s),
                ("subfolder", Value::String(s)) => subfolder = Some(s),
                ("type", Value::String(s)) => folder = Some(s),
                (k, v) => {
                    fields.insert(k.to_owned(), v);
                }
            }
        }
        // Extra fields on a file reference (a custom node's `format`, ...) are
        // not part of the model; a map without a filename is kept whole.
        match filename {
            Some(filename) => Ok(UiItem::File {
                filename,
                subfolder,
                folder,
            }),
            None => {
                for (k, v) in [("subfolder", subfolder), ("type", folder)] {
                    if let Some(s) = v {
                        fields.insert(k.to_owned(), Value::String(s));
                    }
                }
                Ok(UiItem::Other(Value::Object(fields)))
            }
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UiItem, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(UiItem::Other(Value::Array(out)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<UiItem, E> {
        Ok(UiItem::Text(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<UiItem, E> {
        Ok(UiItem::Text(s))
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<UiItem, E> {
        Ok(UiItem::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<UiItem, E> {
        Ok(UiItem::Other(n.into()))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<UiItem, E> {
        Ok(UiItem::Other(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<UiItem, E> {
        Ok(UiItem::Other(n.into()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<UiItem, E> {
        Ok(UiItem::Other(Value::Null))
    }
}

impl<'de> Deserialize<'de> for UiItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemVisitor)
    }
}
