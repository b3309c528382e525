//! SQLite backend (the default): WAL, `synchronous=FULL`, one writer thread that owns the
//! connection and commits operations in groups. The parts:
//!
//! - `writer.rs`: the writer thread, its channel and the group commit (savepoint per
//!   operation, answers after COMMIT);
//! - `schema.rs`: pragmas, the schema and its migrations (`PRAGMA user_version`);
//! - `rows.rs`: reading and writing job and worker rows, and the small shared queries;
//! - this file: [`SqliteStore`] and the [`Store`] operations, each one closure run by the
//!   writer thread, applying [`crate::lifecycle`] to the rows.

mod readers;
mod rows;
mod schema;
mod writer;

pub use self::schema::SCHEMA_VERSION;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use uuid::Uuid;

use self::readers::Readers;
use self::rows::{
    FILE_COLS, JOB_COLS, UPLOAD_COLS, active_count, finish_file, finish_worker, from_raw,
    job_files, load, load_existing, load_seq, next_counter, position_of, read_file, read_raw,
    read_upload, read_worker, save, status_count, upsert_file, upsert_worker_seen,
};
use self::writer::Writer;
use super::{
    BackendError, Claimed, Counts, FileExpiry, ListFilter, PendingJob, ReapReport, Store,
    StoreError, SubmitLimits, Submitted, UserCounts,
};
use crate::clock::Millis;
use crate::lifecycle::{self, Expired, Failure, LeaseKind, LeaseState};
use crate::model::{FileRecord, FileRole, Job, NewJob, RawNewJob, Status, Upload, WorkerRecord};
use crate::scheduler::{Requirements, WorkerInfo};

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
    path: PathBuf,
    /// The database file, locked (`flock`, exclusive) while this store lives: a second
    /// queue process on the same file is refused at start instead of serving a queue whose
    /// wake-ups, events and caches it cannot see.
    _lock: Arc<std::fs::File>,
}

/// One worker's row.
fn worker_by_id(conn: &Connection, worker_id: &str) -> Result<Option<WorkerRecord>, StoreError> {
    let rec = conn
        .prepare_cached(
            "SELECT worker_id, comfyui_version, line, capabilities, registered_at, \
             last_seen, catalogue, drain FROM workers WHERE worker_id = ?1",
        )?
        .query_row(params![worker_id], read_worker)
        .optional()?;
    rec.map(finish_worker).transpose()
}

/// Opens (creating) `path` and takes an exclusive advisory lock on it, which the OS drops
/// when the process ends, however it ends. SQLite's own locks are POSIX record locks on
/// other descriptors; this one does not meet them.
fn lock_file(path: &Path) -> Result<std::fs::File, StoreError> {
    let io = |what: String| {
        move |e: std::io::Error| BackendError::Io {
            what,
            source: Arc::new(e),
        }
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io(format!("open {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(BackendError::FileInUse {
            path: path.display().to_string(),
        }
        .into()),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(io(format!("lock {}", path.display()))(e).into())
        }
    }
}

impl SqliteStore {
    /// Open (creating it and its parent directory if needed) the database at `path` and
    /// start the writer thread. Fails with [`BackendError::FileInUse`] while another store
    /// (in this or another process) has the file open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| BackendError::Io {
                what: format!("create {}", parent.display()),
                source: Arc::new(e),
            })?;
        }
        let lock = lock_file(&path)?;
        let conn = Connection::open(&path)?;
        schema::setup(&conn)?;
        let writer = Writer::spawn(conn)?;
        let readers = Readers::new(path.clone());
        Ok(Self {
            writer,
            readers,
            path,
            _lock: Arc::new(lock),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut writer::Ctx) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.call(f).await
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.readers.read(f).await
    }
}

/// The job the next claim of `worker` takes, by `seq`: the lowest priority that has pending
/// jobs, inside it the user served longest ago (then by user id), that user's oldest job
/// that is out of its retry backoff and that `worker` can run. It walks the (priority,
/// user) pairs that have pending jobs (schema v6), not the pending jobs.
fn pick(
    ctx: &mut writer::Ctx,
    worker: &WorkerInfo,
    now: Millis,
) -> Result<Option<i64>, StoreError> {
    let pairs: Vec<(i64, String)> = {
        let mut stmt = ctx.conn.prepare_cached(
            "SELECT t.a, t.b FROM tallies t LEFT JOIN user_sched u ON u.user_id = t.b \
             WHERE t.kind = 'pending' ORDER BY t.a, COALESCE(u.last_served, 0), t.b",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (priority, user) in pairs {
        let candidates: Vec<(i64, String)> = {
            let mut stmt = ctx.conn.prepare_cached(
                "SELECT seq, req_class FROM jobs \
                 WHERE user_id = ?1 AND status = 'pending' AND priority = ?2 \
                 AND (not_before IS NULL OR not_before <= ?3) ORDER BY seq",
            )?;
            let rows =
                stmt.query_map(params![user, priority, now], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let mut v = Vec::new();
            for row in rows {
                let (seq, class): (i64, String) = row?;
                // Unconstrained jobs are the common case: stop at the first one.
                let stop = class.is_empty();
                v.push((seq, class));
                if stop {
                    break;
                }
            }
            v
        };
        if let Some(seq) = candidates
            .into_iter()
            .find(|(_, class)| ctx.eligible(class, worker))
            .map(|(seq, _)| seq)
        {
            return Ok(Some(seq));
        }
    }
    Ok(None)
}

#[async_trait]
impl Store for SqliteStore {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> bool {
        self.call(|ctx| {
            ctx.conn
                .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(StoreError::from)
        })
        .await
        .is_ok()
    }

    async fn submit(
        &self,
        new: NewJob,
        limits: SubmitLimits,
        now: Millis,
    ) -> Result<Submitted, StoreError> {
        self.submit_raw(new.into_raw()?, limits, now).await
    }

    async fn submit_raw(
        &self,
        new: RawNewJob,
        limits: SubmitLimits,
        now: Millis,
    ) -> Result<Submitted, StoreError> {
        self.call(move |ctx| {
            let conn = &ctx.conn;
            if let Some(key) = &new.idempotency_key {
                let existing: Option<String> = conn
                    .prepare_cached("SELECT id FROM jobs WHERE user_id = ?1 AND idem_key = ?2")
                    ?
                    .query_row(params![new.user_id, key], |r| r.get(0))
                    .optional()
                    ?;
                if let Some(id) = existing {
                    let id = Uuid::parse_str(&id)
                        .map_err(|_| BackendError::Corrupt(format!("job id {id:?}")))?;
                    let job = load_existing(conn, id)?.job;
                    let position = position_of(conn, &job)?;
                    return Ok(Submitted {
                        job,
                        created: false,
                        position,
                    });
                }
            }
            // Every input must be an upload of this user: its size and type come from it.
            let mut uploads = Vec::with_capacity(new.inputs.len());
            for (i, input) in new.inputs.iter().enumerate() {
                let found = conn
                    .prepare_cached(&format!(
                        "SELECT {UPLOAD_COLS} FROM uploads WHERE user_id = ?1 AND sha256 = ?2"
                    ))?
                    .query_row(params![new.user_id, input.sha256], read_upload)
                    .optional()?;
                match found {
                    Some(u) => uploads.push(u),
                    None => return Err(StoreError::UnknownFile(i)),
                }
            }
            if limits.max_pending > 0 {
                let pending = status_count(conn, Status::Pending)?;
                if pending >= limits.max_pending {
                    return Err(StoreError::QueueFull(limits.max_pending));
                }
            }
            if limits.max_per_user > 0 {
                let mine = active_count(conn, &new.user_id)?;
                if mine >= limits.max_per_user {
                    return Err(StoreError::UserLimit(limits.max_per_user));
                }
            }
            // Time-ordered (v7): new ids land at the end of the id index instead of on a random
            // page of it, which kept the submit rate from falling as the table grew.
            let id = Uuid::now_v7();
            // The workflow is stored as the text it was sent in. SQLite copies a text when
            // it is bound, so the body it is part of is dropped before the row is built:
            // one submit holds two copies of it at a time, not three.
            let workflow = new.workflow;
            let metadata = serde_json::to_string(&new.metadata)?;
            let mut insert = conn.prepare_cached(
                "INSERT INTO jobs(id, user_id, status, priority, created_at, workflow, metadata, \
                 max_attempts, req_class, idem_key) VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            insert.raw_bind_parameter(1, id.to_string())?;
            insert.raw_bind_parameter(2, &new.user_id)?;
            insert.raw_bind_parameter(3, new.priority)?;
            insert.raw_bind_parameter(4, now)?;
            insert.raw_bind_parameter(5, workflow.get())?;
            insert.raw_bind_parameter(6, metadata)?;
            insert.raw_bind_parameter(7, limits.max_attempts.max(1))?;
            insert.raw_bind_parameter(8, new.requirements.class_key())?;
            insert.raw_bind_parameter(9, &new.idempotency_key)?;
            drop(workflow);
            insert.raw_execute()?;
            drop(insert);
            for (input, upload) in new.inputs.iter().zip(&uploads) {
                let file = FileRecord {
                    role: FileRole::Input,
                    subfolder: input.subfolder.clone(),
                    filename: input.filename.clone(),
                    sha256: input.sha256.clone(),
                    size: upload.size,
                    content_type: upload.content_type.clone(),
                    node_id: None,
                    kind: None,
                    position: 0,
                    created_at: now,
                };
                upsert_file(conn, id, &file, now)?;
                // Naming an upload keeps it usable for another grace period.
                conn.prepare_cached(
                    "UPDATE uploads SET uploaded_at = MAX(uploaded_at, ?3)                      WHERE user_id = ?1 AND sha256 = ?2",
                )?
                .execute(params![new.user_id, input.sha256, now])?;
            }
            let job = load_existing(conn, id)?.job;
            let position = position_of(conn, &job)?;
            Ok(Submitted {
                job,
                created: true,
                position,
            })
        })
        .await
    }

    async fn get(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        self.read(move |conn| Ok(load(conn, id)?.map(|s| s.job)))
            .await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| {
            let sql = format!(
                "SELECT {JOB_COLS} FROM jobs WHERE (?1 IS NULL OR status = ?1) \
                 AND (?2 IS NULL OR user_id = ?2) ORDER BY seq DESC LIMIT ?3 OFFSET ?4"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![
                    filter.status.map(Status::as_str),
                    filter.user_id,
                    filter.limit,
                    filter.offset
                ],
                read_raw,
            )?;
            let mut out = Vec::new();
            for raw in rows {
                out.push(from_raw(raw?)?.job);
            }
            Ok(out)
        })
        .await
    }

    async fn position(&self, id: Uuid) -> Result<Option<u64>, StoreError> {
        self.read(move |conn| match load(conn, id)? {
            Some(s) => position_of(conn, &s.job),
            None => Ok(None),
        })
        .await
    }

    async fn cancel(&self, id: Uuid, now: Millis) -> Result<Job, StoreError> {
        self.call(move |ctx| {
            let mut s = load_existing(&ctx.conn, id)?;
            lifecycle::cancel(&mut s, now)?;
            save(&ctx.conn, &s)?;
            Ok(s.job)
        })
        .await
    }

    async fn set_priority(&self, id: Uuid, priority: u8) -> Result<Job, StoreError> {
        self.call(move |ctx| {
            let mut s = load_existing(&ctx.conn, id)?;
            lifecycle::set_priority(&mut s, priority)?;
            save(&ctx.conn, &s)?;
            Ok(s.job)
        })
        .await
    }

    async fn claim(
        &self,
        worker: &WorkerInfo,
        lease_ms: Millis,
        kind: LeaseKind,
        now: Millis,
    ) -> Result<Option<Claimed>, StoreError> {
        let worker = worker.clone();
        self.call(move |ctx| {
            upsert_worker_seen(&ctx.conn, &worker.worker_id, now)?;
            let Some(seq) = pick(ctx, &worker, now)? else {
                return Ok(None);
            };
            let conn = &ctx.conn;
            let mut s = load_seq(conn, seq)?;
            let token = Uuid::new_v4().simple().to_string();
            lifecycle::claim(&mut s, &worker.worker_id, &token, kind, lease_ms, now);
            save(conn, &s)?;
            let served = next_counter(conn, "serve")?;
            conn.prepare_cached(
                "INSERT INTO user_sched(user_id, last_served) VALUES (?1, ?2) \
                 ON CONFLICT(user_id) DO UPDATE SET last_served = ?2",
            )?
            .execute(params![s.job.user_id, served])?;
            let workflow: String = conn
                .prepare_cached("SELECT workflow FROM jobs WHERE seq = ?1")?
                .query_row(params![seq], |r| r.get(0))?;
            let workflow: Value = serde_json::from_str(&workflow)?;
            // Outputs and temp files of an earlier attempt are dropped: this one starts clean.
            conn.prepare_cached("DELETE FROM job_files WHERE job_id = ?1 AND role != 'input'")?
                .execute(params![s.job.id.to_string()])?;
            let inputs = job_files(conn, s.job.id)?;
            Ok(Some(Claimed {
                job: s.job,
                workflow,
                lease_token: token,
                inputs,
            }))
        })
        .await
    }

    async fn heartbeat(
        &self,
        id: Uuid,
        lease_token: &str,
        lease_ms: Millis,
        now: Millis,
    ) -> Result<LeaseState, StoreError> {
        let token = lease_token.to_owned();
        self.call(move |ctx| {
            let mut s = load_existing(&ctx.conn, id)?;
            let state = lifecycle::heartbeat(&mut s, &token, lease_ms, now)?;
            save(&ctx.conn, &s)?;
            if let Some(w) = &s.job.worker_id {
                upsert_worker_seen(&ctx.conn, w, now)?;
            }
            Ok(state)
        })
        .await
    }

    async fn complete(
        &self,
        id: Uuid,
        lease_token: Option<&str>,
        result: Value,
        now: Millis,
    ) -> Result<Job, StoreError> {
        let token = lease_token.map(str::to_owned);
        self.call(move |ctx| {
            let mut s = load_existing(&ctx.conn, id)?;
            if lifecycle::complete(&mut s, token.as_deref(), result, now)? {
                save(&ctx.conn, &s)?;
            }
            Ok(s.job)
        })
        .await
    }

    async fn fail(
        &self,
        id: Uuid,
        lease_token: Option<&str>,
        failure: Failure,
        now: Millis,
    ) -> Result<Job, StoreError> {
        let token = lease_token.map(str::to_owned);
        self.call(move |ctx| {
            let mut s = load_existing(&ctx.conn, id)?;
            if lifecycle::fail(&mut s, token.as_deref(), failure, now)? {
                save(&ctx.conn, &s)?;
            }
            Ok(s.job)
        })
        .await
    }

    async fn hand_back(
        &self,
        id: Uuid,
        lease_token: &str,
        reason: String,
        not_on: Option<String>,
        now: Millis,
    ) -> Result<Job, StoreError> {
        let token = lease_token.to_owned();
        self.call(move |ctx| {
            let mut s = load_existing(&ctx.conn, id)?;
            if lifecycle::hand_back(&mut s, &token, reason, now)? {
                save(&ctx.conn, &s)?;
                if let Some(sha) = not_on {
                    let class: String = ctx
                        .conn
                        .prepare_cached("SELECT req_class FROM jobs WHERE id = ?1")?
                        .query_row(params![id.to_string()], |r| r.get(0))?;
                    // A class that does not parse runs nowhere already; it is left as it is.
                    if let Some(req) = Requirements::from_class_key(&class) {
                        ctx.conn
                            .prepare_cached("UPDATE jobs SET req_class = ?1 WHERE id = ?2")?
                            .execute(params![req.not_on(&sha).class_key(), id.to_string()])?;
                    }
                }
            }
            Ok(s.job)
        })
        .await
    }

    async fn fail_pending(
        &self,
        id: Uuid,
        error: String,
        now: Millis,
    ) -> Result<Option<Job>, StoreError> {
        self.call(move |ctx| {
            let Some(mut s) = load(&ctx.conn, id)? else {
                return Ok(None);
            };
            if !lifecycle::fail_pending(&mut s, error, now) {
                return Ok(None);
            }
            save(&ctx.conn, &s)?;
            Ok(Some(s.job))
        })
        .await
    }

    async fn pending_front(&self, limit: u32) -> Result<Vec<PendingJob>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, req_class FROM jobs WHERE status = 'pending' \
                 ORDER BY priority, seq LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, class) = row?;
                let id =
                    Uuid::parse_str(&id).map_err(|_| BackendError::Corrupt("job id".into()))?;
                out.push(PendingJob { id, class });
            }
            Ok(out)
        })
        .await
    }

    async fn workflow_text(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT workflow FROM jobs WHERE id = ?1")?
                .query_row(params![id.to_string()], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn reap(&self, now: Millis) -> Result<ReapReport, StoreError> {
        self.call(move |ctx| {
            let conn = &ctx.conn;
            let seqs: Vec<i64> = {
                let mut stmt = conn.prepare_cached(
                    "SELECT seq FROM jobs WHERE status = 'running' AND lease_until < ?1 \
                         ORDER BY lease_until LIMIT 1000",
                )?;
                let rows = stmt.query_map(params![now], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let mut report = ReapReport::default();
            for seq in seqs {
                let mut s = load_seq(conn, seq)?;
                if !lifecycle::lease_expired(&s, now) {
                    continue;
                }
                let id = s.job.id;
                match lifecycle::expire(&mut s, now) {
                    Expired::Requeued => report.requeued.push(id),
                    Expired::Dead => report.dead.push(id),
                    Expired::Cancelled => report.cancelled.push(id),
                }
                save(conn, &s)?;
            }
            Ok(report)
        })
        .await
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        self.read(|conn| {
            let mut counts = Counts::default();
            for st in Status::ALL {
                counts.by_status.insert(st.as_str(), 0);
            }
            let mut stmt = conn.prepare_cached("SELECT a, n FROM tallies WHERE kind = 'status'")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (status, n) = row?;
                if let Some(st) = Status::parse(&status) {
                    counts
                        .by_status
                        .insert(st.as_str(), u64::try_from(n).unwrap_or(0));
                }
            }
            let mut stmt =
                conn.prepare_cached("SELECT a, b, n FROM tallies WHERE kind = 'active'")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (user, status, n) = row?;
                let entry: &mut UserCounts = counts.by_user.entry(user).or_default();
                let n = u64::try_from(n).unwrap_or(0);
                if status == "pending" {
                    entry.pending = n;
                } else {
                    entry.running = n;
                }
            }
            Ok(counts)
        })
        .await
    }

    async fn register_worker(
        &self,
        info: WorkerInfo,
        now: Millis,
    ) -> Result<WorkerRecord, StoreError> {
        self.call(move |ctx| {
            let caps = serde_json::to_string(&info.capabilities)?;
            ctx.conn
                .prepare_cached(
                    "INSERT INTO workers(worker_id, comfyui_version, line, capabilities, \
                     registered_at, last_seen, catalogue) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6) \
                     ON CONFLICT(worker_id) DO UPDATE SET comfyui_version = ?2, line = ?3, \
                     capabilities = ?4, registered_at = ?5, last_seen = ?5, catalogue = ?6",
                )?
                .execute(params![
                    info.worker_id,
                    info.comfyui_version,
                    info.line,
                    caps,
                    now,
                    info.catalogue
                ])?;
            worker_by_id(&ctx.conn, &info.worker_id)?
                .ok_or_else(|| BackendError::WorkerVanished.into())
        })
        .await
    }

    async fn touch_worker(&self, worker_id: &str, now: Millis) -> Result<(), StoreError> {
        let worker_id = worker_id.to_owned();
        self.call(move |ctx| upsert_worker_seen(&ctx.conn, &worker_id, now))
            .await
    }

    async fn set_drain(
        &self,
        worker_id: &str,
        drain: bool,
    ) -> Result<Option<WorkerRecord>, StoreError> {
        let worker_id = worker_id.to_owned();
        self.call(move |ctx| {
            ctx.conn
                .prepare_cached("UPDATE workers SET drain = ?2 WHERE worker_id = ?1")?
                .execute(params![worker_id, i64::from(drain)])?;
            worker_by_id(&ctx.conn, &worker_id)
        })
        .await
    }

    async fn get_worker(&self, worker_id: &str) -> Result<Option<WorkerRecord>, StoreError> {
        let worker_id = worker_id.to_owned();
        self.read(move |conn| worker_by_id(conn, &worker_id)).await
    }

    async fn list_workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT worker_id, comfyui_version, line, capabilities, registered_at, \
                     last_seen, catalogue, drain FROM workers ORDER BY worker_id",
            )?;
            let rows = stmt.query_map([], read_worker)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(finish_worker(row?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn record_upload(&self, upload: Upload) -> Result<bool, StoreError> {
        self.call(move |ctx| {
            let size = i64::try_from(upload.size)
                .map_err(|_| BackendError::Corrupt("upload size".into()))?;
            let existed: bool = ctx
                .conn
                .prepare_cached("SELECT 1 FROM uploads WHERE user_id = ?1 AND sha256 = ?2")?
                .query_row(params![upload.user_id, upload.sha256], |_| Ok(()))
                .optional()?
                .is_some();
            ctx.conn
                .prepare_cached(
                    "INSERT INTO uploads(user_id, sha256, filename, content_type, size, uploaded_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(user_id, sha256) DO UPDATE SET \
                     filename = ?3, content_type = ?4, size = ?5, \
                     uploaded_at = MAX(uploaded_at, ?6)",
                )?
                .execute(params![
                    upload.user_id,
                    upload.sha256,
                    upload.filename,
                    upload.content_type,
                    size,
                    upload.uploaded_at
                ])?;
            Ok(!existed)
        })
        .await
    }

    async fn upload(&self, user_id: &str, sha256: &str) -> Result<Option<Upload>, StoreError> {
        let (user_id, sha256) = (user_id.to_owned(), sha256.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {UPLOAD_COLS} FROM uploads WHERE user_id = ?1 AND sha256 = ?2"
            ))?
            .query_row(params![user_id, sha256], read_upload)
            .optional()
            .map_err(StoreError::from)
        })
        .await
    }

    async fn add_file(
        &self,
        id: Uuid,
        lease_token: &str,
        file: FileRecord,
        now: Millis,
    ) -> Result<FileRecord, StoreError> {
        let token = lease_token.to_owned();
        self.call(move |ctx| {
            let s = load_existing(&ctx.conn, id)?;
            lifecycle::fence(&s, Some(&token), now)?;
            upsert_file(&ctx.conn, id, &file, now)
        })
        .await
    }

    async fn files(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<FileRecord>>, StoreError> {
        let ids = ids.to_vec();
        self.read(move |conn| {
            let mut out: HashMap<Uuid, Vec<FileRecord>> = HashMap::new();
            for id in ids {
                let files = job_files(conn, id)?;
                if !files.is_empty() {
                    out.insert(id, files);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn find_file(
        &self,
        id: Uuid,
        role: FileRole,
        subfolder: &str,
        filename: &str,
    ) -> Result<Option<FileRecord>, StoreError> {
        let (subfolder, filename) = (subfolder.to_owned(), filename.to_owned());
        self.read(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {FILE_COLS} FROM job_files WHERE job_id = ?1 AND role = ?2 \
                     AND subfolder = ?3 AND filename = ?4"
                ))?
                .query_row(
                    params![id.to_string(), role.as_str(), subfolder, filename],
                    read_file,
                )
                .optional()?;
            row.map(finish_file).transpose()
        })
        .await
    }

    async fn check_lease(
        &self,
        id: Uuid,
        lease_token: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let token = lease_token.to_owned();
        self.read(move |conn| {
            let s = load_existing(conn, id)?;
            lifecycle::fence(&s, Some(&token), now)?;
            Ok(())
        })
        .await
    }

    async fn expire_files(
        &self,
        ended_before: Millis,
        uploaded_before: Millis,
    ) -> Result<FileExpiry, StoreError> {
        self.call(move |ctx| {
            let conn = &ctx.conn;
            let ended: Vec<String> = {
                let mut stmt = conn.prepare_cached(
                    "SELECT DISTINCT f.job_id FROM job_files f JOIN jobs j ON j.id = f.job_id \
                     WHERE j.status IN ('completed', 'failed', 'cancelled') \
                     AND j.completed_at < ?1",
                )?;
                let rows = stmt.query_map(params![ended_before], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let mut report = FileExpiry::default();
            for id in &ended {
                conn.prepare_cached("DELETE FROM job_files WHERE job_id = ?1")?
                    .execute(params![id])?;
                report.jobs += 1;
            }
            let n = conn
                .prepare_cached("DELETE FROM uploads WHERE uploaded_at < ?1")?
                .execute(params![uploaded_before])?;
            report.uploads = u64::try_from(n).unwrap_or(0);
            Ok(report)
        })
        .await
    }

    async fn referenced_blobs(&self) -> Result<BTreeSet<String>, StoreError> {
        self.call(|ctx| {
            let mut stmt = ctx.conn.prepare_cached(
                "SELECT sha256 FROM job_files UNION SELECT sha256 FROM uploads \
                     UNION SELECT catalogue FROM workers WHERE catalogue IS NOT NULL",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = BTreeSet::new();
            for row in rows {
                out.insert(row?);
            }
            Ok(out)
        })
        .await
    }
}
