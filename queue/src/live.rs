//! Live ComfyUI events of running jobs (`POST /api/workers/events`, relayed on `/ws` as
//! `comfy_event`): the limits of a batch, the leases this process handed out (so a batch is
//! fenced without a store write), and the progress the events imply.
//!
//! Memory only, like the progress board: nothing here is stored. A restarted queue knows no
//! lease until the worker's next heartbeat or events batch, which is then checked against the
//! store once (a heartbeat of the lease) and remembered.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::clock::Millis;
use crate::input::{InputError, Problem};

/// Most events one batch may carry (more: 413).
pub const MAX_BATCH_EVENTS: usize = 256;
/// Body limit of `POST /api/workers/events`.
pub const EVENTS_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Longest `preview_base64` of one event (about 3 MiB of image).
pub const MAX_PREVIEW_BASE64: usize = 4 * 1024 * 1024;
/// Longest event name (`event` tag) accepted.
const MAX_EVENT_NAME: usize = 64;

/// Checks one event of a batch (`index` names it in the error): `event` must be an object
/// whose `event` tag is a short string, `preview_base64` at most [`MAX_PREVIEW_BASE64`].
pub fn validate_event(
    index: usize,
    event: &Value,
    preview: Option<&str>,
) -> Result<(), InputError> {
    let field = format!("events[{index}].event");
    let Some(obj) = event.as_object() else {
        return Err(InputError::new(
            &field,
            Problem::Type,
            format!("`{field}` must be an object"),
        ));
    };
    match obj.get("event").and_then(Value::as_str) {
        Some(name) if !name.is_empty() && name.len() <= MAX_EVENT_NAME => {}
        _ => {
            return Err(InputError::new(
                format!("{field}.event"),
                Problem::Value,
                format!("`{field}.event` must be the event's name (1-{MAX_EVENT_NAME} characters)"),
            ));
        }
    }
    if preview.is_some_and(|p| p.len() > MAX_PREVIEW_BASE64) {
        return Err(InputError::too_large(
            &format!("events[{index}].preview_base64"),
            MAX_PREVIEW_BASE64,
        ));
    }
    Ok(())
}

/// What the queue makes of a running job's events so far: shown in every relayed
/// `comfy_event` (`data.progress`) and written to the progress board.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LiveProgress {
    /// The node running now.
    pub node: Option<String>,
    /// Its class (from the workflow), when known.
    pub node_class: Option<String>,
    /// The running node's step counter (`progress` value), when it reported one.
    pub value: Option<f64>,
    /// Its maximum.
    pub max: Option<f64>,
    /// Nodes finished (executed or cached).
    pub nodes_done: u32,
    /// Nodes in the workflow, when known.
    pub nodes_total: Option<u32>,
    /// 0-100 over the whole prompt, when the node count is known.
    pub percent: Option<f64>,
}

/// Follows one attempt's events.
#[derive(Debug, Default)]
struct Tracker {
    classes: HashMap<String, String>,
    done: BTreeSet<String>,
    current: Option<String>,
    value: Option<f64>,
    max: Option<f64>,
    finished: bool,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Tracker {
    fn start_node(&mut self, node: String) {
        if self.current.as_ref() != Some(&node) {
            if let Some(prev) = self.current.take() {
                self.done.insert(prev);
            }
            self.current = Some(node);
            self.value = None;
            self.max = None;
        }
    }

    /// Takes the normalized event (`{"event": "progress", ...}`) into account.
    fn apply(&mut self, e: &Value) {
        match e.get("event").and_then(Value::as_str).unwrap_or_default() {
            "execution_start" => {
                self.done.clear();
                self.current = None;
                self.value = None;
                self.max = None;
                self.finished = false;
            }
            "execution_cached" => {
                if let Some(nodes) = e.get("nodes").and_then(Value::as_array) {
                    self.done
                        .extend(nodes.iter().filter_map(Value::as_str).map(str::to_owned));
                }
            }
            "executing" => match text(e, "node") {
                Some(n) => self.start_node(n),
                None => {
                    if let Some(prev) = self.current.take() {
                        self.done.insert(prev);
                    }
                }
            },
            "progress" => {
                if let Some(n) = text(e, "node") {
                    self.start_node(n);
                }
                self.value = e.get("value").and_then(Value::as_f64);
                self.max = e.get("max").and_then(Value::as_f64);
            }
            "progress_state" => {
                let Some(nodes) = e.get("nodes").and_then(Value::as_object) else {
                    return;
                };
                for (id, p) in nodes {
                    match p.get("state").and_then(Value::as_str) {
                        Some("finished") => {
                            self.done.insert(id.clone());
                        }
                        Some("running") => {
                            self.start_node(id.clone());
                            let max = p.get("max").and_then(Value::as_f64);
                            // A node that has not counted a step yet says 0 of 1.
                            if max.is_some_and(|m| m > 1.0) || self.max.is_none() {
                                self.value = p.get("value").and_then(Value::as_f64);
                                self.max = max;
                            }
                        }
                        _ => {}
                    }
                }
            }
            "executed" => {
                if let Some(n) = text(e, "node") {
                    self.done.insert(n);
                }
            }
            "execution_success" => {
                self.done.extend(self.classes.keys().cloned());
                if let Some(prev) = self.current.take() {
                    self.done.insert(prev);
                }
                self.finished = true;
            }
            _ => {}
        }
    }

    fn snapshot(&self) -> LiveProgress {
        let total = (!self.classes.is_empty()).then_some(self.classes.len());
        let done = match total {
            Some(t) => self.done.len().min(t),
            None => self.done.len(),
        };
        let running = self
            .current
            .as_ref()
            .filter(|c| !self.done.contains(*c))
            .and(self.value.zip(self.max))
            .filter(|(_, m)| *m > 0.0)
            .map(|(v, m)| (v / m).clamp(0.0, 1.0))
            .unwrap_or(0.0);
        let percent = match total {
            _ if self.finished => Some(100.0),
            Some(t) => Some((((done as f64 + running) / t as f64) * 100.0).clamp(0.0, 100.0)),
            None => None,
        };
        LiveProgress {
            node: self.current.clone(),
            node_class: self
                .current
                .as_ref()
                .and_then(|c| self.classes.get(c).cloned()),
            value: self.value,
            max: self.max,
            nodes_done: u32::try_from(done).unwrap_or(u32::MAX),
            nodes_total: total.map(|t| u32::try_from(t).unwrap_or(u32::MAX)),
            percent,
        }
    }
}

/// A lease this process knows about.
#[derive(Debug)]
struct Lease {
    token: String,
    attempt: u32,
    user_id: String,
    expires_at: Millis,
    tracker: Tracker,
}

/// How a batch's lease compares with what this process knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseCheck {
    /// The lease is live and the batch's: the job's owner.
    Held {
        /// Owner of the job (who may watch its events).
        user_id: String,
    },
    /// Not known here (e.g. the queue restarted since the claim): ask the store.
    Unknown,
    /// Another token, another attempt, or an expired lease.
    Lost,
}

/// The leases of running jobs this process handed out or verified, with their event
/// trackers.
#[derive(Debug, Default)]
pub struct LiveJobs {
    by_job: Mutex<HashMap<Uuid, Lease>>,
}

/// The node classes of an API-format workflow (node id → `class_type`).
pub fn node_classes(workflow: &Value) -> HashMap<String, String> {
    workflow
        .as_object()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|(id, n)| {
                    let class = n.get("class_type")?.as_str()?;
                    Some((id.clone(), class.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

impl LiveJobs {
    /// Remembers a lease handed out (or verified in the store).
    pub fn leased(
        &self,
        job: Uuid,
        token: &str,
        attempt: u32,
        user_id: &str,
        expires_at: Millis,
        classes: HashMap<String, String>,
    ) {
        if let Ok(mut m) = self.by_job.lock() {
            m.insert(
                job,
                Lease {
                    token: token.to_owned(),
                    attempt,
                    user_id: user_id.to_owned(),
                    expires_at,
                    tracker: Tracker {
                        classes,
                        ..Tracker::default()
                    },
                },
            );
        }
    }

    /// A heartbeat with `token` renewed the lease until `expires_at`.
    pub fn renewed(&self, job: Uuid, token: &str, expires_at: Millis) {
        if let Ok(mut m) = self.by_job.lock()
            && let Some(l) = m.get_mut(&job)
        {
            if bool::from(l.token.as_bytes().ct_eq(token.as_bytes())) {
                l.expires_at = expires_at;
            } else {
                // The store accepted another token: this entry is stale.
                m.remove(&job);
            }
        }
    }

    /// Forgets a job (its attempt ended).
    pub fn forget(&self, job: Uuid) {
        if let Ok(mut m) = self.by_job.lock() {
            m.remove(&job);
        }
    }

    /// Whether `token` and `attempt` hold the live lease of `job` at `now`.
    pub fn check(&self, job: Uuid, token: &str, attempt: u32, now: Millis) -> LeaseCheck {
        let Ok(m) = self.by_job.lock() else {
            return LeaseCheck::Unknown;
        };
        match m.get(&job) {
            None => LeaseCheck::Unknown,
            Some(l) if l.expires_at <= now => LeaseCheck::Unknown,
            Some(l) => {
                let same = bool::from(l.token.as_bytes().ct_eq(token.as_bytes()));
                if same && l.attempt == attempt {
                    LeaseCheck::Held {
                        user_id: l.user_id.clone(),
                    }
                } else if same {
                    LeaseCheck::Lost
                } else {
                    // Perhaps a lease taken after a restart that this process did not see:
                    // the store decides.
                    LeaseCheck::Unknown
                }
            }
        }
    }

    /// Applies `events` of `job` in order; the progress after each (empty when the job is
    /// not known).
    pub fn apply<'a>(
        &self,
        job: Uuid,
        events: impl IntoIterator<Item = &'a Value>,
    ) -> Vec<LiveProgress> {
        let Ok(mut m) = self.by_job.lock() else {
            return Vec::new();
        };
        let Some(l) = m.get_mut(&job) else {
            return Vec::new();
        };
        events
            .into_iter()
            .map(|e| {
                l.tracker.apply(e);
                l.tracker.snapshot()
            })
            .collect()
    }

    /// Number of leases known (for tests and metrics).
    pub fn len(&self) -> usize {
        self.by_job.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no lease is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jobs_with(classes: &[(&str, &str)]) -> (LiveJobs, Uuid) {
        let live = LiveJobs::default();
        let id = Uuid::new_v4();
        let classes = classes
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        live.leased(id, "tok", 1, "alice", 1_000, classes);
        (live, id)
    }

    #[test]
    fn the_lease_is_checked_by_token_attempt_and_expiry() {
        let (live, id) = jobs_with(&[]);
        assert_eq!(
            live.check(id, "tok", 1, 10),
            LeaseCheck::Held {
                user_id: "alice".into()
            }
        );
        assert_eq!(live.check(id, "tok", 2, 10), LeaseCheck::Lost);
        assert_eq!(live.check(id, "other", 1, 10), LeaseCheck::Unknown);
        assert_eq!(live.check(id, "tok", 1, 1_000), LeaseCheck::Unknown);
        live.renewed(id, "tok", 5_000);
        assert!(matches!(
            live.check(id, "tok", 1, 1_000),
            LeaseCheck::Held { .. }
        ));
        live.renewed(id, "another", 9_000);
        assert_eq!(live.check(id, "tok", 1, 1_000), LeaseCheck::Unknown);
        assert!(live.is_empty());
        assert_eq!(live.check(Uuid::new_v4(), "tok", 1, 0), LeaseCheck::Unknown);
    }

    #[test]
    fn events_move_the_progress() {
        let (live, id) = jobs_with(&[("1", "EmptyImage"), ("2", "KSampler"), ("3", "SaveImage")]);
        let events = [
            json!({"event": "execution_start", "prompt_id": "p"}),
            json!({"event": "execution_cached", "prompt_id": "p", "nodes": []}),
            json!({"event": "executing", "prompt_id": "p", "node": "1"}),
            json!({"event": "executing", "prompt_id": "p", "node": "2"}),
            json!({"event": "progress", "prompt_id": "p", "node": "2", "value": 5.0, "max": 10.0}),
            json!({"event": "executed", "prompt_id": "p", "node": "3", "outputs": []}),
            json!({"event": "execution_success", "prompt_id": "p"}),
        ];
        let p = live.apply(id, &events);
        assert_eq!(p.len(), events.len());
        assert_eq!(p[2].node.as_deref(), Some("1"));
        assert_eq!(p[2].node_class.as_deref(), Some("EmptyImage"));
        assert_eq!(p[2].nodes_done, 0);
        assert_eq!(p[3].nodes_done, 1);
        assert_eq!(p[4].node_class.as_deref(), Some("KSampler"));
        assert_eq!((p[4].value, p[4].max), (Some(5.0), Some(10.0)));
        assert_eq!(p[4].nodes_total, Some(3));
        assert_eq!(p[4].percent, Some(50.0));
        assert_eq!(p[6].percent, Some(100.0));
        assert_eq!(p[6].nodes_done, 3);
    }

    #[test]
    fn progress_state_names_finished_and_running_nodes() {
        let (live, id) = jobs_with(&[("1", "A"), ("2", "B")]);
        let p = live.apply(
            id,
            &[
                json!({"event": "progress_state", "prompt_id": "p", "nodes": {
                    "1": {"value": 1.0, "max": 1.0, "state": "finished"},
                    "2": {"value": 3.0, "max": 4.0, "state": "running"},
                }}),
            ],
        );
        assert_eq!(p[0].node.as_deref(), Some("2"));
        assert_eq!(p[0].nodes_done, 1);
        assert_eq!(p[0].percent, Some(87.5));
    }

    #[test]
    fn events_are_validated() {
        assert!(validate_event(0, &json!({"event": "progress"}), None).is_ok());
        assert!(validate_event(0, &json!([1]), None).is_err());
        assert!(validate_event(0, &json!({"event": ""}), None).is_err());
        assert!(validate_event(0, &json!({"value": 1}), None).is_err());
        let big = "A".repeat(MAX_PREVIEW_BASE64 + 1);
        assert!(validate_event(3, &json!({"event": "preview"}), Some(&big)).is_err());
    }
}
