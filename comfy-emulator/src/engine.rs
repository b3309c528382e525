//! The emulated server's state (queue, running prompt, history, output
//! cache) and the executor that runs prompts node by node as ComfyUI's
//! prompt worker does, sending the WebSocket messages a real server sends,
//! in the recorded order.
//!
//! Work model: a node takes [`Engine::node_time`], or `node_time ×
//! megapixels / work_unit_megapixels` when it processes more than
//! `work_unit_megapixels` (the slow prompt of fixtures 046–048, eight
//! 4096² images, takes about a second at the defaults). After a prompt the
//! worker frees what it held, for as long as its heaviest node took
//! beyond `node_time` (a real server took 280 ms after the slow prompt);
//! a prompt already waiting leaves the queue first and starts when that is
//! done. ComfyUI clears its interrupt flag when a prompt starts, so an
//! interrupt that arrives in between is lost (fixture 060: the global
//! interrupt did not stop the second slow prompt). An interrupt is seen
//! when a node starts, or while a node that loops runs; one-operation
//! nodes (`EmptyImage`, `ImageScale`) finish first (fixtures 058 and 068
//! stop at the `ImageScale` that follows).

use super::catalogue::Classes;
use super::files::Files;
use super::nodes;
use super::profile::Profile;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
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
    /// When a node of this class starts, the server dies (a segfault, a
    /// kill by the OOM killer): it stops listening, sockets close and the
    /// running prompt is lost.
    pub crash_class: Option<String>,
}

/// One prompt in the queue or running.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Queue number: an int the server counted, or the float a client sent.
    pub(crate) number: Value,
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

    /// Python's `<` on queue tuples: number first, then prompt id.
    fn before(&self, other: &Entry) -> bool {
        let (a, b) = (
            self.number.as_f64().unwrap_or_default(),
            other.number.as_f64().unwrap_or_default(),
        );
        a < b || (a == b && self.id < other.id)
    }
}

/// The pending prompts as ComfyUI keeps them: a `heapq` list, so
/// `/queue` lists them in heap order, not sorted.
#[derive(Debug, Default)]
pub(crate) struct Heap(Vec<Entry>);

impl Heap {
    /// In heap order.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Entry> {
        self.0.iter()
    }

    /// How many.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// None waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn sift_down(&mut self, start: usize, mut pos: usize) {
        while pos > start {
            let parent = (pos - 1) >> 1;
            if self.0[pos].before(&self.0[parent]) {
                self.0.swap(pos, parent);
                pos = parent;
            } else {
                break;
            }
        }
    }

    fn sift_up(&mut self, mut pos: usize) {
        let (end, start) = (self.0.len(), pos);
        let mut child = 2 * pos + 1;
        while child < end {
            let right = child + 1;
            if right < end && !self.0[child].before(&self.0[right]) {
                child = right;
            }
            self.0.swap(pos, child);
            pos = child;
            child = 2 * pos + 1;
        }
        self.sift_down(start, pos);
    }

    /// `heapq.heappush`.
    pub(crate) fn push(&mut self, e: Entry) {
        self.0.push(e);
        let last = self.0.len() - 1;
        self.sift_down(0, last);
    }

    /// `heapq.heappop`.
    pub(crate) fn pop(&mut self) -> Option<Entry> {
        let last = self.0.pop()?;
        if self.0.is_empty() {
            return Some(last);
        }
        let top = std::mem::replace(&mut self.0[0], last);
        self.sift_up(0);
        Some(top)
    }

    /// Removes the first prompt with this id (`delete_queue_item`), then
    /// `heapq.heapify`.
    pub(crate) fn remove(&mut self, id: &str) -> bool {
        let Some(i) = self.0.iter().position(|e| e.id == id) else {
            return false;
        };
        self.0.remove(i);
        for i in (0..self.0.len() / 2).rev() {
            self.sift_up(i);
        }
        true
    }

    /// Empties the queue.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
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
    /// Node id → UI dict, in the order the nodes ran.
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
}

/// Everything under the lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The server's prompt counter (`PromptServer.number`).
    pub(crate) next_number: i64,
    /// Pending prompts.
    pub(crate) pending: Heap,
    /// The running prompt.
    pub(crate) running: Option<Entry>,
    /// Finished prompts, oldest first.
    pub(crate) history: Vec<Done>,
    /// ComfyUI's global interrupt flag.
    pub(crate) interrupt: bool,
    /// File name counters per folder and name.
    pub(crate) counters: HashMap<String, u32>,
    /// Node outputs kept between prompts: input signature → UI (if any).
    pub(crate) cache: HashMap<String, Option<Value>>,
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
    /// Queue number, from [`Engine::number_for`].
    pub(crate) number: Value,
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
    /// Megapixels a node processes in `node_time`; more take longer.
    pub(crate) work_unit_megapixels: f64,
    /// Input, output, temp and user folders.
    pub(crate) files: Files,
    state: Mutex<State>,
    /// Wakes the executor (new prompt) and a running node (interrupt).
    pub(crate) wake: Notify,
    /// WebSocket fan-out.
    pub(crate) ws: broadcast::Sender<WsMessage>,
    /// Set once, when a `crash_class` node starts: which node it was.
    pub(crate) crash: tokio::sync::watch::Sender<Option<String>>,
}

/// ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Characters of ComfyUI's random temp prefixes (`ComfyUI_temp_xxxxx_`).
const TEMP_CHARS: &[u8] = b"abcdefghijklmnopqrstupvxyz";

fn temp_prefix() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let tail: String = bytes
        .iter()
        .take(5)
        .map(|b| char::from(TEMP_CHARS[usize::from(*b) % TEMP_CHARS.len()]))
        .collect();
    format!("ComfyUI_temp_{tail}")
}

/// ComfyUI's `ExecutionList`: which node runs next.
struct ExecutionList<'a> {
    prompt: &'a Map<String, Value>,
    classes: &'a Classes,
    /// Staged nodes in the order they were added.
    pending: Vec<String>,
    block_count: HashMap<String, usize>,
    /// Node → nodes waiting for it.
    blocking: HashMap<String, Vec<String>>,
}

impl<'a> ExecutionList<'a> {
    fn new(prompt: &'a Map<String, Value>, classes: &'a Classes) -> Self {
        ExecutionList {
            prompt,
            classes,
            pending: Vec::new(),
            block_count: HashMap::new(),
            blocking: HashMap::new(),
        }
    }

    /// `add_node`: the node and every uncached node it needs.
    fn add_node(&mut self, id: &str, cached: &HashSet<String>) {
        let mut stack = vec![id.to_owned()];
        let mut links = Vec::new();
        while let Some(n) = stack.pop() {
            if self.pending.contains(&n) {
                continue;
            }
            self.pending.push(n.clone());
            self.block_count.entry(n.clone()).or_insert(0);
            let inputs = self
                .prompt
                .get(&n)
                .and_then(|v| v.get("inputs"))
                .and_then(Value::as_object);
            for v in inputs.into_iter().flat_map(|m| m.values()) {
                if let Some((from, _)) = nodes::link(v)
                    && self.prompt.contains_key(from)
                    && !cached.contains(from)
                {
                    stack.push(from.to_owned());
                    links.push((from.to_owned(), n.clone()));
                }
            }
        }
        for (from, to) in links {
            let waiting = self.blocking.entry(from).or_default();
            if !waiting.contains(&to) {
                waiting.push(to.clone());
                *self.block_count.entry(to).or_insert(0) += 1;
            }
        }
    }

    fn is_output(&self, id: &str) -> bool {
        self.prompt
            .get(id)
            .and_then(|n| n.get("class_type"))
            .and_then(Value::as_str)
            .and_then(|c| self.classes.get(c))
            .and_then(|d| d.get("output_node"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    fn blocks_output(&self, id: &str, depth: usize) -> bool {
        self.blocking.get(id).is_some_and(|w| {
            w.iter().any(|b| {
                if depth == 0 {
                    self.is_output(b)
                } else {
                    self.blocks_output(b, depth - 1)
                }
            })
        })
    }

    /// `stage_node_execution` with `ux_friendly_pick_node`: an output node
    /// first, then a node an output waits for, then one two steps away.
    fn next(&mut self) -> Option<String> {
        let available: Vec<&String> = self
            .pending
            .iter()
            .filter(|n| self.block_count.get(*n).copied().unwrap_or(0) == 0)
            .collect();
        let pick = available
            .iter()
            .find(|n| self.is_output(n))
            .or_else(|| available.iter().find(|n| self.blocks_output(n, 0)))
            .or_else(|| available.iter().find(|n| self.blocks_output(n, 1)))
            .or_else(|| available.first())
            .map(|n| (*n).clone())?;
        self.pending.retain(|n| *n != pick);
        Some(pick)
    }

    /// `complete_node_execution`.
    fn complete(&mut self, id: &str) {
        for w in self.blocking.remove(id).unwrap_or_default() {
            if let Some(c) = self.block_count.get_mut(&w) {
                *c = c.saturating_sub(1);
            }
        }
    }
}

/// Cache keys: a node's class and inputs, links replaced by the key of the
/// node they come from.
fn signatures(prompt: &Map<String, Value>) -> HashMap<String, String> {
    fn sig(
        prompt: &Map<String, Value>,
        id: &str,
        memo: &mut HashMap<String, String>,
        depth: usize,
    ) -> String {
        if let Some(s) = memo.get(id) {
            return s.clone();
        }
        let node = prompt.get(id).cloned().unwrap_or(Value::Null);
        let mut inputs = Map::new();
        for (k, v) in node
            .get("inputs")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let v = match nodes::link(v) {
                Some((from, slot)) if depth < 64 && prompt.contains_key(from) => {
                    json!({"from": sig(prompt, from, memo, depth + 1), "slot": slot})
                }
                _ => v.clone(),
            };
            inputs.insert(k.clone(), v);
        }
        let s = json!([node.get("class_type"), inputs]).to_string();
        memo.insert(id.to_owned(), s.clone());
        s
    }
    let mut memo = HashMap::new();
    for id in prompt.keys() {
        sig(prompt, id, &mut memo, 0);
    }
    memo
}

/// Where a running prompt stands.
struct Run<'a> {
    entry: &'a Entry,
    to: Option<&'a str>,
    messages: Vec<Value>,
    /// Nodes that ran (or were served from the cache) in this prompt.
    executed: Vec<String>,
    outputs: Map<String, Value>,
    progress: Map<String, Value>,
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
            files,
            state: Mutex::new(State {
                faults,
                ..State::default()
            }),
            wake: Notify::new(),
            ws,
            crash: tokio::sync::watch::Sender::new(None),
        }
    }

    /// Megapixels a node processes in `node_time` (see the module doc).
    pub(crate) fn with_work_unit(mut self, megapixels: f64) -> Self {
        self.work_unit_megapixels = megapixels;
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

    /// How long a node takes: `node_time`, more for big images.
    fn node_duration(&self, prompt: &Map<String, Value>, id: &str) -> Duration {
        let mp = nodes::megapixels(prompt, id);
        let unit = if self.work_unit_megapixels > 0.0 {
            self.work_unit_megapixels
        } else {
            f64::INFINITY
        };
        self.node_time.mul_f64((mp / unit).clamp(1.0, 1e6))
    }

    /// Runs prompts forever, one at a time, lowest number first.
    pub(crate) async fn run(self: Arc<Self>) {
        let mut release = Duration::ZERO;
        loop {
            let next = {
                let mut st = self.lock();
                let e = st.pending.pop();
                if let Some(e) = &e {
                    st.running = Some(e.clone());
                }
                e
            };
            let Some(mut entry) = next else {
                if !release.is_zero() {
                    tokio::time::sleep(std::mem::take(&mut release)).await;
                    continue;
                }
                let notified = self.wake.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.lock().pending.is_empty() {
                    notified.await;
                }
                continue;
            };
            // `q.get()` tells everyone the queue changed.
            self.send_status();
            if !release.is_zero() {
                tokio::time::sleep(std::mem::take(&mut release)).await;
            }
            let start = now_ms();
            entry.start_time = Some(start);
            {
                let mut st = self.lock();
                st.interrupt = false;
                if let Some(r) = st.running.as_mut() {
                    r.start_time = Some(start);
                }
            }
            let heaviest = entry
                .prompt
                .keys()
                .map(|id| self.node_duration(&entry.prompt, id))
                .max()
                .unwrap_or_default();
            release = heaviest.saturating_sub(self.node_time);
            let done = self.execute(entry).await;
            let (to, id) = (done.entry.client_id.clone(), done.entry.id.clone());
            {
                let mut st = self.lock();
                st.running = None;
                st.history.push(done);
            }
            self.send_status();
            if let Some(to) = to.as_deref() {
                self.send(
                    Some(to),
                    "executing",
                    json!({"node": null, "prompt_id": id}),
                );
            }
        }
    }

    /// Waits `d` or until an interrupt (consuming it); true when interrupted.
    async fn pause(&self, d: Duration, stall: bool) -> bool {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.take_interrupt() {
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
                return self.take_interrupt();
            }
        }
    }

    /// `throw_exception_if_processing_interrupted`: reads and clears the flag.
    fn take_interrupt(&self) -> bool {
        std::mem::take(&mut self.lock().interrupt)
    }

    /// `add_message`: into the history `status`, and to the prompt's client
    /// (every client when `broadcast`; nobody when there is no client).
    fn add_message(&self, run: &mut Run<'_>, kind: &str, data: Value, broadcast: bool) {
        if run.to.is_some() || broadcast {
            self.send(run.to, kind, data.clone());
        }
        run.messages.push(json!([kind, data]));
    }

    fn progress_state(&self, run: &mut Run<'_>, node_id: &str, state: &str, cached: bool) {
        let (value, max) = match (state, cached) {
            (_, true) => (json!(1), json!(1)),
            ("finished", false) => (json!(1.0), json!(1.0)),
            _ => (json!(0.0), json!(1.0)),
        };
        run.progress.insert(
            node_id.to_owned(),
            json!({"value": value, "max": max, "state": state, "node_id": node_id,
                   "prompt_id": run.entry.id, "display_node_id": node_id,
                   "parent_node_id": null, "real_node_id": node_id}),
        );
        self.send(
            run.to,
            "progress_state",
            json!({"prompt_id": run.entry.id, "nodes": run.progress}),
        );
    }

    fn finish(&self, run: Run<'_>, outcome: Outcome, error: Option<Value>) -> Done {
        let mut outputs = run.outputs;
        if self.profile.outputs_in_request_order() {
            let mut ordered = Map::new();
            for o in &run.entry.outputs {
                if let Some(ui) = outputs.remove(o) {
                    ordered.insert(o.clone(), ui);
                }
            }
            ordered.extend(outputs);
            outputs = ordered;
        }
        Done {
            entry: run.entry.clone(),
            outputs,
            outcome,
            messages: run.messages,
            end_time: now_ms(),
            error,
        }
    }

    async fn execute(&self, entry: Entry) -> Done {
        let pid = entry.id.clone();
        let mut run = Run {
            entry: &entry,
            to: entry.client_id.as_deref(),
            messages: Vec::new(),
            executed: Vec::new(),
            outputs: Map::new(),
            progress: Map::new(),
        };
        let start = entry.start_time.unwrap_or_else(now_ms);
        self.add_message(
            &mut run,
            "execution_start",
            json!({"prompt_id": pid, "timestamp": start}),
            false,
        );
        // The cache keeps what the new prompt can use (`clean_unused`).
        let sigs = signatures(&entry.prompt);
        let (cached, cached_ui): (HashSet<String>, HashMap<String, Option<Value>>) = {
            let mut st = self.lock();
            let wanted: HashSet<&String> = sigs.values().collect();
            st.cache.retain(|k, _| wanted.contains(k));
            let mut ui = HashMap::new();
            for (id, s) in &sigs {
                if let Some(u) = st.cache.get(s) {
                    ui.insert(id.clone(), u.clone());
                }
            }
            (ui.keys().cloned().collect(), ui)
        };
        let cached_nodes: Vec<&String> = entry
            .prompt
            .keys()
            .filter(|id| cached.contains(*id))
            .collect();
        self.add_message(
            &mut run,
            "execution_cached",
            json!({"nodes": cached_nodes, "prompt_id": pid, "timestamp": now_ms()}),
            false,
        );

        let mut list = ExecutionList::new(&entry.prompt, &self.classes);
        for o in &entry.outputs {
            list.add_node(o, &cached);
        }
        while let Some(node_id) = list.next() {
            if let Some(ui) = cached_ui.get(&node_id) {
                if let Some(ui) = ui {
                    self.send(
                        run.to,
                        "executed",
                        json!({"node": node_id, "display_node": node_id, "output": ui, "prompt_id": pid}),
                    );
                    run.outputs.insert(node_id.clone(), ui.clone());
                }
                self.progress_state(&mut run, &node_id, "finished", true);
                run.executed.push(node_id.clone());
                list.complete(&node_id);
                continue;
            }
            match self.run_node(&mut run, &node_id).await {
                Ok(ui) => {
                    if let Some(s) = sigs.get(&node_id) {
                        self.lock().cache.insert(s.clone(), ui);
                    }
                    list.complete(&node_id);
                }
                Err(Stop::Interrupted { class }) => {
                    let data = json!({"prompt_id": pid, "node_id": node_id, "node_type": class,
                                      "executed": run.executed, "timestamp": now_ms()});
                    self.add_message(&mut run, "execution_interrupted", data, true);
                    return self.finish(run, Outcome::Interrupted, None);
                }
                Err(Stop::Raised(data)) => {
                    self.add_message(&mut run, "execution_error", data.clone(), false);
                    return self.finish(run, Outcome::Error, Some(data));
                }
            }
        }
        self.add_message(
            &mut run,
            "execution_success",
            json!({"prompt_id": pid, "timestamp": now_ms()}),
            false,
        );
        self.finish(run, Outcome::Success, None)
    }

    /// Runs one node that is not cached; its UI output, if any.
    async fn run_node(&self, run: &mut Run<'_>, node_id: &str) -> Result<Option<Value>, Stop> {
        let entry = run.entry;
        let pid = entry.id.as_str();
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
        self.progress_state(run, node_id, "running", false);
        self.send(
            run.to,
            "executing",
            json!({"node": node_id, "display_node": node_id, "prompt_id": pid}),
        );
        let interrupted = Stop::Interrupted {
            class: class.clone(),
        };
        if self.take_interrupt() {
            return Err(interrupted);
        }
        if faults.crash_class.as_deref() == Some(class.as_str()) {
            tracing::warn!(node = %node_id, %class, "emulated crash");
            self.crash
                .send_replace(Some(format!("node {node_id} ({class}) of prompt {pid}")));
            // The process is gone: nothing after this runs.
            std::future::pending::<()>().await;
        }
        let stall = faults.stall || prefix.contains("emulator_stall");
        let d = self.node_duration(&entry.prompt, node_id);
        if nodes::atomic(&class) && !stall {
            tokio::time::sleep(d).await;
        } else if self.pause(d, stall).await {
            return Err(interrupted);
        }
        if let Some((exception_type, message, tail)) = self.raises(&faults, &class, &prefix) {
            let data = json!({
                "prompt_id": pid, "node_id": node_id, "node_type": class, "executed": run.executed,
                "exception_message": message, "exception_type": exception_type,
                "traceback": nodes::traceback(&self.profile, tail),
                "current_inputs": nodes::current_inputs(&entry.prompt, &entry.extra_data, node_id, self.classes.get(&class)),
                "current_outputs": entry.prompt.keys().collect::<Vec<_>>(),
                "timestamp": now_ms(),
            });
            return Err(Stop::Raised(data));
        }
        let ui = self.ui_output(&entry.prompt, node_id, &class, &prefix);
        if let Some(ui) = &ui {
            self.files.store_outputs(ui);
            self.send(
                run.to,
                "executed",
                json!({"node": node_id, "display_node": node_id, "output": ui, "prompt_id": pid}),
            );
            run.outputs.insert(node_id.to_owned(), ui.clone());
        }
        self.progress_state(run, node_id, "finished", false);
        run.executed.push(node_id.to_owned());
        Ok(ui)
    }

    /// The exception a node raises, if any: type, message, frames inside the node.
    fn raises(
        &self,
        faults: &Faults,
        class: &str,
        prefix: &str,
    ) -> Option<(&'static str, String, Vec<String>)> {
        let raise_frame = |what: &str| {
            vec![format!(
                "  File \"/opt/ComfyUI/nodes.py\", line 1656, in {}\n    raise {what}(err)\n",
                class.to_lowercase()
            )]
        };
        if faults.oom_class.as_deref() == Some(class)
            || (class == "SaveImage" && prefix.contains("emulator_oom"))
        {
            return Some((
                "torch.OutOfMemoryError",
                "Allocation on device 0 would exceed allowed memory. (out of memory)\nCurrently allocated     : 23.10 GiB\nRequested               : 1.50 GiB".to_owned(),
                raise_frame("torch.OutOfMemoryError"),
            ));
        }
        if faults.error_class.as_deref() == Some(class) {
            return Some((
                "Exception",
                format!("emulated failure in {class}"),
                raise_frame("Exception"),
            ));
        }
        if class == "SaveImage" && prefix.contains("..") {
            let mut m = "**** ERROR: Saving image outside the output folder is not allowed.\n full_output_folder: /opt\n         output_dir: /opt/ComfyUI/output\n".to_owned();
            if self.profile.commonpath_line() {
                m.push_str("         commonpath: /opt\n");
            }
            return Some(("Exception", m, nodes::save_outside_frames(&self.profile)));
        }
        None
    }

    /// `get_save_image_path`: the subfolder and file names of `count` new
    /// files for `prefix` (`video/fixture` saves under `video/`).
    fn next_files(
        &self,
        prefix: &str,
        ext: &str,
        trailing: bool,
        count: u64,
    ) -> (String, Vec<String>) {
        let (subfolder, name) = match prefix.rsplit_once('/') {
            Some((dir, name)) => (dir.to_owned(), name.to_owned()),
            None => (String::new(), prefix.to_owned()),
        };
        let mut st = self.lock();
        let n = st
            .counters
            .entry(format!("{subfolder}/{name}.{ext}"))
            .or_insert(0);
        let files = (0..count.max(1))
            .map(|_| {
                *n += 1;
                if trailing {
                    format!("{name}_{:05}_.{ext}", *n)
                } else {
                    format!("{name}_{:05}.{ext}", *n)
                }
            })
            .collect();
        (subfolder, files)
    }

    fn ui_output(
        &self,
        prompt: &Map<String, Value>,
        node_id: &str,
        class: &str,
        prefix: &str,
    ) -> Option<Value> {
        let inputs = prompt.get(node_id)?.get("inputs")?;
        let input = |k: &str| {
            inputs
                .get(k)
                .and_then(nodes::link)
                .map(|(from, slot)| nodes::data_of(prompt, from, slot))
        };
        let batch = match input("images") {
            Some(nodes::Data::Image { batch, .. }) => batch,
            _ => 1,
        };
        let items = |subfolder: &str, files: Vec<String>, kind: &str| -> Value {
            files
                .into_iter()
                .map(|f| json!({"filename": f, "subfolder": subfolder, "type": kind}))
                .collect()
        };
        match class {
            "SaveImage" => {
                let (sub, files) = self.next_files(prefix, "png", true, batch);
                Some(json!({"images": items(&sub, files, "output")}))
            }
            "PreviewImage" => {
                let (sub, files) = self.next_files(&temp_prefix(), "png", true, batch);
                Some(json!({"images": items(&sub, files, "temp")}))
            }
            "SaveAnimatedWEBP" => {
                let (sub, files) = self.next_files(prefix, "webp", true, 1);
                Some(json!({"images": items(&sub, files, "output"), "animated": [batch != 1]}))
            }
            "SaveVideo" => {
                let (sub, files) = self.next_files(prefix, "mp4", true, 1);
                Some(json!({"images": items(&sub, files, "output"), "animated": [true]}))
            }
            "SaveAudio" => {
                let trailing = self.profile.audio_trailing_underscore();
                let (sub, files) = self.next_files(prefix, "flac", trailing, 1);
                Some(json!({"audio": items(&sub, files, "output")}))
            }
            "PreviewAny" => {
                let text = match inputs.get("source") {
                    Some(v) if nodes::link(v).is_some() => match input("source") {
                        Some(nodes::Data::Text(s)) => s,
                        Some(other) => other.shown().as_str().unwrap_or_default().to_owned(),
                        None => String::new(),
                    },
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                Some(json!({"text": [text]}))
            }
            _ => None,
        }
    }
}

/// Why a node did not finish.
enum Stop {
    /// The interrupt flag was seen.
    Interrupted {
        /// The node's class.
        class: String,
    },
    /// The node raised: the `execution_error` payload.
    Raised(Value),
}

/// Megapixels a node processes in `node_time` by default: the slow prompt's
/// nodes (≈134 MP) take about 17 node times.
pub(crate) const DEFAULT_WORK_UNIT_MEGAPIXELS: f64 = 8.0;

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(number: Value, id: &str) -> Entry {
        Entry {
            number,
            id: id.to_owned(),
            prompt: Map::new(),
            extra_data: Map::new(),
            outputs: Vec::new(),
            client_id: None,
            create_time: 0,
            start_time: None,
        }
    }

    fn ids(h: &Heap) -> Vec<&str> {
        h.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn the_queue_is_a_python_heap() {
        let mut h = Heap::default();
        for (n, id) in [(json!(3), "c"), (json!(1), "a"), (json!(2), "b")] {
            h.push(entry(n, id));
        }
        // heapq.heappush of 3, 1, 2 leaves [1, 3, 2].
        assert_eq!(ids(&h), ["a", "c", "b"]);
        h.push(entry(json!(-4), "front"));
        h.push(entry(json!(5.0), "explicit"));
        assert_eq!(h.pop().map(|e| e.id), Some("front".to_owned()));
        assert!(h.remove("b"));
        assert!(!h.remove("b"));
        let order: Vec<String> = std::iter::from_fn(|| h.pop().map(|e| e.id)).collect();
        assert_eq!(order, ["a", "c", "explicit"]);
        assert!(h.is_empty());
    }

    fn mixed_outputs() -> (Map<String, Value>, Classes) {
        let prompt = json!({
            "1": {"class_type": "EmptyImage", "inputs": {}},
            "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0]}},
            "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0]}},
            "4": {"class_type": "EmptyAudio", "inputs": {}},
            "5": {"class_type": "SaveAudio", "inputs": {"audio": ["4", 0]}},
            "6": {"class_type": "PrimitiveString", "inputs": {"value": "x"}},
            "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
            "8": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["1", 0]}},
            "9": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        });
        let classes: Map<String, Value> = [
            "SaveVideo",
            "SaveAudio",
            "PreviewAny",
            "SaveAnimatedWEBP",
            "PreviewImage",
        ]
        .iter()
        .map(|c| ((*c).to_owned(), json!({"output_node": true})))
        .collect();
        (
            prompt.as_object().cloned().unwrap_or_default(),
            Arc::new(classes),
        )
    }

    fn order(outputs: &[&str], cached: &[&str]) -> Vec<String> {
        let (prompt, classes) = mixed_outputs();
        let cached: HashSet<String> = cached.iter().map(|c| (*c).to_owned()).collect();
        let mut list = ExecutionList::new(&prompt, &classes);
        for o in outputs {
            list.add_node(o, &cached);
        }
        std::iter::from_fn(|| {
            let n = list.next()?;
            list.complete(&n);
            Some(n)
        })
        .collect()
    }

    #[test]
    fn nodes_run_in_the_recorded_order_for_the_same_outputs_list() {
        // History `prompt[4]` and the order of fixture 082 on 0.6.0 and 0.3.64.
        assert_eq!(
            order(&["8", "3", "5", "9", "7"], &[]),
            ["1", "8", "9", "2", "3", "4", "5", "6", "7"]
        );
        assert_eq!(
            order(&["9", "7", "3", "8", "5"], &[]),
            ["1", "9", "8", "6", "7", "2", "3", "4", "5"]
        );
        assert_eq!(
            order(&["8", "3", "9", "7", "5"], &[]),
            ["1", "8", "9", "2", "3", "6", "7", "4", "5"]
        );
        // A cached input is not run again; its consumers are not held back.
        assert_eq!(order(&["9"], &["1"]), ["9"]);
    }

    #[test]
    fn a_changed_input_changes_the_cache_key_downstream() {
        let (mut prompt, _) = mixed_outputs();
        let before = signatures(&prompt);
        prompt["6"]["inputs"]["value"] = json!("y");
        let after = signatures(&prompt);
        assert_eq!(before["1"], after["1"]);
        assert_eq!(before["9"], after["9"]);
        assert_ne!(before["6"], after["6"]);
        assert_ne!(before["7"], after["7"]);
    }
}
