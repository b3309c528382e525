//! The one trait callers program against.

use crate::error::Result;
use crate::model::catalogue::NodeCatalogue;
use crate::model::event::Event;
use crate::model::job::{CancelOutcome, JobPage, JobQuery, JobStatus};
use crate::model::output::{FileRef, Output};
use crate::model::prompt::{Accepted, PromptRequest};
use crate::model::queue::QueueSnapshot;
use crate::model::server::{Capabilities, Line, ServerInfo};
use crate::model::userdata::{
    ListOptions, Overwrite, UserdataEntry, UserdataPath, UserdataTreeEntry,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

/// A live stream of WebSocket events. Frames that cannot be parsed come
/// through as `Err(ComfyError::Decode)` without ending the stream; the stream
/// ends when the server closes the socket.
pub type EventStream = BoxStream<'static, Result<Event>>;

/// How to store an uploaded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOptions {
    /// Folder type: `input` (default), `temp` or `output`.
    pub folder: String,
    /// Sub-folder inside it.
    pub subfolder: Option<String>,
    /// Replace a file of the same name (otherwise the server renames).
    pub overwrite: bool,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            folder: "input".into(),
            subfolder: None,
            overwrite: true,
        }
    }
}

/// How to write a userdata file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Replace an existing file or fail with a conflict.
    pub overwrite: Overwrite,
    /// Ask the server for size and times in the answer.
    pub full_info: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            overwrite: Overwrite::Allow,
            full_info: false,
        }
    }
}

/// One ComfyUI server, whatever its version.
///
/// Obtain one with [`crate::detect`] (reads the version, probes, picks the
/// line) or [`crate::connect`] (a line you name). It is object safe: hold it as
/// `Arc<dyn ComfyAdapter>`.
#[async_trait]
pub trait ComfyAdapter: Send + Sync + std::fmt::Debug {
    /// The behaviour line this adapter implements.
    fn line(&self) -> Line;

    /// What the server can do (from its version and probes).
    fn capabilities(&self) -> &Capabilities;

    /// The server's base URL.
    fn base_url(&self) -> &url::Url;

    /// The absolute `/view` URL of a file.
    fn view_url(&self, file: &FileRef) -> String;

    /// Version, devices, flags (`GET /system_stats`).
    async fn server_info(&self) -> Result<ServerInfo>;

    /// Submits a prompt. A prompt id is generated (UUID v4) when the request
    /// has none. A refusal is `ComfyError::PromptRejected` with every server
    /// spelling mapped to [`crate::model::prompt::RejectionKind`].
    async fn submit(&self, request: &PromptRequest) -> Result<Accepted>;

    /// Status of a prompt; `JobState::Unknown` when the server does not know it.
    async fn job(&self, prompt_id: &str) -> Result<JobStatus>;

    /// Outputs of a finished prompt (empty while it runs), with absolute `/view` URLs.
    async fn outputs(&self, prompt_id: &str) -> Result<Vec<Output>> {
        Ok(self.job(prompt_id).await?.outputs)
    }

    /// Lists jobs (the jobs API where the line has it, `/queue` + `/history`
    /// where it does not).
    async fn list_jobs(&self, query: &JobQuery) -> Result<JobPage>;

    /// ComfyUI's queue.
    async fn queue(&self) -> Result<QueueSnapshot>;

    /// Pending + running count (`GET /prompt`).
    async fn queue_remaining(&self) -> Result<u64>;

    /// Removes pending prompts (running ones are not touched).
    async fn delete_pending(&self, prompt_ids: &[String]) -> Result<()>;

    /// Removes every pending prompt.
    async fn clear_queue(&self) -> Result<()>;

    /// Interrupts execution. With a prompt id only that prompt is stopped,
    /// and only if it is the one running (a no-op otherwise, on every
    /// recorded line); without one, whatever runs is stopped.
    async fn interrupt(&self, prompt_id: Option<&str>) -> Result<()>;

    /// Cancels a prompt wherever it is: the cancel API on 0.26+; elsewhere
    /// delete-if-pending plus a targeted interrupt.
    async fn cancel(&self, prompt_id: &str) -> Result<CancelOutcome>;

    /// Deletes history entries.
    async fn delete_history(&self, prompt_ids: &[String]) -> Result<()>;

    /// Asks the server to unload models and/or free memory (`POST /free`).
    async fn free_memory(&self, unload_models: bool, free_memory: bool) -> Result<()>;

    /// Node catalogue: one class (`NotFound` when unknown) or all.
    async fn object_info(&self, class: Option<&str>) -> Result<NodeCatalogue>;

    /// Uploads an image (`POST /upload/image`); returns where it was stored.
    async fn upload_image(
        &self,
        filename: &str,
        bytes: Bytes,
        options: &UploadOptions,
    ) -> Result<FileRef>;

    /// Downloads a file through `/view`.
    async fn view(&self, file: &FileRef) -> Result<Bytes>;

    /// Lists files under a userdata directory (`NotFound` when it does not exist).
    async fn userdata_list(
        &self,
        dir: &UserdataPath,
        options: ListOptions,
    ) -> Result<Vec<UserdataEntry>>;

    /// The recursive tree under a directory (or the user root) (`/v2/userdata`).
    async fn userdata_tree(&self, dir: Option<&UserdataPath>) -> Result<Vec<UserdataTreeEntry>>;

    /// Reads a userdata file.
    async fn userdata_get(&self, path: &UserdataPath) -> Result<Bytes>;

    /// Writes a userdata file (parents are created). With
    /// `Overwrite::Deny` an existing file is `ComfyError::Conflict`.
    async fn userdata_put(
        &self,
        path: &UserdataPath,
        bytes: Bytes,
        options: WriteOptions,
    ) -> Result<UserdataEntry>;

    /// Moves a userdata file.
    async fn userdata_move(
        &self,
        from: &UserdataPath,
        to: &UserdataPath,
        options: WriteOptions,
    ) -> Result<UserdataEntry>;

    /// Deletes a userdata file (`NotFound` when missing).
    async fn userdata_delete(&self, path: &UserdataPath) -> Result<()>;

    /// Opens the WebSocket as `client_id` and streams its events.
    async fn events(&self, client_id: &str) -> Result<EventStream>;
}
