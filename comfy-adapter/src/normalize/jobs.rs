use super::history::{finished_state, message_facts};
use super::outputs::outputs_from_map;
use crate::model::job::{JobPage, JobState, JobStatus};
use crate::wire::jobs::{JobWire, JobsList};

/// A jobs-API status string → state, before looking at details.
pub fn state_from_jobs_status(status: &str) -> JobState {
    match status {
        "pending" => JobState::Pending,
        "in_progress" => JobState::Running,
        "completed" => JobState::Succeeded,
        "failed" => JobState::Failed,
        "cancelled" => JobState::Cancelled,
        _ => JobState::Unknown,
    }
}

/// A jobs-API job → [`JobStatus`].
///
/// `cancelled` covers a prompt interrupted while running; when the answer
/// shows it had started (an interrupt message or a start time) the state is
/// [`JobState::Interrupted`], as `/history` would say on a legacy line. 0.6.0
/// reports interrupted prompts as `failed`; the interrupt message in
/// `execution_status` turns those into `Interrupted` too.
pub fn job_from_wire(job: JobWire) -> JobStatus {
    let facts = message_facts(job.execution_status.as_ref());
    let mut state = state_from_jobs_status(&job.status);
    if job.execution_status.is_some() && matches!(state, JobState::Failed | JobState::Cancelled) {
        state = finished_state(job.execution_status.as_ref(), &facts);
        if state == JobState::Succeeded {
            state = state_from_jobs_status(&job.status);
        }
    }
    if state == JobState::Cancelled
        && (facts.interruption.is_some() || job.execution_start_time.is_some())
    {
        state = JobState::Interrupted;
    }
    let failure = facts
        .failure
        .or_else(|| job.execution_error.as_ref().map(super::failure_from));
    let outputs = job
        .outputs
        .map(|m| outputs_from_map(m, &facts.cached_nodes))
        .unwrap_or_default();
    JobStatus {
        prompt_id: job.id,
        state,
        number: job.priority,
        created_at_ms: job.create_time,
        started_at_ms: job.execution_start_time.or(facts.started_at_ms),
        finished_at_ms: job.execution_end_time.or(facts.finished_at_ms),
        workflow_id: job.workflow_id,
        outputs_count: job.outputs_count,
        cached_nodes: facts.cached_nodes,
        failure,
        interruption: facts.interruption,
        outputs,
    }
}

/// A jobs listing → [`JobPage`].
pub fn job_page(list: JobsList) -> JobPage {
    JobPage {
        total: list.pagination.total,
        offset: list.pagination.offset,
        has_more: list.pagination.has_more,
        jobs: list.jobs.into_iter().map(job_from_wire).collect(),
    }
}
