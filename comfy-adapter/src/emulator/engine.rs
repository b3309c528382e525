//! The emulated server's state (queue, running prompt, history) and the
//! executor that runs prompts node by node with plausible timing, sending
//! the WebSocket messages a real server sends, in the recorded order.

use super::catalogue::Classes;
use super::files::Files;
use super::profile::Profile;
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, broadcast};

/// Faults a test can switch on while the emulator runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every node runs until interrupted (a hung GPU).
    pub stall: bool,
    /// The WebSocket sends nothing after its greeting (a silent socket).
    pub silent_ws: bool,
    /// Nodes of this class raise `torch.OutOfMemoryError`.
    pub oom_class: Option<String>,
    /// Nodes of this class raise a plain `Exception`.
    pub error_class: Option<String>,
}

/// One prompt in the queue or running.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Queue number.
    pub(crate) number: f64,
    /// Prompt id.
    pub(crate) id: String,
    /// The graph.
    pub(crate) prompt: Map<String, Value>,
    /// `extra_data` as stored (client_id, create_time on 0.6+).
    pub(crate) extra_data: Map<String, Value>,
    /// Outputs to execute.
    pub(crate) outputs: Vec<String>,
    /// WebSocket client to address.
    pub(crate) client_id: Option<String>,
    /// ms.
    pub(crate) create_time: i64,
    /// ms, once running.
    pub(crate) start_time: Option<i64>,
}

impl Entry {
    /// The queue tuple `[number, id, prompt, extra_data, outputs]`.
    pub(crate) fn tuple(&self) -> Value {
        json!([
            self.number,
            self.id,
            self.prompt,
            self.extra_data,
            self.outputs
        ])
    }
}

/// How a prompt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every node ran.
    Success,
    /// A node raised.
    Error,
    /// Interrupted.
    Interrupted,
}

/// A finished prompt.
#[derive(Debug, Clone)]
pub(crate) struct Done {
    /// The prompt as it was queued.
    pub(crate) entry: Entry,
    /// Node id → UI dict.
    pub(crate) outputs: Map<String, Value>,
    /// How it ended.
    pub(crate) outcome: Outcome,
    /// `[event, data]` pairs of the history `status`.
    pub(crate) messages: Vec<Value>,
    /// ms.
    pub(crate) end_time: i64,
    /// `execution_error` payload.
    pub(crate) error: Option<Value>,
}

impl Done {
    /// The history entry.
    pub(crate) fn history_item(&self) -> Value {
        let meta: Map<String, Value> = self
            .outputs
            .keys()
            .map(|k| {
                (
                    k.clone(),
                    json!({"node_id": k, "display_node": k, "parent_node": null, "real_node_id": k}),
                )
            })
            .collect();
        json!({
            "prompt": self.entry.tuple(),
            "outputs": self.outputs,
            "status": self.status(),
            "meta": meta,
        })
    }

    /// History `status` / jobs `execution_status`.
    pub(crate) fn status(&self) -> Value {
        let ok = self.outcome == Outcome::Success;
        json!({
            "status_str": if ok { "success" } else { "error" },
            "completed": ok,
            "messages": self.messages,
        })
    }

    /// Outputs counted as the jobs API counts them.
    pub(crate) fn outputs_count(&self) -> usize {
        self.outputs
            .values()
            .filter_map(Value::as_object)
            .flat_map(|m| m.values())
            .filter_map(Value::as_array)
            .map(Vec::len)
            .sum()
    }
}

/// Everything under the lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Next queue number.
    pub(crate) next_number: i64,
    /// Pending prompts.
    pub(crate) pending: Vec<Entry>,
    /// The running prompt.
    pub(crate) running: Option<Entry>,
    /// Finished prompts, oldest first.
    pub(crate) history: Vec<Done>,
    /// Interrupt requested for the running prompt.
    pub(crate) interrupt: bool,
    /// File name counters per prefix.
    pub(crate) counters: HashMap<String, u32>,
    /// Faults switched on.
    pub(crate) faults: Faults,
    /// Prompts submitted so far.
    pub(crate) submitted: u64,
}

impl State {
    /// Pending + running.
    pub(crate) fn remaining(&self) -> usize {
        self.pending.len() + usize::from(self.running.is_some())
    }

    /// A finished prompt by id.
    pub(crate) fn done(&self, id: &str) -> Option<&Done> {
        self.history.iter().rev().find(|d| d.entry.id == id)
    }
}

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
    /// Explicit queue number.
    pub(crate) number: Option<f64>,
    /// `front: true`.
    pub(crate) front: bool,
}

/// A WebSocket message: to one client (`Some(sid)`) or to all.
#[derive(Debug, Clone)]
pub(crate) struct WsMessage {
    /// The addressee.
    pub(crate) to: Option<String>,
    /// The JSON text.
    pub(crate) text: Arc<str>,
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
    /// Input, output, temp and user folders.
    pub(crate) files: Files,
    state: Mutex<State>,
    /// Wakes the executor (new prompt) and a stalled node (interrupt).
    pub(crate) wake: Notify,
    /// WebSocket fan-out.
    pub(crate) ws: broadcast::Sender<WsMessage>,
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
            files,
            state: Mutex::new(State {
                faults,
                ..State::default()
            }),
            wake: Notify::new(),
            ws,
        }
    }

    /// The state, locked (never held across an await).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Sends a message (ignored when nobody listens).
    pub(crate) fn send(&self, to: Option<&str>, kind: &str, data: Value) {
        let text = json!({"type": kind, "data": data}).to_string();
        let _ = self.ws.send(WsMessage {
            to: to.map(str::to_owned),
            text: text.into(),
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

    /// Queues a validated prompt; returns its number.
    pub(crate) fn enqueue(&self, sub: Submission) -> f64 {
        let Submission {
            id,
            prompt,
            mut extra_data,
            outputs,
            client_id,
            number,
            front,
        } = sub;
        let create_time = now_ms();
        if let Some(c) = &client_id {
            extra_data.insert("client_id".into(), Value::String(c.clone()));
        }
        if self.profile.create_time() {
            extra_data.insert("create_time".into(), json!(create_time));
        }
        let number = {
            let mut st = self.lock();
            let n = match (number, front) {
                (Some(n), _) => n,
                (None, true) => {
                    st.next_number += 1;
                    -(st.next_number as f64)
                }
                (None, false) => {
                    let n = st.next_number as f64;
                    st.next_number += 1;
                    n
                }
            };
            st.submitted += 1;
            st.pending.push(Entry {
                number: n,
                id,
                prompt,
                extra_data,
                outputs,
                client_id,
                create_time,
                start_time: None,
            });
            n
        };
        self.send_status();
        self.wake.notify_one();
        number
    }

    /// Requests an interrupt of the running prompt (only `prompt_id` when given).
    pub(crate) fn interrupt(&self, prompt_id: Option<&str>) -> bool {
        let hit = {
            let mut st = self.lock();
            let hit = match (&st.running, prompt_id) {
                (Some(r), Some(p)) => r.id == p,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if hit {
                st.interrupt = true;
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
            let before = st.pending.len();
            st.pending.retain(|e| !ids.contains(&e.id));
            before - st.pending.len()
        };
        if removed > 0 {
            self.send_status();
        }
        removed
    }

    /// Runs prompts forever, one at a time, lowest number first.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            let next = {
                let mut st = self.lock();
                if st.pending.is_empty() {
                    None
                } else {
                    let i = st
                        .pending
                        .iter()
                        .enumerate()
                        .min_by(|a, b| a.1.number.total_cmp(&b.1.number))
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    let mut e = st.pending.remove(i);
                    e.start_time = Some(now_ms());
                    st.interrupt = false;
                    st.running = Some(e.clone());
                    Some(e)
                }
            };
            match next {
                Some(entry) => {
                    let done = self.execute(entry).await;
                    let (to, id, outcome) = (
                        done.entry.client_id.clone(),
                        done.entry.id.clone(),
                        done.outcome,
                    );
                    {
                        let mut st = self.lock();
                        st.running = None;
                        st.history.push(done);
                    }
                    self.send_status();
                    if outcome != Outcome::Interrupted {
                        self.send(
                            to.as_deref(),
                            "executing",
                            json!({"node": null, "prompt_id": id}),
                        );
                    }
                }
                None => {
                    let notified = self.wake.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if self.lock().pending.is_empty() {
                        notified.await;
                    }
                }
            }
        }
    }

    fn order(&self, entry: &Entry) -> Vec<String> {
        fn visit(
            prompt: &Map<String, Value>,
            id: &str,
            seen: &mut BTreeSet<String>,
            out: &mut Vec<String>,
        ) {
            if !seen.insert(id.to_owned()) {
                return;
            }
            if let Some(inputs) = prompt
                .get(id)
                .and_then(|n| n.get("inputs"))
                .and_then(Value::as_object)
            {
                for v in inputs.values() {
                    if let Some(from) = v.as_array().and_then(|a| a.first()).and_then(Value::as_str)
                        && v.as_array().is_some_and(|a| a.len() == 2)
                        && prompt.contains_key(from)
                    {
                        visit(prompt, from, seen, out);
                    }
                }
            }
            out.push(id.to_owned());
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for o in &entry.outputs {
            visit(&entry.prompt, o, &mut seen, &mut out);
        }
        out
    }

    /// Waits `d` or until an interrupt; true when interrupted.
    async fn pause(&self, d: Duration, stall: bool) -> bool {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().interrupt {
                return true;
            }
            if stall {
                notified.await;
                continue;
            }
            if d.is_zero() {
                return false;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.lock().interrupt;
            }
        }
    }

    async fn execute(&self, entry: Entry) -> Done {
        let to = entry.client_id.clone();
        let to = to.as_deref();
        let pid = entry.id.clone();
        let mut messages = Vec::new();
        let start = entry.start_time.unwrap_or_else(now_ms);
        let start_msg = json!({"prompt_id": pid, "timestamp": start});
        self.send(to, "execution_start", start_msg.clone());
        messages.push(json!(["execution_start", start_msg]));
        let cached = json!({"nodes": [], "prompt_id": pid, "timestamp": now_ms()});
        self.send(to, "execution_cached", cached.clone());
        messages.push(json!(["execution_cached", cached]));

        let order = self.order(&entry);
        let mut executed: Vec<String> = Vec::new();
        let mut outputs = Map::new();
        let mut progress = Map::new();
        for node_id in &order {
            let node = entry.prompt.get(node_id).cloned().unwrap_or(Value::Null);
            let class = node
                .get("class_type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let inputs = node.get("inputs").cloned().unwrap_or(Value::Null);
            let prefix = inputs
                .get("filename_prefix")
                .and_then(Value::as_str)
                .unwrap_or("ComfyUI")
                .to_owned();
            let faults = self.lock().faults.clone();
            let state = |v: f64, s: &str| {
                json!({"value": v, "max": 1.0, "state": s, "node_id": node_id, "prompt_id": pid,
                       "display_node_id": node_id, "parent_node_id": null, "real_node_id": node_id})
            };
            progress.insert(node_id.clone(), state(0.0, "running"));
            self.send(
                to,
                "progress_state",
                json!({"prompt_id": pid, "nodes": progress}),
            );
            self.send(
                to,
                "executing",
                json!({"node": node_id, "display_node": node_id, "prompt_id": pid}),
            );
            let stall = faults.stall || prefix.contains("emulator_stall");
            if self.pause(self.node_time, stall).await {
                let data = json!({"prompt_id": pid, "node_id": node_id, "node_type": class,
                                  "executed": executed, "timestamp": now_ms()});
                self.send(to, "execution_interrupted", data.clone());
                messages.push(json!(["execution_interrupted", data]));
                return Done {
                    entry,
                    outputs: Map::new(),
                    outcome: Outcome::Interrupted,
                    messages,
                    end_time: now_ms(),
                    error: None,
                };
            }
            let raise = if faults.oom_class.as_deref() == Some(class.as_str())
                || (class == "SaveImage" && prefix.contains("emulator_oom"))
            {
                Some((
                    "torch.OutOfMemoryError",
                    "Allocation on device 0 would exceed allowed memory. (out of memory)\nCurrently allocated     : 23.10 GiB\nRequested               : 1.50 GiB".to_owned(),
                ))
            } else if faults.error_class.as_deref() == Some(class.as_str()) {
                Some(("Exception", format!("emulated failure in {class}")))
            } else if class == "SaveImage" && prefix.contains("..") {
                let mut m = "**** ERROR: Saving image outside the output folder is not allowed.\n full_output_folder: /opt\n         output_dir: /opt/ComfyUI/output\n".to_owned();
                if self.profile.commonpath_line() {
                    m.push_str("         commonpath: /opt\n");
                }
                Some(("Exception", m))
            } else {
                None
            };
            if let Some((exception_type, message)) = raise {
                let data = json!({
                    "prompt_id": pid, "node_id": node_id, "node_type": class, "executed": executed,
                    "exception_message": message, "exception_type": exception_type,
                    "traceback": [
                        "  File \"/opt/ComfyUI/execution.py\", line 518, in execute\n    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, input_data_all)\n",
                        format!("  File \"/opt/ComfyUI/nodes.py\", line 1656, in {}\n    raise {exception_type}(err)\n", class.to_lowercase()),
                    ],
                    "current_inputs": inputs, "current_outputs": entry.outputs, "timestamp": now_ms(),
                });
                self.send(to, "execution_error", data.clone());
                messages.push(json!(["execution_error", data.clone()]));
                return Done {
                    entry,
                    outputs: Map::new(),
                    outcome: Outcome::Error,
                    messages,
                    end_time: now_ms(),
                    error: Some(data),
                };
            }
            if let Some(ui) = self.ui_output(&class, &prefix, &inputs) {
                self.files.store_outputs(&ui);
                self.send(
                    to,
                    "executed",
                    json!({"node": node_id, "display_node": node_id, "output": ui, "prompt_id": pid}),
                );
                outputs.insert(node_id.clone(), ui);
            }
            progress.insert(node_id.clone(), state(1.0, "finished"));
            self.send(
                to,
                "progress_state",
                json!({"prompt_id": pid, "nodes": progress}),
            );
            executed.push(node_id.clone());
        }
        let end = now_ms();
        let ok = json!({"prompt_id": pid, "timestamp": end});
        self.send(to, "execution_success", ok.clone());
        messages.push(json!(["execution_success", ok]));
        Done {
            entry,
            outputs,
            outcome: Outcome::Success,
            messages,
            end_time: end,
            error: None,
        }
    }

    fn next_file(&self, prefix: &str, ext: &str, trailing: bool) -> String {
        let mut st = self.lock();
        let n = st.counters.entry(format!("{prefix}.{ext}")).or_insert(0);
        *n += 1;
        if trailing {
            format!("{prefix}_{:05}_.{ext}", *n)
        } else {
            format!("{prefix}_{:05}.{ext}", *n)
        }
    }

    fn ui_output(&self, class: &str, prefix: &str, inputs: &Value) -> Option<Value> {
        match class {
            "SaveImage" => Some(json!({"images": [{
                "filename": self.next_file(prefix, "png", true), "subfolder": "", "type": "output"}]})),
            "PreviewImage" => Some(json!({"images": [{
                "filename": self.next_file("ComfyUI_temp_emul", "png", true), "subfolder": "", "type": "temp"}]})),
            "SaveAnimatedWEBP" => Some(json!({"images": [{
                "filename": self.next_file(prefix, "webp", true), "subfolder": "", "type": "output"}], "animated": [true]})),
            "SaveAudio" => {
                let trailing = self.profile.audio_trailing_underscore();
                Some(
                    json!({"audio": [{"filename": self.next_file(prefix, "flac", trailing), "subfolder": "", "type": "output"}]}),
                )
            }
            "SaveVideo" => Some(json!({"images": [{
                "filename": self.next_file(prefix, "mp4", true), "subfolder": "", "type": "output"}], "animated": [true]})),
            "PreviewAny" => {
                let text = inputs
                    .get("source")
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default();
                Some(json!({"text": [text]}))
            }
            _ => None,
        }
    }
}
