//! Following one prompt to its end: WebSocket events for speed and
//! progress, polling of the job status as the source of truth.
//!
//! The events come from the worker's one socket ([`crate::socket`]), subscribed
//! to before the prompt is submitted; they are this prompt's when they name it
//! (events of an earlier prompt are skipped, and so are events that name no
//! prompt while another one is known to run). A silent or dropped socket never
//! hangs a job: the status is polled every `poll` whatever the socket does, the
//! socket's task opens a closed socket again, an open socket silent for
//! `silence` is replaced, and ComfyUI unreachable for `unreachable` ends the
//! watch with a retryable error. A prompt ComfyUI no longer knows (it
//! restarted) ends it the same way. When a poll finds the prompt ended before
//! the open socket said so (its reader is behind), the socket is read up to
//! `catch_up` longer for the prompt's last events, so that watchers get its
//! outputs before the job is reported.
//!
//! A cancel does not end the watch: ComfyUI is asked to interrupt the
//! prompt and the watch goes on until ComfyUI says how the prompt ended,
//! because ComfyUI only checks its interrupt flag between nodes (and in
//! nodes that report progress): a long node without such a hook runs to
//! its end, and when it is the last one the prompt succeeds with its
//! outputs despite the cancel.

use crate::classify::{ErrorClass, JobError};
use crate::queue_client::Progress;
use crate::socket::{Link, Subscription};
use comfy_adapter::ComfyAdapter;
use comfy_adapter::model::event::Event;
use comfy_adapter::model::job::{JobState, JobStatus};
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
    /// When the status says the prompt ended before the open socket did, read the socket
    /// at most this long for the prompt's last events (see the module docs).
    pub catch_up: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            poll: Duration::from_secs(1),
            silence: Duration::from_secs(15),
            unreachable: Duration::from_secs(10),
            timeout: Duration::from_secs(3600),
            catch_up: Duration::from_secs(1),
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

async fn next_event(events: &mut Option<Subscription>) -> Option<Event> {
    match events {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Whether a prompt other than the one followed is running, as the events read so far say
/// (an earlier prompt still ending after an interrupt that timed out). Events that name no
/// prompt (`progress` and previews of old servers) are then not the followed prompt's.
#[derive(Debug, Default)]
struct Running {
    other: bool,
}

impl Running {
    /// Takes `e` into account; false when `e` names no prompt and another one is running.
    fn ours(&mut self, e: &Event, prompt_id: &str) -> bool {
        match e.prompt_id() {
            Some(p) if p == prompt_id => self.other = false,
            // Another prompt's end, or a sign that it runs.
            Some(_) => self.other = !e.is_terminal(),
            None if matches!(e, Event::Status { .. }) => {}
            None => return !self.other,
        }
        true
    }
}

/// What the watch made of the socket's events so far.
struct Seen<'a> {
    running: Running,
    ending: Ending,
    tracker: &'a mut ProgressTracker,
    progress: &'a watch::Sender<Progress>,
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
    /// The prompt.
    pub prompt_id: &'a str,
    /// Timings.
    pub options: FollowOptions,
    /// Where this prompt's events are forwarded to the queue (`None`: not forwarded).
    pub tap: Option<&'a crate::relay::EventTap>,
    /// Where the outputs each `executed` event announces go, to be stored in the queue
    /// while the prompt goes on.
    pub uploads: &'a crate::files::OutputUploads,
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

    /// Takes one socket event: relays it (up to the prompt's end) and moves the progress.
    /// True when it is the prompt's end and the status is to be read now.
    fn take(&self, e: &Event, seen: &mut Seen<'_>) -> bool {
        if !seen.running.ours(e, self.prompt_id) {
            tracing::debug!("an event of no prompt while another prompt runs; skipped");
            return false;
        }
        // Watchers get the prompt's events up to its end (the first terminal event); what
        // follows only times the status read.
        if let Some(tap) = self.tap
            && !seen.ending.seen()
        {
            tap.offer(e);
        }
        if let Event::Executed {
            prompt_id, outputs, ..
        } = e
            && prompt_id == self.prompt_id
        {
            self.uploads.offer(outputs);
        }
        if seen.tracker.apply(e) {
            seen.progress.send_replace(seen.tracker.progress());
        }
        e.prompt_id() == Some(self.prompt_id) && e.is_terminal() && seen.ending.ended(e)
    }

    /// The status says the prompt ended, but the open socket has not said so yet: its
    /// reader is behind (a loaded machine), and the prompt's last events (the final
    /// progress, `executed` with the outputs, `execution_success`) are still on their way.
    /// They are read, for at most `catch_up`, so watchers see them before the job is
    /// reported. A socket that is not open is not waited for.
    async fn catch_up(&self, events: &mut Option<Subscription>, seen: &mut Seen<'_>) {
        let Some(sub) = events.as_mut() else {
            return;
        };
        if seen.ending.seen() || !matches!(sub.link(), Link::Open { .. }) {
            return;
        }
        let deadline = Instant::now() + self.options.catch_up;
        while !seen.ending.seen() {
            match tokio::time::timeout_at(deadline, sub.next()).await {
                Ok(Some(e)) => {
                    self.take(&e, seen);
                }
                Ok(None) | Err(_) => {
                    tracing::debug!(
                        "the socket did not say the prompt ended; its last events are not relayed"
                    );
                    return;
                }
            }
        }
    }

    /// Follows the prompt until it ends, a stop is requested, or it cannot be followed.
    /// `events` are the worker socket's events from before the prompt was submitted
    /// (`None`: polling only).
    pub async fn run(
        &self,
        mut events: Option<Subscription>,
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
        let mut unknown_polls = 0u32;
        let mut stop_open = true;
        let mut seen = Seen {
            running: Running::default(),
            ending: Ending::default(),
            tracker,
            progress,
        };
        let mut tick = tokio::time::interval(opts.poll);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let mut check = false;
            let mut check_end = false;
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
                    Some(e) => {
                        last_event = Instant::now();
                        check_end = self.take(&e, &mut seen);
                    }
                    None => {
                        tracing::warn!("the worker's WebSocket is gone; following by polling");
                        events = None;
                    }
                },
                () = seen.ending.next_poll() => check_end = true,
                _ = tick.tick() => check = true,
            }
            if check_end {
                // History may lag a little behind the socket's end of the prompt.
                if let Ok(s) = self.adapter.job(self.prompt_id).await
                    && s.state.is_terminal()
                {
                    return finished(s, cancel_requested);
                }
                seen.ending.not_yet();
            }
            if check {
                match self.adapter.job(self.prompt_id).await {
                    Ok(s) => {
                        last_reachable = Instant::now();
                        if s.state.is_terminal() {
                            self.catch_up(&mut events, &mut seen).await;
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
                // An open socket silent this long may be half dead: ask for a fresh one (a
                // closed one is opened again by the socket's own task).
                if let Some(sub) = &events
                    && matches!(sub.link(), Link::Open { .. })
                    && last_event.elapsed() >= opts.silence
                {
                    sub.reopen();
                    last_event = Instant::now();
                }
            }
        }
    }
}

/// The socket said the prompt ended: when to look at its status. ComfyUI sends
/// `execution_success` (`_error`, `_interrupted`) before it writes the prompt's history, and
/// the last `executing` (no node) after it; so the first is polled after a short pause, the
/// second at once, and a status that is not final yet again after a pause that doubles
/// (2 ms to 256 ms); after that, the regular poll.
#[derive(Debug, Default)]
struct Ending {
    next: Option<Instant>,
    pause: Duration,
    tries: u32,
    seen: bool,
}

impl Ending {
    /// Whether the socket already said the prompt ended.
    fn seen(&self) -> bool {
        self.seen
    }

    /// The prompt's terminal event `e`; true when its status is to be polled now.
    fn ended(&mut self, e: &Event) -> bool {
        self.seen = true;
        if matches!(e, Event::Executing { node: None, .. }) {
            self.next = None;
            return true;
        }
        if self.next.is_none() && self.tries < 8 {
            self.pause = Duration::from_millis(2);
            self.next = Some(Instant::now() + self.pause);
        }
        false
    }

    /// The status polled was not final yet.
    fn not_yet(&mut self) {
        self.tries += 1;
        if self.tries >= 8 {
            // The regular poll takes over.
            self.next = None;
            return;
        }
        self.pause = (self.pause * 2).clamp(Duration::from_millis(2), Duration::from_millis(256));
        self.next = Some(Instant::now() + self.pause);
    }

    /// Resolves when the status is due (never when none is).
    async fn next_poll(&self) {
        match self.next {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Ending, Running};
    use comfy_adapter::model::event::Event;

    fn start(p: &str) -> Event {
        Event::ExecutionStart {
            prompt_id: p.into(),
            timestamp_ms: None,
        }
    }

    fn success(p: &str) -> Event {
        Event::ExecutionSuccess {
            prompt_id: p.into(),
            timestamp_ms: None,
        }
    }

    fn anonymous_progress() -> Event {
        Event::Progress {
            prompt_id: None,
            node: None,
            value: 1.0,
            max: 2.0,
        }
    }

    #[test]
    fn events_of_no_prompt_are_ours_unless_another_prompt_runs() {
        let mut r = Running::default();
        assert!(r.ours(&anonymous_progress(), "p2"), "nothing known: ours");
        assert!(r.ours(&start("p1"), "p2"), "named events always pass");
        assert!(
            !r.ours(&anonymous_progress(), "p2"),
            "p1 runs: not p2's progress"
        );
        assert!(r.ours(&success("p1"), "p2"));
        assert!(r.ours(&anonymous_progress(), "p2"), "p1 ended");
        assert!(r.ours(&start("p1"), "p2"));
        assert!(r.ours(&start("p2"), "p2"));
        assert!(r.ours(&anonymous_progress(), "p2"), "p2 runs: ours");
    }

    #[test]
    fn the_last_executing_polls_at_once_and_execution_success_after_a_pause() {
        let mut e = Ending::default();
        assert!(
            !e.ended(&success("p")),
            "success: history may not be written"
        );
        assert!(e.next.is_some(), "a poll is due soon");
        let last = Event::Executing {
            prompt_id: Some("p".into()),
            node: None,
            display_node: None,
        };
        assert!(e.ended(&last), "written by the last executing");
        for _ in 0..8 {
            e.not_yet();
        }
        assert!(e.next.is_none(), "the regular poll takes over");
        assert!(!e.ended(&success("p")));
        assert!(e.ended(&last), "the last executing still polls");
    }
}
