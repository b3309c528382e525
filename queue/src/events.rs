//! Live events for `/ws`: `{"type": "job_created"|"job_updated"|"job_deleted"|"comfy_event", "data", "timestamp"}`.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

/// One event, with the owner kept aside so per-user sockets can be filtered.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `job_created`, `job_updated`, `job_deleted`, `worker_updated` or `comfy_event`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The job response (never the workflow), or `{job_id}` for `job_deleted`.
    pub data: Value,
    /// RFC 3339 UTC.
    pub timestamp: String,
    /// Owner of the job, for filtering; not sent.
    #[serde(skip)]
    pub user_id: Option<String>,
    /// A `comfy_event`'s preview image (base64), added to `data` as `preview_base64` only
    /// for sockets opened with `?previews=true`; not sent otherwise.
    #[serde(skip)]
    pub preview: Option<Arc<str>>,
}

/// Fan-out of events to every open socket. Slow sockets skip what they missed.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self { tx }
    }
}

impl EventBus {
    /// Send to whoever listens (no listener is fine).
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Whether any socket listens (events are not even built otherwise).
    pub fn has_listeners(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// A new receiver.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
