//! Progress of running jobs, as workers report it in their heartbeats
//! (`{"progress": {"percent", "node", "node_class", "prompt_id"}}`).
//!
//! Kept in memory only: it is a display hint for the dashboard, replaced by
//! every heartbeat and dropped when the attempt ends; a restarted queue shows
//! it again from the next heartbeat. The type itself is `comfy_queue_api::Progress`;
//! this module validates it ([`from_json`]) and keeps it ([`ProgressBoard`]).

use std::collections::HashMap;
use std::sync::RwLock;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::input::{InputError, Problem};

/// The `progress` of a heartbeat (the wire type, shared with workers).
pub use comfy_queue_api::Progress;

/// Longest node id, class or prompt id accepted.
const MAX_TEXT: usize = 200;

/// Reads the `progress` object of a heartbeat body into a [`Progress`]; errors name the field.
pub fn from_json(v: &Value) -> Result<Progress, InputError> {
    let Some(obj) = v.as_object() else {
        return Err(InputError::new(
            "progress",
            Problem::Type,
            "`progress` must be an object",
        ));
    };
    // A worker's arithmetic must not cost it its lease: out-of-range numbers are
    // clamped and null means "unknown"; only a wrong type is refused.
    let percent = match obj.get("percent") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64().map(|p| p.clamp(0.0, 100.0)),
        Some(_) => {
            return Err(InputError::new(
                "progress.percent",
                Problem::Value,
                "`progress.percent` must be a number from 0 to 100",
            ));
        }
    };
    Ok(Progress {
        percent,
        node: text(obj, "node")?,
        node_class: text(obj, "node_class")?,
        prompt_id: text(obj, "prompt_id")?,
    })
}

fn text(obj: &Map<String, Value>, key: &'static str) -> Result<Option<String>, InputError> {
    let field = match key {
        "node" => "progress.node",
        "node_class" => "progress.node_class",
        _ => "progress.prompt_id",
    };
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_TEXT => Ok(Some(s.clone())),
        Some(_) => Err(InputError::new(
            field,
            Problem::Value,
            format!("`{field}` must be a string of at most {MAX_TEXT} characters"),
        )),
    }
}

/// Progress per running job.
#[derive(Debug, Default)]
pub struct ProgressBoard {
    by_job: RwLock<HashMap<Uuid, Progress>>,
}

impl ProgressBoard {
    /// Records the latest progress of a job.
    pub fn set(&self, job: Uuid, p: Progress) {
        if let Ok(mut m) = self.by_job.write() {
            m.insert(job, p);
        }
    }

    /// The latest progress of a job, if its current attempt reported one.
    pub fn get(&self, job: Uuid) -> Option<Progress> {
        self.by_job.read().ok().and_then(|m| m.get(&job).cloned())
    }

    /// Forgets a job's progress (its attempt ended or a new one began).
    pub fn clear(&self, job: Uuid) {
        if let Ok(mut m) = self.by_job.write() {
            m.remove(&job);
        }
    }
}
