//! `/api/workers/*`: registration, leasing (`next-job`, long-poll), heartbeats, results.
//!
//! The bodies and answers of these calls are the `comfy-queue-api` types (shared with the
//! worker, and what `/api/openapi.json` shows): request bodies are deserialized into them
//! with `input::from_object`, so an error names the field by its path (`progress.node`).
//! The original platform's looser forms keep working: the job id, lease token, error and
//! flags may also come in the query (which wins over the body), and complete-job takes the
//! result object itself as the body.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    QueryMap, RESULT_BODY_LIMIT, SMALL_BODY_LIMIT, json_body, parse_flag, parse_job_id_param,
};
use crate::api::jobs::publish;
use crate::auth::Caller;
use crate::clock::to_rfc3339;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::input::{self, InputError, Problem};
use crate::lifecycle::{Failure, LeaseKind};
use crate::live::{self, LeaseCheck, LiveProgress};
use crate::model::{self, Status, WorkerRecord};
use crate::progress;
use crate::scheduler::WorkerInfo;
use crate::state::{AppState, KnownWorker};
use crate::store::Claimed;
use comfy_queue_api::{
    CompleteRequest, EventBatch, FailRequest, HeartbeatRequest, HeartbeatResponse, LeasedJob,
    NextJobResponse, RegisterRequest, Unfit, WorkerAck,
};

async fn worker_info(state: &AppState, worker_id: &str) -> Result<KnownWorker, ApiError> {
    if let Some(hit) = state.workers.get(worker_id) {
        return Ok(hit);
    }
    let found = match state.store.get_worker(worker_id).await? {
        Some(rec) => {
            let registered = rec.info.comfyui_version.is_some()
                || rec.info.line.is_some()
                || !rec.info.capabilities.is_empty();
            known(rec, registered)
        }
        None => KnownWorker {
            info: WorkerInfo {
                worker_id: worker_id.to_owned(),
                ..WorkerInfo::default()
            },
            registered: false,
            drain: false,
        },
    };
    state.workers.remember(worker_id, found.clone());
    Ok(found)
}

fn known(rec: WorkerRecord, registered: bool) -> KnownWorker {
    let info = if registered {
        rec.info
    } else {
        WorkerInfo {
            worker_id: rec.info.worker_id,
            ..WorkerInfo::default()
        }
    };
    KnownWorker {
        info,
        registered,
        drain: rec.drain,
    }
}

/// Lease the next job this worker can run. With `wait=N` (seconds, capped by the server)
/// the call waits for a job to arrive instead of answering `{"job": null}` at once.
#[utoipa::path(
    get, path = "/api/workers/next-job", tag = "workers",
    params(
        ("worker_id" = String, Query, pattern = "^[A-Za-z0-9_-]{1,100}$", description = "The worker"),
        ("wait" = Option<f64>, Query, minimum = 0, description = "Long-poll up to this many seconds (capped, default 0)"),
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
    let wait = parse_wait(&state, &q)?;
    let KnownWorker {
        info,
        registered,
        drain,
    } = worker_info(&state, &worker_id).await?;
    if drain {
        // Drained: no job, at once; it stays seen (the dashboard shows it drained, not
        // unhealthy) and asks again at its own pace.
        state.store.touch_worker(&worker_id, state.now()).await?;
        return Ok(Json(NextJobResponse {
            job: None,
            drain: true,
        }));
    }
    // A registered worker reads the token and reports with it, so its lease refuses
    // tokenless calls; one that never registered gets the long legacy lease without that.
    let (lease_ms, kind) = if registered {
        (state.settings.lease_ms, LeaseKind::Fenced)
    } else {
        (state.settings.legacy_lease_ms, LeaseKind::Legacy)
    };
    let (st, info) = (&state, &info);
    let claimed = long_poll(&state, &state.job_available, wait, move || async move {
        // Drained while it waited: answer now, with no job.
        if st.workers.get(&info.worker_id).is_some_and(|w| w.drain) {
            return Ok(Some(None));
        }
        let started = Instant::now();
        let claimed = st.store.claim(info, lease_ms, kind, st.now()).await?;
        st.metrics.record_claim(started.elapsed());
        Ok(claimed.map(Some))
    })
    .await?;
    Ok(Json(match claimed {
        Some(None) => NextJobResponse {
            job: None,
            drain: true,
        },
        other => NextJobResponse {
            job: other.flatten().map(|c| leased(&state, c, lease_ms)),
            drain: false,
        },
    }))
}

/// `?wait=SECONDS` of a long-poll, capped by `max_wait_secs` (absent: 0).
fn parse_wait(state: &AppState, q: &HashMap<String, String>) -> Result<Duration, ApiError> {
    let secs = match q.get("wait") {
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
    Ok(Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(3600)))
}

/// Looks with `look` until it finds something, `notify` wakes no more within `wait`, or
/// the server stops. Interest is registered before each look, so a change between the
/// look and the wait still wakes it.
async fn long_poll<T, F>(
    state: &AppState,
    notify: &crate::wake::Wakeup,
    wait: Duration,
    mut look: impl FnMut() -> F,
) -> Result<Option<T>, ApiError>
where
    F: std::future::Future<Output = Result<Option<T>, ApiError>>,
{
    let deadline = Instant::now()
        .checked_add(wait)
        .unwrap_or_else(Instant::now);
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(found) = look().await? {
            return Ok(Some(found));
        }
        let now = Instant::now();
        if now >= deadline || state.is_stopping() {
            return Ok(None);
        }
        if tokio::time::timeout(deadline - now, notified)
            .await
            .is_err()
        {
            return Ok(None);
        }
    }
}

/// After a heartbeat renewed the lease of job `id`: waits until a cancel is requested for
/// it, the server stops or `wait` runs out, and says whether one was requested.
async fn wait_for_cancel(state: &AppState, id: Uuid, wait: Duration) -> Result<bool, ApiError> {
    let answer = long_poll(state, &state.cancel_requested, wait, || async move {
        Ok(match state.store.get(id).await? {
            Some(job) if job.status == Status::Running && !job.cancel_requested => None,
            Some(job) => Some(job.cancel_requested),
            None => Some(false),
        })
    })
    .await?;
    Ok(answer.unwrap_or(false))
}

fn leased(state: &AppState, c: Claimed, lease_ms: i64) -> LeasedJob {
    state.metrics.claims.inc();
    state.progress.clear(c.job.id);
    state.live.leased(
        c.job.id,
        &c.lease_token,
        c.job.attempts,
        &c.job.user_id,
        c.job.lease_expires_at.unwrap_or_default(),
        live::node_classes(&c.workflow),
    );
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
        inputs: c
            .inputs
            .iter()
            .map(|f| super::files::job_file(c.job.id, f))
            .collect(),
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

/// The problem with a worker-call body field that did not deserialize.
fn type_error(path: &str, found: &Value) -> InputError {
    match path {
        "job_id" if found.is_string() => {
            InputError::new(path, Problem::JobId, "`job_id` must be a UUID")
        }
        "retry" | "cancelled" => InputError::new(
            path,
            Problem::Type,
            format!("`{path}` must be true or false"),
        ),
        "capabilities" => InputError::new(
            path,
            Problem::Type,
            "`capabilities` must be an array of strings",
        ),
        p if p.starts_with("capabilities[") => InputError::new(
            "capabilities",
            Problem::Type,
            "`capabilities` must be an array of non-empty strings",
        ),
        p if p == "progress" || p.starts_with("progress.") => progress::type_error(p, found),
        "attempt" => InputError::new(
            path,
            Problem::Type,
            "`attempt` must be a non-negative integer",
        ),
        "events" => InputError::new(path, Problem::Type, "`events` must be an array of events"),
        p if p.starts_with("events[") => {
            let what = match p.rsplit('.').next() {
                Some("seq") => "a non-negative integer",
                Some("received_at_ms") => "an integer (ms since the epoch)",
                Some("preview_base64") => "a string",
                Some("event") => "an object",
                _ => "an event object",
            };
            InputError::new(path, Problem::Type, format!("`{path}` must be {what}"))
        }
        _ => InputError::new(path, Problem::Type, format!("`{path}` must be a string")),
    }
}

/// A `job_id` given in a worker-call body that has no such field of its own.
#[derive(Debug, Deserialize)]
struct JobIdField {
    job_id: Option<String>,
}

/// A `lease_token` given beside a bare result object.
#[derive(Debug, Deserialize)]
struct LeaseTokenField {
    lease_token: Option<String>,
}

/// Reads `field` alone out of `obj` (removing it) into `T`.
fn take_field<T: DeserializeOwned>(
    obj: &mut Map<String, Value>,
    field: &str,
) -> Result<T, ApiError> {
    let mut one = Map::new();
    if let Some((k, v)) = obj.remove_entry(field) {
        one.insert(k, v);
    }
    Ok(input::from_object(one, &[field], type_error)?)
}

/// The job id: `?job_id=` wins over the body's `job_id` (which must still be a string).
fn job_id(q: &HashMap<String, String>, obj: &mut Map<String, Value>) -> Result<Uuid, ApiError> {
    let from_body: JobIdField = take_field(obj, "job_id")?;
    parse_job_id_param(
        q.get("job_id")
            .map(String::as_str)
            .or(from_body.job_id.as_deref()),
    )
}

/// The lease token from the query (`lease_token`) or the `X-Lease-Token` header, which win
/// over the body's `lease_token`.
fn outer_lease_token(q: &HashMap<String, String>, headers: &HeaderMap) -> Option<String> {
    if let Some(t) = q.get("lease_token") {
        return Some(t.clone());
    }
    headers
        .get("x-lease-token")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
}

/// Report success. The body is `{"result": {...}}`, or the result object itself (as the
/// original worker sends it). The lease token may come as `?lease_token=`, an
/// `X-Lease-Token` header or a `lease_token` body field; without one (old workers) the job
/// only has to be running.
#[utoipa::path(
    post, path = "/api/workers/complete-job", tag = "workers",
    params(
        ("job_id" = uuid::Uuid, Query, description = "The job"),
        ("lease_token" = Option<String>, Query, description = "Token from next-job"),
    ),
    request_body(content = Object, description = "`{\"result\": {...}}` or the result object (≤ 50 MB)"),
    responses(
        (status = 200, body = WorkerAck),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Lease lost: expired, re-leased, or not running", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 503, description = "`server_busy`: too many bytes of bodies in flight (nothing recorded; retry after `Retry-After` seconds), or `store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = Option<u32>, description = "Seconds to wait before a retry (on `server_busy`)"))),
    )
)]
pub async fn complete_job(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: QueryMap,
    body: axum::body::Body,
) -> Result<Json<WorkerAck>, ApiError> {
    caller.require_worker()?;
    let q = super::query_map(query)?;
    // A result (up to 51 MB) counts against the bytes in flight as a submit does.
    let (bytes, _room) = super::read_budgeted(&state, &headers, body, RESULT_BODY_LIMIT).await?;
    let mut obj = body_object(json_body(
        &headers,
        Ok(Bytes::from(bytes)),
        RESULT_BODY_LIMIT,
    )?)?;
    let id = job_id(&q, &mut obj)?;
    let outer = outer_lease_token(&q, &headers);
    if outer.is_some() {
        obj.remove("lease_token");
    }
    let (result, body_token) = if obj.contains_key("result") {
        let req: CompleteRequest = input::from_object(obj, &["lease_token", "result"], type_error)?;
        (req.result, req.lease_token)
    } else {
        let token: LeaseTokenField = take_field(&mut obj, "lease_token")?;
        (Value::Object(obj), token.lease_token)
    };
    let token = outer.or(body_token);
    let result = match model::validate_result(result)? {
        Value::Null => Value::Object(Map::new()),
        r => r,
    };
    let job = state
        .store
        .complete(id, token.as_deref(), result, state.now())
        .await?;
    state.progress.clear(job.id);
    state.live.forget(job.id);
    state.metrics.completed.inc();
    if let (Some(start), Some(end)) = (job.started_at, job.completed_at) {
        state.metrics.record_run(end - start);
    }
    // Watchers of the job see its outputs with the completion.
    let files = if state.events.has_listeners() {
        state
            .store
            .files(&[job.id])
            .await
            .ok()
            .and_then(|mut f| f.remove(&job.id))
    } else {
        None
    };
    crate::api::jobs::publish_with_files(
        &state,
        "job_updated",
        &job,
        None,
        Some(files.as_deref().unwrap_or_default()),
    );
    tracing::info!(job_id = %job.id, "job completed");
    Ok(Json(WorkerAck {
        status: "success".into(),
        job_id: job.id,
        job_status: job.status,
    }))
}

/// A fail report with `unfit`: the job goes back unrun.
async fn hand_back(
    state: &AppState,
    id: Uuid,
    token: Option<String>,
    reason: String,
    unfit: Unfit,
) -> Result<Json<WorkerAck>, ApiError> {
    let Some(token) = token else {
        return Err(InputError::new(
            "lease_token",
            Problem::Missing,
            "a job is handed back (`unfit`) only with its lease token",
        )
        .into());
    };
    let not_on = match unfit {
        Unfit::Requires => None,
        Unfit::Catalogue => {
            let worker = match state.store.get(id).await? {
                Some(job) => job.worker_id,
                None => None,
            };
            match worker {
                Some(w) => state
                    .store
                    .get_worker(&w)
                    .await?
                    .and_then(|w| w.info.catalogue),
                None => None,
            }
        }
    };
    let job = state
        .store
        .hand_back(id, &token, reason, not_on, state.now())
        .await?;
    state.progress.clear(job.id);
    state.live.forget(job.id);
    if job.status == Status::Pending {
        state.job_available.notify_waiters();
    }
    publish(state, "job_updated", &job, None);
    tracing::info!(job_id = %job.id, status = job.status.as_str(), unfit = ?unfit, "job handed back unrun");
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
        ("job_id" = uuid::Uuid, Query, description = "The job"),
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
        (status = 400, description = "The body is not JSON", body = ErrorBody),
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
    let mut obj = body_object(json_body(&headers, body, SMALL_BODY_LIMIT)?)?;
    let id = job_id(&q, &mut obj)?;
    // What the query (or the header) gives wins over the body, which is then not read.
    let outer = outer_lease_token(&q, &headers);
    if outer.is_some() {
        obj.remove("lease_token");
    }
    for flag in ["retry", "cancelled"] {
        if q.contains_key(flag) {
            obj.remove(flag);
        }
    }
    if obj.get("error").is_none_or(Value::is_null)
        && let Some(e) = q.get("error")
    {
        obj.insert("error".into(), Value::String(e.clone()));
    }
    input::require(&obj, "error", "`error` is required")?;
    let req: FailRequest = input::from_object(
        obj,
        &["lease_token", "error", "retry", "cancelled", "unfit"],
        type_error,
    )?;
    let token = outer.or(req.lease_token);
    let error = model::validate_error_text(&req.error)?;
    if let Some(unfit) = req.unfit {
        return hand_back(&state, id, token, error, unfit).await;
    }
    let retry = match q.get("retry") {
        Some(s) => parse_flag("retry", s)?,
        None => req.retry.unwrap_or(false),
    };
    let cancelled = match q.get("cancelled") {
        Some(s) => parse_flag("cancelled", s)?,
        None => req.cancelled.unwrap_or(false),
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
    state.live.forget(job.id);
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
    params(
        ("wait" = Option<f64>, Query, minimum = 0, description = "With `job_id`: after renewing the lease, wait up to this many seconds (capped like next-job's) for a cancel request and answer as soon as one is made"),
    ),
    request_body = HeartbeatRequest,
    responses(
        (status = 200, body = HeartbeatResponse),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Lease lost: stop working on the job", body = ErrorBody),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
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
    let mut obj = body_object(json_body(&headers, body, SMALL_BODY_LIMIT)?)?;
    let has_job =
        q.contains_key("job_id") || !matches!(obj.get("job_id"), None | Some(Value::Null));
    // The query and the header win over the body, and each kind of heartbeat reads only its
    // own fields, so what is not read is not checked either.
    if let Some(Value::String(id)) = obj.get_mut("job_id") {
        *id = id.trim().to_owned();
        if q.contains_key("job_id") {
            obj.remove("job_id");
        }
    }
    let outer = outer_lease_token(&q, &headers);
    if outer.is_some() || !has_job {
        obj.remove("lease_token");
    }
    if has_job || q.contains_key("worker_id") {
        obj.remove("worker_id");
    }
    if !has_job {
        obj.remove("progress");
    }
    let req: HeartbeatRequest = input::from_object(
        obj,
        &["job_id", "lease_token", "worker_id", "progress"],
        type_error,
    )?;
    if has_job {
        let id = match q.get("job_id") {
            Some(s) => parse_job_id_param(Some(s))?,
            None => match req.job_id {
                Some(id) => id,
                None => parse_job_id_param(None)?,
            },
        };
        let token = outer.or(req.lease_token).ok_or_else(|| {
            ApiError::validation(
                "lease_token",
                ErrorCode::MissingField,
                "`lease_token` is required with `job_id`",
            )
        })?;
        let progress = req.progress.map(progress::validate).transpose()?;
        let lease = state
            .store
            .heartbeat(id, &token, state.settings.lease_ms, state.now())
            .await?;
        state.live.renewed(id, &token, lease.lease_expires_at);
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
        let wait = parse_wait(&state, &q)?;
        let cancel_requested = if lease.cancel_requested || wait.is_zero() {
            lease.cancel_requested
        } else {
            wait_for_cancel(&state, id, wait).await?
        };
        return Ok(Json(HeartbeatResponse {
            status: "ok".into(),
            job_id: Some(id),
            lease_expires_at: Some(to_rfc3339(lease.lease_expires_at)),
            cancel_requested,
        }));
    }
    let worker_id = q.get("worker_id").cloned().or(req.worker_id);
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
    /// SHA-256 of the node catalogue the worker registered with (`GET /api/catalogues/{sha256}`
    /// serves it); null when it published none.
    pub catalogue: Option<String>,
    /// The latest registration, whose version, line and capabilities these are (RFC 3339);
    /// for a worker that never registered, when it was first seen.
    pub registered_at: String,
    /// Last claim, heartbeat or registration (RFC 3339).
    pub last_seen: String,
    /// Seconds since `last_seen`.
    pub heartbeat_age_seconds: f64,
    /// Jobs it is running now.
    pub running_jobs: Vec<Uuid>,
    /// Asked to drain (by an admin, or by itself): it finishes its job and is offered no
    /// new one until undrained.
    pub drain: bool,
    /// `running`, `idle`, `draining` (asked to drain, still running a job), `drained`
    /// (asked to drain, no job: it may be stopped and upgraded) or `unhealthy` (not
    /// seen for two lease lengths while not drained: stopped, or cut off).
    pub state: WorkerState,
}

/// What a worker is doing, as the dashboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Polling for jobs, running none.
    Idle,
    /// Running a job.
    Running,
    /// Asked to drain and still running a job.
    Draining,
    /// Asked to drain and running nothing: safe to stop and upgrade.
    Drained,
    /// Not seen for two lease lengths (and not drained).
    Unhealthy,
}

impl WorkerState {
    /// The state of a worker with `drain`, running `running` jobs, last seen `age_ms` ago.
    pub fn of(drain: bool, running: usize, age_ms: i64, lease_ms: i64) -> WorkerState {
        match (drain, running > 0) {
            (true, true) => WorkerState::Draining,
            (true, false) => WorkerState::Drained,
            (false, true) => WorkerState::Running,
            (false, false) if !model::is_live(age_ms, lease_ms) => WorkerState::Unhealthy,
            (false, false) => WorkerState::Idle,
        }
    }
}

fn worker_response(state: &AppState, rec: WorkerRecord, running: Vec<Uuid>) -> WorkerResponse {
    let age_ms = (state.now() - rec.last_seen).max(0);
    WorkerResponse {
        state: WorkerState::of(rec.drain, running.len(), age_ms, state.settings.lease_ms),
        drain: rec.drain,
        heartbeat_age_seconds: (age_ms as f64) / 1000.0,
        registered_at: to_rfc3339(rec.registered_at),
        last_seen: to_rfc3339(rec.last_seen),
        worker_id: rec.info.worker_id,
        comfyui_version: rec.info.comfyui_version,
        line: rec.info.line,
        capabilities: rec.info.capabilities,
        catalogue: rec.info.catalogue,
        running_jobs: running,
    }
}

/// Register (or re-register) a worker with what it can run.
#[utoipa::path(
    post, path = "/api/workers/register", tag = "workers",
    request_body = RegisterRequest,
    responses((status = 200, body = WorkerResponse), (status = 400, description = "The body is not JSON, or `catalogue` names no uploaded catalogue (`unknown_catalogue`)", body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, description = "The file store or the job store failed", body = ErrorBody))
)]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WorkerResponse>, ApiError> {
    caller.require_worker()?;
    let obj = body_object(json_body(&headers, body, SMALL_BODY_LIMIT)?)?;
    input::require(&obj, "worker_id", "`worker_id` is required")?;
    let req: RegisterRequest = input::from_object(
        obj,
        &[
            "worker_id",
            "comfyui_version",
            "line",
            "capabilities",
            "catalogue",
        ],
        type_error,
    )?;
    let worker_id = model::validate_worker_id("worker_id", &req.worker_id)?;
    let comfyui_version = req.comfyui_version;
    if let Some(v) = &comfyui_version
        && crate::scheduler::parse_version(v).is_none()
    {
        return Err(ApiError::validation(
            "comfyui_version",
            ErrorCode::InvalidVersion,
            "`comfyui_version` must be a version such as 0.9.2",
        ));
    }
    let line = req.line;
    if line.as_ref().is_some_and(|l| l.len() > 100) {
        return Err(ApiError::validation(
            "line",
            ErrorCode::InvalidLine,
            "`line` must be at most 100 characters",
        ));
    }
    let mut capabilities = req.capabilities.unwrap_or_default();
    if capabilities.iter().any(|c| c.is_empty() || c.len() > 100) {
        return Err(ApiError::validation(
            "capabilities",
            ErrorCode::InvalidType,
            "`capabilities` must be an array of non-empty strings",
        ));
    }
    capabilities.sort();
    capabilities.dedup();
    let mut info = WorkerInfo {
        worker_id,
        comfyui_version,
        line,
        capabilities,
        catalogue: None,
    };
    let rec = {
        // A catalogue found here cannot be swept before the registration names it.
        let _gate = state.files_gate.read().await;
        if let Some(c) = &req.catalogue {
            info.catalogue = Some(super::catalogues::check_registered(&state, c).await?);
        }
        state
            .store
            .register_worker(info.clone(), state.now())
            .await?
    };
    let id = info.worker_id.clone();
    state.workers.changed(
        &id,
        KnownWorker {
            info,
            registered: true,
            drain: rec.drain,
        },
    );
    // New capabilities may make waiting jobs runnable.
    state.job_available.notify_waiters();
    tracing::info!(worker_id = %rec.info.worker_id, version = ?rec.info.comfyui_version, catalogue = ?rec.info.catalogue, "worker registered");
    Ok(Json(worker_response(&state, rec, Vec::new())))
}

/// Drain a worker: it finishes the job it runs and is offered no new one (`next-job`
/// answers `{"job": null, "drain": true}` at once, also to a long-poll waiting now) until
/// undrained. Kept across its re-registrations. Admins, or the worker itself (worker token).
#[utoipa::path(
    post, path = "/api/workers/{id}/drain", tag = "workers",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9_-]{1,100}$", description = "The worker")),
    responses((status = 200, body = WorkerResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "A worker never seen (`worker_not_found`)", body = ErrorBody), (status = 422, description = "An id that is not a worker id (`invalid_worker_id`)", body = ErrorBody))
)]
pub async fn drain(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<WorkerResponse>, ApiError> {
    set_drain(state, caller, id, true).await
}

/// Put a drained (or draining) worker back: it is offered jobs again.
#[utoipa::path(
    post, path = "/api/workers/{id}/undrain", tag = "workers",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9_-]{1,100}$", description = "The worker")),
    responses((status = 200, body = WorkerResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "A worker never seen (`worker_not_found`)", body = ErrorBody), (status = 422, description = "An id that is not a worker id (`invalid_worker_id`)", body = ErrorBody))
)]
pub async fn undrain(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<WorkerResponse>, ApiError> {
    set_drain(state, caller, id, false).await
}

async fn set_drain(
    state: AppState,
    caller: Caller,
    id: String,
    drain: bool,
) -> Result<Json<WorkerResponse>, ApiError> {
    // Workers share one token, so a worker token may drain any worker; the dashboard
    // (admin) and a worker draining itself (SIGUSR1) are the callers meant.
    caller.require_worker()?;
    let worker_id = model::validate_worker_id("id", &id)?;
    let Some(rec) = state.store.set_drain(&worker_id, drain).await? else {
        return Err(ApiError::new(
            ErrorCode::WorkerNotFound,
            format!("no worker {worker_id:?} was ever seen"),
        ));
    };
    let registered = rec.info.comfyui_version.is_some()
        || rec.info.line.is_some()
        || !rec.info.capabilities.is_empty();
    state
        .workers
        .changed(&worker_id, known(rec.clone(), registered));
    // A long-poll of this worker waiting now answers at once (drain), or looks (undrain).
    state.job_available.notify_waiters();
    let running = running_of(&state, &worker_id).await?;
    let answer = worker_response(&state, rec, running);
    publish_worker(&state, &answer);
    tracing::info!(worker_id = %worker_id, drain, "worker drain set");
    Ok(Json(answer))
}

/// The jobs `worker_id` is running now.
async fn running_of(state: &AppState, worker_id: &str) -> Result<Vec<Uuid>, ApiError> {
    let running = state
        .store
        .list(&crate::store::ListFilter {
            status: Some(Status::Running),
            user_id: None,
            limit: 1000,
            offset: 0,
        })
        .await?;
    Ok(running
        .into_iter()
        .filter(|j| j.worker_id.as_deref() == Some(worker_id))
        .map(|j| j.id)
        .collect())
}

/// A `worker_updated` event for `/ws` (admins only: it names no user).
fn publish_worker(state: &AppState, worker: &WorkerResponse) {
    if state.events.has_listeners() {
        state.events.publish(crate::events::Event {
            kind: "worker_updated",
            data: serde_json::to_value(worker).unwrap_or(Value::Null),
            timestamp: to_rfc3339(state.now()),
            user_id: None,
            preview: None,
        });
    }
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

/// Answer to an events batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventsAck {
    /// Always `accepted`.
    pub status: String,
    /// The job.
    pub job_id: Uuid,
    /// Events relayed.
    pub accepted: usize,
}

/// The `data` of a `comfy_event` message on `/ws` (`{"type": "comfy_event", "data": ...,
/// "timestamp"}`), sent to the job's owner and admins.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ComfyEventData {
    /// The job.
    pub job_id: Uuid,
    /// Its attempt the event belongs to.
    pub attempt: u32,
    /// The worker's sequence number (per attempt; a gap means events were dropped).
    pub seq: u64,
    /// When the worker received it from ComfyUI (ms since the epoch).
    pub received_at_ms: i64,
    /// The normalized ComfyUI event (`{"event": "progress", "node", "value", "max", ...}`).
    #[schema(value_type = Object)]
    pub event: Value,
    /// The queue's view of the job's progress after this event.
    pub progress: LiveProgress,
    /// A preview's image, base64: only on sockets opened with `/ws?previews=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_base64: Option<String>,
}

/// Whether the batch's lease is live: the job's owner, or 409 (404 for an unknown job).
async fn events_lease(state: &AppState, batch: &EventBatch) -> Result<String, ApiError> {
    let now = state.now();
    match state
        .live
        .check(batch.job_id, &batch.lease_token, batch.attempt, now)
    {
        LeaseCheck::Held { user_id } => return Ok(user_id),
        LeaseCheck::Lost => {
            return Err(ApiError::new(
                ErrorCode::LeaseConflict,
                "the lease of this attempt is lost (another attempt holds the job)",
            ));
        }
        LeaseCheck::Unknown => {}
    }
    // Not known here (a restart, a token this process did not hand out, an expiry): the
    // store decides, as for a heartbeat, and the lease is remembered if it holds.
    let lease = state
        .store
        .heartbeat(
            batch.job_id,
            &batch.lease_token,
            state.settings.lease_ms,
            now,
        )
        .await?;
    let Some(job) = state.store.get(batch.job_id).await? else {
        return Err(ApiError::job_not_found());
    };
    if job.attempts != batch.attempt {
        return Err(ApiError::new(
            ErrorCode::LeaseConflict,
            format!(
                "the events are of attempt {}, the job runs attempt {}",
                batch.attempt, job.attempts
            ),
        ));
    }
    state.live.leased(
        job.id,
        &batch.lease_token,
        job.attempts,
        &job.user_id,
        lease.lease_expires_at,
        HashMap::new(),
    );
    Ok(job.user_id)
}

/// Live ComfyUI events of a running job (lossy, memory only): relayed in order on `/ws` as
/// `comfy_event` to the job's owner and admins, and folded into the job's `progress`.
/// Fenced like a heartbeat (409 when the lease is lost or the attempt is not the job's).
#[utoipa::path(
    post, path = "/api/workers/events", tag = "workers",
    request_body = EventBatch,
    responses(
        (status = 202, description = "Relayed", body = EventsAck),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Lease lost, or another attempt: stop sending", body = ErrorBody),
        (status = 413, description = "More than 256 events, a preview over 4 MiB, or a body over 8 MiB", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(axum::http::StatusCode, Json<EventsAck>), ApiError> {
    caller.require_worker()?;
    let obj = body_object(json_body(&headers, body, live::EVENTS_BODY_LIMIT)?)?;
    for field in ["job_id", "lease_token", "attempt", "events"] {
        input::require(&obj, field, &format!("`{field}` is required"))?;
    }
    if let Some(n) = obj.get("events").and_then(Value::as_array).map(Vec::len)
        && n > live::MAX_BATCH_EVENTS
    {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "a batch carries at most {} events (this one {n})",
                live::MAX_BATCH_EVENTS
            ),
        )
        .with_field("events"));
    }
    let batch: EventBatch = input::from_object(
        obj,
        &["job_id", "lease_token", "attempt", "events"],
        type_error,
    )?;
    for (i, e) in batch.events.iter().enumerate() {
        live::validate_event(i, &e.event, e.preview_base64.as_deref())?;
    }
    let user_id = events_lease(&state, &batch).await?;
    let id = batch.job_id;
    let progress = state.live.apply(id, batch.events.iter().map(|e| &e.event));
    let accepted = batch.events.len();
    if let Some(last) = progress.last() {
        let before = state.progress.get(id).unwrap_or_default();
        let prompt_id = batch
            .events
            .iter()
            .rev()
            .find_map(|e| e.event.get("prompt_id").and_then(Value::as_str))
            .map(str::to_owned)
            .or(before.prompt_id);
        state.progress.set(
            id,
            progress::Progress {
                percent: last.percent.or(before.percent),
                node: last.node.clone(),
                node_class: last.node_class.clone(),
                prompt_id,
            },
        );
    }
    if state.events.has_listeners() {
        let timestamp = to_rfc3339(state.now());
        let mut progress = progress.into_iter();
        for e in batch.events {
            let p = progress.next().unwrap_or_default();
            let data = ComfyEventData {
                job_id: id,
                attempt: batch.attempt,
                seq: e.seq,
                received_at_ms: e.received_at_ms,
                event: e.event,
                progress: p,
                preview_base64: None,
            };
            state.events.publish(crate::events::Event {
                kind: "comfy_event",
                data: serde_json::to_value(&data).unwrap_or(Value::Null),
                timestamp: timestamp.clone(),
                user_id: Some(user_id.clone()),
                preview: e.preview_base64.map(std::sync::Arc::from),
            });
        }
    }
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(EventsAck {
            status: "accepted".into(),
            job_id: id,
            accepted,
        }),
    ))
}
