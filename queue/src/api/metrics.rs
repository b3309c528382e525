//! `/metrics` in the Prometheus text format, written by hand (a handful of counters and one
//! histogram do not justify a metrics framework).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::AppState;
use crate::error::ApiError;
use crate::model::Status;
use crate::store::ReapReport;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add one.
    pub fn inc(&self) {
        self.add(1);
    }
    /// Add `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Record one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let n = self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {n}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Process-local counters (each app has its own, so tests do not interfere).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Jobs accepted.
    pub submitted: Counter,
    /// Leases granted.
    pub claims: Counter,
    /// Jobs completed.
    pub completed: Counter,
    /// Jobs failed for good by a worker.
    pub failed: Counter,
    /// Jobs put back (reaper or fail with retry).
    pub retries: Counter,
    /// Leases that ran out.
    pub lease_expiries: Counter,
    /// Jobs that ran out of attempts.
    pub dead_letters: Counter,
    /// Store time of a claim.
    pub claim_latency: Histogram,
    /// Mean run time of completed jobs, ms (exponential moving average; 0 = none yet).
    mean_run_ms: AtomicU64,
}

impl Metrics {
    /// Account for a reaper pass.
    pub fn record_reap(&self, r: &ReapReport) {
        let n = r.requeued.len() + r.dead.len() + r.cancelled.len();
        self.lease_expiries.add(n as u64);
        self.retries.add(r.requeued.len() as u64);
        self.dead_letters.add(r.dead.len() as u64);
    }

    /// Account for a completed run of `ms` milliseconds.
    pub fn record_run(&self, ms: i64) {
        let ms = u64::try_from(ms.max(1)).unwrap_or(1);
        let old = self.mean_run_ms.load(Ordering::Relaxed);
        let new = if old == 0 { ms } else { (old * 7 + ms) / 8 };
        self.mean_run_ms.store(new, Ordering::Relaxed);
    }

    /// Mean run time in seconds (30 s until a job has completed).
    pub fn mean_run_secs(&self) -> f64 {
        match self.mean_run_ms.load(Ordering::Relaxed) {
            0 => 30.0,
            ms => ms as f64 / 1000.0,
        }
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "status", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let counts = state.store.counts().await?;
    let m = &state.metrics;
    let mut out = String::with_capacity(4096);
    out.push_str("# HELP comfy_queue_jobs Jobs per status.\n# TYPE comfy_queue_jobs gauge\n");
    for st in Status::ALL {
        let _ = writeln!(
            out,
            "comfy_queue_jobs{{status=\"{}\"}} {}",
            st.as_str(),
            counts.get(st)
        );
    }
    out.push_str(
        "# HELP comfy_queue_user_jobs Pending and running jobs per user.\n# TYPE comfy_queue_user_jobs gauge\n",
    );
    for (user, n) in &counts.by_user {
        let user = escape(user);
        let _ = writeln!(
            out,
            "comfy_queue_user_jobs{{user=\"{user}\",status=\"pending\"}} {}",
            n.pending
        );
        let _ = writeln!(
            out,
            "comfy_queue_user_jobs{{user=\"{user}\",status=\"running\"}} {}",
            n.running
        );
    }
    for (name, help, c) in [
        (
            "comfy_queue_submitted_total",
            "Jobs accepted.",
            &m.submitted,
        ),
        ("comfy_queue_claims_total", "Leases granted.", &m.claims),
        (
            "comfy_queue_completed_total",
            "Jobs completed.",
            &m.completed,
        ),
        (
            "comfy_queue_failed_total",
            "Jobs failed by a worker.",
            &m.failed,
        ),
        (
            "comfy_queue_retries_total",
            "Jobs put back in the queue (lease expiry or fail with retry).",
            &m.retries,
        ),
        (
            "comfy_queue_lease_expiries_total",
            "Leases that ran out without a heartbeat.",
            &m.lease_expiries,
        ),
        (
            "comfy_queue_dead_letters_total",
            "Jobs failed after running out of attempts.",
            &m.dead_letters,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            c.get()
        );
    }
    m.claim_latency.render(
        &mut out,
        "comfy_queue_claim_duration_seconds",
        "Time the store took to answer a claim.",
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}
