//! The look for stranded jobs: every `--route-check-ms`, the front of the queue judged
//! against the live workers ([`crate::routing`] says how), and the jobs that waited
//! `--no-capable-worker-secs` for a capable worker failed with `no_capable_worker`.

use std::sync::Arc;

use comfy_artifacts::FileId;
use comfy_routing::{Catalogue, Needs};
use uuid::Uuid;

use crate::model::is_live;
use crate::routing::{Candidate, FRONT, Judged, fingerprint, judge};
use crate::state::AppState;
use crate::store::{self, PendingJob, StoreError};

/// What one look found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteReport {
    /// Pending jobs judged.
    pub judged: usize,
    /// Of them, waiting for a capable worker.
    pub waiting: usize,
    /// Failed with `no_capable_worker` by this look.
    pub failed: Vec<Uuid>,
}

impl AppState {
    /// The catalogue with `sha256`, parsed (cached; `None` when it cannot be read).
    async fn routing_catalogue(&self, sha256: &str) -> Option<Arc<Catalogue>> {
        if let Some(c) = self.router.catalogue(sha256) {
            return c;
        }
        let parsed = self.read_catalogue(sha256).await.map(Arc::new);
        if parsed.is_none() {
            tracing::warn!(catalogue = %sha256, "a worker's node catalogue could not be read; its worker is judged on its registration only");
        }
        self.router.keep_catalogue(sha256, parsed.clone());
        parsed
    }

    async fn read_catalogue(&self, sha256: &str) -> Option<Catalogue> {
        let id = FileId::parse(sha256)?;
        let blob = self.files.get(&id, None).await.ok()?;
        if blob.size > self.settings.max_catalogue_bytes {
            return None;
        }
        let bytes = blob.into_bytes().await.ok()?;
        // Megabytes of JSON: parsed off the async threads.
        tokio::task::spawn_blocking(move || Catalogue::from_slice(&bytes).ok())
            .await
            .ok()
            .flatten()
    }

    /// The prompt of job `id`, read for routing (`None`: gone, or not JSON).
    async fn routing_needs(&self, id: Uuid) -> Option<Needs> {
        let text = self.store.workflow_text(id).await.ok()??;
        tokio::task::spawn_blocking(move || {
            serde_json::from_str(&text)
                .ok()
                .map(|w| Needs::of_workflow(&w))
        })
        .await
        .ok()
        .flatten()
    }

    /// One look at the front of the queue (see the module docs).
    pub async fn route_once(&self) -> Result<RouteReport, StoreError> {
        let now = self.now();
        let mut pool = Vec::new();
        for record in self.store.list_workers().await? {
            if !is_live(now.saturating_sub(record.last_seen), self.settings.lease_ms) {
                continue;
            }
            let catalogue = match &record.info.catalogue {
                Some(sha) => self.routing_catalogue(sha).await,
                None => None,
            };
            pool.push(Candidate { record, catalogue });
        }
        let print = fingerprint(&pool);
        // Ids and classes only: prompts are read below, and only for verdicts not made yet.
        let front: Vec<PendingJob> = self.store.pending_front(FRONT).await?;
        let mut report = RouteReport {
            judged: front.len(),
            ..RouteReport::default()
        };
        let mut verdicts = Vec::with_capacity(front.len());
        for p in &front {
            let id = p.id;
            let verdict = match self.router.known(id, print, &p.class) {
                Some(v) => v,
                // The prompt is read only when some registration fits and has a catalogue
                // to check it against (one that cannot be read is left to ComfyUI).
                None => match judge(&p.class, &pool, None) {
                    Judged::Done(v) => v,
                    Judged::NeedsPrompt => {
                        let needs = self.routing_needs(id).await.unwrap_or_default();
                        match judge(&p.class, &pool, Some(&needs)) {
                            Judged::Done(v) => v,
                            Judged::NeedsPrompt => None,
                        }
                    }
                },
            };
            verdicts.push((id, p.class.clone(), verdict));
        }

        let timeout = self.settings.no_capable_worker_ms;
        let (waiting, to_fail) = self.router.record(now, print, &pool, verdicts, timeout);
        report.waiting = waiting.len();
        // A job that starts to wait (or waits for another reason) is news for `/ws`.
        for id in waiting {
            if let Ok(Some(job)) = self.store.get(id).await {
                crate::api::jobs::publish(self, "job_updated", &job, None);
            }
        }
        for (id, message, waited) in to_fail {
            let error = format!(
                "no_capable_worker: {message} (waited {:.1} s)",
                waited as f64 / 1000.0
            );
            if let Some(job) = self.store.fail_pending(id, error, now).await? {
                tracing::warn!(job_id = %id, error = job.error.as_deref().unwrap_or_default(), "no worker can run the job; failed it");
                self.metrics.failed.inc();
                crate::api::jobs::publish(self, "job_updated", &job, None);
                report.failed.push(id);
            }
            self.router.forget(id);
        }
        Ok(report)
    }

    /// Run [`AppState::route_once`] every `--route-check-ms` until the task ends.
    pub async fn route_forever(&self) {
        let period = std::time::Duration::from_millis(
            u64::try_from(self.settings.route_check_ms)
                .unwrap_or(2000)
                .max(100),
        );
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.route_once().await {
                tracing::error!(error = %store::Chain(&e), "routing look failed");
            }
        }
    }
}
