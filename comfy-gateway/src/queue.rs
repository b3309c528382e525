//! The queue manager as the gateway calls it: always on behalf of one user
//! (the queue's trusted user header, and `user_id` in what it sends), so a
//! queue with auth on shows each user only their own jobs, and a queue with
//! auth off is filtered here the same way.

use crate::error::GatewayError;
use axum::http::StatusCode;
use comfy_queue_api::{CatalogueList, InputRef, JobFile, UploadedFile};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use url::Url;
use uuid::Uuid;

/// The status of a queue job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker.
    Pending,
    /// On a worker.
    Running,
    /// Done.
    Completed,
    /// Failed for good.
    Failed,
    /// Cancelled by its user or an admin.
    Cancelled,
}

impl JobState {
    /// Whether the job still waits or runs.
    pub fn active(self) -> bool {
        matches!(self, JobState::Pending | JobState::Running)
    }
}

/// A job as the queue answers it (the fields the gateway reads).
#[derive(Debug, Clone, Deserialize)]
pub struct QueueJob {
    /// The job id, which the frontend sees as the prompt id.
    pub id: Uuid,
    /// Its owner.
    pub user_id: String,
    /// Where it is.
    pub status: JobState,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once a worker took it.
    #[serde(default)]
    pub started_at: Option<String>,
    /// RFC 3339, once it ended.
    #[serde(default)]
    pub completed_at: Option<String>,
    /// The worker's result (outputs) after a success.
    #[serde(default)]
    pub result: Option<Value>,
    /// The latest error (the worker's JSON report, or plain text).
    #[serde(default)]
    pub error: Option<String>,
    /// What the gateway stored with it (`metadata.comfy`).
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Its files (inputs, outputs, temp files).
    #[serde(default)]
    pub files: Vec<JobFile>,
    /// A cancel was asked while it runs.
    #[serde(default)]
    pub cancel_requested: bool,
}

/// What a submit sends.
#[derive(Debug, Clone, Serialize)]
pub struct Submit<'a> {
    /// The owner.
    pub user_id: &'a str,
    /// ComfyUI's `/prompt` body (prompt, extra_data, partial_execution_targets).
    pub workflow: &'a Value,
    /// 1 (front of the user's queue) to 3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// `{"comfy": ...}`: what the gateway needs to answer in ComfyUI's shapes.
    pub metadata: &'a Value,
    /// Files the prompt reads, uploaded before.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub inputs: &'a [InputRef],
}

/// The queue's base URL and an HTTP client.
#[derive(Debug, Clone)]
pub struct QueueClient {
    base: Url,
    user_header: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<ErrorDetail>,
    detail: Option<String>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
}

impl QueueClient {
    /// A client of the queue at `base`, naming users in `user_header`.
    pub fn new(base: Url, user_header: &str) -> Result<QueueClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(QueueClient {
            base,
            user_header: user_header.to_owned(),
            http,
        })
    }

    /// The queue's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The header that names the user to the queue.
    pub fn user_header(&self) -> &str {
        &self.user_header
    }

    fn url(&self, path: &str) -> Result<Url, GatewayError> {
        self.base
            .join(path)
            .map_err(|e| GatewayError::QueueDown(format!("bad queue path {path}: {e}")))
    }

    fn request(&self, method: reqwest::Method, user: &str, url: Url) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header(self.user_header.as_str(), user)
            .timeout(Duration::from_secs(30))
    }

    async fn read<T: serde::de::DeserializeOwned>(
        resp: reqwest::Response,
    ) -> Result<T, GatewayError> {
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| GatewayError::QueueDown(e.to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                GatewayError::QueueDown(format!("the queue's answer did not parse: {e}"))
            });
        }
        Err(Self::refusal(status, &bytes))
    }

    fn refusal(status: reqwest::StatusCode, bytes: &[u8]) -> GatewayError {
        let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let body: Option<ErrorBody> = serde_json::from_slice(bytes).ok();
        let (code, message) = match body {
            Some(ErrorBody {
                error: Some(d),
                detail,
            }) => (
                d.code.unwrap_or_else(|| "queue_error".into()),
                d.message.or(detail).unwrap_or_default(),
            ),
            Some(ErrorBody { detail, .. }) => ("queue_error".into(), detail.unwrap_or_default()),
            None => (
                "queue_error".into(),
                String::from_utf8_lossy(bytes).chars().take(300).collect(),
            ),
        };
        if status.is_server_error() {
            return GatewayError::QueueDown(format!("{status}: {message}"));
        }
        GatewayError::Queue {
            status,
            code,
            message,
        }
    }

    fn down(e: reqwest::Error) -> GatewayError {
        GatewayError::QueueDown(e.to_string())
    }

    /// Submits a job; `key` makes a repeated submit answer the same job.
    pub async fn submit(&self, submit: &Submit<'_>, key: &str) -> Result<QueueJob, GatewayError> {
        let resp = self
            .request(
                reqwest::Method::POST,
                submit.user_id,
                self.url("/api/jobs")?,
            )
            .header("Idempotency-Key", key)
            .json(submit)
            .send()
            .await
            .map_err(Self::down)?;
        Self::read(resp).await
    }

    /// Uploads a file the user's prompt reads.
    pub async fn upload(
        &self,
        user: &str,
        filename: &str,
        content_type: Option<&str>,
        bytes: bytes::Bytes,
    ) -> Result<UploadedFile, GatewayError> {
        let mut url = self.url("/api/files")?;
        url.query_pairs_mut()
            .append_pair("filename", filename)
            .append_pair("user_id", user);
        let mut req = self.request(reqwest::Method::POST, user, url).body(bytes);
        if let Some(t) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, t);
        }
        let resp = req.send().await.map_err(Self::down)?;
        Self::read(resp).await
    }

    /// The user's jobs, newest first (at most 1000).
    pub async fn jobs(
        &self,
        user: &str,
        status: Option<JobState>,
    ) -> Result<Vec<QueueJob>, GatewayError> {
        self.newest_jobs(user, status, 1000).await
    }

    /// The user's newest `limit` jobs (at most 1000), newest first.
    pub async fn newest_jobs(
        &self,
        user: &str,
        status: Option<JobState>,
        limit: usize,
    ) -> Result<Vec<QueueJob>, GatewayError> {
        let mut url = self.url("/api/jobs")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("user_id", user)
                .append_pair("limit", &limit.clamp(1, 1000).to_string());
            if let Some(s) = status {
                let name = serde_json::to_value(s)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                q.append_pair("status", &name);
            }
        }
        let resp = self
            .request(reqwest::Method::GET, user, url)
            .send()
            .await
            .map_err(Self::down)?;
        let jobs: Vec<QueueJob> = Self::read(resp).await?;
        Ok(jobs.into_iter().filter(|j| j.user_id == user).collect())
    }

    /// One of the user's jobs; `None` when it is not theirs or unknown.
    pub async fn job(&self, user: &str, id: Uuid) -> Result<Option<QueueJob>, GatewayError> {
        let resp = self
            .request(
                reqwest::Method::GET,
                user,
                self.url(&format!("/api/jobs/{id}"))?,
            )
            .send()
            .await
            .map_err(Self::down)?;
        match Self::read::<QueueJob>(resp).await {
            Ok(job) if job.user_id == user => Ok(Some(job)),
            Ok(_) => Ok(None),
            Err(GatewayError::Queue { status, .. }) if status == StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Cancels one of the user's jobs (pending: at once; running: asks its worker).
    /// `false` when it had already ended.
    pub async fn cancel(&self, user: &str, id: Uuid) -> Result<bool, GatewayError> {
        let resp = self
            .request(
                reqwest::Method::DELETE,
                user,
                self.url(&format!("/api/jobs/{id}"))?,
            )
            .send()
            .await
            .map_err(Self::down)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(true);
        }
        let bytes = resp.bytes().await.map_err(Self::down)?;
        match Self::refusal(status, &bytes) {
            GatewayError::Queue { status, .. }
                if status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND =>
            {
                Ok(false)
            }
            e => Err(e),
        }
    }

    /// The catalogues of the GPU workers the queue knows alive (newest
    /// release first); empty from a queue without the catalogue routes.
    pub async fn catalogues(&self, user: &str) -> Result<CatalogueList, GatewayError> {
        let resp = self
            .request(reqwest::Method::GET, user, self.url("/api/catalogues")?)
            .send()
            .await
            .map_err(Self::down)?;
        if matches!(
            resp.status(),
            reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::METHOD_NOT_ALLOWED
        ) {
            return Ok(CatalogueList {
                catalogues: Vec::new(),
            });
        }
        Self::read(resp).await
    }

    /// The bytes of one catalogue (`/object_info` of a worker).
    pub async fn catalogue(&self, user: &str, sha256: &str) -> Result<bytes::Bytes, GatewayError> {
        let resp = self
            .request(
                reqwest::Method::GET,
                user,
                self.url(&format!("/api/catalogues/{sha256}"))?,
            )
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .map_err(Self::down)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(Self::down)?;
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(Self::refusal(status, &bytes))
        }
    }

    /// Streams one of a job's files as the user (`path` is the file's `url`,
    /// a queue path). The response is handed back whatever its status.
    pub async fn file(
        &self,
        user: &str,
        path: &str,
        range: Option<&str>,
    ) -> Result<reqwest::Response, GatewayError> {
        let mut req = self.request(reqwest::Method::GET, user, self.url(path)?);
        if let Some(r) = range {
            req = req.header(reqwest::header::RANGE, r);
        }
        req.timeout(Duration::from_secs(3600))
            .send()
            .await
            .map_err(Self::down)
    }
}
