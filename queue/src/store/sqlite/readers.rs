//! Read connections beside the writer: reads (a job, a list, the counts, files, workers) run
//! on their own connections in the blocking pool, each inside one read transaction, so they
//! never wait for the writer's group commit and never stall it. In WAL mode a read sees the
//! last commit made before it began; every write answers only after its commit, so a caller
//! reads its own writes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::rows::exec_cached;
use crate::store::{BackendError, StoreError};

/// Idle read connections kept for reuse; more are opened while more reads run at once.
const MAX_IDLE: usize = 8;

/// The pool of read connections of one database file.
#[derive(Debug, Clone)]
pub(super) struct Readers {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// Readers of the database at `path` (already set up by the writer's connection).
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Run `f` in one read transaction on a read connection, off the async threads.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.run(f))
            .await
            .map_err(|_| BackendError::Panicked)?
    }
}

impl Inner {
    fn run<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = match self.idle.lock().ok().and_then(|mut v| v.pop()) {
            Some(c) => c,
            None => self.open()?,
        };
        exec_cached(&conn, "BEGIN")?;
        let out = f(&conn);
        // A read transaction has nothing to keep: ending it cannot lose anything. A
        // connection whose transaction would not end is dropped rather than reused.
        if exec_cached(&conn, "COMMIT").is_ok()
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
        }
        out
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open(&self.path)?;
        super::schema::tune(&conn)?;
        conn.execute_batch("PRAGMA query_only = 1;")?;
        Ok(conn)
    }
}
