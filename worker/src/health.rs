//! `/health` and `/metrics` on a small local port.

use crate::queue_client::Progress;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// The worker's state as the health endpoint shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Detecting ComfyUI / registering.
    Starting,
    /// Ready or running a job.
    Healthy,
    /// ComfyUI or the queue is failing; backing off.
    Unhealthy,
    /// Stopping after a signal.
    Stopping,
}

/// The job running now.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentJob {
    /// Queue job id.
    pub job_id: String,
    /// Owner.
    pub user_id: String,
    /// Attempt number.
    pub attempt: u32,
    /// Progress (with ComfyUI's prompt id).
    pub progress: Progress,
}

#[derive(Debug, Clone, Serialize)]
struct HealthState {
    status: Status,
    reason: Option<String>,
    comfy_url: String,
    comfyui_version: Option<String>,
    line: Option<String>,
    current_job: Option<CurrentJob>,
}

/// How a job ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Completed.
    Completed,
    /// Failed for good.
    Failed,
    /// Failed, handed back for a retry.
    Retried,
    /// Cancelled through the queue.
    Cancelled,
    /// Handed back on shutdown.
    HandedBack,
    /// Lease lost; nothing reported.
    LeaseLost,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Retried => "retried",
            Outcome::Cancelled => "cancelled",
            Outcome::HandedBack => "handed_back",
            Outcome::LeaseLost => "lease_lost",
        }
    }
    const ALL: [Outcome; 6] = [
        Outcome::Completed,
        Outcome::Failed,
        Outcome::Retried,
        Outcome::Cancelled,
        Outcome::HandedBack,
        Outcome::LeaseLost,
    ];
}

/// Shared health of one worker.
#[derive(Debug)]
pub struct Health {
    worker_id: String,
    started: Instant,
    state: Mutex<HealthState>,
    outcomes: [AtomicU64; 6],
    detections: AtomicU64,
    job_ms_sum: AtomicU64,
    job_count: AtomicU64,
}

impl Health {
    /// A health record for `worker_id` driving `comfy_url`.
    pub fn new(worker_id: &str, comfy_url: &str) -> Self {
        Health {
            worker_id: worker_id.to_owned(),
            started: Instant::now(),
            state: Mutex::new(HealthState {
                status: Status::Starting,
                reason: None,
                comfy_url: comfy_url.to_owned(),
                comfyui_version: None,
                line: None,
                current_job: None,
            }),
            outcomes: Default::default(),
            detections: AtomicU64::new(0),
            job_ms_sum: AtomicU64::new(0),
            job_count: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HealthState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Sets the status (with why, when unhealthy).
    pub fn set_status(&self, status: Status, reason: Option<String>) {
        let mut s = self.lock();
        if s.status == Status::Stopping && status != Status::Stopping {
            return;
        }
        s.status = status;
        s.reason = reason;
    }

    /// The status now.
    pub fn status(&self) -> Status {
        self.lock().status
    }

    /// Records a detection.
    pub fn detected(&self, version: Option<String>, line: String) {
        self.detections.fetch_add(1, Ordering::Relaxed);
        let mut s = self.lock();
        s.comfyui_version = version;
        s.line = Some(line);
    }

    /// Sets or clears the current job.
    pub fn set_job(&self, job: Option<CurrentJob>) {
        self.lock().current_job = job;
    }

    /// Updates the current job's progress.
    pub fn set_progress(&self, p: Progress) {
        if let Some(j) = self.lock().current_job.as_mut() {
            j.progress = p;
        }
    }

    /// Counts a finished job.
    pub fn record(&self, outcome: Outcome, elapsed_ms: u64) {
        if let Some(i) = Outcome::ALL.iter().position(|o| *o == outcome) {
            self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
        self.job_ms_sum.fetch_add(elapsed_ms, Ordering::Relaxed);
        self.job_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Jobs that ended with `outcome` so far.
    pub fn count(&self, outcome: Outcome) -> u64 {
        Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .map_or(0, |i| self.outcomes[i].load(Ordering::Relaxed))
    }

    /// Detections so far.
    pub fn detections(&self) -> u64 {
        self.detections.load(Ordering::Relaxed)
    }

    fn json(&self) -> (StatusCode, serde_json::Value) {
        let s = self.lock().clone();
        let code = match s.status {
            Status::Healthy => StatusCode::OK,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let counts: serde_json::Map<String, serde_json::Value> = Outcome::ALL
            .iter()
            .map(|o| (o.label().to_owned(), json!(self.count(*o))))
            .collect();
        (
            code,
            json!({
                "status": s.status, "reason": s.reason, "worker_id": self.worker_id,
                "comfyui": {"url": s.comfy_url, "version": s.comfyui_version, "line": s.line},
                "current_job": s.current_job, "jobs": counts,
                "detections": self.detections(),
                "uptime_seconds": self.started.elapsed().as_secs_f64(),
            }),
        )
    }

    fn metrics(&self) -> String {
        use std::fmt::Write;
        let s = self.lock().clone();
        let mut out = String::new();
        let _ = writeln!(out, "# HELP comfy_worker_up 1 when the worker is healthy.");
        let _ = writeln!(out, "# TYPE comfy_worker_up gauge");
        let _ = writeln!(
            out,
            "comfy_worker_up {}",
            u8::from(s.status == Status::Healthy)
        );
        let _ = writeln!(out, "# HELP comfy_worker_busy 1 while a job runs.");
        let _ = writeln!(out, "# TYPE comfy_worker_busy gauge");
        let _ = writeln!(
            out,
            "comfy_worker_busy {}",
            u8::from(s.current_job.is_some())
        );
        if let Some(j) = &s.current_job {
            let _ = writeln!(out, "# TYPE comfy_worker_job_progress_percent gauge");
            let _ = writeln!(
                out,
                "comfy_worker_job_progress_percent {}",
                j.progress.percent
            );
        }
        let _ = writeln!(
            out,
            "# HELP comfy_worker_jobs_total Jobs ended, by outcome."
        );
        let _ = writeln!(out, "# TYPE comfy_worker_jobs_total counter");
        for o in Outcome::ALL {
            let _ = writeln!(
                out,
                "comfy_worker_jobs_total{{outcome=\"{}\"}} {}",
                o.label(),
                self.count(o)
            );
        }
        let _ = writeln!(out, "# TYPE comfy_worker_detections_total counter");
        let _ = writeln!(out, "comfy_worker_detections_total {}", self.detections());
        let _ = writeln!(out, "# TYPE comfy_worker_job_duration_seconds summary");
        let _ = writeln!(
            out,
            "comfy_worker_job_duration_seconds_sum {}",
            self.job_ms_sum.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "comfy_worker_job_duration_seconds_count {}",
            self.job_count.load(Ordering::Relaxed)
        );
        out
    }
}

async fn health(State(h): State<Arc<Health>>) -> Response {
    let (code, body) = h.json();
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(h): State<Arc<Health>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        h.metrics(),
    )
        .into_response()
}

/// The health router.
pub fn router(h: Arc<Health>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(h)
}

/// Serves `/health` and `/metrics` on `addr` until the process ends; returns the bound address.
pub async fn serve(addr: SocketAddr, h: Arc<Health>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(h)).await {
            tracing::warn!(error = %e, "health server ended");
        }
    });
    Ok(bound)
}
