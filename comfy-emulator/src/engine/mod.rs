//! The emulated server's core: its state (queue, running prompt, history,
//! output cache), the WebSocket fan-out, and the calls the HTTP handlers
//! make; the executor that runs prompts lives in [`executor`].

mod breakpoints;
mod cache;
mod execution_list;
mod executor;
mod faults;
mod history;
mod outputs;
mod queue;
mod state;
#[cfg(test)]
mod tests;

pub use breakpoints::{Breakpoint, Hold, Step, Stopped};
pub use faults::Faults;
pub(crate) use history::{Done, Outcome};
pub(crate) use queue::Entry;
pub(crate) use state::State;

use super::catalogue::Classes;
use super::files::Files;
use super::profile::Profile;
use breakpoints::Breakpoints;
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, broadcast};

/// A validated prompt to queue.
#[derive(Debug)]
pub(crate) struct Submission {
    /// Prompt id.
    pub(crate) id: String,
    /// The graph.
    pub(crate) prompt: Map<String, Value>,
    /// `extra_data` as sent.
    pub(crate) extra_data: Map<String, Value>,
    /// Outputs to execute.
    pub(crate) outputs: Vec<String>,
    /// WebSocket client.
    pub(crate) client_id: Option<String>,
    /// Queue number, from [`Engine::number_for`].
    pub(crate) number: Value,
}

/// A WebSocket message: to one client (`Some(sid)`) or to all.
#[derive(Debug, Clone)]
pub struct WsMessage {
    /// The addressee.
    pub to: Option<String>,
    /// The JSON text.
    pub text: Arc<str>,
    /// When the emulator sent it (handed it to its sockets).
    pub at: std::time::Instant,
}

/// The shared core of one emulated server.
#[derive(Debug)]
pub(crate) struct Engine {
    /// Version and recorded answers.
    pub(crate) profile: Profile,
    /// Node classes.
    pub(crate) classes: Classes,
    /// Time each node takes.
    pub(crate) node_time: Duration,
    /// Megapixels a node processes in `node_time`; more take longer.
    pub(crate) work_unit_megapixels: f64,
    /// `progress` messages a looping node sends while it runs.
    pub(crate) progress_steps: u32,
    /// Images carry their prompt in PNG text chunks.
    pub(crate) metadata: bool,
    /// Input, output, temp and user folders.
    pub(crate) files: Files,
    state: Mutex<State>,
    /// Wakes the executor (new prompt) and a running node (interrupt).
    pub(crate) wake: Notify,
    /// WebSocket fan-out.
    pub(crate) ws: broadcast::Sender<WsMessage>,
    /// Set once, when a `crash_class` node starts: which node it was.
    pub(crate) crash: tokio::sync::watch::Sender<Option<String>>,
    /// Steps a test holds the executor at (none unless a test arms one).
    pub(crate) breakpoints: Arc<Breakpoints>,
}

/// ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Engine {
    /// A new idle engine.
    pub(crate) fn new(
        profile: Profile,
        classes: Classes,
        node_time: Duration,
        faults: Faults,
        files: Files,
    ) -> Self {
        let (ws, _) = broadcast::channel(4096);
        Engine {
            profile,
            classes,
            node_time,
            work_unit_megapixels: DEFAULT_WORK_UNIT_MEGAPIXELS,
            progress_steps: 0,
            metadata: false,
            files,
            state: Mutex::new(State {
                faults,
                ..State::default()
            }),
            wake: Notify::new(),
            ws,
            crash: tokio::sync::watch::Sender::new(None),
            breakpoints: Arc::default(),
        }
    }

    /// Megapixels a node processes in `node_time` (see the module doc).
    pub(crate) fn with_work_unit(mut self, megapixels: f64) -> Self {
        self.work_unit_megapixels = megapixels;
        self
    }

    /// Looping nodes send `n` `progress` messages while they run.
    pub(crate) fn with_progress_steps(mut self, n: u32) -> Self {
        self.progress_steps = n;
        self
    }

    /// Images carry their prompt in PNG text chunks.
    pub(crate) fn with_metadata(mut self, on: bool) -> Self {
        self.metadata = on;
        self
    }

    /// The state, locked (never held across an await).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Sends a message (ignored when nobody listens): to `to`, or to every
    /// client when `None` (as `send_sync` does).
    pub(crate) fn send(&self, to: Option<&str>, kind: &str, data: Value) {
        let text = json!({"type": kind, "data": data}).to_string();
        let _ = self.ws.send(WsMessage {
            to: to.map(str::to_owned),
            text: text.into(),
            at: std::time::Instant::now(),
        });
    }

    /// Broadcasts the queue size.
    pub(crate) fn send_status(&self) {
        let remaining = self.lock().remaining();
        self.send(
            None,
            "status",
            json!({"status": {"exec_info": {"queue_remaining": remaining}}}),
        );
    }

    /// The queue number of a new submission, as `POST /prompt` counts:
    /// the client's `number` as a float (the counter is left alone), else
    /// the counter (negated for `front`), which then moves on. Called
    /// before the prompt is validated, so rejected prompts use a number.
    pub(crate) fn number_for(&self, explicit: Option<f64>, front: bool) -> Value {
        if let Some(n) = explicit {
            return json!(n);
        }
        let mut st = self.lock();
        let n = st.next_number;
        st.next_number += 1;
        json!(if front { -n } else { n })
    }

    /// Queues a validated prompt.
    pub(crate) fn enqueue(&self, sub: Submission) {
        let Submission {
            id,
            prompt,
            mut extra_data,
            outputs,
            client_id,
            number,
        } = sub;
        let create_time = now_ms();
        if let Some(c) = &client_id {
            extra_data.insert("client_id".into(), Value::String(c.clone()));
        }
        if self.profile.create_time() {
            extra_data.insert("create_time".into(), json!(create_time));
        }
        {
            let mut st = self.lock();
            st.submitted += 1;
            st.pending.push(Entry {
                number,
                id,
                prompt,
                extra_data,
                outputs,
                client_id,
                create_time,
                start_time: None,
            });
        }
        self.send_status();
        self.wake.notify_one();
    }

    /// `POST /interrupt`: sets the interrupt flag; with `prompt_id`, only
    /// when that prompt is the running one. Whether it was set.
    pub(crate) fn interrupt(&self, prompt_id: Option<&str>) -> bool {
        let hit = {
            let mut st = self.lock();
            let hit = match (&st.running, prompt_id) {
                (Some(r), Some(p)) => r.id == p,
                (_, None) => true,
                (None, Some(_)) => false,
            };
            if hit {
                st.interrupt = true;
                st.interrupts += 1;
            }
            hit
        };
        if hit {
            self.wake.notify_waiters();
        }
        hit
    }

    /// Removes pending prompts; returns how many were removed.
    pub(crate) fn delete_pending(&self, ids: &[String]) -> usize {
        let removed = {
            let mut st = self.lock();
            ids.iter().filter(|id| st.pending.remove(id)).count()
        };
        if removed > 0 {
            self.send_status();
        }
        removed
    }

    /// Empties the queue (`POST /queue {"clear": true}`).
    pub(crate) fn clear_pending(&self) {
        self.lock().pending.clear();
        self.send_status();
    }
}

/// Megapixels a node processes in `node_time` by default: the slow prompt's
/// nodes (≈134 MP) take about 17 node times.
pub(crate) const DEFAULT_WORK_UNIT_MEGAPIXELS: f64 = 8.0;
