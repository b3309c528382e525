//! The SQLite schema and its migrations: connection pragmas (WAL, `synchronous=FULL`) and
//! the versioned schema in `PRAGMA user_version` (a file newer than this build is refused).

use rusqlite::Connection;

use crate::store::{BackendError, StoreError};

/// The schema version this build writes (`PRAGMA user_version`); newer files are refused.
pub const SCHEMA_VERSION: i64 = 7;

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

/// v6: what reads at any queue depth need, kept by triggers in the same transaction as the
/// change, so no read scans the pending jobs. One small table, `tallies`, holds four kinds
/// of count (one B-tree, so a change dirties one or two pages of it, not four tables'):
///
/// | `kind` | `a` | `b` | `n` counts | read by |
/// |---|---|---|---|---|
/// | `status` | status | `''` | jobs | queue status, `max_pending` |
/// | `active` | user | `pending` / `running` | that user's jobs | `max_per_user`, per-user counts |
/// | `pending` | priority | user | that user's pending jobs | the claim: it walks these pairs in round-robin order, then that user's jobs through `jobs_by_user_queue` |
/// | `bucket` | priority | `seq >> BUCKET_BITS` | pending jobs | positions: the buckets before a job's, plus a count inside its own (at most 512 rows) |
///
/// A job leaves its old place and enters its new one whenever its status or priority
/// changes (jobs keep their user and `seq`); rows that reach 0 are deleted, except the
/// `status` ones. `a` and `b` have no type, so values keep theirs (a user id that looks like
/// a number stays text).
pub(super) const BUCKET_BITS: u32 = 9;

const SCHEMA_V6: &str = r#"
CREATE TABLE IF NOT EXISTS tallies (
    kind TEXT NOT NULL,
    a    NOT NULL,
    b    NOT NULL,
    n    INTEGER NOT NULL,
    PRIMARY KEY (kind, a, b)
) WITHOUT ROWID;
DROP INDEX IF EXISTS jobs_by_user;
CREATE INDEX IF NOT EXISTS jobs_by_user_queue ON jobs(user_id, status, priority, seq);
DELETE FROM tallies;
INSERT INTO tallies(kind, a, b, n)
    SELECT 'status', status, '', COUNT(*) FROM jobs GROUP BY status;
INSERT INTO tallies(kind, a, b, n)
    SELECT 'active', user_id, status, COUNT(*) FROM jobs WHERE status IN ('pending', 'running')
    GROUP BY user_id, status;
INSERT INTO tallies(kind, a, b, n)
    SELECT 'pending', priority, user_id, COUNT(*) FROM jobs WHERE status = 'pending'
    GROUP BY priority, user_id;
INSERT INTO tallies(kind, a, b, n)
    SELECT 'bucket', priority, seq >> @BITS, COUNT(*) FROM jobs WHERE status = 'pending'
    GROUP BY priority, seq >> @BITS;
CREATE TRIGGER IF NOT EXISTS jobs_tally_insert AFTER INSERT ON jobs BEGIN
    @ENTER(NEW)
END;
CREATE TRIGGER IF NOT EXISTS jobs_tally_delete AFTER DELETE ON jobs BEGIN
    @LEAVE(OLD)
END;
CREATE TRIGGER IF NOT EXISTS jobs_tally_update AFTER UPDATE OF status, priority ON jobs
WHEN OLD.status IS NOT NEW.status OR OLD.priority IS NOT NEW.priority BEGIN
    @LEAVE(OLD)
    @ENTER(NEW)
END;
"#;

/// The statements by which job `x` (`NEW` or `OLD`) enters the tallies.
fn enter(x: &str) -> String {
    format!(
        "INSERT INTO tallies(kind, a, b, n) VALUES ('status', {x}.status, '', 1) \
             ON CONFLICT(kind, a, b) DO UPDATE SET n = n + 1;
    INSERT INTO tallies(kind, a, b, n) SELECT 'active', {x}.user_id, {x}.status, 1 \
             WHERE {x}.status IN ('pending', 'running') \
             ON CONFLICT(kind, a, b) DO UPDATE SET n = n + 1;
    INSERT INTO tallies(kind, a, b, n) SELECT 'pending', {x}.priority, {x}.user_id, 1 \
             WHERE {x}.status = 'pending' \
             ON CONFLICT(kind, a, b) DO UPDATE SET n = n + 1;
    INSERT INTO tallies(kind, a, b, n) SELECT 'bucket', {x}.priority, {x}.seq >> @BITS, 1 \
             WHERE {x}.status = 'pending' \
             ON CONFLICT(kind, a, b) DO UPDATE SET n = n + 1;"
    )
}

/// The statements by which job `x` leaves the tallies.
fn leave(x: &str) -> String {
    format!(
        "UPDATE tallies SET n = n - 1 WHERE kind = 'status' AND a = {x}.status AND b = '';
    DELETE FROM tallies WHERE {x}.status IN ('pending', 'running') AND kind = 'active' \
             AND a = {x}.user_id AND b = {x}.status AND n <= 1;
    UPDATE tallies SET n = n - 1 WHERE {x}.status IN ('pending', 'running') AND kind = 'active' \
             AND a = {x}.user_id AND b = {x}.status;
    DELETE FROM tallies WHERE {x}.status = 'pending' AND kind = 'pending' \
             AND a = {x}.priority AND b = {x}.user_id AND n <= 1;
    UPDATE tallies SET n = n - 1 WHERE {x}.status = 'pending' AND kind = 'pending' \
             AND a = {x}.priority AND b = {x}.user_id;
    DELETE FROM tallies WHERE {x}.status = 'pending' AND kind = 'bucket' \
             AND a = {x}.priority AND b = {x}.seq >> @BITS AND n <= 1;
    UPDATE tallies SET n = n - 1 WHERE {x}.status = 'pending' AND kind = 'bucket' \
             AND a = {x}.priority AND b = {x}.seq >> @BITS;"
    )
}

/// Schema v6 with its triggers written out.
fn schema_v6() -> String {
    SCHEMA_V6
        .replace("@ENTER(NEW)", &enter("NEW"))
        .replace("@LEAVE(OLD)", &leave("OLD"))
        .replace("@BITS", &BUCKET_BITS.to_string())
}

/// Prepared statements a connection keeps (rusqlite's default, 16, is fewer than the
/// statements the operations use, so they were parsed again and again).
pub(super) const STATEMENT_CACHE: usize = 256;

/// What every connection (the writer's and the readers') is opened with: a busy timeout,
/// a statement cache big enough for every statement, and the query planner's stability
/// guarantee (QPSG). Without it SQLite plans a statement with the values bound to it — a
/// `user_id = ?1` is compared against the partial index `jobs_by_idem`'s condition — and
/// prepares the cached statement again whenever a bound value changes: that was a quarter of
/// the writer thread's time at concurrency 32 (docs/benchmarks.md). Plans made without the
/// values are the ones the schema's indexes were designed for.
pub(super) fn tune(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

pub(super) fn setup(conn: &Connection) -> Result<(), StoreError> {
    tune(conn)?;
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
    if version < 6 {
        conn.execute_batch(&format!(
            "BEGIN; {} PRAGMA user_version = 6; COMMIT;",
            schema_v6()
        ))?;
    }
    if version < 7 {
        // v7: an admin's (or the worker's own) request that the worker drain: finish its
        // job and take no new one. Workers registered before it read as not draining.
        conn.execute_batch(
            "BEGIN; ALTER TABLE workers ADD COLUMN drain INTEGER NOT NULL DEFAULT 0; \
             PRAGMA user_version = 7; COMMIT;",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan SQLite picks for `sql` (its `EXPLAIN QUERY PLAN` details, one per line).
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("the statement prepares");
        // Unbound parameters read as NULL; with the guarantee on, the plan cannot depend on them.
        let mut rows = stmt.raw_query();
        let mut details = Vec::new();
        while let Some(row) = rows.next().expect("the plan is read") {
            details.push(row.get::<_, String>(3).expect("a plan row"));
        }
        details.join("\n")
    }

    /// With the planner's stability guarantee on, plans are made without the bound values:
    /// the statements on the hot paths must still find their indexes that way.
    #[test]
    fn hot_statements_use_their_indexes_without_the_bound_values() {
        let conn = Connection::open_in_memory().expect("an in-memory database");
        setup(&conn).expect("the schema is created");
        let qpsg = conn
            .db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)
            .expect("the setting is read");
        assert!(qpsg, "the query planner stability guarantee is on");
        for (sql, index) in [
            (
                "SELECT id FROM jobs WHERE user_id = ?1 AND idem_key = ?2",
                "jobs_by_idem",
            ),
            (
                "SELECT seq, req_class FROM jobs WHERE user_id = ?1 AND status = 'pending' \
                 AND priority = ?2 AND (not_before IS NULL OR not_before <= ?3) ORDER BY seq",
                "jobs_by_user_queue",
            ),
            (
                "SELECT seq FROM jobs WHERE id = ?1",
                "sqlite_autoindex_jobs_1",
            ),
            (
                "SELECT seq FROM job_files WHERE job_id = ?1 ORDER BY seq",
                "sqlite_autoindex_job_files_1",
            ),
        ] {
            let p = plan(&conn, sql);
            assert!(
                p.contains(index),
                "{sql}\nplanned as:\n{p}\nnot through {index}"
            );
        }
    }
}
