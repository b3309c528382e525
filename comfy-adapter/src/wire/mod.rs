//! Wire types: the JSON each ComfyUI line sends, field for field.
//!
//! These mirror the recordings in `fixtures/`. Fields that only some lines
//! send are `Option` and say which lines in their docs; `crate::normalize`
//! turns them into the model in `crate::model`. Deserializing them never
//! panics: arbitrary JSON gives a value or a `serde_json::Error`.

pub mod history;
pub mod jobs;
pub mod outputs;
pub mod prompt;
pub mod queue;
pub mod system;
pub mod tuple;
pub mod userdata;
pub mod ws;

use serde::Deserialize;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;
use std::marker::PhantomData;

/// A JSON object read as `(key, T)` pairs in document order; values that do
/// not have `T`'s shape are skipped instead of failing the whole object (one
/// odd history entry must not hide the others).
#[derive(Debug)]
pub struct LenientEntries<T>(pub Vec<(String, T)>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for LenientEntries<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<T>(PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for EntriesVisitor<T> {
            type Value = LenientEntries<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((key, raw)) = map.next_entry::<String, Box<RawValue>>()? {
                    if let Ok(v) = serde_json::from_str::<T>(raw.get()) {
                        out.push((key, v));
                    }
                }
                Ok(LenientEntries(out))
            }
        }
        d.deserialize_map(EntriesVisitor(PhantomData))
    }
}
