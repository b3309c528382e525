//! 0.3 – 0.5: no jobs API. Status and listings are derived from `/queue` and
//! `/history` (fixtures `comfyui-0.3.64/022-jobs-empty.json`: 404).

use super::{LineBehaviour, cancel_by_queue, job_from_queue_and_history, page_locally};
use crate::endpoints;
use crate::error::Result;
use crate::http::HttpCore;
use crate::model::job::{CancelOutcome, JobPage, JobQuery, JobState, JobStatus};
use crate::model::server::{Capabilities, Line};
use crate::normalize;

/// The legacy line.
#[derive(Debug)]
pub struct Legacy;

impl LineBehaviour for Legacy {
    const LINE: Line = Line::Legacy;

    fn check_prompt_id(_prompt_id: &str) -> Result<()> {
        Ok(())
    }

    async fn job(core: &HttpCore, _caps: &Capabilities, prompt_id: &str) -> Result<JobStatus> {
        job_from_queue_and_history(core, prompt_id).await
    }

    async fn list_jobs(core: &HttpCore, _caps: &Capabilities, query: &JobQuery) -> Result<JobPage> {
        let queue = endpoints::queue(core).await?;
        let history = endpoints::history_all(core).await?;
        let queued = queue
            .running
            .iter()
            .map(|e| (e, JobState::Running))
            .chain(queue.pending.iter().map(|e| (e, JobState::Pending)));
        let mut jobs: Vec<JobStatus> = queued
            .map(|(e, state)| {
                let mut s = JobStatus::unknown(&e.prompt_id);
                s.state = state;
                s.number = Some(e.number);
                s.created_at_ms = e.created_at_ms;
                s.workflow_id = e.workflow_id.clone();
                s
            })
            .collect();
        jobs.extend(
            history
                .into_iter()
                .map(|(id, item)| normalize::job_from_history(id, item)),
        );
        Ok(page_locally(jobs, query))
    }

    async fn cancel(core: &HttpCore, prompt_id: &str) -> Result<CancelOutcome> {
        cancel_by_queue(core, prompt_id).await
    }
}
