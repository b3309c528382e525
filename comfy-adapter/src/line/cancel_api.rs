//! 0.26 and later: `POST /api/jobs/{id}/cancel` (`064-jobs-cancel-running.json`),
//! client-chosen prompt ids must be canonical UUIDs
//! (`035-prompt-with-prompt_id-and-number.json`: 400 `invalid_prompt_id`), and
//! unknown nodes are `missing_node_type` (`038`). Status and listings are as
//! on the jobs-API line.

use super::LineBehaviour;
use super::jobs_api::{job_by_id, list};
use crate::endpoints::encode_segment;
use crate::error::{ComfyError, Result};
use crate::http::{Body, HttpCore};
use crate::model::job::{CancelOutcome, JobPage, JobQuery, JobStatus};
use crate::model::server::{Capabilities, Line};
use crate::wire;

/// The cancel-API line.
#[derive(Debug)]
pub struct CancelApi;

/// Whether `s` is a UUID in canonical lowercase hyphenated form, the only
/// form 0.26+ accepts as a client-chosen prompt id.
pub fn cancel_api_prompt_id_ok(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

impl LineBehaviour for CancelApi {
    const LINE: Line = Line::CancelApi;

    fn check_prompt_id(prompt_id: &str) -> Result<()> {
        if cancel_api_prompt_id_ok(prompt_id) {
            Ok(())
        } else {
            Err(ComfyError::InvalidInput {
                field: "prompt_id",
                reason: format!(
                    "{prompt_id:?} is not a canonical lowercase UUID, which ComfyUI 0.26+ requires; omit it to get one generated"
                ),
            })
        }
    }

    async fn job(core: &HttpCore, _caps: &Capabilities, prompt_id: &str) -> Result<JobStatus> {
        job_by_id(core, prompt_id).await
    }

    async fn list_jobs(core: &HttpCore, caps: &Capabilities, query: &JobQuery) -> Result<JobPage> {
        list(core, caps, query).await
    }

    async fn cancel(core: &HttpCore, prompt_id: &str) -> Result<CancelOutcome> {
        let path = format!("/api/jobs/{}/cancel", encode_segment(prompt_id));
        let resp = core.post(&path, &[], Body::None).await?.ok(path.clone())?;
        let answer: wire::jobs::Cancelled = resp.json("cancel answer")?;
        Ok(if answer.cancelled {
            CancelOutcome::Cancelled
        } else {
            CancelOutcome::NotCancellable
        })
    }
}
