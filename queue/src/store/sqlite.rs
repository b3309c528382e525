//! SQLite backend (the default): WAL, `synchronous=FULL`, one writer thread that owns the
//! connection. Async callers send it operations over a channel; the thread runs whatever
//! has queued up in ONE transaction (group commit, each operation inside its own savepoint
//! so a failing one rolls back alone) and answers each caller only after COMMIT returned.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{
    Claimed, Counts, Failure, LeaseState, ListFilter, ReapReport, Store, StoreError, SubmitLimits,
    Submitted, UserCounts,
};
use crate::clock::Millis;
use crate::lifecycle::{self, Expired, StoredJob};
use crate::model::{Job, NewJob, Status, WorkerInfo, WorkerRecord};
use crate::scheduler::Requirements;

const SCHEMA_VERSION: i64 = 2;
const MAX_BATCH: usize = 256;

const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    user_id          TEXT NOT NULL,
    status           TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    completed_at     INTEGER,
    worker_id        TEXT,
    workflow         TEXT NOT NULL,
    metadata         TEXT NOT NULL,
    result           TEXT,
    error            TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lease_token      TEXT,
    lease_until      INTEGER,
    req_class        TEXT NOT NULL DEFAULT '',
    idem_key         TEXT,
    history          TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status, priority, seq);
CREATE INDEX IF NOT EXISTS jobs_by_lease ON jobs(status, lease_until);
CREATE INDEX IF NOT EXISTS jobs_by_user ON jobs(user_id, status);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_idem ON jobs(user_id, idem_key) WHERE idem_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS user_sched (
    user_id     TEXT PRIMARY KEY,
    last_served INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS workers (
    worker_id       TEXT PRIMARY KEY,
    comfyui_version TEXT,
    line            TEXT,
    capabilities    TEXT NOT NULL,
    registered_at   INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL
);
"#;

const JOB_COLS: &str = "id, seq, user_id, status, priority, created_at, started_at, completed_at, \
    worker_id, metadata, result, error, attempts, max_attempts, cancel_requested, lease_token, \
    lease_until, history, not_before";

/// State owned by the writer thread.
struct Ctx {
    conn: Connection,
    /// Requirement classes already parsed.
    classes: HashMap<String, Option<Requirements>>,
}

trait Op: Send {
    /// Run inside the open transaction; true if it succeeded (its savepoint is kept).
    fn run(&mut self, ctx: &mut Ctx) -> bool;
    /// Answer the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct OpImpl<T, F> {
    f: Option<F>,
    out: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Op for OpImpl<T, F>
where
    T: Send,
    F: FnOnce(&mut Ctx) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, ctx: &mut Ctx) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(ctx)))
            .unwrap_or_else(|_| Err(StoreError::Backend("store operation panicked".into())));
        let ok = r.is_ok();
        self.out = Some(r);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let out = match (commit, self.out) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(StoreError::Backend("operation did not run".into())),
        };
        let _ = self.reply.send(out);
    }
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("corrupt JSON in store: {e}"))
}

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    tx: mpsc::Sender<Box<dyn Op>>,
    path: PathBuf,
}

impl SqliteStore {
    /// Open (creating it and its parent directory if needed) the database at `path` and
    /// start the writer thread.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Backend(format!("create {}: {e}", parent.display())))?;
        }
        let conn = Connection::open(&path).map_err(db_err)?;
        setup(&conn)?;
        let (tx, rx) = mpsc::channel::<Box<dyn Op>>();
        let mut ctx = Ctx {
            conn,
            classes: HashMap::new(),
        };
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(&mut ctx, &rx))
            .map_err(|e| StoreError::Backend(format!("spawn writer thread: {e}")))?;
        Ok(Self { tx, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Ctx) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let op: Box<dyn Op> = Box::new(OpImpl {
            f: Some(f),
            out: None,
            reply,
        });
        self.tx
            .send(op)
            .map_err(|_| StoreError::Backend("sqlite writer thread stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("sqlite writer thread stopped".into()))?
    }
}

fn setup(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db_err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(db_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "SQLite did not switch to WAL");
    }
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        .map_err(db_err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "database schema version {version} is newer than this build ({SCHEMA_VERSION})"
        )));
    }
    if version < 1 {
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA_V1} PRAGMA user_version = 1; COMMIT;"
        ))
        .map_err(db_err)?;
    }
    if version < 2 {
        // v2: retry backoff.
        conn.execute_batch(
            "BEGIN; ALTER TABLE jobs ADD COLUMN not_before INTEGER; PRAGMA user_version = 2; COMMIT;",
        )
        .map_err(db_err)?;
    }
    Ok(())
}

fn writer_loop(ctx: &mut Ctx, rx: &mpsc::Receiver<Box<dyn Op>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if let Err(e) = ctx.conn.execute_batch("BEGIN IMMEDIATE") {
            let err = db_err(e);
            for op in batch {
                op.finish(Err(err.clone()));
            }
            continue;
        }
        let mut i = 0;
        while i < batch.len() {
            // Operations that arrived while this batch ran join it before the commit.
            if i + 1 == batch.len() {
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(op) => batch.push(op),
                        Err(_) => break,
                    }
                }
            }
            let op = &mut batch[i];
            i += 1;
            if let Err(e) = ctx.conn.execute_batch("SAVEPOINT op") {
                tracing::error!(error = %e, "savepoint failed");
                continue;
            }
            let ok = op.run(ctx);
            let end = if ok {
                "RELEASE op"
            } else {
                "ROLLBACK TO op; RELEASE op"
            };
            if let Err(e) = ctx.conn.execute_batch(end) {
                tracing::error!(error = %e, "savepoint release failed");
            }
        }
        let commit = ctx.conn.execute_batch("COMMIT").map_err(db_err);
        if commit.is_err() {
            let _ = ctx.conn.execute_batch("ROLLBACK");
        }
        for op in batch {
            op.finish(commit.clone());
        }
    }
}

type RawJob = (
    String,
    i64,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
    i64,
    Option<String>,
    Option<i64>,
    String,
    Option<i64>,
);

fn read_raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawJob> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
        r.get(14)?,
        r.get(15)?,
        r.get(16)?,
        r.get(17)?,
        r.get(18)?,
    ))
}

fn from_raw(raw: RawJob) -> Result<StoredJob, StoreError> {
    let (
        id,
        seq,
        user_id,
        status,
        priority,
        created_at,
        started_at,
        completed_at,
        worker_id,
        metadata,
        result,
        error,
        attempts,
        max_attempts,
        cancel_requested,
        lease_token,
        lease_until,
        history,
        not_before,
    ) = raw;
    let id = Uuid::parse_str(&id).map_err(|e| StoreError::Backend(format!("bad id: {e}")))?;
    let status = Status::parse(&status)
        .ok_or_else(|| StoreError::Backend(format!("bad status {status}")))?;
    let result = match result {
        Some(r) => Some(serde_json::from_str(&r).map_err(json_err)?),
        None => None,
    };
    Ok(StoredJob {
        job: Job {
            id,
            user_id,
            status,
            priority: u8::try_from(priority).unwrap_or(crate::model::MAX_PRIORITY),
            created_at,
            started_at,
            completed_at,
            worker_id,
            result,
            error,
            metadata: serde_json::from_str(&metadata).map_err(json_err)?,
            attempts: u32::try_from(attempts).unwrap_or(0),
            max_attempts: u32::try_from(max_attempts).unwrap_or(1),
            cancel_requested: cancel_requested != 0,
            lease_expires_at: if status == Status::Running {
                lease_until
            } else {
                None
            },
            seq: u64::try_from(seq).unwrap_or(0),
            not_before: if status == Status::Pending {
                not_before
            } else {
                None
            },
            history: serde_json::from_str(&history).map_err(json_err)?,
        },
        lease_token,
    })
}

fn load(conn: &Connection, id: Uuid) -> Result<Option<StoredJob>, StoreError> {
    let raw = conn
        .prepare_cached(&format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"))
        .map_err(db_err)?
        .query_row(params![id.to_string()], read_raw)
        .optional()
        .map_err(db_err)?;
    raw.map(from_raw).transpose()
}

fn load_existing(conn: &Connection, id: Uuid) -> Result<StoredJob, StoreError> {
    load(conn, id)?.ok_or(StoreError::NotFound)
}

fn load_seq(conn: &Connection, seq: i64) -> Result<StoredJob, StoreError> {
    let raw = conn
        .prepare_cached(&format!("SELECT {JOB_COLS} FROM jobs WHERE seq = ?1"))
        .map_err(db_err)?
        .query_row(params![seq], read_raw)
        .map_err(db_err)?;
    from_raw(raw)
}

/// Write back every field a transition may change.
fn save(conn: &Connection, s: &StoredJob) -> Result<(), StoreError> {
    let j = &s.job;
    let result = j
        .result
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(json_err)?;
    let history = serde_json::to_string(&j.history).map_err(json_err)?;
    conn.prepare_cached(
        "UPDATE jobs SET status=?1, priority=?2, started_at=?3, completed_at=?4, worker_id=?5, \
         result=?6, error=?7, attempts=?8, cancel_requested=?9, lease_token=?10, \
         lease_until=?11, history=?12, not_before=?14 WHERE id=?13",
    )
    .map_err(db_err)?
    .execute(params![
        j.status.as_str(),
        j.priority,
        j.started_at,
        j.completed_at,
        j.worker_id,
        result,
        j.error,
        j.attempts,
        j.cancel_requested,
        s.lease_token,
        j.lease_expires_at,
        history,
        j.id.to_string(),
        j.not_before,
    ])
    .map_err(db_err)?;
    Ok(())
}

fn count(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached(sql)
        .map_err(db_err)?
        .query_row(p, |r| r.get(0))
        .map_err(db_err)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// 1-based place among pending jobs by (priority, seq); `None` unless pending.
fn position_of(conn: &Connection, job: &Job) -> Result<Option<u64>, StoreError> {
    if job.status != Status::Pending {
        return Ok(None);
    }
    let n = count(
        conn,
        "SELECT COUNT(*) FROM jobs WHERE status = 'pending' \
         AND (priority < ?1 OR (priority = ?1 AND seq <= ?2))",
        params![job.priority, i64::try_from(job.seq).unwrap_or(i64::MAX)],
    )?;
    Ok(Some(n))
}

fn next_counter(conn: &Connection, name: &str) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO counters(name, value) VALUES (?1, 1) \
         ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
    )
    .map_err(db_err)?
    .query_row(params![name], |r| r.get(0))
    .map_err(db_err)
}

fn upsert_worker_seen(conn: &Connection, worker_id: &str, now: Millis) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO workers(worker_id, capabilities, registered_at, last_seen) \
         VALUES (?1, '[]', ?2, ?2) ON CONFLICT(worker_id) DO UPDATE SET last_seen = ?2",
    )
    .map_err(db_err)?
    .execute(params![worker_id, now])
    .map_err(db_err)?;
    Ok(())
}

fn read_worker(r: &rusqlite::Row<'_>) -> rusqlite::Result<(WorkerRecord, String)> {
    Ok((
        WorkerRecord {
            info: WorkerInfo {
                worker_id: r.get(0)?,
                comfyui_version: r.get(1)?,
                line: r.get(2)?,
                capabilities: Vec::new(),
            },
            registered_at: r.get(4)?,
            last_seen: r.get(5)?,
        },
        r.get(3)?,
    ))
}

fn finish_worker((mut rec, caps): (WorkerRecord, String)) -> Result<WorkerRecord, StoreError> {
    rec.info.capabilities = serde_json::from_str(&caps).map_err(json_err)?;
    Ok(rec)
}

impl Ctx {
    fn eligible(&mut self, class: &str, worker: &WorkerInfo) -> bool {
        if class.is_empty() {
            return true;
        }
        self.classes
            .entry(class.to_owned())
            .or_insert_with(|| Requirements::from_class_key(class))
            .as_ref()
            .is_some_and(|r| r.satisfied_by(worker))
    }
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
                .map_err(db_err)
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
        self.call(move |ctx| {
            let conn = &ctx.conn;
            if let Some(key) = &new.idempotency_key {
                let existing: Option<String> = conn
                    .prepare_cached("SELECT id FROM jobs WHERE user_id = ?1 AND idem_key = ?2")
                    .map_err(db_err)?
                    .query_row(params![new.user_id, key], |r| r.get(0))
                    .optional()
                    .map_err(db_err)?;
                if let Some(id) = existing {
                    let id = Uuid::parse_str(&id)
                        .map_err(|e| StoreError::Backend(format!("bad id: {e}")))?;
                    let job = load_existing(conn, id)?.job;
                    let position = position_of(conn, &job)?;
                    return Ok(Submitted {
                        job,
                        created: false,
                        position,
                    });
                }
            }
            if limits.max_pending > 0 {
                let pending = count(
                    conn,
                    "SELECT COUNT(*) FROM jobs WHERE status = 'pending'",
                    [],
                )?;
                if pending >= limits.max_pending {
                    return Err(StoreError::QueueFull(limits.max_pending));
                }
            }
            if limits.max_per_user > 0 {
                let mine = count(
                    conn,
                    "SELECT COUNT(*) FROM jobs WHERE user_id = ?1 AND status IN ('pending', 'running')",
                    params![new.user_id],
                )?;
                if mine >= limits.max_per_user {
                    return Err(StoreError::UserLimit(limits.max_per_user));
                }
            }
            let id = Uuid::new_v4();
            let workflow = serde_json::to_string(&new.workflow).map_err(json_err)?;
            let metadata = serde_json::to_string(&new.metadata).map_err(json_err)?;
            conn.prepare_cached(
                "INSERT INTO jobs(id, user_id, status, priority, created_at, workflow, metadata, \
                 max_attempts, req_class, idem_key) VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(db_err)?
            .execute(params![
                id.to_string(),
                new.user_id,
                new.priority,
                now,
                workflow,
                metadata,
                limits.max_attempts.max(1),
                new.requirements.class_key(),
                new.idempotency_key,
            ])
            .map_err(db_err)?;
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
        self.call(move |ctx| Ok(load(&ctx.conn, id)?.map(|s| s.job)))
            .await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, StoreError> {
        let filter = filter.clone();
        self.call(move |ctx| {
            let sql = format!(
                "SELECT {JOB_COLS} FROM jobs WHERE (?1 IS NULL OR status = ?1) \
                 AND (?2 IS NULL OR user_id = ?2) ORDER BY seq DESC LIMIT ?3 OFFSET ?4"
            );
            let mut stmt = ctx.conn.prepare_cached(&sql).map_err(db_err)?;
            let rows = stmt
                .query_map(
                    params![
                        filter.status.map(Status::as_str),
                        filter.user_id,
                        filter.limit,
                        filter.offset
                    ],
                    read_raw,
                )
                .map_err(db_err)?;
            let mut out = Vec::new();
            for raw in rows {
                out.push(from_raw(raw.map_err(db_err)?)?.job);
            }
            Ok(out)
        })
        .await
    }

    async fn position(&self, id: Uuid) -> Result<Option<u64>, StoreError> {
        self.call(move |ctx| match load(&ctx.conn, id)? {
            Some(s) => position_of(&ctx.conn, &s.job),
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
        now: Millis,
    ) -> Result<Option<Claimed>, StoreError> {
        let worker = worker.clone();
        self.call(move |ctx| {
            upsert_worker_seen(&ctx.conn, &worker.worker_id, now)?;
            let candidates: Vec<(i64, String)> = {
                let mut stmt = ctx
                    .conn
                    .prepare_cached(
                        "SELECT j.seq, j.req_class FROM jobs j \
                         LEFT JOIN user_sched u ON u.user_id = j.user_id \
                         WHERE j.status = 'pending' \
                         AND (j.not_before IS NULL OR j.not_before <= ?1) \
                         ORDER BY j.priority, COALESCE(u.last_served, 0), j.user_id, j.seq",
                    )
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(params![now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(db_err)?;
                let mut v = Vec::new();
                for row in rows {
                    let (seq, class): (i64, String) = row.map_err(db_err)?;
                    // Unconstrained jobs are the common case: stop at the first one.
                    let stop = class.is_empty();
                    v.push((seq, class));
                    if stop {
                        break;
                    }
                }
                v
            };
            let Some(seq) = candidates
                .into_iter()
                .find(|(_, class)| ctx.eligible(class, &worker))
                .map(|(seq, _)| seq)
            else {
                return Ok(None);
            };
            let conn = &ctx.conn;
            let mut s = load_seq(conn, seq)?;
            let token = Uuid::new_v4().simple().to_string();
            lifecycle::claim(&mut s, &worker.worker_id, &token, lease_ms, now);
            save(conn, &s)?;
            let served = next_counter(conn, "serve")?;
            conn.prepare_cached(
                "INSERT INTO user_sched(user_id, last_served) VALUES (?1, ?2) \
                 ON CONFLICT(user_id) DO UPDATE SET last_served = ?2",
            )
            .map_err(db_err)?
            .execute(params![s.job.user_id, served])
            .map_err(db_err)?;
            let workflow: String = conn
                .prepare_cached("SELECT workflow FROM jobs WHERE seq = ?1")
                .map_err(db_err)?
                .query_row(params![seq], |r| r.get(0))
                .map_err(db_err)?;
            let workflow: Value = serde_json::from_str(&workflow).map_err(json_err)?;
            Ok(Some(Claimed {
                job: s.job,
                workflow,
                lease_token: token,
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

    async fn reap(&self, now: Millis) -> Result<ReapReport, StoreError> {
        self.call(move |ctx| {
            let conn = &ctx.conn;
            let seqs: Vec<i64> = {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT seq FROM jobs WHERE status = 'running' AND lease_until < ?1 \
                         ORDER BY lease_until LIMIT 1000",
                    )
                    .map_err(db_err)?;
                let rows = stmt.query_map(params![now], |r| r.get(0)).map_err(db_err)?;
                rows.collect::<Result<_, _>>().map_err(db_err)?
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
        self.call(|ctx| {
            let mut counts = Counts::default();
            for st in Status::ALL {
                counts.by_status.insert(st.as_str(), 0);
            }
            let mut stmt = ctx
                .conn
                .prepare_cached("SELECT status, COUNT(*) FROM jobs GROUP BY status")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(db_err)?;
            for row in rows {
                let (status, n) = row.map_err(db_err)?;
                if let Some(st) = Status::parse(&status) {
                    counts
                        .by_status
                        .insert(st.as_str(), u64::try_from(n).unwrap_or(0));
                }
            }
            let mut stmt = ctx
                .conn
                .prepare_cached(
                    "SELECT user_id, status, COUNT(*) FROM jobs \
                     WHERE status IN ('pending', 'running') GROUP BY user_id, status",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(db_err)?;
            for row in rows {
                let (user, status, n) = row.map_err(db_err)?;
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
            let caps = serde_json::to_string(&info.capabilities).map_err(json_err)?;
            ctx.conn
                .prepare_cached(
                    "INSERT INTO workers(worker_id, comfyui_version, line, capabilities, \
                     registered_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
                     ON CONFLICT(worker_id) DO UPDATE SET comfyui_version = ?2, line = ?3, \
                     capabilities = ?4, last_seen = ?5",
                )
                .map_err(db_err)?
                .execute(params![
                    info.worker_id,
                    info.comfyui_version,
                    info.line,
                    caps,
                    now
                ])
                .map_err(db_err)?;
            let rec = ctx
                .conn
                .prepare_cached(
                    "SELECT worker_id, comfyui_version, line, capabilities, registered_at, \
                     last_seen FROM workers WHERE worker_id = ?1",
                )
                .map_err(db_err)?
                .query_row(params![info.worker_id], read_worker)
                .map_err(db_err)?;
            finish_worker(rec)
        })
        .await
    }

    async fn touch_worker(&self, worker_id: &str, now: Millis) -> Result<(), StoreError> {
        let worker_id = worker_id.to_owned();
        self.call(move |ctx| upsert_worker_seen(&ctx.conn, &worker_id, now))
            .await
    }

    async fn get_worker(&self, worker_id: &str) -> Result<Option<WorkerRecord>, StoreError> {
        let worker_id = worker_id.to_owned();
        self.call(move |ctx| {
            let rec = ctx
                .conn
                .prepare_cached(
                    "SELECT worker_id, comfyui_version, line, capabilities, registered_at, \
                     last_seen FROM workers WHERE worker_id = ?1",
                )
                .map_err(db_err)?
                .query_row(params![worker_id], read_worker)
                .optional()
                .map_err(db_err)?;
            rec.map(finish_worker).transpose()
        })
        .await
    }

    async fn list_workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        self.call(|ctx| {
            let mut stmt = ctx
                .conn
                .prepare_cached(
                    "SELECT worker_id, comfyui_version, line, capabilities, registered_at, \
                     last_seen FROM workers ORDER BY worker_id",
                )
                .map_err(db_err)?;
            let rows = stmt.query_map([], read_worker).map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(finish_worker(row.map_err(db_err)?)?);
            }
            Ok(out)
        })
        .await
    }
}
