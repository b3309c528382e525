//! HTTP client of the queue manager's worker API (`docs/queue.md`).
//!
//! The bodies and answers are the `comfy-queue-api` types the queue itself
//! serves, re-exported here.

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

pub use comfy_queue_api::{
    CatalogueStored, CompleteRequest, EventBatch, FailRequest, FileRole, HeartbeatRequest,
    HeartbeatResponse, JobEvent, JobFile, LeasedJob, NextJobResponse, RegisterRequest, WorkerAck,
};

/// What became of a catalogue upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogueUpload {
    /// Stored (or stored already).
    Stored(CatalogueStored),
    /// The queue has no catalogue route (404/405: an older queue); register without one.
    Unsupported,
}

/// What an output upload says about the file (the query of
/// `POST /api/workers/jobs/{id}/files`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputUpload<'a> {
    /// `output` or `temp`.
    pub role: FileRole,
    /// ComfyUI's file name.
    pub filename: &'a str,
    /// ComfyUI's subfolder (`""` for none).
    pub subfolder: &'a str,
    /// The node that wrote it.
    pub node_id: &'a str,
    /// The adapter's output kind (`image`, `video`, ...).
    pub kind: &'a str,
    /// SHA-256 of the bytes, lowercase hex (sent as `X-Content-Sha256`).
    pub sha256: &'a str,
}

/// How far the running job is, as the worker tracks it (its `/health`
/// shows it and every heartbeat sends it). Unlike the wire
/// [`comfy_queue_api::Progress`], the worker always knows a percentage.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Progress {
    /// 0–100.
    pub percent: f64,
    /// The node running now.
    pub node: Option<String>,
    /// Its class.
    pub node_class: Option<String>,
    /// ComfyUI's prompt id.
    pub prompt_id: Option<String>,
}

impl From<&Progress> for comfy_queue_api::Progress {
    fn from(p: &Progress) -> Self {
        comfy_queue_api::Progress {
            percent: Some(p.percent),
            node: p.node.clone(),
            node_class: p.node_class.clone(),
            prompt_id: p.prompt_id.clone(),
        }
    }
}

/// Why a queue call failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// 409: the lease expired or went to another worker. Abandon the job.
    #[error("lease lost: {0}")]
    LeaseLost(String),
    /// Any other non-success answer.
    #[error("queue answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Body (truncated).
        body: String,
    },
    /// The queue could not be reached or the answer not read.
    #[error("queue unreachable: {0}")]
    Transport(#[from] reqwest::Error),
    /// A file URL the queue gave is not one of its own paths (the worker
    /// token is sent to the queue only).
    #[error("not a queue path: {0}")]
    ForeignUrl(String),
}

impl QueueError {
    /// Whether the queue refused the call with this error code (`{"error": {"code": ...}}`).
    pub fn has_code(&self, code: &str) -> bool {
        match self {
            QueueError::Status { body, .. } => serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(|c| c == code))
                .unwrap_or(false),
            _ => false,
        }
    }

    /// Worth repeating the same call: transport failures and 5xx/429.
    pub fn is_transient(&self) -> bool {
        match self {
            QueueError::Transport(_) => true,
            QueueError::Status { status, .. } => *status >= 500 || *status == 429,
            QueueError::LeaseLost(_) | QueueError::ForeignUrl(_) => false,
        }
    }
}

/// The worker side of the queue API.
#[derive(Debug, Clone)]
pub struct QueueClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    worker_id: String,
    request_timeout: Duration,
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

impl QueueClient {
    /// A client for the queue at `base` (`http://host:3000`).
    pub fn new(
        base: &str,
        token: Option<String>,
        worker_id: &str,
        request_timeout: Duration,
    ) -> Result<Self, QueueError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()?;
        Ok(QueueClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            worker_id: worker_id.to_owned(),
            request_timeout,
        })
    }

    /// The worker id calls are made for.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        timeout: Duration,
    ) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(timeout);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// The answer if it is a success; 409 is a lost lease, any other non-2xx a status error.
    async fn success(resp: reqwest::Response) -> Result<reqwest::Response, QueueError> {
        let status = resp.status().as_u16();
        if status == 409 {
            return Err(QueueError::LeaseLost(truncate(
                resp.text().await.unwrap_or_default(),
                500,
            )));
        }
        if !(200..300).contains(&status) {
            let body = truncate(resp.text().await.unwrap_or_default(), 2000);
            return Err(QueueError::Status { status, body });
        }
        Ok(resp)
    }

    async fn read<T: for<'de> Deserialize<'de>>(resp: reqwest::Response) -> Result<T, QueueError> {
        Ok(Self::success(resp).await?.json::<T>().await?)
    }

    /// Registers (or re-registers after a ComfyUI change).
    pub async fn register(&self, reg: &RegisterRequest) -> Result<(), QueueError> {
        let resp = self
            .request(
                reqwest::Method::POST,
                "/api/workers/register",
                self.request_timeout,
            )
            .json(reg)
            .send()
            .await?;
        Self::read::<Value>(resp).await.map(|_| ())
    }

    /// Uploads this worker's node catalogue (`PUT /api/workers/catalogues/{sha256}`, the
    /// bytes' SHA-256 in lowercase hex), repeated on transient errors. An older queue without
    /// the route answers 404/405: [`CatalogueUpload::Unsupported`].
    pub async fn put_catalogue(
        &self,
        sha256: &str,
        bytes: Bytes,
    ) -> Result<CatalogueUpload, QueueError> {
        let path = format!("/api/workers/catalogues/{sha256}");
        // A second per MiB on top of the usual timeout.
        let timeout = self.request_timeout + Duration::from_secs(bytes.len() as u64 / (1 << 20));
        (|| async {
            let resp = self
                .request(reqwest::Method::PUT, &path, timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone())
                .send()
                .await?;
            if matches!(resp.status().as_u16(), 404 | 405) {
                return Ok(CatalogueUpload::Unsupported);
            }
            Self::read::<CatalogueStored>(resp)
                .await
                .map(CatalogueUpload::Stored)
        })
        .retry(Self::retry_policy())
        .when(QueueError::is_transient)
        .notify(
            |e, d| tracing::warn!(error = %e, retry_in = ?d, "catalogue upload failed; retrying"),
        )
        .await
    }

    /// Leases the next job, waiting up to `wait` for one.
    pub async fn next_job(&self, wait: Duration) -> Result<Option<LeasedJob>, QueueError> {
        Ok(self.next(wait).await?.job)
    }

    /// The whole `next-job` answer: a job, none, or none because this worker is drained.
    pub async fn next(&self, wait: Duration) -> Result<NextJobResponse, QueueError> {
        let wait_s = format!("{:.3}", wait.as_secs_f64());
        let resp = self
            .request(
                reqwest::Method::GET,
                "/api/workers/next-job",
                self.request_timeout + wait,
            )
            .query(&[
                ("worker_id", self.worker_id.as_str()),
                ("wait", wait_s.as_str()),
            ])
            .send()
            .await?;
        Self::read::<NextJobResponse>(resp).await
    }

    /// Asks the queue to drain this worker (`true`) or to put it back.
    pub async fn set_drain(&self, drain: bool) -> Result<(), QueueError> {
        let verb = if drain { "drain" } else { "undrain" };
        let path = format!("/api/workers/{}/{verb}", self.worker_id);
        let resp = self
            .request(reqwest::Method::POST, &path, self.request_timeout)
            .send()
            .await?;
        Self::read::<Value>(resp).await.map(|_| ())
    }

    /// Renews the lease; tells whether a cancel was requested.
    pub async fn heartbeat(
        &self,
        job_id: Uuid,
        lease_token: &str,
        progress: &Progress,
        wait_for_cancel: Duration,
    ) -> Result<HeartbeatResponse, QueueError> {
        let body = HeartbeatRequest {
            job_id: Some(job_id),
            lease_token: Some(lease_token.to_owned()),
            worker_id: Some(self.worker_id.clone()),
            progress: Some(progress.into()),
        };
        let mut req = self.request(
            reqwest::Method::POST,
            "/api/workers/heartbeat",
            self.request_timeout + wait_for_cancel,
        );
        if !wait_for_cancel.is_zero() {
            // The queue answers as soon as a cancel is requested (a queue
            // that does not know `wait` answers at once).
            req = req.query(&[("wait", format!("{:.3}", wait_for_cancel.as_secs_f64()))]);
        }
        let resp = req.json(&body).send().await?;
        Self::read(resp).await
    }

    /// Idle keep-alive (the dashboard's heartbeat age).
    pub async fn keepalive(&self) -> Result<(), QueueError> {
        let resp = self
            .request(
                reqwest::Method::POST,
                "/api/workers/heartbeat",
                self.request_timeout,
            )
            .json(&HeartbeatRequest {
                worker_id: Some(self.worker_id.clone()),
                ..HeartbeatRequest::default()
            })
            .send()
            .await?;
        Self::read::<Value>(resp).await.map(|_| ())
    }

    /// Downloads a job's input file: `url` is the queue path next-job gave
    /// (`/api/jobs/{id}/files/input/...`), fetched with the worker token and
    /// the lease token; repeated on transient errors. An absolute URL is
    /// accepted only when it points at this queue.
    pub async fn download_file(&self, url: &str, lease_token: &str) -> Result<Bytes, QueueError> {
        let path = match url.strip_prefix(self.base.as_str()) {
            Some(rest) if rest.starts_with('/') => rest,
            _ if url.starts_with('/') && !url.starts_with("//") => url,
            _ => return Err(QueueError::ForeignUrl(truncate(url.to_owned(), 200))),
        };
        // Large files get time beyond the usual request timeout (the size
        // is not known before the answer; 10 minutes covers gigabytes).
        let timeout = self.request_timeout.max(Duration::from_secs(600));
        (|| async {
            let resp = self
                .request(reqwest::Method::GET, path, timeout)
                .query(&[("lease_token", lease_token)])
                .send()
                .await?;
            Ok(Self::success(resp).await?.bytes().await?)
        })
        .retry(Self::retry_policy())
        .when(QueueError::is_transient)
        .notify(|e, d| tracing::warn!(error = %e, retry_in = ?d, "input download failed; retrying"))
        .await
    }

    /// Stores one output file of a leased job in the queue
    /// (`POST /api/workers/jobs/{id}/files`); answers the queue's record of
    /// it. Not repeated here: the caller retries (it knows how long a job
    /// may wait).
    pub async fn upload_file(
        &self,
        job_id: Uuid,
        lease_token: &str,
        file: &OutputUpload<'_>,
        bytes: Bytes,
    ) -> Result<JobFile, QueueError> {
        // A second per MiB on top of the usual timeout.
        let timeout = self.request_timeout + Duration::from_secs(bytes.len() as u64 / (1 << 20));
        let resp = self
            .request(
                reqwest::Method::POST,
                &format!("/api/workers/jobs/{job_id}/files"),
                timeout,
            )
            .query(&[
                ("lease_token", lease_token),
                ("role", file.role.as_str()),
                ("filename", file.filename),
                ("subfolder", file.subfolder),
                ("node_id", file.node_id),
                ("kind", file.kind),
            ])
            .header("X-Content-Sha256", file.sha256)
            .body(bytes)
            .send()
            .await?;
        Self::read(resp).await
    }

    /// Forwards a batch of live ComfyUI events of the running job (`POST /api/workers/events`,
    /// once: a failed batch is not repeated, progress is a view). 409 means the lease is lost.
    pub async fn post_events(&self, batch: &EventBatch) -> Result<(), QueueError> {
        let resp = self
            .request(
                reqwest::Method::POST,
                "/api/workers/events",
                self.request_timeout,
            )
            .json(batch)
            .send()
            .await?;
        Self::read::<Value>(resp).await.map(|_| ())
    }

    /// The backoff of repeated worker calls (reports, file transfers).
    pub fn retry_policy() -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(6)
            .with_jitter()
    }

    /// Reports success (repeated on transient errors: the queue answers a
    /// repeat with the same token as a success).
    pub async fn complete(
        &self,
        job_id: Uuid,
        lease_token: &str,
        result: &Value,
    ) -> Result<(), QueueError> {
        let body = CompleteRequest {
            result: result.clone(),
            lease_token: Some(lease_token.to_owned()),
        };
        self.post_ack("/api/workers/complete-job", job_id, &body)
            .await
    }

    /// Reports failure (repeated on transient errors); `report.error` is cut
    /// to 10,000 bytes (the queue takes at most 10,000 characters).
    pub async fn fail(&self, job_id: Uuid, report: &FailRequest) -> Result<(), QueueError> {
        let body = FailRequest {
            error: truncate(report.error.clone(), 10_000),
            ..report.clone()
        };
        self.post_ack("/api/workers/fail-job", job_id, &body).await
    }

    /// POSTs `body` for `job_id` to a worker route that answers a
    /// [`WorkerAck`], repeating on transient errors.
    async fn post_ack(
        &self,
        path: &'static str,
        job_id: Uuid,
        body: &impl serde::Serialize,
    ) -> Result<(), QueueError> {
        let job_id = job_id.to_string();
        (|| async {
            let resp = self
                .request(reqwest::Method::POST, path, self.request_timeout)
                .query(&[("job_id", job_id.as_str())])
                .json(body)
                .send()
                .await?;
            Self::read::<WorkerAck>(resp).await.map(|_| ())
        })
        .retry(Self::retry_policy())
        .when(QueueError::is_transient)
        .notify(|e, d| {
            let route = path.trim_start_matches("/api/workers/");
            tracing::warn!(error = %e, retry_in = ?d, "{route} failed; retrying");
        })
        .await
    }
}
