//! 0.6 – 0.25: `/api/jobs` answers status and listings; no cancel endpoint
//! (`063-jobs-cancel-pending.json`: 405), so cancel goes through `/queue` and
//! `/interrupt`. 0.6 – 0.8 lack the `cancelled` status (`075`).

use super::{LineBehaviour, cancel_by_queue};
use crate::error::{ComfyError, Result};
use crate::http::HttpCore;
use crate::model::job::{CancelOutcome, JobPage, JobQuery, JobState, JobStatus, SortOrder};
use crate::model::server::{Capabilities, Line};
use crate::normalize;
use crate::wire;

/// The jobs-API line.
#[derive(Debug)]
pub struct JobsApi;

/// `GET /api/jobs/{id}`; 404 means unknown.
pub(super) async fn job_by_id(core: &HttpCore, prompt_id: &str) -> Result<JobStatus> {
    let path = format!("/api/jobs/{}", crate::endpoints::encode_segment(prompt_id));
    let resp = core.get(&path, &[]).await?;
    if resp.status == 404 {
        return Ok(JobStatus::unknown(prompt_id));
    }
    let job: wire::jobs::JobWire = resp.ok(path)?.json("/api/jobs/{id}")?;
    Ok(normalize::job_from_wire(job))
}

/// The server status strings for the requested states.
fn server_statuses(states: &[JobState], caps: &Capabilities) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for s in states {
        let names: &[&'static str] = match s {
            JobState::Pending => &["pending"],
            JobState::Running => &["in_progress"],
            JobState::Succeeded => &["completed"],
            // Before 0.9 an interrupted prompt is `failed`.
            JobState::Failed => &["failed"],
            JobState::Interrupted | JobState::Cancelled if caps.cancelled_status => &["cancelled"],
            JobState::Interrupted | JobState::Cancelled => &["failed"],
            JobState::Unknown => &[],
        };
        for n in names {
            if !out.contains(n) {
                out.push(n);
            }
        }
    }
    out
}

/// `GET /api/jobs` with the query mapped to the server's parameters. States
/// the server cannot filter exactly (interrupted vs. failed before 0.9) are
/// filtered again after normalizing.
pub(super) async fn list(
    core: &HttpCore,
    caps: &Capabilities,
    query: &JobQuery,
) -> Result<JobPage> {
    let statuses = server_statuses(&query.states, caps).join(",");
    let (limit, offset) = (
        query.limit.map(|l| l.max(1).to_string()),
        query.offset.map(|o| o.to_string()),
    );
    let mut q: Vec<(&str, &str)> = Vec::new();
    if !query.states.is_empty() {
        if statuses.is_empty() {
            return Ok(JobPage {
                jobs: Vec::new(),
                total: 0,
                offset: 0,
                has_more: false,
            });
        }
        q.push(("status", &statuses));
    }
    if let Some(l) = &limit {
        q.push(("limit", l));
    }
    if let Some(o) = &offset {
        q.push(("offset", o));
    }
    if query.order == SortOrder::Asc {
        q.push(("sort_order", "asc"));
    }
    if let Some(wf) = &query.workflow_id {
        q.push(("workflow_id", wf));
    }
    let resp = core.get("/api/jobs", &q).await?;
    if resp.status == 400 {
        let err: Option<wire::jobs::JobsError> = resp.json("/api/jobs error").ok();
        return Err(ComfyError::InvalidInput {
            field: "query",
            reason: err.map(|e| e.error).unwrap_or_else(|| resp.text()),
        });
    }
    let list: wire::jobs::JobsList = resp.ok("/api/jobs")?.json("/api/jobs")?;
    let mut page = normalize::job_page(list);
    if !query.states.is_empty() {
        page.jobs.retain(|j| query.states.contains(&j.state));
    }
    Ok(page)
}

impl LineBehaviour for JobsApi {
    const LINE: Line = Line::JobsApi;

    fn check_prompt_id(_prompt_id: &str) -> Result<()> {
        Ok(())
    }

    async fn job(core: &HttpCore, _caps: &Capabilities, prompt_id: &str) -> Result<JobStatus> {
        job_by_id(core, prompt_id).await
    }

    async fn list_jobs(core: &HttpCore, caps: &Capabilities, query: &JobQuery) -> Result<JobPage> {
        list(core, caps, query).await
    }

    async fn cancel(core: &HttpCore, prompt_id: &str) -> Result<CancelOutcome> {
        cancel_by_queue(core, prompt_id).await
    }
}
