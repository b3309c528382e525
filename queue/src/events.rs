//! Live events for `/ws`: `{"type": "job_created"|"job_updated"|"job_deleted"|"comfy_event", "data", "timestamp"}`.

use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::tap::Tap;

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
///
/// With several replicas (on Redis), [`EventBus::tap`] sends every event published here to
/// the others as well, and [`EventBus::publish_local`] gives this process' sockets the
/// events the others published.
#[derive(Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    tap: OnceLock<Tap<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self {
            tx,
            tap: OnceLock::new(),
        }
    }
}

impl EventBus {
    /// Send to whoever listens, here and on the other replicas (no listener is fine).
    pub fn publish(&self, event: Event) {
        if let Some(tap) = self.tap.get()
            && tap.open()
        {
            tap.send(event.clone());
        }
        self.publish_local(event);
    }

    /// Send to this process' sockets only (an event another replica published).
    pub fn publish_local(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Whether any socket may listen (events are not even built otherwise): one here, or
    /// any on another replica while the bus's tap is open.
    pub fn has_listeners(&self) -> bool {
        self.tap.get().is_some_and(Tap::open) || self.tx.receiver_count() > 0
    }

    /// Send every later [`EventBus::publish`] to `tap` as well; `false` if set already.
    pub fn tap(&self, tap: Tap<Event>) -> bool {
        self.tap.set(tap).is_ok()
    }

    /// A new receiver.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
