//! Durable job storage. Two backends implement [`Store`]: [`sqlite::SqliteStore`] (default,
//! embedded) and [`redis::RedisStore`]. Both pass the same conformance suite
//! (`queue/tests/conformance.rs`).
//!
//! Every operation that changes a job is atomic in the backend (one SQLite transaction, or
//! one Redis Lua script) and is acknowledged only after it is stored, so a job in flight is
//! never only in memory.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use crate::clock::Millis;
use crate::lifecycle::{Failure, LeaseKind, LeaseState};
use crate::model::{FileRecord, FileRole, Job, NewJob, RawNewJob, Status, Upload, WorkerRecord};
use crate::scheduler::WorkerInfo;

mod error;
pub mod redis;
pub mod sqlite;

pub use error::{BackendError, Chain, StoreError};

/// Caps checked atomically with a submit. 0 means no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubmitLimits {
    /// Maximum pending jobs in the whole queue.
    pub max_pending: u64,
    /// Maximum pending+running jobs per user.
    pub max_per_user: u64,
    /// Attempts a job gets before it is failed for good.
    pub max_attempts: u32,
}

/// Result of a submit.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// The job (new, or the one the idempotency key already named).
    pub job: Job,
    /// False when the idempotency key matched an existing job.
    pub created: bool,
    /// 1-based queue position when pending (as [`Store::position`]).
    pub position: Option<u64>,
}

/// A job handed to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The job, now running.
    pub job: Job,
    /// Its workflow.
    pub workflow: Value,
    /// The lease token that fences heartbeat, complete and fail.
    pub lease_token: String,
    /// The job's input files, in submit order.
    pub inputs: Vec<FileRecord>,
}

/// A pending job as routing sees it: [`Store::pending_front`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingJob {
    /// The job's id.
    pub id: Uuid,
    /// Its requirement class ([`crate::scheduler::Requirements::class_key`]): what claims
    /// route on, with the catalogues that handed it back.
    pub class: String,
}

/// What [`Store::expire_files`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileExpiry {
    /// Jobs whose file records were removed.
    pub jobs: u64,
    /// Uploads forgotten.
    pub uploads: u64,
}

/// What [`Store::reap`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Jobs put back to pending.
    pub requeued: Vec<Uuid>,
    /// Jobs that ran out of attempts and were failed (dead letters).
    pub dead: Vec<Uuid>,
    /// Jobs whose cancel request was settled by the expiry.
    pub cancelled: Vec<Uuid>,
}

/// Filter for [`Store::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only this user.
    pub user_id: Option<String>,
    /// At most this many (newest first).
    pub limit: u32,
    /// Skip this many.
    pub offset: u32,
}

/// Job counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Jobs per status.
    pub by_status: BTreeMap<&'static str, u64>,
    /// Pending and running jobs per user.
    pub by_user: BTreeMap<String, UserCounts>,
}

impl Counts {
    /// Count for one status.
    pub fn get(&self, s: Status) -> u64 {
        self.by_status.get(s.as_str()).copied().unwrap_or(0)
    }
}

/// Per-user counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserCounts {
    /// Pending jobs.
    pub pending: u64,
    /// Running jobs.
    pub running: u64,
}

/// The storage interface every backend implements.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Backend name (`sqlite`, `redis`).
    fn name(&self) -> &'static str;

    /// Whether the backend answers.
    async fn ping(&self) -> bool;

    /// Add a job, or return the existing one if `(user_id, idempotency_key)` was seen.
    /// The caps in `limits` are checked in the same atomic step.
    async fn submit(
        &self,
        job: NewJob,
        limits: SubmitLimits,
        now: Millis,
    ) -> Result<Submitted, StoreError>;

    /// [`Store::submit`] of a job whose workflow is the JSON text the client sent (the HTTP
    /// submit's path): stored as it is, never parsed into a tree. Both backends implement
    /// it; this default (for wrappers and test doubles) parses it and calls `submit`.
    async fn submit_raw(
        &self,
        job: RawNewJob,
        limits: SubmitLimits,
        now: Millis,
    ) -> Result<Submitted, StoreError> {
        let job = job.into_value().map_err(BackendError::from)?;
        self.submit(job, limits, now).await
    }

    /// One job.
    async fn get(&self, id: Uuid) -> Result<Option<Job>, StoreError>;

    /// Jobs matching `filter`, newest first.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, StoreError>;

    /// 1-based place among pending jobs in (priority, submission) order; `None` unless pending.
    async fn position(&self, id: Uuid) -> Result<Option<u64>, StoreError>;

    /// Cancel: pending → cancelled at once; running → `cancel_requested` (the worker is told
    /// in its heartbeat). Finished jobs → [`StoreError::InvalidState`].
    async fn cancel(&self, id: Uuid, now: Millis) -> Result<Job, StoreError>;

    /// Change the priority of a pending job.
    async fn set_priority(&self, id: Uuid, priority: u8) -> Result<Job, StoreError>;

    /// Lease the next job `worker` can run, if any, for `lease_ms`. `kind` records whether
    /// complete and fail must bring the lease token ([`LeaseKind::Fenced`]: registered
    /// workers) or may come without it ([`LeaseKind::Legacy`]: workers that never registered).
    async fn claim(
        &self,
        worker: &WorkerInfo,
        lease_ms: Millis,
        kind: LeaseKind,
        now: Millis,
    ) -> Result<Option<Claimed>, StoreError>;

    /// Renew a lease; fails with [`StoreError::LeaseConflict`] if the token is stale.
    async fn heartbeat(
        &self,
        id: Uuid,
        lease_token: &str,
        lease_ms: Millis,
        now: Millis,
    ) -> Result<LeaseState, StoreError>;

    /// Finish a running job with a result. With `lease_token: None` (old workers) the job
    /// only has to be running under a live [`LeaseKind::Legacy`] lease.
    async fn complete(
        &self,
        id: Uuid,
        lease_token: Option<&str>,
        result: Value,
        now: Millis,
    ) -> Result<Job, StoreError>;

    /// End a running attempt with an error (see [`Failure`]).
    async fn fail(
        &self,
        id: Uuid,
        lease_token: Option<&str>,
        failure: Failure,
        now: Millis,
    ) -> Result<Job, StoreError>;

    /// Give a running job back unrun because the worker's ComfyUI cannot run it (fenced by
    /// the lease token, like [`Store::fail`]): pending again at once with the attempt not
    /// counted, or cancelled if a cancel was asked for. `not_on`: the SHA-256 of the
    /// worker's node catalogue, which the job refuses from now on (its class changes).
    /// Repeating a hand-back that took effect answers the job as it is.
    async fn hand_back(
        &self,
        id: Uuid,
        lease_token: &str,
        reason: String,
        not_on: Option<String>,
        now: Millis,
    ) -> Result<Job, StoreError>;

    /// Fail a pending job that no worker can run, with `error`; `None` (nothing changed)
    /// when it is not pending (any more), or gone. Safe to repeat, and from any replica.
    async fn fail_pending(
        &self,
        id: Uuid,
        error: String,
        now: Millis,
    ) -> Result<Option<Job>, StoreError>;

    /// The ids of the first `limit` pending jobs in queue order (priority, then
    /// submission), with their requirement classes (nothing else is read: the look for
    /// stranded jobs asks every couple of seconds).
    async fn pending_front(&self, limit: u32) -> Result<Vec<PendingJob>, StoreError>;

    /// A job's workflow, as the JSON text it is stored as.
    async fn workflow_text(&self, id: Uuid) -> Result<Option<String>, StoreError>;

    /// Take back every job whose lease expired before `now`: requeue it if it has attempts
    /// left, else fail it (dead letter); a job with a cancel request becomes cancelled.
    async fn reap(&self, now: Millis) -> Result<ReapReport, StoreError>;

    /// Counts per status and per user.
    async fn counts(&self) -> Result<Counts, StoreError>;

    /// Register (or re-register) a worker.
    async fn register_worker(
        &self,
        info: WorkerInfo,
        now: Millis,
    ) -> Result<WorkerRecord, StoreError>;

    /// Record that a worker is alive without changing its registration.
    async fn touch_worker(&self, worker_id: &str, now: Millis) -> Result<(), StoreError>;

    /// Ask a worker to drain (`true`: finish its job, take no new one) or put it back;
    /// the worker as it is now, `None` for a worker never seen. Registering again keeps
    /// the flag.
    async fn set_drain(
        &self,
        worker_id: &str,
        drain: bool,
    ) -> Result<Option<WorkerRecord>, StoreError>;

    /// One worker.
    async fn get_worker(&self, worker_id: &str) -> Result<Option<WorkerRecord>, StoreError>;

    /// All workers, by id.
    async fn list_workers(&self) -> Result<Vec<WorkerRecord>, StoreError>;

    /// Record that `upload.user_id` uploaded the blob `upload.sha256` (a submit of theirs may
    /// then name it as an input). Uploading the same bytes again refreshes the name, content
    /// type and time; returns false then (true for a first upload).
    async fn record_upload(&self, upload: Upload) -> Result<bool, StoreError>;

    /// An upload of `user_id`, if it is remembered.
    async fn upload(&self, user_id: &str, sha256: &str) -> Result<Option<Upload>, StoreError>;

    /// Add a file the worker holding the lease of job `id` stored (outputs and temp files),
    /// fenced like [`Store::complete`] with a token: a stale token, an expired lease or a job
    /// that is not running is [`StoreError::LeaseConflict`]. A file with the same (role,
    /// subfolder, filename) is replaced and keeps its position. `file.position` and
    /// `file.created_at` are set by the store; the stored record is returned.
    async fn add_file(
        &self,
        id: Uuid,
        lease_token: &str,
        file: FileRecord,
        now: Millis,
    ) -> Result<FileRecord, StoreError>;

    /// The files of each job in `ids` (jobs without files are left out), inputs first, then
    /// in [`FileRecord::position`] order.
    async fn files(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<FileRecord>>, StoreError>;

    /// One file of a job.
    async fn find_file(
        &self,
        id: Uuid,
        role: FileRole,
        subfolder: &str,
        filename: &str,
    ) -> Result<Option<FileRecord>, StoreError>;

    /// Whether `lease_token` holds the live lease of job `id` (as the fence of
    /// [`Store::heartbeat`], without renewing it): `Ok(())` or the error it would give.
    async fn check_lease(&self, id: Uuid, lease_token: &str, now: Millis)
    -> Result<(), StoreError>;

    /// For the file sweep: forget the files of jobs that ended (completed, failed,
    /// cancelled) before `ended_before`, and uploads last used before `uploaded_before`.
    async fn expire_files(
        &self,
        ended_before: Millis,
        uploaded_before: Millis,
    ) -> Result<FileExpiry, StoreError>;

    /// Every blob (SHA-256) a job's file or an upload refers to: the sweep deletes only
    /// blobs outside this set.
    async fn referenced_blobs(&self) -> Result<BTreeSet<String>, StoreError>;
}

/// Sort one job's files: inputs first, then by position.
pub fn sort_files(files: &mut [FileRecord]) {
    files.sort_by_key(|f| (f.role != FileRole::Input, f.position));
}
