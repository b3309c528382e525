//! The SQLite schema and its migrations: connection pragmas (WAL, `synchronous=FULL`) and
//! the versioned schema in `PRAGMA user_version` (a file newer than this build is refused).

use rusqlite::Connection;

use crate::store::{BackendError, StoreError};

const SCHEMA_VERSION: i64 = 5;

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

/// v4: the files of jobs (inputs, outputs, temp) and the uploads of users. The bytes are
/// blobs of the file store, named by `sha256`.
const SCHEMA_V4: &str = r#"
CREATE TABLE IF NOT EXISTS job_files (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id       TEXT NOT NULL,
    role         TEXT NOT NULL,
    subfolder    TEXT NOT NULL,
    filename     TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    node_id      TEXT,
    kind         TEXT,
    created_at   INTEGER NOT NULL,
    UNIQUE (job_id, role, subfolder, filename)
);
CREATE INDEX IF NOT EXISTS job_files_by_sha ON job_files(sha256);
CREATE TABLE IF NOT EXISTS uploads (
    user_id      TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    uploaded_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, sha256)
);
CREATE INDEX IF NOT EXISTS uploads_by_time ON uploads(uploaded_at);
CREATE INDEX IF NOT EXISTS uploads_by_sha ON uploads(sha256);
"#;

pub(super) fn setup(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "SQLite did not switch to WAL");
    }
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(BackendError::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        }
        .into());
    }
    if version < 1 {
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA_V1} PRAGMA user_version = 1; COMMIT;"
        ))?;
    }
    if version < 2 {
        // v2: retry backoff.
        conn.execute_batch(
            "BEGIN; ALTER TABLE jobs ADD COLUMN not_before INTEGER; PRAGMA user_version = 2; COMMIT;",
        )
        ?;
    }
    if version < 3 {
        // v3: whether complete/fail need the lease token (leases of registered workers).
        // Leases taken before it read as 0, i.e. as they were checked until now.
        conn.execute_batch(
            "BEGIN; ALTER TABLE jobs ADD COLUMN lease_fenced INTEGER NOT NULL DEFAULT 0; \
             PRAGMA user_version = 3; COMMIT;",
        )?;
    }
    if version < 4 {
        // v4: files of jobs and uploads (new tables; existing rows are untouched).
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA_V4} PRAGMA user_version = 4; COMMIT;"
        ))?;
    }
    if version < 5 {
        // v5: the node catalogue a worker published with its registration (a blob of the
        // file store, by SHA-256). Workers registered before it read as publishing none.
        conn.execute_batch(
            "BEGIN; ALTER TABLE workers ADD COLUMN catalogue TEXT; \
             PRAGMA user_version = 5; COMMIT;",
        )?;
    }
    Ok(())
}
