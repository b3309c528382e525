//! `/api/workers/*`: registration, leasing (`next-job`, long-poll), heartbeats, results.
//!
//! The bodies and answers of these calls are the `comfy-queue-api` types (shared with the
//! worker), re-exported here; the handlers still read request bodies field by field so
//! errors name the field and the original platform's looser forms keep working.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    QueryMap, RESULT_BODY_LIMIT, SMALL_BODY_LIMIT, json_body, parse_flag, parse_job_id_param,
};
use crate::api::jobs::publish;
use crate::auth::Caller;
use crate::clock::to_rfc3339;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::lifecycle::Failure;
use crate::model::{self, Status, WorkerRecord};
use crate::progress;
use crate::scheduler::WorkerInfo;
use crate::state::AppState;
use crate::store::Claimed;
pub use comfy_queue_api::{
    FailRequest, HeartbeatRequest, HeartbeatResponse, LeasedJob, NextJobResponse, RegisterRequest,
    WorkerAck,
};

async fn worker_info(state: &AppState, worker_id: &str) -> Result<(WorkerInfo, bool), ApiError> {
    if let Ok(cache) = state.workers.read()
        && let Some(hit) = cache.get(worker_id)
    {
        return Ok(hit.clone());
    }
    let found = match state.store.get_worker(worker_id).await? {
        Some(rec)
            if rec.info.comfyui_version.is_some()
                || rec.info.line.is_some()
                || !rec.info.capabilities.is_empty() =>
        {
            (rec.info, true)
        }
        _ => (
            WorkerInfo {
                worker_id: worker_id.to_owned(),
                ..WorkerInfo::default()
            },
            false,
        ),
    };
    if let Ok(mut cache) = state.workers.write() {
        cache.insert(worker_id.to_owned(), found.clone());
    }
    Ok(found)
}

/// Lease the next job this worker can run. With `wait=N` (seconds, capped by the server)
/// the call waits for a job to arrive instead of answering `{"job": null}` at once.
#[utoipa::path(
    get, path = "/api/workers/next-job", tag = "workers",
    params(
        ("worker_id" = String, Query, description = "The worker"),
        ("wait" = Option<f64>, Query, description = "Long-poll up to this many seconds (capped, default 0)"),
    ),
    responses((status = 200, body = NextJobResponse), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn next_job(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryMap,
) -> Result<Json<NextJobResponse>, ApiError> {
    caller.require_worker()?;
    let q = super::query_map(query)?;
    let worker_id = match q.get("worker_id") {
        Some(w) => model::validate_worker_id("worker_id", w)?,
        None => {
            return Err(ApiError::validation(
                "worker_id",
                ErrorCode::MissingField,
                "`worker_id` is required",
            ));
        }
    };
    let wait = match q.get("wait") {
        None => 0.0,
        Some(s) => match s.trim().parse::<f64>() {
            Ok(w) if w.is_finite() && w >= 0.0 => w.min(state.settings.max_wait_secs),
            _ => {
                return Err(ApiError::validation(
                    "wait",
                    ErrorCode::InvalidWait,
                    "`wait` must be a non-negative number of seconds",
                ));
            }
        },
    };
    let (info, registered) = worker_info(&state, &worker_id).await?;
    let lease_ms = if registered {
        state.settings.lease_ms
    } else {
        state.settings.legacy_lease_ms
    };
    let wait = Duration::try_from_secs_f64(wait).unwrap_or(Duration::from_secs(3600));
    let deadline = Instant::now()
        .checked_add(wait)
        .unwrap_or_else(Instant::now);
    loop {
        // Register interest before looking, so a submit between the look and the wait
        // still wakes us.
        let notified = state.job_available.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();

        let started = Instant::now();
        let claimed = state.store.claim(&info, lease_ms, state.now()).await?;
        state.metrics.record_claim(started.elapsed());
        if let Some(c) = claimed {
            return Ok(Json(NextJobResponse {
                job: Some(leased(&state, c, lease_ms)),
            }));
        }
        let now = Instant::now();
        if now >= deadline || state.is_stopping() {
            return Ok(Json(NextJobResponse { job: None }));
        }
        if tokio::time::timeout(deadline - now, notified)
            .await
            .is_err()
        {
            return Ok(Json(NextJobResponse { job: None }));
        }
    }
}

fn leased(state: &AppState, c: Claimed, lease_ms: i64) -> LeasedJob {
    state.metrics.claims.inc();
    state.progress.clear(c.job.id);
    publish(state, "job_updated", &c.job, None);
    tracing::info!(job_id = %c.job.id, worker_id = ?c.job.worker_id, attempt = c.job.attempts, "job leased");
    let lease_seconds = lease_ms as f64 / 1000.0;
    LeasedJob {
        id: c.job.id,
        user_id: c.job.user_id,
        metadata: c.job.metadata,
        priority: c.job.priority,
        workflow: c.workflow,
        lease_token: c.lease_token,
        lease_expires_at: c.job.lease_expires_at.map(to_rfc3339).unwrap_or_default(),
        lease_seconds,
        heartbeat_interval_seconds: (lease_seconds / 3.0).max(1.0),
        attempt: c.job.attempts,
        max_attempts: c.job.max_attempts,
    }
}

fn body_object(body: Option<Value>) -> Result<Map<String, Value>, ApiError> {
    match body {
        None => Ok(Map::new()),
        Some(Value::Object(o)) => Ok(o),
        Some(_) => Err(ApiError::validation(
            "body",
            ErrorCode::InvalidType,
            "the request body must be a JSON object",
        )),
    }
}

fn string_field(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::validation(
            field,
            ErrorCode::InvalidType,
            format!("`{field}` must be a string"),
        )),
    }
}

fn bool_field(obj: &Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::validation(
            field,
            ErrorCode::InvalidType,
            format!("`{field}` must be true or false"),
        )),
    }
}

/// The lease token from the query (`lease_token`), the `X-Lease-Token` header, or the body.
fn lease_token(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    obj: Option<&Map<String, Value>>,
) -> Result<Option<String>, ApiError> {
    if let Some(t) = q.get("lease_token") {
        return Ok(Some(t.clone()));
    }
    if let Some(v) = headers.get("x-lease-token") {
        return Ok(Some(v.to_str().unwrap_or_default().to_owned()));
    }
    match obj {
        Some(o) => string_field(o, "lease_token"),
        None => Ok(None),
    }
}

fn job_id(q: &HashMap<String, String>, obj: &Map<String, Value>) -> Result<Uuid, ApiError> {
    let from_body = string_field(obj, "job_id")?;
    parse_job_id_param(q.get("job_id").map(String::as_str).or(from_body.as_deref()))
}

/// Report success. The body is `{"result": {...}}`, or the result object itself (as the
/// original worker sends it). The lease token may come as `?lease_token=`, an
/// `X-Lease-Token` header or a `lease_token` body field; without one (old workers) the job
/// only has to be running.
#[utoipa::path(
    post, path = "/api/workers/complete-job", tag = "workers",
    params(
        ("job_id" = String, Query, description = "The job"),
        ("lease_token" = Option<String>, Query, description = "Token from next-job"),
    ),
    request_body(content = Object, description = "`{\"result\": {...}}` or the result object (≤ 50 MB)"),
    responses(
        (status = 200, body = WorkerAck),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Lease lost: expired, re-leased, or not running", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn complete_job(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: QueryMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WorkerAck>, ApiError> {
    caller.require_worker()?;
    let q = super::query_map(query)?;
    let mut obj = body_object(json_body(body, RESULT_BODY_LIMIT)?)?;
    let id = job_id(&q, &obj)?;
    let token = lease_token(&q, &headers, Some(&obj))?;
    let result = if obj.contains_key("result") {
        obj.remove("result").unwrap_or(Value::Null)
    } else {
        obj.remove("lease_token");
        obj.remove("job_id");
        Value::Object(obj)
    };
    let result = match model::validate_result(result)? {
        Value::Null => Value::Object(Map::new()),
        r => r,
    };
    let job = state
        .store
        .complete(id, token.as_deref(), result, state.now())
        .await?;
    state.progress.clear(job.id);
    state.metrics.completed.inc();
    if let (Some(start), Some(end)) = (job.started_at, job.completed_at) {
        state.metrics.record_run(end - start);
    }
    publish(&state, "job_updated", &job, None);
    tracing::info!(job_id = %job.id, "job completed");
    Ok(Json(WorkerAck {
        status: "success".into(),
        job_id: job.id,
        job_status: job.status,
    }))
}

/// Report failure: `{"error": "...", "retry": false, "cancelled": false}`, or `?error=`
/// in the query (as the original worker sends it). `retry=true` puts the job back while it
/// has attempts left; `cancelled=true` ends it as `cancelled` (the answer to a cancel
/// request seen in a heartbeat).
#[utoipa::path(
    post, path = "/api/workers/fail-job", tag = "workers",
    params(
        ("job_id" = String, Query, description = "The job"),
        ("error" = Option<String>, Query, description = "Error text (or in the body)"),
        ("lease_token" = Option<String>, Query, description = "Token from next-job"),
        ("retry" = Option<bool>, Query, description = "Requeue if attempts remain"),
        ("cancelled" = Option<bool>, Query, description = "The worker stopped after a cancel request"),
    ),
    request_body(content = inline(FailRequest), description = "Alternative to the query parameters"),
    responses(
        (status = 200, body = WorkerAck),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn fail_job(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: QueryMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WorkerAck>, ApiError> {
    caller.require_worker()?;
    let q = super::query_map(query)?;
    let obj = body_object(json_body(body, SMALL_BODY_LIMIT)?)?;
    let id = job_id(&q, &obj)?;
    let token = lease_token(&q, &headers, Some(&obj))?;
    let error = match string_field(&obj, "error")? {
        Some(e) => e,
        None => q.get("error").cloned().ok_or_else(|| {
            ApiError::validation("error", ErrorCode::MissingField, "`error` is required")
        })?,
    };
    let error = model::validate_error_text(&error)?;
    let retry = match q.get("retry") {
        Some(s) => parse_flag("retry", s)?,
        None => bool_field(&obj, "retry")?.unwrap_or(false),
    };
    let cancelled = match q.get("cancelled") {
        Some(s) => parse_flag("cancelled", s)?,
        None => bool_field(&obj, "cancelled")?.unwrap_or(false),
    };
    let job = state
        .store
        .fail(
            id,
            token.as_deref(),
            Failure {
                error,
                retry,
                cancelled,
                retry_delay_ms: state.settings.retry_delay_ms,
            },
            state.now(),
        )
        .await?;
    state.progress.clear(job.id);
    match job.status {
        Status::Pending => {
            state.metrics.retries.inc();
            state.job_available.notify_waiters();
        }
        Status::Failed => {
            state.metrics.failed.inc();
        }
        _ => {}
    }
    publish(&state, "job_updated", &job, None);
    tracing::info!(job_id = %job.id, status = job.status.as_str(), "job failed");
    Ok(Json(WorkerAck {
        status: "success".into(),
        job_id: job.id,
        job_status: job.status,
    }))
}

/// Renew a lease (and learn about cancel requests), or, without `job_id`, tell the queue
/// an idle worker is alive.
#[utoipa::path(
    post, path = "/api/workers/heartbeat", tag = "workers",
    request_body = HeartbeatRequest,
    responses(
        (status = 200, body = HeartbeatResponse),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Lease lost: stop working on the job", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: QueryMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    caller.require_worker()?;
    let q = super::query_map(query)?;
    let obj = body_object(json_body(body, SMALL_BODY_LIMIT)?)?;
    let has_job =
        q.contains_key("job_id") || !matches!(obj.get("job_id"), None | Some(Value::Null));
    if has_job {
        let id = job_id(&q, &obj)?;
        let token = lease_token(&q, &headers, Some(&obj))?.ok_or_else(|| {
            ApiError::validation(
                "lease_token",
                ErrorCode::MissingField,
                "`lease_token` is required with `job_id`",
            )
        })?;
        let progress = match obj.get("progress") {
            None | Some(Value::Null) => None,
            Some(p) => Some(progress::from_json(p)?),
        };
        let lease = state
            .store
            .heartbeat(id, &token, state.settings.lease_ms, state.now())
            .await?;
        if let Some(p) = progress
            && state.progress.get(id).as_ref() != Some(&p)
        {
            state.progress.set(id, p);
            if state.events.has_listeners()
                && let Ok(Some(job)) = state.store.get(id).await
            {
                publish(&state, "job_updated", &job, None);
            }
        }
        return Ok(Json(HeartbeatResponse {
            status: "ok".into(),
            job_id: Some(id),
            lease_expires_at: Some(to_rfc3339(lease.lease_expires_at)),
            cancel_requested: lease.cancel_requested,
        }));
    }
    let worker_id = match q.get("worker_id").cloned() {
        Some(w) => Some(w),
        None => string_field(&obj, "worker_id")?,
    };
    let Some(worker_id) = worker_id else {
        return Err(ApiError::validation(
            "job_id",
            ErrorCode::MissingField,
            "`job_id` (with `lease_token`) or `worker_id` is required",
        ));
    };
    let worker_id = model::validate_worker_id("worker_id", &worker_id)?;
    state.store.touch_worker(&worker_id, state.now()).await?;
    Ok(Json(HeartbeatResponse {
        status: "ok".into(),
        job_id: None,
        lease_expires_at: None,
        cancel_requested: false,
    }))
}

/// A worker as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkerResponse {
    /// Worker id.
    pub worker_id: String,
    /// Registered ComfyUI version.
    pub comfyui_version: Option<String>,
    /// Registered ComfyUI line.
    pub line: Option<String>,
    /// Registered capabilities.
    pub capabilities: Vec<String>,
    /// First registration (RFC 3339).
    pub registered_at: String,
    /// Last claim, heartbeat or registration (RFC 3339).
    pub last_seen: String,
    /// Seconds since `last_seen`.
    pub heartbeat_age_seconds: f64,
    /// Jobs it is running now.
    pub running_jobs: Vec<Uuid>,
}

fn worker_response(state: &AppState, rec: WorkerRecord, running: Vec<Uuid>) -> WorkerResponse {
    WorkerResponse {
        heartbeat_age_seconds: ((state.now() - rec.last_seen).max(0) as f64) / 1000.0,
        registered_at: to_rfc3339(rec.registered_at),
        last_seen: to_rfc3339(rec.last_seen),
        worker_id: rec.info.worker_id,
        comfyui_version: rec.info.comfyui_version,
        line: rec.info.line,
        capabilities: rec.info.capabilities,
        running_jobs: running,
    }
}

/// Register (or re-register) a worker with what it can run.
#[utoipa::path(
    post, path = "/api/workers/register", tag = "workers",
    request_body = RegisterRequest,
    responses((status = 200, body = WorkerResponse), (status = 422, body = ErrorBody))
)]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WorkerResponse>, ApiError> {
    caller.require_worker()?;
    let obj = body_object(json_body(body, SMALL_BODY_LIMIT)?)?;
    let worker_id = match string_field(&obj, "worker_id")? {
        Some(w) => model::validate_worker_id("worker_id", &w)?,
        None => {
            return Err(ApiError::validation(
                "worker_id",
                ErrorCode::MissingField,
                "`worker_id` is required",
            ));
        }
    };
    let comfyui_version = string_field(&obj, "comfyui_version")?;
    if let Some(v) = &comfyui_version
        && crate::scheduler::parse_version(v).is_none()
    {
        return Err(ApiError::validation(
            "comfyui_version",
            ErrorCode::InvalidVersion,
            "`comfyui_version` must be a version such as 0.9.2",
        ));
    }
    let line = string_field(&obj, "line")?;
    if line.as_ref().is_some_and(|l| l.len() > 100) {
        return Err(ApiError::validation(
            "line",
            ErrorCode::InvalidLine,
            "`line` must be at most 100 characters",
        ));
    }
    let capabilities = match obj.get("capabilities") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut caps = Vec::new();
            for item in items {
                match item {
                    Value::String(s) if !s.is_empty() && s.len() <= 100 => caps.push(s.clone()),
                    _ => {
                        return Err(ApiError::validation(
                            "capabilities",
                            ErrorCode::InvalidType,
                            "`capabilities` must be an array of non-empty strings",
                        ));
                    }
                }
            }
            caps.sort();
            caps.dedup();
            caps
        }
        Some(_) => {
            return Err(ApiError::validation(
                "capabilities",
                ErrorCode::InvalidType,
                "`capabilities` must be an array of strings",
            ));
        }
    };
    let info = WorkerInfo {
        worker_id,
        comfyui_version,
        line,
        capabilities,
    };
    let rec = state
        .store
        .register_worker(info.clone(), state.now())
        .await?;
    if let Ok(mut cache) = state.workers.write() {
        cache.insert(info.worker_id.clone(), (info, true));
    }
    // New capabilities may make waiting jobs runnable.
    state.job_available.notify_waiters();
    tracing::info!(worker_id = %rec.info.worker_id, version = ?rec.info.comfyui_version, "worker registered");
    Ok(Json(worker_response(&state, rec, Vec::new())))
}

/// All workers with their registration and heartbeat age.
#[utoipa::path(
    get, path = "/api/workers", tag = "workers",
    responses((status = 200, body = Vec<WorkerResponse>), (status = 401, body = ErrorBody))
)]
pub async fn list_workers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<WorkerResponse>>, ApiError> {
    caller.require_worker()?;
    let running = state
        .store
        .list(&crate::store::ListFilter {
            status: Some(Status::Running),
            user_id: None,
            limit: 1000,
            offset: 0,
        })
        .await?;
    let mut by_worker: HashMap<String, Vec<Uuid>> = HashMap::new();
    for job in running {
        if let Some(w) = job.worker_id {
            by_worker.entry(w).or_default().push(job.id);
        }
    }
    let workers = state.store.list_workers().await?;
    Ok(Json(
        workers
            .into_iter()
            .map(|rec| {
                let running = by_worker.remove(&rec.info.worker_id).unwrap_or_default();
                worker_response(&state, rec, running)
            })
            .collect(),
    ))
}
