//! The writer thread and its group commit: one thread owns the connection; async callers
//! send it operations over a channel, and the thread runs whatever has queued up in ONE
//! transaction (each operation inside its own savepoint, so a failing one rolls back alone)
//! and answers each caller only after COMMIT returned.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, mpsc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::rows::exec_cached;
use crate::scheduler::{Requirements, WorkerInfo};
use crate::store::{BackendError, StoreError};

const MAX_BATCH: usize = 256;

/// State owned by the writer thread; operations get it mutably.
pub(super) struct Ctx {
    /// The one connection.
    pub(super) conn: Connection,
    /// Requirement classes already parsed.
    classes: HashMap<String, Option<Requirements>>,
}

/// The handle async callers use to reach the writer thread.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    tx: mpsc::Sender<Box<dyn Op>>,
}

impl Writer {
    /// Start the writer thread that owns `conn`.
    pub(super) fn spawn(conn: Connection) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel::<Box<dyn Op>>();
        let mut ctx = Ctx {
            conn,
            classes: HashMap::new(),
        };
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(&mut ctx, &rx))
            .map_err(|e| BackendError::Io {
                what: "spawn the sqlite writer thread".into(),
                source: Arc::new(e),
            })?;
        Ok(Self { tx })
    }

    /// Run `f` on the writer thread inside the next group commit; the answer arrives
    /// after COMMIT (or the commit's error).
    pub(super) async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
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
        self.tx.send(op).map_err(|_| BackendError::WriterStopped)?;
        rx.await.map_err(|_| BackendError::WriterStopped)?
    }
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
            .unwrap_or_else(|_| Err(BackendError::Panicked.into()));
        let ok = r.is_ok();
        self.out = Some(r);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let out = match (commit, self.out) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(BackendError::NotRun.into()),
        };
        let _ = self.reply.send(out);
    }
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
        if let Err(e) = ctx.exec("BEGIN IMMEDIATE") {
            let err = StoreError::from(e);
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
            if let Err(e) = ctx.exec("SAVEPOINT op") {
                tracing::error!(error = %e, "savepoint failed");
                continue;
            }
            let ok = op.run(ctx);
            let end = if ok {
                ctx.exec("RELEASE op")
            } else {
                ctx.exec("ROLLBACK TO op")
                    .and_then(|()| ctx.exec("RELEASE op"))
            };
            if let Err(e) = end {
                tracing::error!(error = %e, "savepoint release failed");
            }
        }
        let commit = ctx.exec("COMMIT").map_err(StoreError::from);
        if commit.is_err() {
            let _ = ctx.conn.execute_batch("ROLLBACK");
        }
        for op in batch {
            op.finish(commit.clone());
        }
    }
}

impl Ctx {
    fn exec(&self, sql: &str) -> rusqlite::Result<()> {
        exec_cached(&self.conn, sql)
    }

    /// Whether a job of requirement class `class` may run on `worker` (classes are parsed
    /// once and remembered).
    pub(super) fn eligible(&mut self, class: &str, worker: &WorkerInfo) -> bool {
        if class.is_empty() {
            return true;
        }
        self.classes
            .entry(class.to_owned())
            .or_insert_with(|| Requirements::from_class_key(class))
            .as_ref()
            .is_some_and(|r| r.satisfied_by(&worker.server()))
    }
}
