//! `comfy-queue-api`: the serde types of the queue's worker-facing HTTP API,
//! shared by the queue (`comfy-queue`, which serves them) and the worker
//! (`comfy-worker`, which calls them), so the two sides read and write one
//! definition of the wire format instead of two hand-kept copies.
//!
//! What lives here is only what crosses the wire between queue and worker
//! (`docs/queue.md`, "Workers"):
//!
//! - [`RegisterRequest`]: `POST /api/workers/register` body;
//! - [`NextJobResponse`] / [`LeasedJob`]: `GET /api/workers/next-job` answer,
//!   the leased job with its lease token;
//! - [`HeartbeatRequest`] (with [`Progress`]) and [`HeartbeatResponse`]
//!   (with `cancel_requested`): `POST /api/workers/heartbeat`;
//! - [`CompleteRequest`], [`FailRequest`] and their answer [`WorkerAck`]:
//!   `POST /api/workers/complete-job` and `/fail-job`;
//! - [`Status`]: a job's status as it is spelled on the wire;
//! - [`CatalogueStored`], [`CatalogueInfo`], [`CatalogueList`]: the workers' node
//!   catalogues (`PUT /api/workers/catalogues/{sha256}`, `GET /api/catalogues`).
//!
//! The queue still validates request bodies field by field (its errors name
//! the field, and it accepts the original platform's looser forms, such as a
//! bare result object or `?error=` in the query); these types are the
//! canonical shapes it documents and the worker sends. Storage types (jobs,
//! attempts, worker records) stay in `comfy-queue`.
//!
//! The `utoipa` feature derives `utoipa::ToSchema` for the queue's
//! `/api/openapi.json`; the doc comments below are the schema descriptions.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting to be claimed.
    Pending,
    /// Leased to a worker.
    Running,
    /// Finished with a result.
    Completed,
    /// Finished with an error (including jobs that ran out of attempts: the dead letters).
    Failed,
    /// Cancelled by a user or an admin.
    Cancelled,
}

impl Status {
    /// Every status, in display order.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Running,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Parse the wire spelling.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True for completed, failed and cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

/// Registration body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    /// `^[A-Za-z0-9_-]{1,100}$`
    #[cfg_attr(feature = "utoipa", schema(pattern = "^[A-Za-z0-9_-]{1,100}$"))]
    pub worker_id: String,
    /// ComfyUI version the worker drives, e.g. `0.9.2`.
    pub comfyui_version: Option<String>,
    /// ComfyUI line (free text, ≤ 100 chars).
    #[cfg_attr(feature = "utoipa", schema(max_length = 100))]
    pub line: Option<String>,
    /// Capabilities, e.g. `["jobs_api"]`.
    pub capabilities: Option<Vec<String>>,
    /// The worker's node catalogue (its ComfyUI's `/object_info`): the lowercase hex SHA-256
    /// of the catalogue bytes it uploaded before (`PUT /api/workers/catalogues/{sha256}`).
    /// Absent for workers that publish none (older workers, older queues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(pattern = "^[0-9a-fA-F]{64}$"))]
    pub catalogue: Option<String>,
}

/// Answer to a catalogue upload (`PUT /api/workers/catalogues/{sha256}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct CatalogueStored {
    /// SHA-256 of the catalogue bytes, 64 lowercase hex digits: the catalogue's id.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// One node catalogue (`/object_info`) of the GPU workers seen recently, as
/// `GET /api/catalogues` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct CatalogueInfo {
    /// SHA-256 of the catalogue bytes (64 lowercase hex digits); `GET /api/catalogues/{sha256}`
    /// serves them.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// ComfyUI version of the workers that published it (the newest, if they differ).
    pub comfyui_version: Option<String>,
    /// Their ComfyUI line (of the worker with that version).
    pub line: Option<String>,
    /// The live workers whose registration names this catalogue, sorted.
    pub workers: Vec<String>,
}

/// `GET /api/catalogues`: the distinct catalogues of the live workers, newest ComfyUI
/// version first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct CatalogueList {
    /// The catalogues.
    pub catalogues: Vec<CatalogueInfo>,
}

/// A leased job as `next-job` hands it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct LeasedJob {
    /// Job id.
    pub id: Uuid,
    /// API-format ComfyUI prompt.
    #[cfg_attr(feature = "utoipa", schema(value_type = Object))]
    pub workflow: Value,
    /// Owner.
    pub user_id: String,
    /// Client metadata.
    #[cfg_attr(feature = "utoipa", schema(value_type = Object))]
    pub metadata: Value,
    /// Priority.
    pub priority: u8,
    /// Present it to heartbeat, complete-job and fail-job.
    pub lease_token: String,
    /// When the lease runs out unless renewed (RFC 3339).
    pub lease_expires_at: String,
    /// Lease length in seconds.
    pub lease_seconds: f64,
    /// Suggested heartbeat period in seconds (a third of the lease).
    pub heartbeat_interval_seconds: f64,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Files the prompt reads from ComfyUI's input folder, stored in the queue: the worker
    /// downloads each (`url`, with its worker token and the lease token) and uploads it to its
    /// ComfyUI before it submits the prompt. Empty for jobs submitted without files.
    #[serde(default)]
    pub inputs: Vec<JobFile>,
}

/// `next-job` answer: `{"job": null}` or `{"job": {...}}`; `{"job": null, "drain": true}`
/// for a worker asked to drain (older workers ignore the flag and simply get no job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct NextJobResponse {
    /// The leased job, if any.
    pub job: Option<LeasedJob>,
    /// The worker is asked to drain: it gets no job until it is put back
    /// (`POST /api/workers/{id}/undrain`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drain: bool,
}

/// What a worker last said about a running job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Progress {
    /// 0–100 (out-of-range numbers are clamped; null when the worker cannot tell).
    pub percent: Option<f64>,
    /// The node running now.
    pub node: Option<String>,
    /// Its class.
    pub node_class: Option<String>,
    /// ComfyUI's prompt id.
    pub prompt_id: Option<String>,
}

/// Body of a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct HeartbeatRequest {
    /// The leased job (omit for an idle worker's keep-alive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    /// Token from next-job (required with `job_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_token: Option<String>,
    /// The worker (required without `job_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(pattern = "^[A-Za-z0-9_-]{1,100}$"))]
    pub worker_id: Option<String>,
    /// What the job is doing (shown in job responses and the dashboard while it runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

/// Heartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct HeartbeatResponse {
    /// Always `ok`.
    pub status: String,
    /// The job, if the heartbeat was for one.
    pub job_id: Option<Uuid>,
    /// New lease expiry (RFC 3339).
    pub lease_expires_at: Option<String>,
    /// Stop the job (ComfyUI `/interrupt`) and report it with fail-job `cancelled=true`.
    pub cancel_requested: bool,
}

/// Body of a complete-job call as the worker sends it. The queue also
/// accepts the result object itself as the body (the original worker's form)
/// and the lease token as `?lease_token=` or an `X-Lease-Token` header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteRequest {
    /// The result object (≤ 50 MB serialized).
    pub result: Value,
    /// Token from next-job.
    pub lease_token: Option<String>,
}

/// Body of a fail-job call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct FailRequest {
    /// 1–10,000 characters, not blank.
    #[cfg_attr(
        feature = "utoipa",
        schema(min_length = 1, max_length = 10000, pattern = "\\S")
    )]
    pub error: String,
    /// Requeue if attempts remain.
    pub retry: Option<bool>,
    /// The worker stopped after a cancel request.
    pub cancelled: Option<bool>,
    /// Token from next-job.
    pub lease_token: Option<String>,
    /// The job was not run: the worker's ComfyUI cannot run it. The job goes back to
    /// pending at once and the attempt is not counted (`retry` and `cancelled` are not
    /// read); needs the lease token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfit: Option<Unfit>,
}

/// Why a worker gives a job back unrun.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Unfit {
    /// `metadata.requires` does not match the ComfyUI the worker has now (it changed since
    /// the worker registered; the worker registers again before it says so).
    Requires,
    /// The prompt uses node classes or list values (models, samplers) the worker's ComfyUI
    /// does not have: the job will not be offered to a worker with that node catalogue
    /// again.
    Catalogue,
}

/// What a stored file is to its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum FileRole {
    /// A file the prompt reads (ComfyUI's input folder), given with the job.
    Input,
    /// A file the prompt wrote to ComfyUI's output folder (SaveImage, SaveVideo, ...).
    Output,
    /// A preview the prompt wrote to ComfyUI's temp folder (PreviewImage, ...).
    Temp,
}

impl FileRole {
    /// Every role.
    pub const ALL: [FileRole; 3] = [FileRole::Input, FileRole::Output, FileRole::Temp];

    /// The wire spelling, also ComfyUI's folder type (`type=` of `/view`).
    pub fn as_str(self) -> &'static str {
        match self {
            FileRole::Input => "input",
            FileRole::Output => "output",
            FileRole::Temp => "temp",
        }
    }

    /// Parse the wire spelling.
    pub fn parse(s: &str) -> Option<FileRole> {
        FileRole::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A file uploaded to the queue (`POST /api/files`), not yet given to a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct UploadedFile {
    /// SHA-256 of the bytes, 64 lowercase hex digits: the file's id.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Content type as stored (from the upload's `Content-Type`, else guessed from the name).
    pub content_type: String,
    /// The name it was uploaded under.
    pub filename: String,
}

/// An input named in a submit: a file uploaded before, and the name the prompt uses for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct InputRef {
    /// SHA-256 from the upload's answer.
    pub sha256: String,
    /// The name the prompt uses (a LoadImage `image` value such as `photo.png` or
    /// `pasted/photo.png`): subfolder and file name, `/`-separated.
    pub filename: String,
}

/// A file of a job as the queue describes it (job responses' `files`, next-job's `inputs`,
/// the answer to an output upload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct JobFile {
    /// Input, output or temp.
    pub role: FileRole,
    /// File name, as ComfyUI named it (or as the prompt names an input).
    pub filename: String,
    /// ComfyUI subfolder (`""` for none).
    pub subfolder: String,
    /// SHA-256 of the bytes (64 lowercase hex digits).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Content type.
    pub content_type: String,
    /// The node that wrote it (outputs and temp files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Output kind as the adapter names it (`image`, `video`, `audio`, `text`, `mesh`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The queue path that serves the bytes (`/api/jobs/{id}/files/{role}/{subfolder/}{filename}`),
    /// to the job's owner, admins and the worker holding the lease.
    pub url: String,
}

/// One ComfyUI event of a running job, as the worker forwards it (`POST /api/workers/events`)
/// and the queue relays it on `/ws` (`{"type": "comfy_event", "data": ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct JobEvent {
    /// Per-attempt sequence number, from 0, with no gaps as the worker numbered them (a
    /// watcher that sees a gap knows events were dropped under back-pressure).
    pub seq: u64,
    /// When the worker received it from ComfyUI (ms since the epoch).
    pub received_at_ms: i64,
    /// The normalized event (the adapter's `Event`, `{"event": "progress", ...}`).
    #[cfg_attr(feature = "utoipa", schema(value_type = Object))]
    pub event: Value,
    /// A binary preview frame's image, base64, when the event is a preview and the worker
    /// forwards previews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_base64: Option<String>,
}

/// Body of `POST /api/workers/events`: a batch of one running job's events, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct EventBatch {
    /// The leased job.
    pub job_id: Uuid,
    /// Token from next-job (events of a lost lease are refused).
    pub lease_token: String,
    /// Attempt the events belong to.
    pub attempt: u32,
    /// The events, oldest first.
    pub events: Vec<JobEvent>,
}

/// The usual worker-call answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct WorkerAck {
    /// Always `success`.
    pub status: String,
    /// The job.
    pub job_id: Uuid,
    /// The job's status afterwards.
    pub job_status: Status,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_spelling_round_trips() {
        for s in Status::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("in_progress"), None);
    }

    #[test]
    fn keepalive_sends_only_the_worker_id() {
        let hb = HeartbeatRequest {
            worker_id: Some("gpu-1".into()),
            ..HeartbeatRequest::default()
        };
        assert_eq!(
            serde_json::to_string(&hb).unwrap(),
            r#"{"worker_id":"gpu-1"}"#
        );
    }

    #[test]
    fn registration_without_a_catalogue_omits_it() {
        let reg = RegisterRequest {
            worker_id: "gpu-1".into(),
            comfyui_version: None,
            line: None,
            capabilities: None,
            catalogue: None,
        };
        let text = serde_json::to_string(&reg).unwrap();
        assert!(!text.contains("catalogue"), "{text}");
        let old: RegisterRequest = serde_json::from_str(r#"{"worker_id": "gpu-1"}"#).unwrap();
        assert_eq!(old, reg);
    }

    #[test]
    fn an_empty_next_job_is_a_null_job() {
        let r: NextJobResponse = serde_json::from_str(r#"{"job": null}"#).unwrap();
        assert_eq!(r.job, None);
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"job":null}"#);
    }
}
