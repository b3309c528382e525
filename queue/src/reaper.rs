//! The reaper: takes back expired leases (requeue, dead letter or cancel), then tells
//! `/ws` listeners and waiting workers. Beside it runs the file sweep: it forgets the files
//! of jobs that ended longer than the retention ago and uploads past their grace period, then
//! deletes the blobs nothing refers to any more (once they are older than the grace period,
//! so a blob an upload is about to record is spared).

use std::time::{Duration, UNIX_EPOCH};

use comfy_artifacts::ArtifactError;

use crate::api;
use crate::clock::Millis;
use crate::state::AppState;
use crate::store::{self, ReapReport, StoreError};

/// What one file sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Jobs whose files were forgotten (ended longer than the retention ago).
    pub jobs: u64,
    /// Uploads forgotten (past the grace period).
    pub uploads: u64,
    /// Blobs deleted from the file store.
    pub blobs_deleted: u64,
    /// Their bytes.
    pub bytes_freed: u64,
}

/// Why a file sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The job store failed.
    #[error("job store: {0}")]
    Store(#[from] StoreError),
    /// The file store failed.
    #[error("file store: {0}")]
    Files(#[from] ArtifactError),
}

/// Blobs deleted per look at what is referenced (uploads wait while the sweep deletes).
const DELETE_BATCH: usize = 100;

impl AppState {
    /// Take back expired leases once; publishes events and wakes waiting workers.
    pub async fn reap_once(&self) -> Result<ReapReport, StoreError> {
        let report = self.store.reap(self.now()).await?;
        self.metrics.record_reap(&report);
        for id in report
            .requeued
            .iter()
            .chain(&report.dead)
            .chain(&report.cancelled)
        {
            self.progress.clear(*id);
            self.live.forget(*id);
            if let Ok(Some(job)) = self.store.get(*id).await {
                api::jobs::publish(self, "job_updated", &job, None);
            }
        }
        // Requeued jobs, and retries whose backoff has run out since the last pass, may now
        // be claimable: let waiting workers look (a handful of claims per pass).
        self.job_available.notify_waiters();
        if !report.requeued.is_empty() || !report.dead.is_empty() {
            tracing::warn!(
                requeued = report.requeued.len(),
                dead = report.dead.len(),
                cancelled = report.cancelled.len(),
                "expired leases taken back"
            );
        }
        Ok(report)
    }

    /// Sweep the files once: forget the files of jobs that ended more than
    /// `file_retention_ms` ago and uploads last used more than `upload_grace_ms` ago, then
    /// delete every blob that no job file and no upload refers to and that is older than
    /// `upload_grace_ms` (by the file store's modification time).
    pub async fn sweep_files_once(&self) -> Result<SweepReport, SweepError> {
        let now = self.now();
        let grace = self.settings.upload_grace_ms;
        let expired = self
            .store
            .expire_files(
                now.saturating_sub(self.settings.file_retention_ms),
                now.saturating_sub(grace),
            )
            .await?;
        let mut report = SweepReport {
            jobs: expired.jobs,
            uploads: expired.uploads,
            ..SweepReport::default()
        };
        let old_enough = now.saturating_sub(grace);
        let candidates: Vec<_> = self
            .files
            .list()
            .await?
            .into_iter()
            .filter(|b| millis(b.modified) < old_enough)
            .collect();
        for batch in candidates.chunks(DELETE_BATCH) {
            // Uploads record their blobs under the shared side of the gate: what is
            // referenced cannot change between this look and the deletes.
            let _gate = self.files_gate.write().await;
            let referenced = self.store.referenced_blobs().await?;
            for blob in batch {
                if referenced.contains(&blob.id.to_string()) {
                    continue;
                }
                self.files.delete(&blob.id).await?;
                report.blobs_deleted += 1;
                report.bytes_freed += blob.size;
            }
        }
        if report != SweepReport::default() {
            tracing::info!(
                jobs = report.jobs,
                uploads = report.uploads,
                blobs_deleted = report.blobs_deleted,
                bytes_freed = report.bytes_freed,
                "file sweep"
            );
        }
        Ok(report)
    }

    /// Run [`AppState::reap_once`] every `every`, [`AppState::sweep_files_once`] every
    /// `file_sweep_ms` (the first a minute after the start) and the look for stranded jobs
    /// every `route_check_ms`, until the process ends or the task is aborted. The two loops share the task but not their waits: a long sweep does
    /// not hold up the reaper.
    pub fn spawn_reaper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        tokio::spawn(async move {
            let reap = async {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = state.reap_once().await {
                        tracing::error!(error = %store::Chain(&e), "reaper pass failed");
                    }
                }
            };
            let sweep = async {
                let period = Duration::from_millis(
                    u64::try_from(state.settings.file_sweep_ms)
                        .unwrap_or(1000)
                        .max(1000),
                );
                let first = tokio::time::Instant::now() + period.min(Duration::from_secs(60));
                let mut tick = tokio::time::interval_at(first, period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = state.sweep_files_once().await {
                        tracing::error!(error = %store::Chain(&e), "file sweep failed");
                    }
                }
            };
            tokio::join!(reap, sweep, state.route_forever());
        })
    }
}

/// A modification time in ms since the epoch (times before it count as 0).
fn millis(t: std::time::SystemTime) -> Millis {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
