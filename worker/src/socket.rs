//! The worker's one WebSocket to its ComfyUI, opened once ComfyUI is detected and kept
//! open across jobs.
//!
//! A task owns the socket (`/ws?clientId=` with the worker's fixed client id). It waits for
//! ComfyUI's greeting once per connection (ComfyUI registers a socket before it greets it:
//! after the greeting no event sent to the client id is missed), then reads events and hands
//! them to the job being followed, if any ([`ComfySocket::subscribe`]); with no job they are
//! dropped. When the socket closes or fails (ComfyUI restarted, the network broke) the task
//! opens it again with the same client id after a pause that grows (250 ms doubling to
//! 10 s; back to 250 ms once a socket stayed open 5 s). A job's follower may ask for a fresh
//! socket when the current one has been silent too long ([`Subscription::reopen`]).
//!
//! The socket is a speed-up, not the truth: a job whose events do not come (socket down,
//! re-opening, silent) is still followed by polling its status (see [`crate::follow`]).
//! Each successful open gets a new [`Link::Open`] generation: a generation still open is a
//! ComfyUI that did not restart since (the worker uses that to skip re-checking its version
//! before every job).
//!
//! Dropping the [`ComfySocket`] closes the socket and stops the task (on re-detection the
//! worker drops the old one before it opens the socket to the new server, so two sockets
//! never share the client id).

use backon::{BackoffBuilder, ExponentialBuilder};
use comfy_adapter::model::event::Event;
use comfy_adapter::{ComfyAdapter, ComfyError, EventStream};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The state of the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Being opened (connect, then ComfyUI's greeting).
    Opening,
    /// Open and greeted. `generation` counts the opens since this [`ComfySocket`] started
    /// (1 for the first).
    Open {
        /// Which open this is.
        generation: u64,
    },
    /// Closed or failed; opened again after a pause.
    Down,
    /// Stopped for good (the [`ComfySocket`] was dropped).
    Stopped,
}

impl Link {
    /// The generation of an open socket; `None` in any other state.
    pub fn generation(self) -> Option<u64> {
        match self {
            Link::Open { generation } => Some(generation),
            _ => None,
        }
    }
}

/// Timings of the socket.
#[derive(Debug, Clone, Copy)]
pub struct SocketOptions {
    /// Connect (TCP and WebSocket handshake) at most this long.
    pub open: Duration,
    /// Wait this long for ComfyUI's greeting after a connect; a socket that does not greet
    /// is closed and opened again later.
    pub greeting: Duration,
    /// First pause before opening again after a close or a failed open.
    pub backoff_min: Duration,
    /// Longest pause.
    pub backoff_max: Duration,
    /// A socket that stayed open this long starts the pauses over from `backoff_min`.
    pub stable: Duration,
    /// Events waiting for the job's follower, at most (the reader waits when it is full).
    pub feed: usize,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            open: Duration::from_secs(5),
            greeting: Duration::from_secs(2),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            stable: Duration::from_secs(5),
            feed: 256,
        }
    }
}

/// Where the reader hands events: the subscription of the job being followed.
#[derive(Debug)]
struct Feed {
    id: u64,
    tx: mpsc::Sender<Event>,
}

#[derive(Debug)]
struct Shared {
    link: watch::Sender<Link>,
    feed: Mutex<Option<Feed>>,
    next_feed: AtomicU64,
    /// The generation a follower asked to replace (0: none).
    reopen: watch::Sender<u64>,
    /// Capacity of a subscription.
    feed_capacity: usize,
}

impl Shared {
    fn feed(&self) -> std::sync::MutexGuard<'_, Option<Feed>> {
        self.feed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `e` to the current subscriber; waits while its queue is full.
    async fn forward(&self, e: Event) {
        let target = self.feed().as_ref().map(|f| (f.id, f.tx.clone()));
        let Some((id, tx)) = target else {
            return;
        };
        if tx.send(e).await.is_err() {
            self.unsubscribe(id);
        }
    }

    fn unsubscribe(&self, id: u64) {
        let mut feed = self.feed();
        if feed.as_ref().is_some_and(|f| f.id == id) {
            *feed = None;
        }
    }
}

/// The socket and the task that keeps it open.
#[derive(Debug)]
pub struct ComfySocket {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ComfySocket {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.link.send_replace(Link::Stopped);
        // The subscriber's next read answers `None`.
        *self.shared.feed() = None;
    }
}

impl ComfySocket {
    /// Starts keeping a socket to `adapter`'s server open as `client_id`.
    pub fn open(adapter: Arc<dyn ComfyAdapter>, client_id: &str, options: SocketOptions) -> Self {
        let (link, _) = watch::channel(Link::Opening);
        let shared = Arc::new(Shared {
            link,
            feed: Mutex::new(None),
            next_feed: AtomicU64::new(0),
            reopen: watch::channel(0).0,
            feed_capacity: options.feed.max(1),
        });
        let task = tokio::spawn(keep_open(
            adapter,
            client_id.to_owned(),
            shared.clone(),
            options,
        ));
        ComfySocket { shared, task }
    }

    /// A handle jobs use to take events (it does not keep the socket open).
    pub fn handle(&self) -> SocketHandle {
        SocketHandle {
            shared: self.shared.clone(),
        }
    }
}

/// What a job sees of the socket.
#[derive(Debug, Clone)]
pub struct SocketHandle {
    shared: Arc<Shared>,
}

impl SocketHandle {
    /// The state now.
    pub fn link(&self) -> Link {
        *self.shared.link.borrow()
    }

    /// The generation of the socket if it is open now.
    pub fn open_generation(&self) -> Option<u64> {
        self.link().generation()
    }

    /// Waits at most `within` while the socket is being opened; answers its generation
    /// when it is open then. A socket that is down (between two tries) is not waited for.
    pub async fn wait_open(&self, within: Duration) -> Option<u64> {
        let mut rx = self.shared.link.subscribe();
        let _ = tokio::time::timeout(within, rx.wait_for(|l| *l != Link::Opening)).await;
        let link = *rx.borrow();
        link.generation()
    }

    /// From now on, every event the socket reads goes to the answered subscription (a
    /// previous subscription gets nothing more), until it is dropped. Subscribe before
    /// submitting the prompt: events read before are not kept.
    pub fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::channel(self.shared.feed_capacity);
        let id = self.shared.next_feed.fetch_add(1, Ordering::Relaxed);
        *self.shared.feed() = Some(Feed { id, tx });
        Subscription {
            rx,
            id,
            shared: self.shared.clone(),
        }
    }
}

/// The events the socket reads for one job (whatever prompt they name: the follower
/// filters them).
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Event>,
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.unsubscribe(self.id);
    }
}

impl Subscription {
    /// The next event; `None` once the socket is stopped for good (or this subscription
    /// was replaced). A socket that closes and opens again does not end it.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The state of the socket now.
    pub fn link(&self) -> Link {
        *self.shared.link.borrow()
    }

    /// Asks for a fresh socket (this one is open but has said nothing for too long). The
    /// subscription stays.
    pub fn reopen(&self) {
        if let Some(generation) = self.link().generation() {
            self.shared.reopen.send_replace(generation);
        }
    }
}

/// How one open socket ended.
enum Closed {
    /// ComfyUI closed it, or it failed.
    Ended,
    /// A follower asked for a fresh one.
    Reopen,
}

/// Opens the socket and its greeting; `Err` says why it is not usable.
async fn open_greeted(
    adapter: &dyn ComfyAdapter,
    client_id: &str,
    options: &SocketOptions,
) -> Result<EventStream, String> {
    let mut stream = match tokio::time::timeout(options.open, adapter.events(client_id)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("not open after {:?}", options.open)),
    };
    // ComfyUI greets a socket (a `status` with the session id) once it is registered; any
    // frame, even one we cannot read, says so.
    match tokio::time::timeout(options.greeting, stream.next()).await {
        Ok(Some(_)) => Ok(stream),
        Ok(None) => Err("closed before ComfyUI greeted it".to_owned()),
        Err(_) => Err(format!(
            "opened but not greeted within {:?}",
            options.greeting
        )),
    }
}

/// Resolves once a follower asked to replace socket `generation`.
async fn asked_to_reopen(rx: &mut watch::Receiver<u64>, generation: u64) {
    if rx.wait_for(|g| *g == generation).await.is_err() {
        // Nobody can ask any more.
        std::future::pending::<()>().await;
    }
}

/// Reads events until the socket closes or a follower asks for a fresh one.
async fn read(stream: &mut EventStream, shared: &Shared, generation: u64) -> Closed {
    let mut reopen = shared.reopen.subscribe();
    loop {
        tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(e)) => shared.forward(e).await,
                Some(Err(ComfyError::WebSocket { reason, .. })) => {
                    tracing::warn!(%reason, "ComfyUI WebSocket failed");
                    return Closed::Ended;
                }
                Some(Err(e)) => tracing::debug!(error = %e, "unreadable WebSocket frame"),
                None => return Closed::Ended,
            },
            () = asked_to_reopen(&mut reopen, generation) => return Closed::Reopen,
        }
    }
}

async fn keep_open(
    adapter: Arc<dyn ComfyAdapter>,
    client_id: String,
    shared: Arc<Shared>,
    options: SocketOptions,
) {
    let pauses = || {
        ExponentialBuilder::default()
            .with_min_delay(options.backoff_min)
            .with_max_delay(options.backoff_max)
            .without_max_times()
            .build()
    };
    let mut backoff = pauses();
    let mut generation = 0u64;
    let mut down_since: Option<Instant> = None;
    loop {
        shared.link.send_replace(Link::Opening);
        let mut stream = match open_greeted(adapter.as_ref(), &client_id, &options).await {
            Ok(s) => s,
            Err(why) => {
                shared.link.send_replace(Link::Down);
                let pause = backoff.next().unwrap_or(options.backoff_max);
                if down_since.is_none() {
                    down_since = Some(Instant::now());
                    tracing::warn!(%why, retry_in = ?pause, "ComfyUI WebSocket not open; jobs are followed by polling until it is");
                } else {
                    tracing::debug!(%why, retry_in = ?pause, "ComfyUI WebSocket still not open");
                }
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        generation += 1;
        match down_since.take() {
            Some(since) => {
                tracing::info!(generation, down_for = ?since.elapsed(), "ComfyUI WebSocket open again");
            }
            None => tracing::debug!(generation, "ComfyUI WebSocket open"),
        }
        shared.link.send_replace(Link::Open { generation });
        let opened = Instant::now();
        let closed = read(&mut stream, &shared, generation).await;
        drop(stream);
        shared.link.send_replace(Link::Down);
        if opened.elapsed() >= options.stable {
            backoff = pauses();
        }
        down_since = Some(Instant::now());
        match closed {
            Closed::Reopen => {
                tracing::info!("ComfyUI WebSocket silent too long; opening a fresh one");
            }
            Closed::Ended => {
                let pause = backoff.next().unwrap_or(options.backoff_max);
                tracing::warn!(retry_in = ?pause, "ComfyUI WebSocket closed; opening it again");
                tokio::time::sleep(pause).await;
            }
        }
    }
}
