//! Wire → model: every conversion from `crate::wire` to `crate::model`.
//!
//! Pure functions, no I/O, so the fixture snapshot tests, the property tests
//! and the benchmarks call exactly what the HTTP adapters call.

mod event;
mod history;
mod jobs;
mod outputs;
mod prompt;
mod queue;
mod system;
mod userdata;

pub use event::{EventError, parse_binary_frame, parse_text_frame};
pub use history::{
    HistoryEntry, failure_from, history_entries, history_entries_from_slice, interruption_from,
    job_from_history,
};
pub use jobs::{job_from_wire, job_page, state_from_jobs_status};
pub use outputs::{count_outputs, outputs_from_ui};
pub use prompt::{accepted, node_errors, rejection};
pub use queue::{queue_entry, queue_snapshot};
pub use system::{capabilities_from_features, parse_version, server_info};
pub use userdata::{file_info, tree_entry};

/// A full or single-class `/object_info` body → the catalogue (split into
/// classes, each parsed on demand).
pub fn object_info_from_slice(
    body: &[u8],
) -> Result<crate::model::catalogue::NodeCatalogue, serde_json::Error> {
    crate::model::catalogue::NodeCatalogue::from_slice(body)
}

use serde_json::Value;

/// A string field, or `None` when absent or not a string.
pub(crate) fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// An integer field (ms timestamps); floats are truncated.
pub(crate) fn i64_field(v: &Value, key: &str) -> Option<i64> {
    let f = v.get(key)?;
    f.as_i64().or_else(|| f.as_f64().map(|x| x as i64))
}

/// A list of strings (node id lists); non-strings are skipped, numbers are
/// written out.
pub(crate) fn id_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
