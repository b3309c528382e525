//! The queue's counters for `/metrics` (process-local: each app has its own, so tests do
//! not interfere), as `prometheus-client` metrics. `api/metrics.rs` registers them, with
//! gauges from the store's counts, in a registry per scrape and encodes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use crate::store::ReapReport;

/// Upper bounds (seconds) of the claim-latency histogram.
pub const CLAIM_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Process-local counters.
#[derive(Debug)]
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
    /// Store time of a claim, in seconds.
    pub claim_latency: Histogram,
    /// Mean run time of completed jobs, ms (exponential moving average; 0 = none yet).
    mean_run_ms: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            submitted: Counter::default(),
            claims: Counter::default(),
            completed: Counter::default(),
            failed: Counter::default(),
            retries: Counter::default(),
            lease_expiries: Counter::default(),
            dead_letters: Counter::default(),
            claim_latency: Histogram::new(CLAIM_BUCKETS),
            mean_run_ms: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Account for a reaper pass.
    pub fn record_reap(&self, r: &ReapReport) {
        let n = r.requeued.len() + r.dead.len() + r.cancelled.len();
        self.lease_expiries.inc_by(n as u64);
        self.retries.inc_by(r.requeued.len() as u64);
        self.dead_letters.inc_by(r.dead.len() as u64);
    }

    /// Account for the store time of one claim.
    pub fn record_claim(&self, took: Duration) {
        self.claim_latency.observe(took.as_secs_f64());
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
