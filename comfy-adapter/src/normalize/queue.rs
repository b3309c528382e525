use super::id_list;
use crate::model::queue::{QueueEntry, QueueSnapshot};
use crate::wire::queue::QueueWire;
use crate::wire::tuple::QueueTuple;
use serde_json::Value;

/// A queue tuple → entry; `None` when it has no number or id.
pub fn queue_entry(tuple: &QueueTuple) -> Option<QueueEntry> {
    let extra = &tuple.extra_data;
    Some(QueueEntry {
        number: tuple.number?,
        prompt_id: tuple.prompt_id.clone()?,
        prompt: tuple.graph(),
        client_id: extra.client_id.clone(),
        created_at_ms: extra.create_time.map(|t| t as i64),
        outputs_to_execute: id_list(Some(&Value::Array(tuple.outputs_to_execute.clone()))),
        workflow_id: extra.workflow_id(),
    })
}

/// `GET /queue` → snapshot; malformed tuples are skipped.
pub fn queue_snapshot(q: &QueueWire) -> QueueSnapshot {
    QueueSnapshot {
        running: q.queue_running.iter().filter_map(queue_entry).collect(),
        pending: q.queue_pending.iter().filter_map(queue_entry).collect(),
    }
}
