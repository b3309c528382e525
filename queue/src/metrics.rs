//! The queue's counters for `/metrics` (process-local: each app has its own, so tests do
//! not interfere). `api/metrics.rs` renders them with the store's counts.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

    pub(crate) fn render(&self, out: &mut String, name: &str, help: &str) {
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
