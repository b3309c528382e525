//! The executor: runs prompts one at a time, node by node, as ComfyUI's
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
//! stop at the `ImageScale` that follows). A node of the
//! uninterruptible class (a fault) behaves the same way: it runs to its end.

use super::breakpoints::{Release, Step, Stopped};
use super::cache::signatures;
use super::execution_list::ExecutionList;
use super::faults::Faults;
use super::history::{Done, Outcome};
use super::queue::Entry;
use super::{Engine, now_ms};
use crate::nodes;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

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
            let ended = Stopped {
                step: Step::BeforeHistory,
                prompt: done.entry.id.clone(),
                node: None,
                class: None,
            };
            if let Some(mut held) = self.breakpoints.hit(ended) {
                held.wait().await;
            }
            let (to, id) = (done.entry.client_id.clone(), done.entry.id.clone());
            {
                let mut st = self.lock();
                st.running = None;
                st.record(done);
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

    /// Waits `d` (and, when `held`, until released) or until an interrupt
    /// (consuming it); true when interrupted.
    async fn pause(&self, d: Duration, stall: bool, mut held: Option<Release>) -> bool {
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
            if let Some(h) = held.as_mut().filter(|h| !h.is_released()) {
                tokio::select! {
                    () = notified => {}
                    () = h.wait() => {}
                }
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

    /// The PNG text chunks of `entry`'s images: `prompt` and each `extra_pnginfo` entry,
    /// as JSON, when the emulator writes metadata; none otherwise.
    fn png_text(&self, entry: &Entry) -> Vec<(String, String)> {
        if !self.metadata {
            return Vec::new();
        }
        let mut text = vec![(
            "prompt".to_owned(),
            serde_json::to_string(&entry.prompt).unwrap_or_default(),
        )];
        if let Some(info) = entry
            .extra_data
            .get("extra_pnginfo")
            .and_then(Value::as_object)
        {
            text.extend(info.iter().map(|(k, v)| (k.clone(), v.to_string())));
        }
        text
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
        let at = |step| Stopped {
            step,
            prompt: pid.to_owned(),
            node: Some(node_id.to_owned()),
            class: Some(class.clone()),
        };
        if let Some(mut held) = self.breakpoints.hit(at(Step::BeforeNode)) {
            held.wait().await;
        }
        let (faults, uninterruptible_class) = {
            let st = self.lock();
            (st.faults.clone(), st.uninterruptible_class.clone())
        };
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
        let held = self.breakpoints.hit(at(Step::InNode));
        let uninterruptible = uninterruptible_class.as_deref() == Some(class.as_str());
        if (nodes::atomic(&class) || uninterruptible) && !stall {
            // A zero node time is no sleep at all: tokio would wait for its next 1 ms tick.
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
            if let Some(mut held) = held {
                held.wait().await;
            }
        } else if self.progress_steps > 0 && !stall {
            // A looping node (a sampler): a step counter after each slice of its time.
            let steps = self.progress_steps;
            let mut held = held;
            for step in 1..=steps {
                if self.pause(d / steps, false, held.take()).await {
                    return Err(interrupted);
                }
                self.send(
                    run.to,
                    "progress",
                    json!({"value": step, "max": steps, "prompt_id": pid, "node": node_id}),
                );
            }
        } else if self.pause(d, stall, held).await {
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
            self.files.store_outputs(ui, &self.png_text(entry));
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
