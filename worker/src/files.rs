//! A job's files: its inputs go from the queue to ComfyUI's input folder
//! before the prompt is submitted, its outputs from ComfyUI to the queue
//! before the job is reported complete (`docs/worker.md`, "Files").
//!
//! Which prompt values name a file comes from ComfyUI's own catalogue
//! (inputs whose options carry an upload flag, see
//! [`NodeCatalogue::file_inputs`]), fetched once per detected server.
//! Inputs are stored on ComfyUI content-addressed, under
//! `comfy-queue/<first 16 hex digits of the SHA-256>/<original base name>`
//! in the input folder: two users' `photo.png` with different bytes get
//! different names, the same bytes the same name.

use crate::classify::{ErrorClass, JobError};
use crate::queue_client::{JobFile, LeasedJob, QueueClient, QueueError};
use comfy_adapter::model::catalogue::{FileInput, NodeCatalogue};
use comfy_adapter::model::output::FolderType;
use comfy_adapter::{ComfyAdapter, ComfyError, UploadOptions};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

mod outputs;
pub use outputs::{OutputUploads, annotate_outputs, store_outputs};

/// The subfolder of ComfyUI's input folder that holds the queue's inputs.
pub const INPUT_SUBFOLDER: &str = "comfy-queue";

/// How a file step ended the job, when it did.
#[derive(Debug)]
pub enum FilesError {
    /// The queue answered 409: the lease is gone; abandon the job.
    LeaseLost(String),
    /// The job fails with this error.
    Job(JobError),
}

impl From<JobError> for FilesError {
    fn from(e: JobError) -> Self {
        FilesError::Job(e)
    }
}

/// SHA-256 of `bytes`, 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The node catalogue of one ComfyUI server, fetched on first use and kept
/// (a worker re-detects, and so makes a new cache, when its server changes).
#[derive(Debug, Default)]
pub struct CatalogueCache {
    catalogue: Mutex<Option<Arc<NodeCatalogue>>>,
}

impl CatalogueCache {
    /// An empty cache.
    pub fn new() -> Self {
        CatalogueCache::default()
    }

    /// A cache that already holds `catalogue` (read when the worker published it).
    pub fn holding(catalogue: Arc<NodeCatalogue>) -> Self {
        CatalogueCache {
            catalogue: Mutex::new(Some(catalogue)),
        }
    }

    /// The catalogue, fetched through `adapter` unless already held.
    pub async fn get(&self, adapter: &dyn ComfyAdapter) -> Result<Arc<NodeCatalogue>, ComfyError> {
        let mut held = self.catalogue.lock().await;
        if let Some(c) = held.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(adapter.object_info(None).await?);
        *held = Some(c.clone());
        Ok(c)
    }

    /// Forgets the catalogue (the next job fetches it again).
    pub async fn clear(&self) {
        *self.catalogue.lock().await = None;
    }
}

/// The name a prompt uses for a queue input: `subfolder/filename`, or the
/// file name alone.
fn prompt_name(f: &JobFile) -> String {
    let sub = f.subfolder.trim_matches('/');
    if sub.is_empty() {
        f.filename.clone()
    } else {
        format!("{sub}/{}", f.filename)
    }
}

/// The base name an input keeps on ComfyUI (no folder part; characters
/// ComfyUI's upload refuses become `_`).
fn base_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let base: String = base
        .chars()
        .map(|c| if c == '\0' { '_' } else { c })
        .collect();
    if base.trim().is_empty() || base == "." || base == ".." {
        "input".to_owned()
    } else {
        base
    }
}

/// Where an input with this hash is stored in ComfyUI's input folder.
pub fn input_subfolder(sha256: &str) -> String {
    let short: String = sha256.chars().take(16).collect();
    format!("{INPUT_SUBFOLDER}/{short}")
}

/// One input as it now is on ComfyUI.
#[derive(Debug, Clone)]
struct Placed {
    /// The value the prompt uses for it now (`comfy-queue/<hash>/photo.png`).
    value: String,
}

fn transfer(message: String, detail: Value) -> JobError {
    let mut e = JobError::new(ErrorClass::FileTransfer, message);
    e.detail = detail;
    e
}

fn queue_error(e: QueueError, what: &str, file: &JobFile) -> FilesError {
    let detail = json!({"filename": prompt_name(file), "sha256": file.sha256, "url": file.url});
    match e {
        QueueError::LeaseLost(why) => FilesError::LeaseLost(why),
        QueueError::Status { status: 404, .. } => {
            let mut err = JobError::new(
                ErrorClass::MissingInput,
                format!(
                    "input file {} is no longer in the queue ({what})",
                    prompt_name(file)
                ),
            );
            err.detail = detail;
            FilesError::Job(err)
        }
        e => FilesError::Job(transfer(format!("{what}: {e}"), detail)),
    }
}

/// Downloads every input of `job` from the queue, checks its hash, uploads
/// it to ComfyUI and rewrites the values of `prompt` that name it. A value
/// that names a file of ComfyUI's input folder which is neither an input of
/// the job nor on the server fails the job with `missing_input`.
pub async fn prepare_inputs(
    queue: &QueueClient,
    adapter: &dyn ComfyAdapter,
    catalogue: &CatalogueCache,
    job: &LeasedJob,
    prompt: &mut Map<String, Value>,
) -> Result<(), FilesError> {
    let catalogue = match catalogue.get(adapter).await {
        Ok(c) => c,
        Err(e) if job.inputs.is_empty() => {
            // Nothing to place; ComfyUI's own validation still names a missing file.
            tracing::warn!(error = %e, "node catalogue unavailable; input files not checked");
            return Ok(());
        }
        Err(e) => {
            let mut err = JobError::from_comfy(&e);
            err.message = format!("node catalogue unavailable: {}", err.message);
            return Err(err.into());
        }
    };
    let mut placed: HashMap<String, Placed> = HashMap::new();
    for file in &job.inputs {
        let name = prompt_name(file);
        if placed.contains_key(&name) {
            continue;
        }
        let bytes = queue
            .download_file(&file.url, &job.lease_token)
            .await
            .map_err(|e| queue_error(e, "downloading it from the queue failed", file))?;
        let got = sha256_hex(&bytes);
        if !got.eq_ignore_ascii_case(&file.sha256) {
            return Err(transfer(
                format!("input file {name}: the bytes downloaded from the queue do not match its SHA-256"),
                json!({"filename": name, "expected_sha256": file.sha256, "sha256": got, "size": bytes.len()}),
            )
            .into());
        }
        let options = UploadOptions {
            folder: "input".into(),
            subfolder: Some(input_subfolder(&got)),
            // Content-addressed: a file already there under this name has these bytes.
            overwrite: true,
        };
        let stored = adapter
            .upload_image(&base_name(&file.filename), bytes, &options)
            .await
            .map_err(|e| {
                let mut err = JobError::from_comfy(&e);
                err.message = format!("uploading input {name} to ComfyUI failed: {}", err.message);
                FilesError::Job(err)
            })?;
        let value = if stored.subfolder.is_empty() {
            stored.filename.clone()
        } else {
            format!("{}/{}", stored.subfolder, stored.filename)
        };
        tracing::info!(input = %name, stored = %value, size = file.size, "input file placed on ComfyUI");
        placed.insert(name, Placed { value });
    }

    let mut missing = Vec::new();
    for found in catalogue.file_inputs(prompt) {
        if found.file.folder != FolderType::Input {
            continue;
        }
        if let Some(p) = placed.get(&found.file.relative()) {
            let value = if found.file.annotated {
                format!("{} [input]", p.value)
            } else {
                p.value.clone()
            };
            if let Some(v) = prompt
                .get_mut(&found.node_id)
                .and_then(|n| n.get_mut("inputs"))
                .and_then(Value::as_object_mut)
                .and_then(|i| i.get_mut(&found.input))
            {
                *v = Value::String(value);
            }
            continue;
        }
        if !on_server(adapter, &found).await {
            missing.push(found);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let first = &missing[0];
    let mut err = JobError::new(
        ErrorClass::MissingInput,
        format!(
            "node {} ({}) input {} names {:?}, which is neither an input file of the job nor on this ComfyUI{}",
            first.node_id,
            first.class_type,
            first.input,
            first.value,
            match missing.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            }
        ),
    );
    err.detail = json!({
        "missing": missing.iter().map(|m| json!({
            "node_id": m.node_id, "class_type": m.class_type, "input_name": m.input,
            "file": m.value,
        })).collect::<Vec<_>>(),
        "inputs": job.inputs.iter().map(prompt_name).collect::<Vec<_>>(),
    });
    Err(err.into())
}

/// Whether a file the prompt names is already on the server: one of the
/// choices the catalogue listed, else found by `/view` (the catalogue may
/// be older than the file, and lists no subfolders for some nodes). When
/// the server cannot tell, the file is taken to be there (ComfyUI's own
/// validation then decides).
async fn on_server(adapter: &dyn ComfyAdapter, found: &FileInput) -> bool {
    if found.in_choices == Some(true) {
        return true;
    }
    match adapter.view(&found.file.file_ref()).await {
        Ok(_) => true,
        Err(ComfyError::NotFound { .. }) => false,
        Err(e) => {
            tracing::warn!(error = %e, file = %found.value, "could not tell whether ComfyUI has the file");
            true
        }
    }
}

#[cfg(test)]
mod tests;
