//! Following one prompt to its end: WebSocket events for speed and
//! progress, polling of the job status as the source of truth.
//!
//! A silent or dropped socket never hangs a job: the status is polled every
//! `poll` whatever the socket does, a socket silent for `silence` is
//! reopened (with back-off), and ComfyUI unreachable for `unreachable` ends
//! the watch with a retryable error. A prompt ComfyUI no longer knows (it
//! restarted) ends it the same way.
//!
//! A cancel does not end the watch: ComfyUI is asked to interrupt the
//! prompt and the watch goes on until ComfyUI says how the prompt ended,
//! because ComfyUI only checks its interrupt flag between nodes (and in
//! nodes that report progress): a long node without such a hook runs to
//! its end, and when it is the last one the prompt succeeds with its
//! outputs despite the cancel.

use crate::classify::{ErrorClass, JobError};
use crate::queue_client::Progress;
use comfy_adapter::model::event::Event;
use comfy_adapter::model::job::{JobState, JobStatus};
use comfy_adapter::{ComfyAdapter, EventStream};
use futures_util::StreamExt;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

/// Timings of the watch.
#[derive(Debug, Clone, Copy)]
pub struct FollowOptions {
    /// Status poll period.
    pub poll: Duration,
    /// Reopen a socket silent this long.
    pub silence: Duration,
    /// Give up when ComfyUI is unreachable this long.
    pub unreachable: Duration,
    /// Give up (interrupting the prompt) after this long.
    pub timeout: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            poll: Duration::from_secs(1),
            silence: Duration::from_secs(15),
            unreachable: Duration::from_secs(10),
            timeout: Duration::from_secs(3600),
        }
    }
}

/// Why the watch was asked to stop early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Cancel requested through the queue: interrupt, then report what
    /// ComfyUI did (the prompt may still finish).
    Cancel,
    /// The worker shuts down: interrupt, hand the job back.
    HandBack,
    /// The lease is gone: interrupt, report nothing.
    Abandon,
}

/// How the watch ended.
#[derive(Debug)]
pub enum FollowEnd {
    /// ComfyUI says the prompt ended (any terminal state).
    Finished {
        /// How it ended.
        status: Box<JobStatus>,
        /// Whether a cancel had been requested (and ComfyUI asked to
        /// interrupt the prompt) before it ended.
        cancel_requested: bool,
    },
    /// Stopped on request: a hand-back or a lost lease (the prompt was
    /// interrupted), or a cancel of a prompt ComfyUI then no longer knew
    /// (it was removed from its queue before it ran).
    Stopped(Stop),
    /// The prompt could not be followed to its end.
    Failed(JobError),
}

fn finished(status: JobStatus, cancel_requested: bool) -> FollowEnd {
    FollowEnd::Finished {
        status: Box::new(status),
        cancel_requested,
    }
}

async fn next_event(events: &mut Option<EventStream>) -> Option<comfy_adapter::Result<Event>> {
    match events {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Turns events into heartbeat progress.
#[derive(Debug)]
pub struct ProgressTracker {
    classes: HashMap<String, String>,
    done: BTreeSet<String>,
    current: Option<String>,
    fraction: f64,
    prompt_id: String,
}

impl ProgressTracker {
    /// For a prompt whose node classes are `classes` (node id → class).
    pub fn new(prompt_id: &str, classes: HashMap<String, String>) -> Self {
        ProgressTracker {
            classes,
            done: BTreeSet::new(),
            current: None,
            fraction: 0.0,
            prompt_id: prompt_id.to_owned(),
        }
    }

    /// Takes an event into account; true when it changed the progress.
    pub fn apply(&mut self, e: &Event) -> bool {
        if e.prompt_id().is_some_and(|p| p != self.prompt_id) {
            return false;
        }
        match e {
            Event::ExecutionCached { nodes, .. } => {
                self.done.extend(nodes.iter().cloned());
            }
            Event::Executing { node: Some(n), .. } => {
                if let Some(c) = self.current.replace(n.clone()) {
                    self.done.insert(c);
                }
                self.fraction = 0.0;
            }
            Event::Executed { node, .. } => {
                self.done.insert(node.clone());
            }
            Event::Progress { value, max, .. } if *max > 0.0 => {
                self.fraction = (value / max).clamp(0.0, 1.0);
            }
            Event::ExecutionSuccess { .. } => {
                self.done.extend(self.classes.keys().cloned());
                self.current = None;
            }
            _ => return false,
        }
        true
    }

    /// The progress now.
    pub fn progress(&self) -> Progress {
        let total = self.classes.len().max(1) as f64;
        let done = self.done.len() as f64;
        let running = if self
            .current
            .as_ref()
            .is_some_and(|c| !self.done.contains(c))
        {
            self.fraction
        } else {
            0.0
        };
        Progress {
            percent: (((done + running) / total) * 100.0).clamp(0.0, 100.0),
            node: self.current.clone(),
            node_class: self
                .current
                .as_ref()
                .and_then(|c| self.classes.get(c).cloned()),
            prompt_id: Some(self.prompt_id.clone()),
        }
    }
}

/// Everything `follow` needs.
#[derive(Debug)]
pub struct Follow<'a> {
    /// The server.
    pub adapter: &'a Arc<dyn ComfyAdapter>,
    /// The WebSocket client id (for reconnects).
    pub client_id: &'a str,
    /// The prompt.
    pub prompt_id: &'a str,
    /// Timings.
    pub options: FollowOptions,
    /// Where this prompt's events are forwarded to the queue (`None`: not forwarded).
    pub tap: Option<&'a crate::relay::EventTap>,
}

impl Follow<'_> {
    /// Asks ComfyUI to interrupt the prompt (or drop it from its queue).
    async fn send_cancel(&self) {
        if let Err(e) = self.adapter.cancel(self.prompt_id).await {
            tracing::warn!(error = %e, "could not interrupt the prompt");
        }
    }

    /// Interrupts the prompt for good: the job is given up whatever the
    /// prompt does next (hand-back, lost lease, timeout).
    async fn interrupt(&self) {
        self.send_cancel().await;
        // Wait (briefly) until ComfyUI agrees it ended, so the next prompt
        // does not start behind a dying one.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.adapter.job(self.prompt_id).await {
                Ok(s) if s.state != JobState::Running && s.state != JobState::Pending => return,
                Err(_) => return,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Polls right after the socket said the prompt ended (history may lag a
    /// little behind the socket, as recorded).
    async fn settle(&self) -> Option<JobStatus> {
        let mut pause = Duration::from_millis(2);
        for _ in 0..8 {
            if let Ok(s) = self.adapter.job(self.prompt_id).await
                && s.state.is_terminal()
            {
                return Some(s);
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        None
    }

    /// Follows the prompt until it ends, a stop is requested, or it cannot be followed.
    pub async fn run(
        &self,
        mut events: Option<EventStream>,
        tracker: &mut ProgressTracker,
        progress: &watch::Sender<Progress>,
        stop: &mut watch::Receiver<Option<Stop>>,
    ) -> FollowEnd {
        let mut cancel_requested = false;
        let already = *stop.borrow_and_update();
        match already {
            Some(Stop::Cancel) => {
                self.send_cancel().await;
                cancel_requested = true;
            }
            Some(s) => {
                self.interrupt().await;
                return FollowEnd::Stopped(s);
            }
            None => {}
        }
        let opts = self.options;
        let started = Instant::now();
        let mut last_event = Instant::now();
        let mut last_reachable = Instant::now();
        let mut reconnect_at = Instant::now() + opts.silence.min(Duration::from_secs(2));
        let mut reconnect_pause = Duration::from_millis(500);
        let mut unknown_polls = 0u32;
        let mut stop_open = true;
        let mut tick = tokio::time::interval(opts.poll);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let mut check = false;
            tokio::select! {
                biased;
                changed = stop.changed(), if stop_open => {
                    let requested = *stop.borrow();
                    if changed.is_err() {
                        // The sender is gone: nobody can stop us any more.
                        stop_open = false;
                    }
                    match requested {
                        Some(Stop::Cancel) if !cancel_requested => {
                            tracing::info!("cancel requested: interrupting; following until ComfyUI says how the prompt ended");
                            self.send_cancel().await;
                            cancel_requested = true;
                        }
                        Some(Stop::Cancel) | None => {}
                        Some(s) => {
                            tracing::info!(?s, "stopping the prompt");
                            self.interrupt().await;
                            return FollowEnd::Stopped(s);
                        }
                    }
                }
                ev = next_event(&mut events) => match ev {
                    Some(Ok(e)) => {
                        last_event = Instant::now();
                        if let Some(tap) = self.tap {
                            tap.offer(&e);
                        }
                        if tracker.apply(&e) {
                            progress.send_replace(tracker.progress());
                        }
                        if e.prompt_id() == Some(self.prompt_id)
                            && e.is_terminal()
                            && let Some(s) = self.settle().await
                        {
                            return finished(s, cancel_requested);
                        }
                    }
                    Some(Err(e)) => tracing::debug!(error = %e, "unreadable WebSocket frame"),
                    None => {
                        tracing::warn!("WebSocket closed; polling until it is back");
                        events = None;
                        reconnect_at = Instant::now() + reconnect_pause;
                    }
                },
                _ = tick.tick() => check = true,
            }
            if check {
                match self.adapter.job(self.prompt_id).await {
                    Ok(s) => {
                        last_reachable = Instant::now();
                        if s.state.is_terminal() {
                            return finished(s, cancel_requested);
                        }
                        if s.state == JobState::Unknown {
                            unknown_polls += 1;
                            if unknown_polls >= 3 && cancel_requested {
                                // Deleted from ComfyUI's queue before it ran.
                                return FollowEnd::Stopped(Stop::Cancel);
                            }
                            if unknown_polls >= 3 {
                                return FollowEnd::Failed(JobError::new(
                                    ErrorClass::ComfyUnavailable,
                                    "ComfyUI no longer knows the prompt (restarted?)",
                                ));
                            }
                        } else {
                            unknown_polls = 0;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "job status poll failed");
                        if last_reachable.elapsed() >= opts.unreachable {
                            return FollowEnd::Failed(JobError::from_comfy(&e));
                        }
                    }
                }
                if started.elapsed() >= opts.timeout {
                    self.interrupt().await;
                    return FollowEnd::Failed(JobError::new(
                        ErrorClass::Timeout,
                        format!("the prompt ran longer than {:?}", opts.timeout),
                    ));
                }
                let silent = events.is_none() || last_event.elapsed() >= opts.silence;
                if silent && Instant::now() >= reconnect_at {
                    match tokio::time::timeout(
                        Duration::from_secs(5),
                        self.adapter.events(self.client_id),
                    )
                    .await
                    {
                        Ok(Ok(s)) => {
                            tracing::info!("WebSocket (re)opened");
                            events = Some(s);
                            last_event = Instant::now();
                            reconnect_pause = Duration::from_millis(500);
                        }
                        _ => {
                            reconnect_pause = (reconnect_pause * 2).min(Duration::from_secs(10));
                        }
                    }
                    reconnect_at = Instant::now() + reconnect_pause;
                }
            }
        }
    }
}
