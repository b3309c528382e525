//! What the handlers share: the [`Settings`] and the [`AppState`] (job store, file store,
//! clock, event bus, counters, worker cache, progress board, live leases).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use comfy_artifacts::BlobStore;

use crate::auth::AuthConfig;
use crate::clock::{Millis, SharedClock};
use crate::events::EventBus;
use crate::live::LiveJobs;
use crate::metrics::Metrics;
use crate::progress;
use crate::scheduler::WorkerInfo;
use crate::store::Store;
use crate::wake::Wakeup;

/// Tunables of the service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Lease given to registered (heartbeating) workers.
    pub lease_ms: Millis,
    /// Lease given to workers that never registered (old workers send no heartbeats).
    pub legacy_lease_ms: Millis,
    /// Attempts per job before it is failed for good.
    pub max_attempts: u32,
    /// Pending-jobs cap (0 = none); beyond it submits get 429.
    pub max_pending: u64,
    /// Pending+running cap per user (0 = none).
    pub max_per_user: u64,
    /// Base delay before a job failed with `retry: true` may run again (doubles per attempt).
    pub retry_delay_ms: Millis,
    /// Longest long-poll a worker may ask for, in seconds.
    pub max_wait_secs: f64,
    /// Who may do what.
    pub auth: AuthConfig,
    /// Largest file an upload may carry, in bytes (`--max-file-bytes`).
    pub max_file_bytes: u64,
    /// A job's files are forgotten this long after the job ended (`--file-retention-secs`).
    pub file_retention_ms: Millis,
    /// An upload no submit named is forgotten this long after it, and a blob nothing refers
    /// to is deleted once it is older than this (`--upload-grace-secs`).
    pub upload_grace_ms: Millis,
    /// Period of the file sweep (`--file-sweep-secs`).
    pub file_sweep_ms: Millis,
    /// Largest node catalogue a worker may upload, in bytes (`--max-catalogue-bytes`).
    pub max_catalogue_bytes: u64,
    /// Bytes of submit bodies read and processed at once (`--max-body-bytes-in-flight`);
    /// a submit beyond it is answered 503 `server_busy` (0 = no bound).
    pub max_body_bytes_in_flight: u64,
    /// A pending job no live worker can run fails with `no_capable_worker` after waiting
    /// this long (`--no-capable-worker-secs`; 0 = never).
    pub no_capable_worker_ms: Millis,
    /// Period of the look for jobs no live worker can run (`--route-check-ms`).
    pub route_check_ms: Millis,
}

/// Default `--max-file-bytes`: 1 GiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 30;

/// Default `--max-catalogue-bytes`: 64 MiB (a full `/object_info` is 1.4 MB with core
/// nodes only, ten times that with custom node packs).
pub const DEFAULT_MAX_CATALOGUE_BYTES: u64 = 64 << 20;
/// Default `--max-body-bytes-in-flight`: 256 MiB, about 21 submits of the largest size.
pub const DEFAULT_MAX_BODY_BYTES_IN_FLIGHT: u64 = 256 << 20;

impl Default for Settings {
    fn default() -> Self {
        Self {
            lease_ms: 60_000,
            legacy_lease_ms: 3_600_000,
            max_attempts: 3,
            max_pending: 100,
            max_per_user: 0,
            retry_delay_ms: 10_000,
            max_wait_secs: 30.0,
            auth: AuthConfig {
                user_header: "X-Forwarded-User".into(),
                ..AuthConfig::default()
            },
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            file_retention_ms: 7 * 24 * 3_600_000,
            upload_grace_ms: 3_600_000,
            file_sweep_ms: 600_000,
            max_catalogue_bytes: DEFAULT_MAX_CATALOGUE_BYTES,
            max_body_bytes_in_flight: DEFAULT_MAX_BODY_BYTES_IN_FLIGHT,
            no_capable_worker_ms: 600_000,
            route_check_ms: 2_000,
        }
    }
}

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// Contents of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// The job store.
    pub store: Arc<dyn Store>,
    /// The file store: the bytes of uploads, inputs and outputs, by SHA-256.
    pub files: Arc<dyn BlobStore>,
    /// Recording a stored blob (uploads take it shared) and the file sweep's look at what is
    /// referenced and its deletes (exclusive) do not interleave: a blob an upload found
    /// already stored cannot be deleted between the upload's put and its record.
    pub files_gate: tokio::sync::RwLock<()>,
    /// Time source.
    pub clock: SharedClock,
    /// Tunables.
    pub settings: Settings,
    /// `/ws` fan-out.
    pub events: EventBus,
    /// Wakes long-polling workers when a job may have become claimable.
    pub job_available: Wakeup,
    /// Wakes heartbeats that wait for a cancel request (`heartbeat?wait=`).
    pub cancel_requested: Wakeup,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Registrations seen by this process (a cache of the store's).
    pub workers: WorkerCache,
    /// Process start.
    pub started: Instant,
    /// Set when the server is stopping: long-polls answer at once.
    pub stopping: std::sync::atomic::AtomicBool,
    /// Progress of running jobs from worker heartbeats (memory only).
    pub progress: progress::ProgressBoard,
    /// Leases of running jobs this process knows, with their live-event trackers (memory
    /// only; fences `POST /api/workers/events` without a store write).
    pub live: LiveJobs,
    /// The bytes of submit bodies being read and processed now (`--max-body-bytes-in-flight`).
    pub body_budget: BodyBudget,
    /// Jobs no live worker can run, as this process last saw them.
    pub router: crate::routing::Router,
    /// Turns true at [`AppState::begin_shutdown`]. Every `/ws` connection holds a receiver,
    /// so [`AppState::websockets_closed`] can wait for them to send their close frames.
    pub shutdown: tokio::sync::watch::Sender<bool>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Build the state.
    pub fn new(
        store: Arc<dyn Store>,
        files: Arc<dyn BlobStore>,
        clock: SharedClock,
        settings: Settings,
    ) -> Self {
        Self(Arc::new(Inner {
            store,
            files,
            files_gate: tokio::sync::RwLock::new(()),
            clock,
            events: EventBus::default(),
            job_available: Wakeup::default(),
            cancel_requested: Wakeup::default(),
            metrics: Metrics::default(),
            workers: WorkerCache::default(),
            started: Instant::now(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            progress: progress::ProgressBoard::default(),
            live: LiveJobs::default(),
            body_budget: BodyBudget::new(settings.max_body_bytes_in_flight),
            router: crate::routing::Router::default(),
            shutdown: tokio::sync::watch::Sender::new(false),
            settings,
        }))
    }

    /// Current time from the clock.
    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Stop serving long-polls: waiting `next-job` calls answer `{"job": null}` now, so a
    /// graceful shutdown does not wait out their `wait=`; `/ws` connections send a close
    /// frame (1001, going away) and end.
    pub fn begin_shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.job_available.notify_waiters();
        self.shutdown.send_replace(true);
    }

    /// Resolves once no `/ws` connection is open (after [`AppState::begin_shutdown`]: once
    /// each has sent its close frame). The server's graceful shutdown does not wait for
    /// upgraded connections, so `main` waits for this before it exits.
    pub async fn websockets_closed(&self) {
        self.shutdown.closed().await;
    }

    /// Whether [`AppState::begin_shutdown`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// What the handlers need to know of a worker, cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownWorker {
    /// Its registration.
    pub info: WorkerInfo,
    /// True for workers that registered (they heartbeat: normal lease).
    pub registered: bool,
    /// Asked to drain: offered no job.
    pub drain: bool,
}

/// The registrations this process has read from the store, by worker id.
///
/// With several replicas (on Redis), [`WorkerCache::tap`] sends the id of every worker whose
/// registration changed here to the others, which [`WorkerCache::forget`] it and read it
/// from the store again when next needed.
#[derive(Debug, Default)]
pub struct WorkerCache {
    by_id: RwLock<HashMap<String, KnownWorker>>,
    tap: std::sync::OnceLock<crate::tap::Tap<String>>,
}

impl WorkerCache {
    /// The cached registration of `worker_id`.
    pub fn get(&self, worker_id: &str) -> Option<KnownWorker> {
        self.by_id.read().ok()?.get(worker_id).cloned()
    }

    /// Caches what was read from the store (nothing changed: not sent on).
    pub fn remember(&self, worker_id: &str, entry: KnownWorker) {
        if let Ok(mut m) = self.by_id.write() {
            m.insert(worker_id.to_owned(), entry);
        }
    }

    /// Caches a registration that changed here; other replicas forget theirs.
    pub fn changed(&self, worker_id: &str, entry: KnownWorker) {
        if let Some(tap) = self.tap.get() {
            // Full: another replica may offer that worker jobs by its old registration
            // until it reads it again; the worker's own checks still hold.
            tap.send(worker_id.to_owned());
        }
        self.remember(worker_id, entry);
    }

    /// Drops a worker's entry (another replica changed its registration).
    pub fn forget(&self, worker_id: &str) {
        if let Ok(mut m) = self.by_id.write() {
            m.remove(worker_id);
        }
    }

    /// Drops every entry (what other replicas changed may have been missed).
    pub fn forget_all(&self) {
        if let Ok(mut m) = self.by_id.write() {
            m.clear();
        }
    }

    /// Send the id of every later [`WorkerCache::changed`] to `tap`; `false` if set already.
    pub fn tap(&self, tap: crate::tap::Tap<String>) -> bool {
        self.tap.set(tap).is_ok()
    }
}

/// A bound on the bytes of request bodies being read and processed at once: a semaphore
/// with one permit per KiB. A body takes permits as it is read (all at once when its
/// length is declared) and holds them until its request is answered.
#[derive(Debug)]
pub struct BodyBudget {
    /// `None`: no bound.
    permits: Option<tokio::sync::Semaphore>,
    limit: u64,
}

/// The room one body holds in the [`BodyBudget`]; given back when dropped.
#[derive(Debug, Default)]
pub struct BodyRoom<'a> {
    permit: Option<tokio::sync::SemaphorePermit<'a>>,
    kib: u64,
}

impl BodyBudget {
    /// A budget of `limit` bytes (0 = no bound).
    pub fn new(limit: u64) -> Self {
        let kib = usize::try_from(limit.div_ceil(1024))
            .unwrap_or(usize::MAX)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        Self {
            permits: (limit > 0).then(|| tokio::sync::Semaphore::new(kib)),
            limit,
        }
    }

    /// The bound in bytes (0 = none).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Grow `room` to hold `bytes` in all; `false` (and `room` unchanged) when the budget
    /// has not that much left. Never waits.
    pub fn grow<'a>(&'a self, room: &mut BodyRoom<'a>, bytes: u64) -> bool {
        let Some(sem) = &self.permits else {
            return true;
        };
        let want = bytes.div_ceil(1024);
        if want <= room.kib {
            return true;
        }
        let Ok(more) = u32::try_from(want - room.kib) else {
            return false;
        };
        let Ok(permit) = sem.try_acquire_many(more) else {
            return false;
        };
        match &mut room.permit {
            Some(held) => held.merge(permit),
            None => room.permit = Some(permit),
        }
        room.kib = want;
        true
    }
}
