//! Progress of running jobs, as workers report it in their heartbeats
//! (`{"progress": {"percent", "node", "node_class", "prompt_id"}}`).
//!
//! Kept in memory only: it is a display hint for the dashboard, replaced by
//! every heartbeat and dropped when the attempt ends; a restarted queue shows
//! it again from the next heartbeat. The type itself is `comfy_queue_api::Progress` (read
//! from the heartbeat body by serde); this module checks it ([`validate`], [`type_error`])
//! and keeps it ([`ProgressBoard`]).

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use serde_json::Value;
use uuid::Uuid;

use crate::input::{InputError, Problem};
use crate::tap::Tap;

/// The `progress` of a heartbeat (the wire type, shared with workers).
pub use comfy_queue_api::Progress;

/// Longest node id, class or prompt id accepted.
const MAX_TEXT: usize = 200;

/// The problem with a `progress` field that did not deserialize (`path` is `progress` or
/// `progress.<field>`).
pub fn type_error(path: &str, _found: &Value) -> InputError {
    match path {
        "progress" => InputError::new(path, Problem::Type, "`progress` must be an object"),
        "progress.percent" => InputError::new(
            path,
            Problem::Value,
            "`progress.percent` must be a number from 0 to 100",
        ),
        _ => text_error(path),
    }
}

fn text_error(field: &str) -> InputError {
    InputError::new(
        field,
        Problem::Value,
        format!("`{field}` must be a string of at most {MAX_TEXT} characters"),
    )
}

/// Checks a heartbeat's [`Progress`] as read from the body: a worker's arithmetic must not
/// cost it its lease, so `percent` is clamped to 0–100 (null means "unknown"); texts longer
/// than 200 characters are refused.
pub fn validate(mut p: Progress) -> Result<Progress, InputError> {
    p.percent = p.percent.map(|v| v.clamp(0.0, 100.0));
    for (field, text) in [
        ("progress.node", &p.node),
        ("progress.node_class", &p.node_class),
        ("progress.prompt_id", &p.prompt_id),
    ] {
        if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
            return Err(text_error(field));
        }
    }
    Ok(p)
}

/// A change to the board: a job's latest progress, or `None` when it was cleared.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressChange {
    /// The job.
    pub job: Uuid,
    /// Its progress now; `None`: cleared (its attempt ended or a new one began).
    pub progress: Option<Progress>,
}

/// Progress per running job.
///
/// With several replicas (on Redis), [`ProgressBoard::tap`] sends every change made here to
/// the others, which take it with [`ProgressBoard::apply`]: a job's progress shows on
/// every replica, whichever one its worker's heartbeats reach.
#[derive(Debug, Default)]
pub struct ProgressBoard {
    by_job: RwLock<HashMap<Uuid, Progress>>,
    tap: OnceLock<Tap<ProgressChange>>,
}

impl ProgressBoard {
    /// Records the latest progress of a job.
    pub fn set(&self, job: Uuid, p: Progress) {
        self.send(ProgressChange {
            job,
            progress: Some(p.clone()),
        });
        if let Ok(mut m) = self.by_job.write() {
            m.insert(job, p);
        }
    }

    fn send(&self, change: ProgressChange) {
        if let Some(tap) = self.tap.get() {
            // Full: the other replicas show older progress until the next heartbeat.
            tap.send(change);
        }
    }

    /// Takes a change another replica made (not sent on).
    pub fn apply(&self, change: ProgressChange) {
        if let Ok(mut m) = self.by_job.write() {
            match change.progress {
                Some(p) => m.insert(change.job, p),
                None => m.remove(&change.job),
            };
        }
    }

    /// Send every later change to `tap` as well; `false` if set already.
    pub fn tap(&self, tap: Tap<ProgressChange>) -> bool {
        self.tap.set(tap).is_ok()
    }

    /// The latest progress of a job, if its current attempt reported one.
    pub fn get(&self, job: Uuid) -> Option<Progress> {
        self.by_job.read().ok().and_then(|m| m.get(&job).cloned())
    }

    /// Forgets a job's progress (its attempt ended or a new one began).
    pub fn clear(&self, job: Uuid) {
        self.send(ProgressChange {
            job,
            progress: None,
        });
        if let Ok(mut m) = self.by_job.write() {
            m.remove(&job);
        }
    }
}
