//! A job's outputs, ComfyUI → queue. Each file output is fetched through the adapter's
//! `/view`, hashed and uploaded to the queue the moment ComfyUI announces it (the
//! `executed` event of its node), while the prompt goes on; when the prompt has ended,
//! the outputs its status lists are matched against those uploads and whatever was not
//! announced (cached outputs, a socket that was not open) is stored then. So an output
//! of an early node is in the queue, where the user's frontend asks for it (`/view`
//! through the gateway), while later nodes still run, and the last node's output is
//! stored while the worker reads the prompt's status.
//!
//! One job's files are uploaded one at a time, in the order they were announced, by one
//! task: a lost lease (409) or a queue without the files API stops it at once, as does a
//! file that could not be stored after its retries. The task is aborted when the job's
//! [`OutputUploads`] is dropped (the prompt failed, was cancelled or handed back):
//! what it stored by then stays with the job (the outputs of nodes that ran, as in
//! ComfyUI's own history); a new attempt's lease drops them.

use super::{FilesError, sha256_hex, transfer};
use crate::queue_client::{FileRole, JobFile, LeasedJob, OutputUpload, QueueClient, QueueError};
use backon::Retryable;
use comfy_adapter::model::output::{FileRef, FolderType, Output, OutputKind};
use comfy_adapter::{ComfyAdapter, ComfyError};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument as _;
use uuid::Uuid;

/// Why the uploads stopped before every file was stored.
#[derive(Debug)]
enum Halt {
    /// The queue answered 409: the lease is gone.
    LeaseLost(String),
    /// The queue has no files API (404 or 405 on the upload route): outputs stay on ComfyUI.
    NoFilesApi,
    /// A file could not be read from ComfyUI or stored in the queue, after its retries.
    Failed(crate::classify::JobError),
}

/// What the upload task ends with: the files stored, and why it stopped early, if it did.
type Uploaded = (HashMap<FileRef, JobFile>, Option<Halt>);

/// The uploads of one job's outputs (see the module docs).
#[derive(Debug)]
pub struct OutputUploads {
    offers: mpsc::UnboundedSender<Output>,
    /// The one upload task, in a set so that dropping this aborts it.
    task: JoinSet<Uploaded>,
}

impl OutputUploads {
    /// Starts the job's upload task; it waits for outputs to be offered.
    pub fn start(queue: QueueClient, adapter: Arc<dyn ComfyAdapter>, job: &LeasedJob) -> Self {
        let (offers, rx) = mpsc::unbounded_channel();
        let uploader = Uploader {
            queue,
            adapter,
            job_id: job.id,
            lease_token: job.lease_token.clone(),
        };
        let mut task = JoinSet::new();
        task.spawn(uploader.run(rx).in_current_span());
        OutputUploads { offers, task }
    }

    /// Queues `outputs` for upload (each file once, whatever the number of offers; the
    /// task skips texts and files outside the output and temp folders).
    pub fn offer(&self, outputs: &[Output]) {
        for o in outputs {
            // The task only ends after the sender is dropped (in `finish`), or when it was
            // aborted: an offer then has nobody to go to, and is not needed.
            let _ = self.offers.send(o.clone());
        }
    }

    /// Stores whatever of `outputs` (the prompt's final outputs) was not offered yet, waits
    /// for every upload, and answers one entry per output: the queue's record of its file,
    /// or `None` for text outputs and files outside the output and temp folders. A file
    /// that could not be fetched or stored fails the job retryable (a re-run writes it
    /// again); a lost lease stops. A queue without the files API stores nothing: every
    /// entry is then `None`.
    pub async fn finish(mut self, outputs: &[Output]) -> Result<Vec<Option<JobFile>>, FilesError> {
        self.offer(outputs);
        drop(self.offers);
        let (stored, halt) = match self.task.join_next().await {
            Some(Ok(done)) => done,
            Some(Err(e)) => {
                return Err(FilesError::Job(transfer(
                    format!("the output upload task ended abnormally: {e}"),
                    Value::Null,
                )));
            }
            None => (HashMap::new(), None),
        };
        match halt {
            Some(Halt::LeaseLost(why)) => return Err(FilesError::LeaseLost(why)),
            Some(Halt::NoFilesApi) => return Ok(vec![None; outputs.len()]),
            Some(Halt::Failed(e)) => return Err(FilesError::Job(e)),
            None => {}
        }
        Ok(outputs
            .iter()
            .map(|o| o.file.as_ref().and_then(|f| stored.get(f).cloned()))
            .collect())
    }
}

/// Fetches every file output (cached ones too) of `outputs` from ComfyUI and stores it in
/// the queue, one after another, as [`OutputUploads::finish`] does for a job whose outputs
/// were not announced before it ended.
pub async fn store_outputs(
    queue: &QueueClient,
    adapter: &Arc<dyn ComfyAdapter>,
    job: &LeasedJob,
    outputs: &[Output],
) -> Result<Vec<Option<JobFile>>, FilesError> {
    OutputUploads::start(queue.clone(), adapter.clone(), job)
        .finish(outputs)
        .await
}

/// The upload task's side.
struct Uploader {
    queue: QueueClient,
    adapter: Arc<dyn ComfyAdapter>,
    job_id: Uuid,
    lease_token: String,
}

impl Uploader {
    async fn run(self, mut offers: mpsc::UnboundedReceiver<Output>) -> Uploaded {
        let mut stored: HashMap<FileRef, JobFile> = HashMap::new();
        while let Some(o) = offers.recv().await {
            let Some(file) = &o.file else { continue };
            let Some(role) = role_of(&file.folder) else {
                continue;
            };
            if stored.contains_key(file) {
                continue;
            }
            match self.store(&o, file, role).await {
                Ok(f) => {
                    stored.insert(file.clone(), f);
                }
                Err(halt) => return (stored, Some(halt)),
            }
        }
        (stored, None)
    }

    /// Reads one file from ComfyUI and stores it in the queue (both retried with backoff).
    async fn store(&self, o: &Output, file: &FileRef, role: FileRole) -> Result<JobFile, Halt> {
        let detail = || json!({"node_id": o.node_id, "filename": file.filename, "subfolder": file.subfolder, "type": file.folder.as_str()});
        let bytes = (|| self.adapter.view(file))
            .retry(QueueClient::retry_policy())
            .when(ComfyError::is_retryable)
            .notify(|e, d| tracing::warn!(error = %e, retry_in = ?d, file = %file.filename, "output fetch failed; retrying"))
            .await
            .map_err(|e| {
                Halt::Failed(transfer(
                    format!("output {} of node {} could not be read from ComfyUI: {e}", file.filename, o.node_id),
                    detail(),
                ))
            })?;
        let sha256 = sha256_hex(&bytes);
        let kind = kind_name(o.kind);
        let meta = OutputUpload {
            role,
            filename: &file.filename,
            subfolder: &file.subfolder,
            node_id: &o.node_id,
            kind: &kind,
            sha256: &sha256,
        };
        let size = bytes.len();
        let sent = (|| {
            self.queue
                .upload_file(self.job_id, &self.lease_token, &meta, bytes.clone())
        })
        .retry(QueueClient::retry_policy())
        .when(QueueError::is_transient)
        .notify(|e, d| tracing::warn!(error = %e, retry_in = ?d, file = %file.filename, "output upload failed; retrying"))
        .await;
        match sent {
            Ok(s) => {
                tracing::info!(file = %file.filename, size, url = %s.url, "output stored in the queue");
                Ok(s)
            }
            Err(QueueError::LeaseLost(why)) => Err(Halt::LeaseLost(why)),
            Err(QueueError::Status {
                status: 404 | 405, ..
            }) => {
                // A queue from before the files API: the outputs stay on ComfyUI
                // (`view_url`), as they always did.
                tracing::warn!(
                    "the queue does not store files (no files API); outputs stay on ComfyUI"
                );
                Err(Halt::NoFilesApi)
            }
            Err(e) => Err(Halt::Failed(transfer(
                format!(
                    "output {} of node {} could not be stored in the queue: {e}",
                    file.filename, o.node_id
                ),
                detail(),
            ))),
        }
    }
}

/// Adds what the queue stored to the result's output entries: `size`,
/// `content_type`, `sha256` and `url` (the queue's path of the file).
pub fn annotate_outputs(entries: &mut [Value], stored: &[Option<JobFile>]) {
    for (entry, stored) in entries.iter_mut().zip(stored) {
        let (Some(obj), Some(f)) = (entry.as_object_mut(), stored) else {
            continue;
        };
        obj.insert("size".into(), json!(f.size));
        obj.insert("content_type".into(), json!(f.content_type));
        obj.insert("sha256".into(), json!(f.sha256));
        obj.insert("url".into(), json!(f.url));
    }
}

/// The queue role of an output in `folder`; `None` for files outside the
/// output and temp folders (an input shown back), which stay on ComfyUI.
fn role_of(folder: &FolderType) -> Option<FileRole> {
    match folder {
        FolderType::Output => Some(FileRole::Output),
        FolderType::Temp => Some(FileRole::Temp),
        FolderType::Input | FolderType::Other(_) => None,
    }
}

/// The wire name of an output kind.
fn kind_name(kind: OutputKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}
