//! `comfyctl record`: runs the probe suite of `fixtures/` against a live
//! ComfyUI and writes a fixture set in the same format (one JSON file per
//! exchange, `NNN-name.json`; WebSocket traces as message lists), so a new
//! release can be recorded, diffed against the last one and emulated.
//!
//! The suite is the one the shared recordings were made with (118 probes:
//! see `fixtures/README.md`). It changes the server while it runs — it
//! queues, interrupts and clears prompts and writes userdata — so it
//! refuses a busy server and userdata it would overwrite, and afterwards
//! deletes the userdata and history entries it created. What ComfyUI offers
//! no API to delete (output files, the uploaded input image, empty userdata
//! folders) is listed in [`Report::left_behind`].
//!
//! A probe that depends on an earlier one that failed (no prompt id, no
//! WebSocket) is skipped and reported, never faked.

mod capture;
mod script;
mod session;
mod trace;

use comfy_adapter::error::ComfyError;
use comfy_adapter::http::Timeouts;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

pub use script::PROBE_COUNT;

/// What to record and where.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// The server (`http://host:8188`).
    pub url: String,
    /// The folder to write (created; must not already hold a recorded set).
    pub out: PathBuf,
    /// Sent as `comfy-user` (servers run with `--multi-user`).
    pub user: Option<String>,
    /// Per-request timeouts.
    pub timeouts: Timeouts,
    /// How long one prompt may take to reach the state a probe needs
    /// (running, finished, in history).
    pub job_timeout: Duration,
}

impl RecordOptions {
    /// Defaults: 30 s per request, 5 min per prompt.
    pub fn new(url: impl Into<String>, out: impl Into<PathBuf>) -> Self {
        RecordOptions {
            url: url.into(),
            out: out.into(),
            user: None,
            timeouts: Timeouts::default(),
            job_timeout: Duration::from_secs(300),
        }
    }
}

/// Told about each step, for a progress bar.
pub trait Progress: Send + Sync {
    /// Probe `number` (1-based) of [`PROBE_COUNT`] is done.
    fn probe(&self, number: usize, name: &str, outcome: &Outcome);
    /// Waiting for the server (a prompt to start or finish).
    fn waiting(&self, what: &str) {
        let _ = what;
    }
}

/// No progress reporting.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn probe(&self, _: usize, _: &str, _: &Outcome) {}
}

/// What became of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Written to `file`; `status` is the HTTP status (none for a trace).
    Written {
        /// The file name (`024-ws-run-success.json`).
        file: String,
        /// The HTTP status.
        status: Option<u16>,
    },
    /// Not recorded.
    Skipped {
        /// Why (the earlier probe it needed, the capability it lacks).
        reason: String,
    },
}

/// One probe in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    /// 1-based position in the suite (the file number).
    pub number: usize,
    /// The probe name (`jobs-empty`).
    pub name: String,
    /// What became of it.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The result of a recording.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The server.
    pub url: String,
    /// The version it reported (`comfyui_version` in every file).
    pub comfyui_version: String,
    /// The folder written.
    pub out: PathBuf,
    /// Every probe, in order.
    pub probes: Vec<ProbeReport>,
    /// What the clean-up removed (`history: 14 entries`, `userdata: ...`).
    pub cleaned: Vec<String>,
    /// What stayed on the server because ComfyUI has no API to remove it.
    pub left_behind: Vec<String>,
    /// Waits that ran out (the recording went on; the probes after it show
    /// what the server did instead).
    pub timed_out: Vec<String>,
}

impl Report {
    /// Probes written.
    pub fn written(&self) -> usize {
        self.probes
            .iter()
            .filter(|p| matches!(p.outcome, Outcome::Written { .. }))
            .count()
    }

    /// Probes skipped.
    pub fn skipped(&self) -> impl Iterator<Item = &ProbeReport> {
        self.probes
            .iter()
            .filter(|p| matches!(p.outcome, Outcome::Skipped { .. }))
    }
}

/// Why a recording could not be made or finished.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The server could not be reached or stopped answering.
    #[error(transparent)]
    Comfy(#[from] ComfyError),
    /// Somebody else's prompts are queued: the suite interrupts and clears
    /// the queue, so it does not start.
    #[error(
        "the server is busy ({running} running, {pending} pending); record needs an idle server because it interrupts and clears the queue"
    )]
    Busy {
        /// Prompts running.
        running: usize,
        /// Prompts waiting.
        pending: usize,
    },
    /// A userdata file the suite writes already exists.
    #[error(
        "userdata {0} already exists and the probes would overwrite it; move it away or record as another user (--user)"
    )]
    WouldOverwrite(String),
    /// The output folder already holds a recorded set.
    #[error("{0} already holds recorded probes; record into a new or empty folder")]
    OutNotEmpty(PathBuf),
    /// Stopped before the end (the clean-up ran).
    #[error("stopped before the end; the history and userdata it had created were deleted")]
    Stopped,
    /// Writing a file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the suite against `options.url` and writes it to `options.out`.
///
/// Clean-up runs whether the suite finished or failed half-way; a failure
/// is returned after it.
pub async fn record(
    options: &RecordOptions,
    progress: &dyn Progress,
) -> Result<Report, RecordError> {
    record_until(options, progress, std::future::pending()).await
}

/// [`record`], stopping early (and still cleaning up) when `stop` completes
/// — a Ctrl-C, a deadline.
pub async fn record_until(
    options: &RecordOptions,
    progress: &dyn Progress,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Report, RecordError> {
    let mut session = session::Session::open(options, progress).await?;
    let outcome = tokio::select! {
        outcome = script::run(&mut session) => outcome,
        () = stop => Err(RecordError::Stopped),
    };
    let report = session.clean_up().await;
    for line in &report.cleaned {
        tracing::info!(cleaned = %line, "record clean-up");
    }
    outcome.map(|()| report)
}
