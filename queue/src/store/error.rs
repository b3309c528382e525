//! Why a store operation did not happen: [`StoreError`] for the outcomes callers act on
//! (not found, wrong state, lease lost, caps), [`BackendError`] for the backend failing,
//! with the rusqlite / redis / serde error kept as its `source()`.

use std::sync::Arc;

use crate::lifecycle::TransitionError;

/// Why a store operation did not happen. Nothing is written when one is returned, except
/// possibly for [`StoreError::Backend`] on Redis: a script whose reply was lost (connection
/// dropped, timeout) may have run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// No such job.
    #[error("job not found")]
    NotFound,
    /// The job's status does not allow this change.
    #[error("{0}")]
    InvalidState(String),
    /// The lease token is stale or the job is not leased.
    #[error("{0}")]
    LeaseConflict(String),
    /// Too many pending jobs (the cap).
    #[error("queue full ({0})")]
    QueueFull(u64),
    /// Too many pending+running jobs for this user (the cap).
    #[error("user limit reached ({0})")]
    UserLimit(u64),
    /// A submit's input (by its index in `inputs`) names no upload of the job's user.
    #[error("input {0} names no upload of this user")]
    UnknownFile(usize),
    /// The backend failed (I/O, connection, corrupt row); shown as the backend error,
    /// whose library error is the `source()`.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl From<TransitionError> for StoreError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::InvalidState(m) => StoreError::InvalidState(m),
            TransitionError::LeaseConflict(m) => StoreError::LeaseConflict(m),
        }
    }
}

/// The backend failed. Library errors are kept (in an `Arc`, so one failed group commit
/// can be reported to every caller in it) and returned by `source()`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// SQLite refused or failed.
    #[error("sqlite")]
    Sqlite(#[source] Arc<rusqlite::Error>),
    /// Redis failed (connection, timeout, script error).
    #[error("redis")]
    Redis(#[source] Arc<redis::RedisError>),
    /// A stored JSON column or field does not parse, or a value does not serialize.
    #[error("corrupt JSON in store")]
    Json(#[source] Arc<serde_json::Error>),
    /// A file-system or thread step failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A stored job or worker does not read back (bad id, status, number, short reply).
    #[error("corrupt record in store: {0}")]
    Corrupt(String),
    /// A Redis script answered something it never sends.
    #[error("unexpected script reply {0}")]
    UnexpectedReply(String),
    /// The database file was written by a newer build.
    #[error("database schema version {found} is newer than this build ({supported})")]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The SQLite writer thread is gone.
    #[error("sqlite writer thread stopped")]
    WriterStopped,
    /// A store operation panicked (it was rolled back).
    #[error("store operation panicked")]
    Panicked,
    /// The writer committed without running the operation (a bug).
    #[error("operation did not run")]
    NotRun,
    /// Claim gave up: more requirement classes appeared than one claim can judge.
    #[error("too many requirement classes to judge")]
    TooManyClasses,
    /// A worker written a moment ago is not there.
    #[error("worker vanished after registering")]
    WorkerVanished,
    /// Another process has the SQLite file open: the embedded store serves one process.
    #[error(
        "{path} is open in another comfy-queue process; the SQLite store serves one process \
         (stop the other one, or run several replicas on Redis with --redis-url)"
    )]
    FileInUse {
        /// The database file.
        path: String,
    },
    /// Redis runs as a Cluster and the key prefix has no hash tag: a script's keys would
    /// fall in different slots.
    #[error(
        "Redis runs as a Cluster: the key prefix {prefix:?} must be a hash tag such as \
         \"{{comfy-queue}}\" so that every key of the queue lies in one slot"
    )]
    ClusterPrefix {
        /// The prefix given.
        prefix: String,
    },
}

impl PartialEq for BackendError {
    /// Library errors cannot be compared; two backend errors are equal when they are the
    /// same kind with the same text, sources included.
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && Chain(self).to_string() == Chain(other).to_string()
    }
}

impl From<rusqlite::Error> for BackendError {
    fn from(e: rusqlite::Error) -> Self {
        BackendError::Sqlite(Arc::new(e))
    }
}

impl From<redis::RedisError> for BackendError {
    fn from(e: redis::RedisError) -> Self {
        BackendError::Redis(Arc::new(e))
    }
}

impl From<serde_json::Error> for BackendError {
    fn from(e: serde_json::Error) -> Self {
        BackendError::Json(Arc::new(e))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.into())
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Backend(e.into())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Backend(e.into())
    }
}

/// Shows an error with its sources, `outer: inner: innermost`, for logs.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_error_is_the_source_and_the_chain_shows_it() {
        let e = StoreError::from(rusqlite::Error::InvalidQuery);
        assert_eq!(e.to_string(), "sqlite");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source, Some(rusqlite::Error::InvalidQuery.to_string()));
        assert_eq!(
            Chain(&e).to_string(),
            format!("sqlite: {}", rusqlite::Error::InvalidQuery)
        );
    }

    #[test]
    fn backend_errors_compare_by_kind_and_text() {
        assert_eq!(
            StoreError::from(BackendError::WriterStopped),
            StoreError::from(BackendError::WriterStopped)
        );
        assert_ne!(
            StoreError::from(BackendError::WriterStopped),
            StoreError::from(BackendError::Panicked)
        );
        assert_ne!(
            BackendError::Corrupt("id".into()),
            BackendError::Corrupt("status".into())
        );
    }
}
