//! The HTTP surface: routes, shared extractors and the job response shape.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, patch, post};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::auth::Caller;
use crate::clock::to_rfc3339;
use crate::error::{ApiError, ErrorCode};
use crate::input::InputError;
use crate::model::{Attempt, AttemptOutcome, Job, MAX_RESULT_BYTES, Status};
use crate::state::AppState;

pub mod admin;
pub mod catalogues;
pub mod files;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod queue_status;
mod redact;
pub mod workers;
pub mod ws;

/// Body limit for submits: a 10 MB workflow plus 1 MB of metadata and the envelope.
pub const SUBMIT_BODY_LIMIT: usize = 12 * 1024 * 1024;
/// Body limit for complete-job: a 50 MB result plus the envelope.
pub const RESULT_BODY_LIMIT: usize = MAX_RESULT_BYTES + 1024 * 1024;
/// Body limit for everything else.
pub const SMALL_BODY_LIMIT: usize = 1024 * 1024;

/// Build the whole service ([`crate::app`] is its public name).
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(queue_status::health))
        .route("/api/health", get(queue_status::health))
        .route("/api/queue/status", get(queue_status::queue_status))
        .route(
            "/api/jobs",
            post(jobs::submit)
                .layer(DefaultBodyLimit::max(SUBMIT_BODY_LIMIT))
                .get(jobs::list),
        )
        .route("/api/jobs/{id}", get(jobs::get_job).delete(jobs::cancel))
        .route("/api/jobs/{id}/priority", patch(jobs::set_priority))
        .route("/api/files", post(files::upload))
        .route("/api/jobs/{id}/files/{role}/{*path}", get(files::download))
        .route("/api/workers/jobs/{id}/files", post(files::worker_upload))
        .route(
            "/api/workers/catalogues/{sha256}",
            axum::routing::put(catalogues::upload),
        )
        .route("/api/catalogues", get(catalogues::list))
        .route("/api/catalogues/{sha256}", get(catalogues::get))
        .route("/api/workers", get(workers::list_workers))
        .route("/api/workers/register", post(workers::register))
        .route("/api/workers/{id}/drain", post(workers::drain))
        .route("/api/workers/{id}/undrain", post(workers::undrain))
        .route("/api/workers/next-job", get(workers::next_job))
        .route(
            "/api/workers/complete-job",
            post(workers::complete_job).layer(DefaultBodyLimit::max(RESULT_BODY_LIMIT)),
        )
        .route("/api/workers/fail-job", post(workers::fail_job))
        .route("/api/workers/heartbeat", post(workers::heartbeat))
        .route(
            "/api/workers/events",
            post(workers::events).layer(DefaultBodyLimit::max(crate::live::EVENTS_BODY_LIMIT)),
        )
        .route("/ws", get(ws::ws_handler))
        .route("/metrics", get(metrics::metrics))
        .route("/api/openapi.json", get(openapi::openapi_json))
        .route("/admin", get(admin::admin_page))
        .route("/admin/", get(admin::admin_page))
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(SMALL_BODY_LIMIT))
        // A panic in a handler becomes a 500 instead of a dropped connection (none is
        // known; no input is meant to reach one).
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        // The span shows the URI with secret query values redacted (`?token=`,
        // `lease_token=`), never headers.
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(redact::make_span))
        .with_state(state)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(state.settings.auth.identify(&parts.headers, None))
    }
}

/// Query parameters as strings; a malformed query string is a 400 naming `query`.
pub(crate) type QueryMap = Result<Query<HashMap<String, String>>, QueryRejection>;

pub(crate) fn query_map(q: QueryMap) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(m)| m).map_err(|e| {
        ApiError::validation(
            "query",
            ErrorCode::InvalidQuery,
            format!("malformed query string: {e}"),
        )
    })
}

/// Whether `Content-Type` declares JSON: `application/json` or `application/<x>+json`, any
/// parameters (`; charset=utf-8`), any case.
pub(crate) fn declares_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.strip_prefix("application/") {
        Some(sub) => sub == "json" || (sub.ends_with("+json") && sub.len() > "+json".len()),
        None => false,
    }
}

/// Parse a JSON body; `Ok(None)` for an empty body. A body that is not empty must be
/// declared `application/json` (415 otherwise), so that a browser form or a `text/plain`
/// fetch from another site (which need no CORS preflight) cannot post one.
pub(crate) fn json_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Option<Value>, ApiError> {
    let bytes = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(InputError::too_large("body", limit).into());
        }
        Err(e) => {
            return Err(ApiError::malformed_json(e.body_text()));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !declares_json(headers) {
        return Err(ApiError::unsupported_media_type());
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(ApiError::malformed_json)
}

/// Read a request body of at most `limit` bytes, taking room for it in the state's
/// [`crate::state::BodyBudget`] as it is read: a declared length takes it all before a byte is
/// read, a body without one as its chunks arrive. Over the budget: 503 `server_busy`
/// (with `Retry-After`), the rest of the body unread; over `limit`: 413.
pub(crate) async fn read_budgeted<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<(Vec<u8>, crate::state::BodyRoom<'a>), ApiError> {
    use axum::body::HttpBody;
    use futures_util::StreamExt;

    let budget = &state.body_budget;
    let declared = body.size_hint().exact().or_else(|| {
        headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    let too_large = || ApiError::from(InputError::too_large("body", limit));
    let mut room = crate::state::BodyRoom::default();
    if let Some(n) = declared {
        if n > limit as u64 {
            return Err(too_large());
        }
        if !budget.grow(&mut room, n) {
            return Err(ApiError::server_busy(budget.limit()));
        }
    }
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit).min(limit));
    let mut buf = Vec::with_capacity(capacity);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::malformed_json(format!("the body could not be read: {e}")))?;
        let total = buf.len() + chunk.len();
        if total > limit {
            return Err(too_large());
        }
        if !budget.grow(&mut room, total as u64) {
            return Err(ApiError::server_busy(budget.limit()));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf, room))
}

/// Parse a job id from the path. An id that is not a UUID names no job: 404.
pub(crate) fn parse_job_id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::job_not_found())
}

/// Parse a job id given as a parameter (query or body).
pub(crate) fn parse_job_id_param(v: Option<&str>) -> Result<Uuid, ApiError> {
    let Some(s) = v else {
        return Err(ApiError::validation(
            "job_id",
            ErrorCode::MissingField,
            "`job_id` is required",
        ));
    };
    Uuid::parse_str(s.trim()).map_err(|_| {
        ApiError::validation("job_id", ErrorCode::InvalidJobId, "`job_id` must be a UUID")
    })
}

/// Parse a boolean flag given as a query string value.
pub(crate) fn parse_flag(field: &str, s: &str) -> Result<bool, ApiError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err(ApiError::validation(
            field,
            ErrorCode::InvalidType,
            format!("`{field}` must be true or false"),
        )),
    }
}

/// One attempt, as shown in job responses.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptResponse {
    /// 1-based attempt number.
    pub attempt: u32,
    /// Worker that held the lease.
    pub worker_id: String,
    /// Lease start (RFC 3339).
    pub started_at: String,
    /// End of the attempt (RFC 3339), if it ended.
    pub ended_at: Option<String>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Error recorded for this attempt.
    pub error: Option<String>,
}

impl From<&Attempt> for AttemptResponse {
    fn from(a: &Attempt) -> Self {
        Self {
            attempt: a.attempt,
            worker_id: a.worker_id.clone(),
            started_at: to_rfc3339(a.started_at),
            ended_at: a.ended_at.map(to_rfc3339),
            outcome: a.outcome,
            error: a.error.clone(),
        }
    }
}

/// A job as every endpoint returns it (the workflow is never included).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobResponse {
    /// Job id (UUID).
    pub id: Uuid,
    /// Owner.
    pub user_id: String,
    /// Status.
    pub status: Status,
    /// 0–3, lower runs first.
    pub priority: u8,
    /// Submit time (RFC 3339 UTC).
    pub created_at: String,
    /// Start of the latest attempt.
    pub started_at: Option<String>,
    /// Time it finished.
    pub completed_at: Option<String>,
    /// Worker of the latest attempt.
    pub worker_id: Option<String>,
    /// Result reported by the worker.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Last error.
    pub error: Option<String>,
    /// 1-based place among pending jobs (priority, then submission order); null unless pending.
    pub position_in_queue: Option<u64>,
    /// Rough wait in seconds (position × mean run time); null unless pending.
    pub estimated_wait_time: Option<f64>,
    /// Client metadata.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Attempts made.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// A cancel is waiting for the worker to stop the job.
    pub cancel_requested: bool,
    /// Expiry of the current lease, while running.
    pub lease_expires_at: Option<String>,
    /// A retried job waits until this time before it can run again.
    pub retry_at: Option<String>,
    /// Every attempt, oldest first (worker, times, error).
    pub history: Vec<AttemptResponse>,
    /// What the worker last reported about the running attempt (percent,
    /// node); null unless running and reported.
    pub progress: Option<crate::progress::Progress>,
    /// Present while the job is pending and no live worker can run it: why, and since when
    /// (after `--no-capable-worker-secs` of it the job fails with `no_capable_worker`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<crate::routing::Waiting>,
    /// The job's files: inputs, then outputs and temp files in upload order (each with the
    /// `url` that serves it). Always present in HTTP answers; `/ws` events carry it only
    /// where the event knows them (the submit's, the completion's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<comfy_queue_api::JobFile>>,
}

impl JobResponse {
    /// Build from a job, its queue position and its reported progress.
    pub fn new(
        job: &Job,
        position: Option<u64>,
        mean_run_secs: f64,
        progress: Option<crate::progress::Progress>,
    ) -> Self {
        Self {
            id: job.id,
            user_id: job.user_id.clone(),
            status: job.status,
            priority: job.priority,
            created_at: to_rfc3339(job.created_at),
            started_at: job.started_at.map(to_rfc3339),
            completed_at: job.completed_at.map(to_rfc3339),
            worker_id: job.worker_id.clone(),
            result: job.result.clone(),
            error: job.error.clone(),
            position_in_queue: position,
            estimated_wait_time: position.map(|p| (p as f64 * mean_run_secs).round()),
            metadata: job.metadata.clone(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            cancel_requested: job.cancel_requested,
            lease_expires_at: job.lease_expires_at.map(to_rfc3339),
            retry_at: job.not_before.map(to_rfc3339),
            history: job.history.iter().map(AttemptResponse::from).collect(),
            progress: progress.filter(|_| job.status == Status::Running),
            waiting: None,
            files: None,
        }
    }

    /// The same response with why the job waits (ignored unless it is pending).
    pub fn with_waiting(self, waiting: Option<crate::routing::Waiting>) -> Self {
        let waiting = waiting.filter(|_| self.status == Status::Pending);
        Self { waiting, ..self }
    }

    /// The same response with the job's files.
    pub fn with_files(self, files: &[crate::model::FileRecord]) -> Self {
        let id = self.id;
        Self {
            files: Some(files.iter().map(|f| files::job_file(id, f)).collect()),
            ..self
        }
    }
}

/// Job response with its position and files looked up.
pub(crate) async fn job_response(state: &AppState, job: &Job) -> Result<JobResponse, ApiError> {
    let files = state.store.files(&[job.id]).await?;
    job_response_with(state, job, files.get(&job.id).map_or(&[], Vec::as_slice)).await
}

/// Job response with its position looked up and the files given.
pub(crate) async fn job_response_with(
    state: &AppState,
    job: &Job,
    files: &[crate::model::FileRecord],
) -> Result<JobResponse, ApiError> {
    let position = if job.status == Status::Pending {
        state.store.position(job.id).await?
    } else {
        None
    };
    Ok(JobResponse::new(
        job,
        position,
        state.metrics.mean_run_secs(),
        state.progress.get(job.id),
    )
    .with_waiting(state.router.waiting(job.id))
    .with_files(files))
}
