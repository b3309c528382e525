//! Live events of the running prompt, forwarded to the queue (`POST /api/workers/events`),
//! which relays them to the job's watchers on its `/ws`.
//!
//! Lossy by design: progress is a view, the job's status stays the truth. The follow loop
//! hands each event of this prompt to an [`EventTap`], which numbers it (`seq`, per attempt)
//! and offers it to a bounded channel with `try_send`: the job never waits for the queue. A
//! full channel drops the event (counted; `seq` then has a gap). A relay task takes what is
//! queued — the first event of a burst at once, then whatever queued up meanwhile, at most
//! [`RelayOptions::max_batch`] per call — and posts it with the lease token. A 409 (lease lost)
//! or 404 (the job is gone, or a queue without the route) stops the relay; any other failure
//! drops that batch and the relay goes on.

use crate::queue_client::{EventBatch, JobEvent, QueueClient, QueueError};
use base64::Engine as _;
use comfy_adapter::model::event::Event;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use uuid::Uuid;

/// How events are forwarded.
#[derive(Debug, Clone, Copy)]
pub struct RelayOptions {
    /// Events waiting to be sent, at most (more are dropped).
    pub capacity: usize,
    /// Events per batch, at most (the queue takes up to 256).
    pub max_batch: usize,
    /// Forward preview images (base64); without, a preview is forwarded as its size and type.
    pub forward_previews: bool,
    /// How long the end of a job waits for the last events to be sent.
    pub flush: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            capacity: 1024,
            max_batch: 64,
            forward_previews: true,
            flush: Duration::from_secs(2),
        }
    }
}

/// What a relay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Events offered (numbered).
    pub offered: u64,
    /// Events the queue accepted.
    pub sent: u64,
    /// Events dropped: channel full (back-pressure), or in a batch that failed.
    pub dropped: u64,
    /// Whether a 409/404 stopped the relay.
    pub stopped: bool,
}

/// Where batches go: the queue ([`QueueClient::post_events`]), or a test double.
pub trait EventSink: Send + Sync + 'static {
    /// Sends one batch.
    fn send(&self, batch: EventBatch) -> impl Future<Output = Result<(), QueueError>> + Send;
}

impl EventSink for QueueClient {
    async fn send(&self, batch: EventBatch) -> Result<(), QueueError> {
        self.post_events(&batch).await
    }
}

#[derive(Debug, Default)]
struct Counters {
    offered: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
}

/// The job side: numbers this prompt's events and offers them to the relay, never waiting.
#[derive(Debug)]
pub struct EventTap {
    tx: mpsc::Sender<JobEvent>,
    prompt_id: String,
    forward_previews: bool,
    seq: AtomicU64,
    counters: Arc<Counters>,
}

fn ms_since_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl EventTap {
    /// Whether `e` is an event of this prompt that watchers get.
    fn wanted(&self, e: &Event) -> bool {
        let ours = |p: Option<&str>| p == Some(self.prompt_id.as_str());
        match e {
            Event::ExecutionStart { .. }
            | Event::ExecutionCached { .. }
            | Event::Executing { .. }
            | Event::ProgressState { .. }
            | Event::Executed { .. }
            | Event::ExecutionSuccess { .. }
            | Event::ExecutionError { .. }
            | Event::ExecutionInterrupted { .. } => ours(e.prompt_id()),
            // Old servers send these without the prompt id; on this worker's own socket,
            // while its prompt runs, they are this prompt's.
            Event::Progress { .. } | Event::Preview { .. } => {
                e.prompt_id().is_none() || ours(e.prompt_id())
            }
            _ => false,
        }
    }

    /// Offers `e` to the relay if it is one of this prompt's; never waits. True when it was
    /// queued.
    pub fn offer(&self, e: &Event) -> bool {
        if !self.wanted(e) {
            return false;
        }
        let received_at_ms = ms_since_epoch();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.counters.offered.fetch_add(1, Ordering::Relaxed);
        let preview_base64 = match e {
            Event::Preview { image, .. } if self.forward_previews && !image.is_empty() => {
                Some(base64::engine::general_purpose::STANDARD.encode(image))
            }
            _ => None,
        };
        let Ok(event) = serde_json::to_value(e) else {
            return false;
        };
        let je = JobEvent {
            seq,
            received_at_ms,
            event,
            preview_base64,
        };
        match self.tx.try_send(je) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            // The relay stopped (lease lost): nothing more is sent.
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// The relay task of one attempt; [`Relay::finish`] ends it.
#[derive(Debug)]
pub struct Relay {
    tap: Option<EventTap>,
    task: tokio::task::JoinHandle<bool>,
    counters: Arc<Counters>,
    flush: Duration,
}

impl Relay {
    /// Starts relaying the events of `prompt_id` (job `job_id`, `attempt`) to `sink`.
    pub fn start<S: EventSink>(
        sink: S,
        job_id: Uuid,
        lease_token: &str,
        attempt: u32,
        prompt_id: &str,
        options: RelayOptions,
    ) -> Relay {
        let (tx, rx) = mpsc::channel(options.capacity.max(1));
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(
            sink,
            rx,
            Batching {
                job_id,
                lease_token: lease_token.to_owned(),
                attempt,
                max_batch: options.max_batch.clamp(1, 256),
            },
            counters.clone(),
        ));
        Relay {
            tap: Some(EventTap {
                tx,
                prompt_id: prompt_id.to_owned(),
                forward_previews: options.forward_previews,
                seq: AtomicU64::new(0),
                counters: counters.clone(),
            }),
            task,
            counters,
            flush: options.flush,
        }
    }

    /// The tap the follow loop offers events to.
    pub fn tap(&self) -> Option<&EventTap> {
        self.tap.as_ref()
    }

    /// Stops taking events, sends what is queued (waiting at most the flush time) and
    /// reports what the relay did.
    pub async fn finish(mut self) -> RelayStats {
        drop(self.tap.take());
        let stopped = match tokio::time::timeout(self.flush, &mut self.task).await {
            Ok(Ok(stopped)) => stopped,
            Ok(Err(_)) => false,
            Err(_) => {
                self.task.abort();
                false
            }
        };
        let c = &self.counters;
        let offered = c.offered.load(Ordering::Relaxed);
        let sent = c.sent.load(Ordering::Relaxed);
        RelayStats {
            offered,
            sent,
            dropped: c
                .dropped
                .load(Ordering::Relaxed)
                .max(offered - sent.min(offered)),
            stopped,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Batching {
    job_id: Uuid,
    lease_token: String,
    attempt: u32,
    max_batch: usize,
}

/// Sends batches until the tap is gone (false) or the queue says stop (true).
async fn run<S: EventSink>(
    sink: S,
    mut rx: mpsc::Receiver<JobEvent>,
    b: Batching,
    counters: Arc<Counters>,
) -> bool {
    while let Some(first) = rx.recv().await {
        let mut events = vec![first];
        while events.len() < b.max_batch {
            match rx.try_recv() {
                Ok(e) => events.push(e),
                Err(_) => break,
            }
        }
        let n = events.len() as u64;
        let batch = EventBatch {
            job_id: b.job_id,
            lease_token: b.lease_token.clone(),
            attempt: b.attempt,
            events,
        };
        match sink.send(batch).await {
            Ok(()) => {
                counters.sent.fetch_add(n, Ordering::Relaxed);
            }
            Err(QueueError::LeaseLost(why)) => {
                tracing::info!(%why, "the queue refused the job's events (lease lost); no more are sent");
                rx.close();
                return true;
            }
            Err(QueueError::Status { status: 404, .. }) => {
                tracing::info!("the queue does not take this job's events (404); no more are sent");
                rx.close();
                return true;
            }
            Err(e) => {
                tracing::debug!(error = %e, events = n, "an events batch failed; dropped");
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::Mutex;
    use tokio::sync::{Notify, Semaphore};

    /// A sink that records batches; each send waits for a permit (so a test can hold it).
    #[derive(Clone)]
    struct Fake {
        batches: Arc<Mutex<Vec<EventBatch>>>,
        gate: Arc<Semaphore>,
        answer: Arc<Mutex<Vec<Result<(), u16>>>>,
        sent: Arc<Notify>,
    }

    impl Fake {
        fn new(open: bool) -> Fake {
            Fake {
                batches: Arc::default(),
                gate: Arc::new(Semaphore::new(if open {
                    Semaphore::MAX_PERMITS
                } else {
                    0
                })),
                answer: Arc::default(),
                sent: Arc::new(Notify::new()),
            }
        }
        fn seqs(&self) -> Vec<Vec<u64>> {
            self.batches
                .lock()
                .unwrap()
                .iter()
                .map(|b| b.events.iter().map(|e| e.seq).collect())
                .collect()
        }
    }

    impl EventSink for Fake {
        fn send(&self, batch: EventBatch) -> impl Future<Output = Result<(), QueueError>> + Send {
            let me = self.clone();
            async move {
                let permit = me.gate.acquire().await.unwrap();
                permit.forget();
                me.batches.lock().unwrap().push(batch);
                me.sent.notify_one();
                let answer = {
                    let mut a = me.answer.lock().unwrap();
                    if a.is_empty() { Ok(()) } else { a.remove(0) }
                };
                match answer {
                    Ok(()) => Ok(()),
                    Err(409) => Err(QueueError::LeaseLost("gone".into())),
                    Err(status) => Err(QueueError::Status {
                        status,
                        body: String::new(),
                    }),
                }
            }
        }
    }

    fn progress(prompt: &str, value: f64) -> Event {
        Event::Progress {
            prompt_id: Some(prompt.into()),
            node: Some("3".into()),
            value,
            max: 100.0,
        }
    }

    fn options(capacity: usize) -> RelayOptions {
        RelayOptions {
            capacity,
            ..RelayOptions::default()
        }
    }

    #[tokio::test]
    async fn the_first_event_goes_at_once_and_the_rest_are_batched() {
        let fake = Fake::new(false);
        let relay = Relay::start(fake.clone(), Uuid::new_v4(), "tok", 1, "p", options(1024));
        let tap = relay.tap().unwrap();
        assert!(tap.offer(&progress("p", 0.0)));
        // The first batch is in flight (held at the gate) with just that event.
        tokio::task::yield_now().await;
        fake.gate.add_permits(1);
        fake.sent.notified().await;
        for v in 1..100 {
            assert!(tap.offer(&progress("p", f64::from(v))));
        }
        fake.gate.add_permits(Semaphore::MAX_PERMITS / 2);
        let stats = relay.finish().await;
        let seqs = fake.seqs();
        assert_eq!(seqs[0], vec![0]);
        assert_eq!(
            seqs[1],
            (1..65).collect::<Vec<u64>>(),
            "at most 64 per batch"
        );
        assert_eq!(seqs[2], (65..100).collect::<Vec<u64>>());
        assert_eq!(
            stats,
            RelayStats {
                offered: 100,
                sent: 100,
                dropped: 0,
                stopped: false
            }
        );
        let b = &fake.batches.lock().unwrap()[0];
        assert_eq!((b.lease_token.as_str(), b.attempt), ("tok", 1));
        assert_eq!(b.events[0].event["event"], "progress");
    }

    #[tokio::test]
    async fn a_full_channel_drops_events_without_blocking() {
        let fake = Fake::new(false);
        let relay = Relay::start(fake.clone(), Uuid::new_v4(), "tok", 1, "p", options(8));
        let tap = relay.tap().unwrap();
        // The queue does not answer at all: offering must still return at once, every time.
        let started = std::time::Instant::now();
        let queued = (0..10_000)
            .filter(|v| tap.offer(&progress("p", f64::from(*v))))
            .count();
        assert!(started.elapsed() < Duration::from_secs(2));
        // One batch taken by the (stuck) sender, 8 in the channel.
        assert!(queued <= 8 + 64, "{queued}");
        fake.gate.add_permits(Semaphore::MAX_PERMITS / 2);
        let stats = relay.finish().await;
        assert_eq!(stats.offered, 10_000);
        assert_eq!(stats.sent, queued as u64);
        assert_eq!(stats.dropped, 10_000 - queued as u64);
        // What was sent keeps its numbers: the gap shows the drop.
        let sent: Vec<u64> = fake.seqs().concat();
        assert!(sent.windows(2).all(|w| w[0] < w[1]), "{sent:?}");
        assert!(sent.last().copied().unwrap_or(0) < 10_000);
    }

    #[tokio::test]
    async fn a_409_stops_the_relay_and_other_failures_do_not() {
        let fake = Fake::new(true);
        fake.answer.lock().unwrap().extend([Err(500), Err(409)]);
        let relay = Relay::start(fake.clone(), Uuid::new_v4(), "tok", 1, "p", options(1024));
        let tap = relay.tap().unwrap();
        assert!(tap.offer(&progress("p", 1.0)));
        fake.sent.notified().await; // 500: dropped, the relay goes on
        assert!(tap.offer(&progress("p", 2.0)));
        fake.sent.notified().await; // 409: stop
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !tap.offer(&progress("p", 3.0)),
            "nothing is queued after a 409"
        );
        let stats = relay.finish().await;
        assert!(stats.stopped);
        assert_eq!(fake.seqs(), vec![vec![0], vec![1]]);
        assert_eq!(stats.sent, 0);
    }

    #[tokio::test]
    async fn only_this_prompts_events_are_forwarded_and_previews_as_asked() {
        let fake = Fake::new(true);
        let relay = Relay::start(fake.clone(), Uuid::new_v4(), "tok", 2, "p", options(1024));
        let tap = relay.tap().unwrap();
        assert!(!tap.offer(&progress("other", 1.0)));
        assert!(!tap.offer(&Event::Status {
            queue_remaining: 1,
            sid: None
        }));
        let preview = Event::Preview {
            mime: Some("image/png".into()),
            node_id: Some("3".into()),
            prompt_id: Some("p".into()),
            bytes: 4,
            image: b"\x89PNG".to_vec().into(),
        };
        assert!(tap.offer(&preview));
        assert!(tap.offer(&Event::ExecutionSuccess {
            prompt_id: "p".into(),
            timestamp_ms: None
        }));
        relay.finish().await;
        let batches = fake.batches.lock().unwrap().clone();
        let events: Vec<&JobEvent> = batches.iter().flat_map(|b| &b.events).collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].preview_base64.as_deref(), Some("iVBORw=="));
        assert_eq!(events[0].event["bytes"], 4);
        assert!(events[0].event.get("image").is_none());
        assert_eq!(events[1].event["event"], "execution_success");

        let fake = Fake::new(true);
        let opts = RelayOptions {
            forward_previews: false,
            ..RelayOptions::default()
        };
        let relay = Relay::start(fake.clone(), Uuid::new_v4(), "tok", 2, "p", opts);
        assert!(relay.tap().unwrap().offer(&preview));
        relay.finish().await;
        assert_eq!(
            fake.batches.lock().unwrap()[0].events[0].preview_base64,
            None
        );
    }
}
