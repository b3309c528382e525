//! Job and worker rows: the column list, reading a row into a [`StoredJob`], writing one
//! back, and the small queries the operations share (positions, counters, worker upserts).

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::clock::Millis;
use crate::lifecycle::StoredJob;
use crate::model::{FileRecord, FileRole, Job, Status, Upload, WorkerRecord};
use crate::scheduler::WorkerInfo;
use crate::store::{BackendError, StoreError};

use super::schema::BUCKET_BITS;

pub(super) const JOB_COLS: &str = "id, seq, user_id, status, priority, created_at, started_at, completed_at, \
    worker_id, metadata, result, error, attempts, max_attempts, cancel_requested, lease_token, \
    lease_until, history, not_before, lease_fenced";

/// A `jobs` row in [`JOB_COLS`] order.
pub(super) type RawJob = (
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
    bool,
);

pub(super) fn read_raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawJob> {
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
        r.get(19)?,
    ))
}

pub(super) fn from_raw(raw: RawJob) -> Result<StoredJob, StoreError> {
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
        lease_fenced,
    ) = raw;
    let id = Uuid::parse_str(&id).map_err(|_| BackendError::Corrupt(format!("job id {id:?}")))?;
    let status = Status::parse(&status)
        .ok_or_else(|| BackendError::Corrupt(format!("job status {status:?}")))?;
    let result = match result {
        Some(r) => Some(serde_json::from_str(&r)?),
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
            metadata: serde_json::from_str(&metadata)?,
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
            history: serde_json::from_str(&history)?,
        },
        lease_token,
        lease_fenced,
    })
}

pub(super) fn load(conn: &Connection, id: Uuid) -> Result<Option<StoredJob>, StoreError> {
    let raw = conn
        .prepare_cached(&format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"))?
        .query_row(params![id.to_string()], read_raw)
        .optional()?;
    raw.map(from_raw).transpose()
}

pub(super) fn load_existing(conn: &Connection, id: Uuid) -> Result<StoredJob, StoreError> {
    load(conn, id)?.ok_or(StoreError::NotFound)
}

pub(super) fn load_seq(conn: &Connection, seq: i64) -> Result<StoredJob, StoreError> {
    let raw = conn
        .prepare_cached(&format!("SELECT {JOB_COLS} FROM jobs WHERE seq = ?1"))?
        .query_row(params![seq], read_raw)?;
    from_raw(raw)
}

/// Write back every field a transition may change.
pub(super) fn save(conn: &Connection, s: &StoredJob) -> Result<(), StoreError> {
    let j = &s.job;
    let result = j.result.as_ref().map(serde_json::to_string).transpose()?;
    let history = serde_json::to_string(&j.history)?;
    conn.prepare_cached(
        "UPDATE jobs SET status=?1, priority=?2, started_at=?3, completed_at=?4, worker_id=?5, \
         result=?6, error=?7, attempts=?8, cancel_requested=?9, lease_token=?10, \
         lease_until=?11, history=?12, not_before=?14, lease_fenced=?15 WHERE id=?13",
    )?
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
        s.lease_fenced,
    ])?;
    Ok(())
}

/// Run a statement without parameters or rows (transaction control: `BEGIN`, `SAVEPOINT`,
/// `COMMIT`, ...), prepared once per connection: parsing it again for every operation cost
/// more than running it.
pub(super) fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

pub(super) fn count(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> Result<u64, StoreError> {
    let n: i64 = conn.prepare_cached(sql)?.query_row(p, |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// 1-based place among pending jobs by (priority, seq); `None` unless pending. Read from the
/// bucket counters (schema v6): the pending jobs of higher priorities, those of earlier
/// buckets of the job's own priority, and a count over at most one bucket of the index.
pub(super) fn position_of(conn: &Connection, job: &Job) -> Result<Option<u64>, StoreError> {
    if job.status != Status::Pending {
        return Ok(None);
    }
    let seq = i64::try_from(job.seq).unwrap_or(i64::MAX);
    let n = count(
        conn,
        "SELECT (SELECT COALESCE(SUM(n), 0) FROM tallies WHERE kind = 'bucket' \
                  AND (a < ?1 OR (a = ?1 AND b < (?2 >> ?3)))) \
              + (SELECT COUNT(*) FROM jobs WHERE status = 'pending' AND priority = ?1 \
                  AND seq >= ((?2 >> ?3) << ?3) AND seq <= ?2)",
        params![job.priority, seq, BUCKET_BITS],
    )?;
    Ok(Some(n))
}

/// How many jobs have `status` (schema v6 tally).
pub(super) fn status_count(conn: &Connection, status: Status) -> Result<u64, StoreError> {
    count(
        conn,
        "SELECT COALESCE((SELECT n FROM tallies WHERE kind = 'status' AND a = ?1 AND b = ''), 0)",
        params![status.as_str()],
    )
}

/// How many jobs of `user` are pending or running (schema v6 tally).
pub(super) fn active_count(conn: &Connection, user: &str) -> Result<u64, StoreError> {
    count(
        conn,
        "SELECT COALESCE(SUM(n), 0) FROM tallies WHERE kind = 'active' AND a = ?1",
        params![user],
    )
}

pub(super) fn next_counter(conn: &Connection, name: &str) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO counters(name, value) VALUES (?1, 1) \
         ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
    )?
    .query_row(params![name], |r| r.get(0))
    .map_err(StoreError::from)
}

pub(super) fn upsert_worker_seen(
    conn: &Connection,
    worker_id: &str,
    now: Millis,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO workers(worker_id, capabilities, registered_at, last_seen) \
         VALUES (?1, '[]', ?2, ?2) ON CONFLICT(worker_id) DO UPDATE SET last_seen = ?2",
    )?
    .execute(params![worker_id, now])?;
    Ok(())
}

pub(super) fn read_worker(r: &rusqlite::Row<'_>) -> rusqlite::Result<(WorkerRecord, String)> {
    Ok((
        WorkerRecord {
            info: WorkerInfo {
                worker_id: r.get(0)?,
                comfyui_version: r.get(1)?,
                line: r.get(2)?,
                capabilities: Vec::new(),
                catalogue: r.get(6)?,
            },
            registered_at: r.get(4)?,
            last_seen: r.get(5)?,
            drain: r.get::<_, i64>(7)? != 0,
        },
        r.get(3)?,
    ))
}

pub(super) fn finish_worker(
    (mut rec, caps): (WorkerRecord, String),
) -> Result<WorkerRecord, StoreError> {
    rec.info.capabilities = serde_json::from_str(&caps)?;
    Ok(rec)
}

pub(super) const FILE_COLS: &str =
    "role, subfolder, filename, sha256, size, content_type, node_id, kind, seq, created_at";

/// A `job_files` row in [`FILE_COLS`] order.
pub(super) fn read_file(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, FileRecord)> {
    let role: String = r.get(0)?;
    Ok((
        role,
        FileRecord {
            role: FileRole::Input,
            subfolder: r.get(1)?,
            filename: r.get(2)?,
            sha256: r.get(3)?,
            size: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
            content_type: r.get(5)?,
            node_id: r.get(6)?,
            kind: r.get(7)?,
            position: u64::try_from(r.get::<_, i64>(8)?).unwrap_or(0),
            created_at: r.get(9)?,
        },
    ))
}

/// Finish a row of [`read_file`]: its role.
pub(super) fn finish_file((role, mut f): (String, FileRecord)) -> Result<FileRecord, StoreError> {
    f.role = FileRole::parse(&role)
        .ok_or_else(|| BackendError::Corrupt(format!("file role {role:?}")))?;
    Ok(f)
}

/// The files of one job, inputs first, then in position order.
pub(super) fn job_files(conn: &Connection, id: Uuid) -> Result<Vec<FileRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FILE_COLS} FROM job_files WHERE job_id = ?1 ORDER BY seq"
    ))?;
    let rows = stmt.query_map(params![id.to_string()], read_file)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(finish_file(row?)?);
    }
    crate::store::sort_files(&mut out);
    Ok(out)
}

/// Insert a file of a job, or replace the one with the same (role, subfolder, filename),
/// which keeps its `seq` (its position). Returns the stored record.
pub(super) fn upsert_file(
    conn: &Connection,
    id: Uuid,
    f: &FileRecord,
    now: Millis,
) -> Result<FileRecord, StoreError> {
    let size = i64::try_from(f.size).map_err(|_| BackendError::Corrupt("file size".into()))?;
    let seq: i64 = conn
        .prepare_cached(
            "INSERT INTO job_files(job_id, role, subfolder, filename, sha256, size, content_type, \
             node_id, kind, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT(job_id, role, subfolder, filename) DO UPDATE SET sha256 = ?5, \
             size = ?6, content_type = ?7, node_id = ?8, kind = ?9, created_at = ?10 \
             RETURNING seq",
        )?
        .query_row(
            params![
                id.to_string(),
                f.role.as_str(),
                f.subfolder,
                f.filename,
                f.sha256,
                size,
                f.content_type,
                f.node_id,
                f.kind,
                now
            ],
            |r| r.get(0),
        )?;
    Ok(FileRecord {
        position: u64::try_from(seq).unwrap_or(0),
        created_at: now,
        ..f.clone()
    })
}

/// An upload row.
pub(super) fn read_upload(r: &rusqlite::Row<'_>) -> rusqlite::Result<Upload> {
    Ok(Upload {
        user_id: r.get(0)?,
        sha256: r.get(1)?,
        filename: r.get(2)?,
        content_type: r.get(3)?,
        size: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        uploaded_at: r.get(5)?,
    })
}

pub(super) const UPLOAD_COLS: &str = "user_id, sha256, filename, content_type, size, uploaded_at";
