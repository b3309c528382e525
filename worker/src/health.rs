//! `/health` and `/metrics` on a small local port.

use crate::queue_client::Progress;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
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
    /// Handed back unrun: its ComfyUI cannot run it.
    Unfit,
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
            Outcome::Unfit => "unfit",
            Outcome::LeaseLost => "lease_lost",
        }
    }
    const ALL: [Outcome; 7] = [
        Outcome::Completed,
        Outcome::Failed,
        Outcome::Retried,
        Outcome::Cancelled,
        Outcome::HandedBack,
        Outcome::Unfit,
        Outcome::LeaseLost,
    ];
}

/// Labels of `comfy_worker_jobs_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Upper bounds (seconds) of the job-duration histogram: a second to two hours.
const JOB_DURATION_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 7200.0,
];

/// Shared health of one worker.
#[derive(Debug)]
pub struct Health {
    worker_id: String,
    started: Instant,
    state: Mutex<HealthState>,
    outcomes: Family<OutcomeLabels, Counter>,
    detections: Counter,
    job_duration: Histogram,
    events_sent: Counter,
    events_dropped: Counter,
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
            outcomes: {
                // Every outcome is shown from the start, 0 until it happens.
                let f = Family::default();
                for o in Outcome::ALL {
                    drop(f.get_or_create(&OutcomeLabels { outcome: o.label() }));
                }
                f
            },
            detections: Counter::default(),
            job_duration: Histogram::new(JOB_DURATION_BUCKETS),
            events_sent: Counter::default(),
            events_dropped: Counter::default(),
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
        self.detections.inc();
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

    /// Counts a finished job and observes its duration.
    pub fn record(&self, outcome: Outcome, elapsed_ms: u64) {
        self.count_end(outcome);
        self.job_duration.observe(elapsed_ms as f64 / 1000.0);
    }

    /// Counts a job that ended without running (handed back before its prompt was sent),
    /// leaving the duration histogram to jobs that ran.
    pub fn count_end(&self, outcome: Outcome) {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    /// Jobs that ended with `outcome` so far.
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .get()
    }

    /// Detections so far.
    pub fn detections(&self) -> u64 {
        self.detections.get()
    }

    /// Counts what a job's event relay sent and dropped.
    pub fn count_events(&self, stats: &crate::relay::RelayStats) {
        self.events_sent.inc_by(stats.sent);
        self.events_dropped.inc_by(stats.dropped);
        if stats.dropped > 0 {
            tracing::info!(
                sent = stats.sent,
                dropped = stats.dropped,
                "live events dropped (lossy relay)"
            );
        }
    }

    /// Live events forwarded to the queue and dropped, since start.
    pub fn events_counts(&self) -> (u64, u64) {
        (self.events_sent.get(), self.events_dropped.get())
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

    /// The registry of one scrape: the gauges read now, the counters and the duration
    /// histogram shared with this record.
    fn registry(&self) -> Registry {
        let s = self.lock().clone();
        let mut reg = Registry::default();
        let up = Gauge::<i64>::default();
        up.set(i64::from(s.status == Status::Healthy));
        reg.register("comfy_worker_up", "1 when the worker is healthy", up);
        let busy = Gauge::<i64>::default();
        busy.set(i64::from(s.current_job.is_some()));
        reg.register("comfy_worker_busy", "1 while a job runs", busy);
        if let Some(j) = &s.current_job {
            let percent = Gauge::<f64, AtomicU64>::default();
            percent.set(j.progress.percent);
            reg.register(
                "comfy_worker_job_progress_percent",
                "Progress of the running job, 0 to 100",
                percent,
            );
        }
        reg.register(
            "comfy_worker_jobs",
            "Jobs ended, by outcome",
            self.outcomes.clone(),
        );
        reg.register(
            "comfy_worker_detections",
            "ComfyUI detections (start and after each reconnect)",
            self.detections.clone(),
        );
        reg.register(
            "comfy_worker_events_sent",
            "Live ComfyUI events forwarded to the queue",
            self.events_sent.clone(),
        );
        reg.register(
            "comfy_worker_events_dropped",
            "Live ComfyUI events dropped (back-pressure, failed batches, lost lease)",
            self.events_dropped.clone(),
        );
        reg.register(
            "comfy_worker_job_duration_seconds",
            "Time from lease to report of each job",
            self.job_duration.clone(),
        );
        reg
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail; should it ever, the scrape shows what was written.
        if let Err(e) = encode(&mut out, &self.registry()) {
            tracing::warn!(error = %e, "encoding /metrics failed");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_show_every_outcome_and_progress_only_while_busy() {
        let h = Health::new("w", "http://127.0.0.1:1");
        let idle = h.metrics();
        for o in Outcome::ALL {
            let line = format!("comfy_worker_jobs_total{{outcome=\"{}\"}} 0", o.label());
            assert!(idle.lines().any(|l| l == line), "no {line:?} in\n{idle}");
        }
        assert!(idle.lines().any(|l| l == "comfy_worker_up 0"), "{idle}");
        assert!(
            !idle.contains("comfy_worker_job_progress_percent"),
            "{idle}"
        );

        h.set_job(Some(CurrentJob {
            job_id: "j".into(),
            user_id: "u".into(),
            attempt: 1,
            progress: Progress::default(),
        }));
        h.record(Outcome::Retried, 1500);
        h.record(Outcome::Retried, 500);
        let busy = h.metrics();
        assert!(
            busy.contains("comfy_worker_job_progress_percent 0"),
            "{busy}"
        );
        assert!(
            busy.lines()
                .any(|l| l == "comfy_worker_jobs_total{outcome=\"retried\"} 2"),
            "{busy}"
        );
        assert!(
            busy.lines()
                .any(|l| l == "comfy_worker_job_duration_seconds_sum 2.0"),
            "{busy}"
        );
        assert!(
            busy.lines()
                .any(|l| l == "comfy_worker_job_duration_seconds_count 2"),
            "{busy}"
        );
        assert_eq!(h.count(Outcome::Retried), 2);
    }
}
