//! Wire types: the JSON each ComfyUI line sends, field for field.
//!
//! These mirror the recordings in `fixtures/`. Fields that only some lines
//! send are `Option` and say which lines in their docs; `crate::normalize`
//! turns them into the model in `crate::model`. Deserializing them never
//! panics: arbitrary JSON gives a value or a `serde_json::Error`.

pub mod history;
pub mod jobs;
pub mod prompt;
pub mod queue;
pub mod system;
pub mod userdata;
pub mod ws;
