use super::outputs::outputs_from_map;
use super::{i64_field, id_list, str_field};
use crate::model::job::{Failure, Interruption, JobState, JobStatus};
use crate::wire::history::{ExecutionStatus, HistoryItem};
use serde::Deserialize;
use serde_json::Value;

/// A `/history` entry: the prompt id and its item.
pub type HistoryEntry = (String, HistoryItem);

/// A `/history` or `/history/{id}` body → entries in the server's order.
/// Entries without the history shape are skipped, never fatal; a body that
/// is not a JSON object is an error.
pub fn history_entries(body: &Value) -> Result<Vec<HistoryEntry>, serde_json::Error> {
    let map = body.as_object().ok_or_else(|| {
        <serde_json::Error as serde::de::Error>::custom("history is not an object")
    })?;
    Ok(map
        .iter()
        .filter_map(|(id, v)| {
            HistoryItem::deserialize(v)
                .ok()
                .map(|item| (id.clone(), item))
        })
        .collect())
}

/// [`history_entries`] straight from the response bytes (the fast path the
/// adapter uses).
pub fn history_entries_from_slice(body: &[u8]) -> Result<Vec<HistoryEntry>, serde_json::Error> {
    Ok(serde_json::from_slice::<crate::wire::history::HistoryEntries>(body)?.0)
}

/// An `execution_error` payload → [`Failure`].
pub fn failure_from(v: &Value) -> Failure {
    Failure {
        node_id: str_field(v, "node_id"),
        node_type: str_field(v, "node_type"),
        exception_type: str_field(v, "exception_type"),
        exception_message: str_field(v, "exception_message"),
        traceback: id_list(v.get("traceback")),
        executed: id_list(v.get("executed")),
        current_inputs: v.get("current_inputs").cloned().unwrap_or(Value::Null),
        timestamp_ms: i64_field(v, "timestamp"),
    }
}

/// An `execution_interrupted` payload → [`Interruption`].
pub fn interruption_from(v: &Value) -> Interruption {
    Interruption {
        node_id: str_field(v, "node_id"),
        node_type: str_field(v, "node_type"),
        executed: id_list(v.get("executed")),
        timestamp_ms: i64_field(v, "timestamp"),
    }
}

/// What the status messages of a finished prompt say.
#[derive(Debug, Default)]
pub(crate) struct MessageFacts {
    pub(crate) started_at_ms: Option<i64>,
    pub(crate) finished_at_ms: Option<i64>,
    pub(crate) cached_nodes: Vec<String>,
    pub(crate) failure: Option<Failure>,
    pub(crate) interruption: Option<Interruption>,
}

pub(crate) fn message_facts(status: Option<&ExecutionStatus>) -> MessageFacts {
    let mut facts = MessageFacts::default();
    for m in status.map(|s| s.messages.as_slice()).unwrap_or_default() {
        let ts = m.timestamp;
        let payload = m.payload.as_ref().unwrap_or(&Value::Null);
        match m.event.as_str() {
            "execution_start" => facts.started_at_ms = ts,
            "execution_cached" => facts.cached_nodes = m.nodes.clone(),
            "execution_success" => facts.finished_at_ms = ts,
            "execution_error" => {
                facts.finished_at_ms = ts;
                facts.failure = Some(failure_from(payload));
            }
            "execution_interrupted" => {
                facts.finished_at_ms = ts;
                facts.interruption = Some(interruption_from(payload));
            }
            _ => {}
        }
    }
    facts
}

/// The state a finished prompt's status gives, as ComfyUI's jobs API reads
/// it: `success` → succeeded; `error` → interrupted when an interrupt is
/// recorded, else failed; anything else → succeeded.
pub(crate) fn finished_state(status: Option<&ExecutionStatus>, facts: &MessageFacts) -> JobState {
    match status.and_then(|s| s.status_str.as_deref()) {
        Some("error") if facts.interruption.is_some() => JobState::Interrupted,
        Some("error") => JobState::Failed,
        _ => JobState::Succeeded,
    }
}

/// A history entry → [`JobStatus`] (its strings move into the model).
pub fn job_from_history(prompt_id: String, item: HistoryItem) -> JobStatus {
    let facts = message_facts(item.status.as_ref());
    let state = finished_state(item.status.as_ref(), &facts);
    let outputs = outputs_from_map(item.outputs, &facts.cached_nodes);
    let extra = &item.prompt.extra_data;
    JobStatus {
        prompt_id,
        state,
        number: item.prompt.number,
        created_at_ms: extra.create_time.map(|t| t as i64),
        started_at_ms: facts.started_at_ms,
        finished_at_ms: facts.finished_at_ms,
        workflow_id: extra.workflow_id(),
        outputs_count: Some(super::count_outputs(&outputs)),
        cached_nodes: facts.cached_nodes,
        failure: facts.failure,
        interruption: facts.interruption,
        outputs,
    }
}
