//! Several `comfy-queue` processes on one Redis serve one queue: what one replica learns in
//! memory, the others are told through the bus (`store::redis::bus`, one pub/sub channel).
//!
//! The store holds every job, lease and registration, and every decision (a claim, a
//! lease's expiry, a cancel) is one Lua script there, so replicas never disagree on those.
//! What travels on the bus only makes the others *look* or *show*:
//!
//! | here                                   | on the other replicas                         |
//! |----------------------------------------|-----------------------------------------------|
//! | `job_available` / `cancel_requested`   | their waiting long-polls and heartbeats wake  |
//! | an event on the [`EventBus`]           | their `/ws` sockets get it                    |
//! | a registration changed                 | they drop their cached copy                   |
//! | a job's progress set or cleared        | their board shows it; a clear also drops their cached lease of it |
//!
//! Each replica sends what it has in batches (one `PUBLISH` of a JSON array) from one task,
//! so the others see its messages in its order. It sends only while another replica
//! listens ([`Tap`]): a queue alone on its Redis builds no events for nobody, sends no
//! `PUBLISH` and reads nothing back. It learns that another listens from `PUBSUB NUMSUB`
//! (at its join, then every [`PEERS_EVERY`]) and from any batch another sends; a replica
//! that joins sends an empty batch at once, so the others open their taps within a round
//! trip. What they send in that round trip is lost, which costs at most a wake-up (the
//! reaper wakes every long-poll each pass). Pub/sub keeps nothing: a replica that lost
//! its listening connection wakes all its waiters and drops its cached registrations when
//! it is back, since it cannot know what it missed. Lost events are lost, as they are for
//! a slow socket.
//!
//! Time: [`server_clock`] reads the Redis server's `TIME` and keeps following it, so every
//! replica stamps leases with the same clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::clock::ReferenceClock;
use crate::events::Event;
use crate::progress::{Progress, ProgressChange};
use crate::state::AppState;
use crate::store::redis::RedisBus;
use crate::tap::Tap;
use crate::wake::Wake;

/// Messages waiting to be sent before new ones are dropped (per kind).
const OUTBOX: usize = 8192;
/// Most messages in one `PUBLISH`.
const BATCH: usize = 256;
/// How often the clock is set from Redis' again.
const CLOCK_EVERY: Duration = Duration::from_secs(10);
/// How often a replica counts the listeners on the bus again.
pub const PEERS_EVERY: Duration = Duration::from_secs(1);

/// The event kinds that cross replicas (an event's `kind` is a `&'static str`).
const EVENT_KINDS: [&str; 5] = [
    "job_created",
    "job_updated",
    "job_deleted",
    "worker_updated",
    "comfy_event",
];

/// One batch on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct Batch {
    /// The replica that sent it (it hears its own batches too and skips them).
    from: Uuid,
    /// Its messages, in the order they happened there.
    m: Vec<Message>,
}

/// One thing another replica must know.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Message {
    /// Long-polling workers may find a job now.
    JobAvailable { all: bool },
    /// A running job was asked to stop.
    CancelRequested,
    /// A worker's registration changed.
    Worker { id: String },
    /// A job's progress, or `None`: its attempt ended or a new one began.
    Progress {
        job: Uuid,
        progress: Option<Progress>,
    },
    /// A `/ws` event.
    Event {
        kind: String,
        data: Value,
        timestamp: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        user_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        preview: Option<String>,
    },
}

/// The replica's tasks on the bus; dropping it stops them.
#[derive(Debug)]
pub struct Replica {
    id: Uuid,
    peers: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Replica {
    /// This replica's id on the bus (random per process).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Whether it knows another replica listens (and so sends what it learns).
    pub fn has_peers(&self) -> bool {
        self.peers.load(Ordering::Relaxed)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Join the other replicas on `bus`: from now on what `state` learns in memory is sent to
/// them, and what they send is taken into `state`. Returns once listening, so nothing sent
/// after this returns is missed. Call it once per `state`.
pub async fn join(state: &AppState, bus: RedisBus) -> Result<Replica, crate::store::StoreError> {
    let id = Uuid::new_v4();
    let peers = Arc::new(AtomicBool::new(false));
    let (job_tx, job_rx) = mpsc::channel(OUTBOX);
    let (cancel_tx, cancel_rx) = mpsc::channel(OUTBOX);
    let (event_tx, event_rx) = mpsc::channel(OUTBOX);
    let (progress_tx, progress_rx) = mpsc::channel(OUTBOX);
    let (worker_tx, worker_rx) = mpsc::channel(OUTBOX);
    let tap = |tx| Tap::new(tx, peers.clone());
    let tapped = state.job_available.tap(tap(job_tx))
        & state.cancel_requested.tap(tap(cancel_tx))
        & state.events.tap(Tap::new(event_tx, peers.clone()))
        & state.progress.tap(Tap::new(progress_tx, peers.clone()))
        & state.workers.tap(Tap::new(worker_tx, peers.clone()));
    if !tapped {
        tracing::warn!("replicas::join called twice on one state; the second link only listens");
    }
    let first = bus.listen().await?;
    // Others listening already: send from now on, and tell them to send too.
    peers.store(bus.listeners().await? > 1, Ordering::Relaxed);
    bus.publish(&hello(id)).await?;
    let listener = tokio::spawn(listen(state.clone(), bus.clone(), id, first, peers.clone()));
    let counter = tokio::spawn(count_peers(bus.clone(), peers.clone()));
    let outboxes = Outboxes {
        job: job_rx,
        cancel: cancel_rx,
        event: event_rx,
        progress: progress_rx,
        worker: worker_rx,
    };
    let sender = tokio::spawn(send(bus, id, outboxes));
    tracing::info!(replica = %id, others = peers.load(Ordering::Relaxed), "joined the other queue replicas on Redis");
    Ok(Replica {
        id,
        peers,
        tasks: vec![listener, sender, counter],
    })
}

/// The empty batch a replica sends when it joins: the others open their taps.
fn hello(id: Uuid) -> Vec<u8> {
    serde_json::to_vec(&Batch {
        from: id,
        m: Vec::new(),
    })
    .unwrap_or_default()
}

/// Counts the bus's listeners every [`PEERS_EVERY`]: the taps stay open while another
/// replica listens, and close when the last other one has gone.
async fn count_peers(bus: RedisBus, peers: Arc<AtomicBool>) {
    let mut every = tokio::time::interval(PEERS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match bus.listeners().await {
            Ok(n) => {
                let others = n > 1;
                if peers.swap(others, Ordering::Relaxed) != others {
                    tracing::info!(
                        others,
                        "other queue replicas {}",
                        if others {
                            "listen: sending to them"
                        } else {
                            "gone: sending nothing"
                        }
                    );
                }
            }
            // Cannot tell: keep sending (a lost message costs more than a spare one).
            Err(_) => peers.store(true, Ordering::Relaxed),
        }
    }
}

/// A clock that reads the Redis server's `TIME` and is set from it again every 10 s, and
/// the task that does so (keep it; dropping it stops the resetting).
pub async fn server_clock(
    bus: &RedisBus,
) -> Result<(Arc<ReferenceClock>, JoinHandle<()>), crate::store::StoreError> {
    let clock = Arc::new(ReferenceClock::new(bus.server_time().await?));
    let (c, bus) = (clock.clone(), bus.clone());
    let task = tokio::spawn(async move {
        let mut every = tokio::time::interval(CLOCK_EVERY);
        every.tick().await;
        loop {
            every.tick().await;
            match bus.server_time().await {
                Ok(t) => {
                    let off = c.set(t);
                    if off.abs() > 1_000 {
                        tracing::warn!(
                            off_ms = off,
                            "this machine's monotonic clock drifted from Redis' TIME"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read Redis' TIME; the clock runs on");
                }
            }
        }
    });
    Ok((clock, task))
}

struct Outboxes {
    job: mpsc::Receiver<Wake>,
    cancel: mpsc::Receiver<Wake>,
    event: mpsc::Receiver<Event>,
    progress: mpsc::Receiver<ProgressChange>,
    worker: mpsc::Receiver<String>,
}

impl Outboxes {
    /// The next message, waiting for one; `None` when every sender is gone.
    async fn next(&mut self) -> Option<Message> {
        tokio::select! {
            Some(w) = self.job.recv() => Some(Message::JobAvailable { all: w == Wake::All }),
            Some(_) = self.cancel.recv() => Some(Message::CancelRequested),
            Some(e) = self.event.recv() => Some(event_message(e)),
            Some(p) = self.progress.recv() => Some(Message::Progress { job: p.job, progress: p.progress }),
            Some(id) = self.worker.recv() => Some(Message::Worker { id }),
            else => None,
        }
    }

    /// A message that is ready now, if any.
    fn ready(&mut self) -> Option<Message> {
        if let Ok(w) = self.job.try_recv() {
            return Some(Message::JobAvailable {
                all: w == Wake::All,
            });
        }
        if self.cancel.try_recv().is_ok() {
            return Some(Message::CancelRequested);
        }
        if let Ok(e) = self.event.try_recv() {
            return Some(event_message(e));
        }
        if let Ok(p) = self.progress.try_recv() {
            return Some(Message::Progress {
                job: p.job,
                progress: p.progress,
            });
        }
        self.worker.try_recv().ok().map(|id| Message::Worker { id })
    }
}

fn event_message(e: Event) -> Message {
    Message::Event {
        kind: e.kind.to_owned(),
        data: e.data,
        timestamp: e.timestamp,
        user_id: e.user_id,
        preview: e.preview.map(|p| p.to_string()),
    }
}

/// Sends what the outboxes hold, a batch per `PUBLISH`, until the state is dropped.
async fn send(bus: RedisBus, from: Uuid, mut out: Outboxes) {
    while let Some(first) = out.next().await {
        let mut m = vec![first];
        while m.len() < BATCH {
            let Some(more) = out.ready() else { break };
            m.push(more);
        }
        let batch = Batch { from, m };
        let bytes = match serde_json::to_vec(&batch) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a message for the other replicas");
                continue;
            }
        };
        // The connection manager reconnects; one retry covers a Redis restart in between.
        if let Err(e) = bus.publish(&bytes).await {
            tracing::warn!(error = %e, dropped = batch.m.len(), "cannot tell the other replicas; retrying once");
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Err(e) = bus.publish(&bytes).await {
                tracing::warn!(error = %e, dropped = batch.m.len(), "messages to the other replicas dropped");
            }
        }
    }
}

/// Takes what the other replicas send into `state`, listening again after a lost
/// connection (with backoff).
async fn listen(
    state: AppState,
    bus: RedisBus,
    me: Uuid,
    first: impl futures_util::Stream<Item = Vec<u8>> + Send + 'static,
    peers: Arc<AtomicBool>,
) {
    type Listening = std::pin::Pin<Box<dyn futures_util::Stream<Item = Vec<u8>> + Send>>;
    let mut stream: Listening = Box::pin(first);
    let mut pause = Duration::from_millis(100);
    let mine = own_prefix(me);
    loop {
        while let Some(bytes) = stream.next().await {
            pause = Duration::from_millis(100);
            // Its own batches come back too: told apart by their first bytes, not parsed.
            if bytes.starts_with(&mine) {
                continue;
            }
            match serde_json::from_slice::<Batch>(&bytes) {
                Ok(batch) if batch.from == me => {}
                Ok(batch) => {
                    // Another replica speaks (a hello, at least): it listens.
                    peers.store(true, Ordering::Relaxed);
                    for m in batch.m {
                        apply(&state, m);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a message on the replicas' channel is not ours; skipped");
                }
            }
        }
        tracing::warn!(
            channel = bus.channel(),
            "lost the replicas' channel; listening again"
        );
        stream = loop {
            tokio::time::sleep(pause).await;
            match bus.listen().await {
                Ok(s) => break Box::pin(s) as Listening,
                Err(e) => {
                    pause = (pause * 2).min(Duration::from_secs(5));
                    tracing::warn!(error = %e, retry_in = ?pause, "cannot listen on the replicas' channel");
                }
            }
        };
        // Until the next count, assume the others are there.
        peers.store(true, Ordering::Relaxed);
        // What was sent meanwhile is gone: look again at everything it could have said.
        state.job_available.wake_local(Wake::All);
        state.cancel_requested.wake_local(Wake::All);
        state.workers.forget_all();
        tracing::info!("listening to the other replicas again");
    }
}

/// How every batch `me` sends begins (`from` is the batch's first field).
fn own_prefix(me: Uuid) -> Vec<u8> {
    format!("{{\"from\":\"{me}\"").into_bytes()
}

/// Takes one message from another replica into this one's memory (never sent on).
fn apply(state: &AppState, m: Message) {
    match m {
        Message::JobAvailable { all } => {
            state
                .job_available
                .wake_local(if all { Wake::All } else { Wake::One });
        }
        Message::CancelRequested => state.cancel_requested.wake_local(Wake::All),
        Message::Worker { id } => state.workers.forget(&id),
        Message::Progress { job, progress } => {
            if progress.is_none() {
                // The attempt ended or another began there: a lease cached here is stale.
                state.live.forget(job);
            }
            state.progress.apply(ProgressChange { job, progress });
        }
        Message::Event {
            kind,
            data,
            timestamp,
            user_id,
            preview,
        } => {
            let Some(kind) = EVENT_KINDS.iter().find(|k| **k == kind) else {
                tracing::debug!(%kind, "an event kind this replica does not know; skipped");
                return;
            };
            state.events.publish_local(Event {
                kind,
                data,
                timestamp,
                user_id,
                preview: preview.map(Arc::from),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_their_fields_on_the_wire() {
        let batch = Batch {
            from: Uuid::nil(),
            m: vec![
                Message::JobAvailable { all: false },
                Message::CancelRequested,
                Message::Worker { id: "gpu-1".into() },
                Message::Progress {
                    job: Uuid::nil(),
                    progress: Some(Progress {
                        percent: Some(50.0),
                        ..Progress::default()
                    }),
                },
                Message::Event {
                    kind: "job_created".into(),
                    data: serde_json::json!({"id": "x"}),
                    timestamp: "t".into(),
                    user_id: Some("007".into()),
                    preview: None,
                },
            ],
        };
        let bytes = serde_json::to_vec(&batch).unwrap_or_default();
        let Ok(back) = serde_json::from_slice::<Batch>(&bytes) else {
            panic!("{}", String::from_utf8_lossy(&bytes));
        };
        assert_eq!(back.m, batch.m);
        // A replica knows its own batches by their first bytes, and only its own.
        let me = Uuid::new_v4();
        let mine = serde_json::to_vec(&Batch {
            from: me,
            m: vec![],
        })
        .unwrap_or_default();
        assert!(
            mine.starts_with(&own_prefix(me)),
            "{}",
            String::from_utf8_lossy(&mine)
        );
        assert!(!bytes.starts_with(&own_prefix(me)));
    }
}
