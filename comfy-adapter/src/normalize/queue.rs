use super::history::workflow_id_of_extra;
use super::{i64_field, id_list};
use crate::model::queue::{QueueEntry, QueueSnapshot};
use crate::wire::queue::QueueWire;
use serde_json::Value;

/// A queue tuple `[number, prompt_id, prompt, extra_data, outputs]` → entry.
/// `None` when the tuple is too short or its id is not a string.
pub fn queue_entry(tuple: &[Value]) -> Option<QueueEntry> {
    let number = tuple.first()?.as_f64()?;
    let prompt_id = tuple.get(1)?.as_str()?.to_owned();
    let prompt = tuple
        .get(2)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let extra = tuple.get(3);
    Some(QueueEntry {
        number,
        prompt_id,
        prompt,
        client_id: extra
            .and_then(|e| e.get("client_id"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        created_at_ms: extra.and_then(|e| i64_field(e, "create_time")),
        outputs_to_execute: id_list(tuple.get(4)),
        workflow_id: extra.and_then(workflow_id_of_extra),
    })
}

/// `GET /queue` → snapshot; malformed tuples are skipped.
pub fn queue_snapshot(q: &QueueWire) -> QueueSnapshot {
    QueueSnapshot {
        running: q
            .queue_running
            .iter()
            .filter_map(|t| queue_entry(t))
            .collect(),
        pending: q
            .queue_pending
            .iter()
            .filter_map(|t| queue_entry(t))
            .collect(),
    }
}
