//! The reaper: takes back expired leases (requeue, dead letter or cancel), then tells
//! `/ws` listeners and waiting workers.

use crate::api;
use crate::state::AppState;
use crate::store::{self, ReapReport, StoreError};

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

    /// Run [`AppState::reap_once`] every `every` until the process ends.
    pub fn spawn_reaper(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = state.reap_once().await {
                    tracing::error!(error = %store::Chain(&e), "reaper pass failed");
                }
            }
        })
    }
}
