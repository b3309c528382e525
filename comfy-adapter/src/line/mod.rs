//! One implementation per behaviour line.
//!
//! [`Adapter<L>`] implements [`ComfyAdapter`] once; what differs between
//! lines lives in the [`LineBehaviour`] impls next to this file
//! (`legacy.rs`, `jobs_api.rs`, `cancel_api.rs`). Everything the recordings
//! show to be identical across lines is in `crate::endpoints`.

mod cancel_api;
mod jobs_api;
mod legacy;

pub use cancel_api::{CancelApi, cancel_api_prompt_id_ok};
pub use jobs_api::JobsApi;
pub use legacy::Legacy;

use crate::adapter::{ComfyAdapter, EventStream, UploadOptions, WriteOptions};
use crate::endpoints;
use crate::error::{ComfyError, Result};
use crate::http::HttpCore;
use crate::model::catalogue::NodeCatalogue;
use crate::model::job::{CancelOutcome, JobPage, JobQuery, JobState, JobStatus};
use crate::model::output::{FileRef, Output};
use crate::model::prompt::{Accepted, PromptRequest};
use crate::model::queue::QueueSnapshot;
use crate::model::server::{Capabilities, Line, ServerInfo};
use crate::model::userdata::{ListOptions, UserdataEntry, UserdataPath, UserdataTreeEntry};
use async_trait::async_trait;
use bytes::Bytes;
use serde_json::json;
use std::future::Future;
use std::marker::PhantomData;

/// What one behaviour line does its own way.
pub trait LineBehaviour: Send + Sync + std::fmt::Debug + 'static {
    /// The line.
    const LINE: Line;

    /// Checks a caller-chosen prompt id before it is sent.
    fn check_prompt_id(prompt_id: &str) -> Result<()>;

    /// Status of one prompt.
    fn job(
        core: &HttpCore,
        caps: &Capabilities,
        prompt_id: &str,
    ) -> impl Future<Output = Result<JobStatus>> + Send;

    /// A page of jobs.
    fn list_jobs(
        core: &HttpCore,
        caps: &Capabilities,
        query: &JobQuery,
    ) -> impl Future<Output = Result<JobPage>> + Send;

    /// Cancels one prompt.
    fn cancel(
        core: &HttpCore,
        prompt_id: &str,
    ) -> impl Future<Output = Result<CancelOutcome>> + Send;
}

/// A ComfyUI adapter for line `L`.
#[derive(Debug)]
pub struct Adapter<L: LineBehaviour> {
    core: HttpCore,
    caps: Capabilities,
    line: PhantomData<L>,
}

impl<L: LineBehaviour> Adapter<L> {
    /// An adapter over `core` with the given capabilities.
    pub fn new(core: HttpCore, caps: Capabilities) -> Self {
        Adapter {
            core,
            caps,
            line: PhantomData,
        }
    }

    fn absolutize(&self, mut outputs: Vec<Output>) -> Vec<Output> {
        for o in &mut outputs {
            if let Some(file) = &o.file {
                o.view_url = Some(self.view_url(file));
            }
        }
        outputs
    }
}

#[async_trait]
impl<L: LineBehaviour> ComfyAdapter for Adapter<L> {
    fn line(&self) -> Line {
        L::LINE
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn base_url(&self) -> &url::Url {
        self.core.base()
    }

    fn view_url(&self, file: &FileRef) -> String {
        self.core.url(&file.view_path())
    }

    async fn server_info(&self) -> Result<ServerInfo> {
        endpoints::system_stats(&self.core).await
    }

    async fn submit(&self, request: &PromptRequest) -> Result<Accepted> {
        if request.prompt.is_empty() {
            return Err(ComfyError::InvalidInput {
                field: "prompt",
                reason: "the prompt has no nodes".into(),
            });
        }
        let prompt_id = match &request.prompt_id {
            Some(id) => {
                L::check_prompt_id(id)?;
                id.clone()
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        endpoints::post_prompt(&self.core, request, &prompt_id).await
    }

    async fn job(&self, prompt_id: &str) -> Result<JobStatus> {
        let mut status = L::job(&self.core, &self.caps, prompt_id).await?;
        status.outputs = self.absolutize(std::mem::take(&mut status.outputs));
        Ok(status)
    }

    async fn list_jobs(&self, query: &JobQuery) -> Result<JobPage> {
        let mut page = L::list_jobs(&self.core, &self.caps, query).await?;
        for job in &mut page.jobs {
            job.outputs = self.absolutize(std::mem::take(&mut job.outputs));
        }
        Ok(page)
    }

    async fn queue(&self) -> Result<QueueSnapshot> {
        endpoints::queue(&self.core).await
    }

    async fn queue_remaining(&self) -> Result<u64> {
        endpoints::queue_remaining(&self.core).await
    }

    async fn delete_pending(&self, prompt_ids: &[String]) -> Result<()> {
        endpoints::post_queue(&self.core, json!({ "delete": prompt_ids })).await
    }

    async fn clear_queue(&self) -> Result<()> {
        endpoints::post_queue(&self.core, json!({ "clear": true })).await
    }

    async fn interrupt(&self, prompt_id: Option<&str>) -> Result<()> {
        endpoints::interrupt(&self.core, prompt_id).await
    }

    async fn cancel(&self, prompt_id: &str) -> Result<CancelOutcome> {
        L::cancel(&self.core, prompt_id).await
    }

    async fn delete_history(&self, prompt_ids: &[String]) -> Result<()> {
        endpoints::delete_history(&self.core, prompt_ids).await
    }

    async fn free_memory(&self, unload_models: bool, free_memory: bool) -> Result<()> {
        endpoints::free(&self.core, unload_models, free_memory).await
    }

    async fn object_info(&self, class: Option<&str>) -> Result<NodeCatalogue> {
        endpoints::object_info(&self.core, class).await
    }

    async fn upload_image(
        &self,
        filename: &str,
        bytes: Bytes,
        options: &UploadOptions,
    ) -> Result<FileRef> {
        endpoints::upload_image(&self.core, filename, bytes, options).await
    }

    async fn view(&self, file: &FileRef) -> Result<Bytes> {
        endpoints::view(&self.core, file).await
    }

    async fn userdata_list(
        &self,
        dir: &UserdataPath,
        options: ListOptions,
    ) -> Result<Vec<UserdataEntry>> {
        endpoints::userdata_list(&self.core, L::LINE, dir, options).await
    }

    async fn userdata_tree(&self, dir: Option<&UserdataPath>) -> Result<Vec<UserdataTreeEntry>> {
        endpoints::userdata_tree(&self.core, dir).await
    }

    async fn userdata_get(&self, path: &UserdataPath) -> Result<Bytes> {
        endpoints::userdata_get(&self.core, path).await
    }

    async fn userdata_put(
        &self,
        path: &UserdataPath,
        bytes: Bytes,
        options: WriteOptions,
    ) -> Result<UserdataEntry> {
        endpoints::userdata_put(&self.core, L::LINE, path, bytes, options).await
    }

    async fn userdata_move(
        &self,
        from: &UserdataPath,
        to: &UserdataPath,
        options: WriteOptions,
    ) -> Result<UserdataEntry> {
        endpoints::userdata_move(&self.core, L::LINE, from, to, options).await
    }

    async fn userdata_delete(&self, path: &UserdataPath) -> Result<()> {
        endpoints::userdata_delete(&self.core, path).await
    }

    async fn events(&self, client_id: &str) -> Result<EventStream> {
        crate::ws::connect(&self.core, client_id).await
    }
}

/// Status from `/queue` first, then `/history` (the order that cannot miss a
/// prompt that finishes between the two calls).
async fn job_from_queue_and_history(core: &HttpCore, prompt_id: &str) -> Result<JobStatus> {
    let queue = endpoints::queue(core).await?;
    if let Some((entry, running)) = queue.find(prompt_id) {
        let mut status = JobStatus::unknown(prompt_id);
        status.state = if running {
            JobState::Running
        } else {
            JobState::Pending
        };
        status.number = Some(entry.number);
        status.created_at_ms = entry.created_at_ms;
        status.workflow_id = entry.workflow_id.clone();
        return Ok(status);
    }
    Ok(match endpoints::history_item(core, prompt_id).await? {
        Some(item) => crate::normalize::job_from_history(prompt_id.to_owned(), item),
        None => JobStatus::unknown(prompt_id),
    })
}

/// Cancel without a cancel API: remove it if pending, interrupt it if
/// running. Both calls are harmless when the prompt is elsewhere, so a prompt
/// that starts between the look and the act is still stopped.
async fn cancel_by_queue(core: &HttpCore, prompt_id: &str) -> Result<CancelOutcome> {
    let queue = endpoints::queue(core).await?;
    match queue.find(prompt_id) {
        Some((_, false)) => {
            endpoints::post_queue(core, json!({ "delete": [prompt_id] })).await?;
            endpoints::interrupt(core, Some(prompt_id)).await?;
            Ok(CancelOutcome::RemovedFromQueue)
        }
        Some((_, true)) => {
            endpoints::interrupt(core, Some(prompt_id)).await?;
            Ok(CancelOutcome::Interrupted)
        }
        None => Ok(CancelOutcome::NotCancellable),
    }
}

/// Filters and pages a full list of statuses client-side (legacy line).
fn page_locally(mut jobs: Vec<JobStatus>, query: &JobQuery) -> JobPage {
    if !query.states.is_empty() {
        jobs.retain(|j| query.states.contains(&j.state));
    }
    if let Some(wf) = &query.workflow_id {
        jobs.retain(|j| j.workflow_id.as_deref() == Some(wf.as_str()));
    }
    let key = |j: &JobStatus| (j.created_at_ms.unwrap_or(0), j.number.unwrap_or(0.0));
    jobs.sort_by(|a, b| {
        key(a)
            .partial_cmp(&key(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if query.order == crate::model::job::SortOrder::Desc {
        jobs.reverse();
    }
    let total = jobs.len() as u64;
    let offset = query.offset.unwrap_or(0) as usize;
    let mut page: Vec<JobStatus> = jobs.into_iter().skip(offset).collect();
    if let Some(limit) = query.limit {
        page.truncate(limit as usize);
    }
    let has_more = (offset + page.len()) < total as usize;
    JobPage {
        jobs: page,
        total,
        offset: offset as u64,
        has_more,
    }
}
