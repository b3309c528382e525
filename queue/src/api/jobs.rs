//! `/api/jobs`: submit, list, get, cancel, reprioritise.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    JobResponse, QueryMap, SMALL_BODY_LIMIT, SUBMIT_BODY_LIMIT, job_response, json_body,
    read_budgeted,
};
use crate::auth::Caller;
use crate::clock::to_rfc3339;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::events::Event;
use crate::input;
use crate::model::{self, Job, Status};
use crate::state::AppState;
use crate::store::{Chain, ListFilter, StoreError, SubmitLimits};

/// Publish a job event (never carrying the workflow).
pub fn publish(state: &AppState, kind: &'static str, job: &Job, position: Option<u64>) {
    publish_with_files(state, kind, job, position, None);
}

/// Publish a job event carrying the job's files (when the caller has them).
pub fn publish_with_files(
    state: &AppState,
    kind: &'static str,
    job: &Job,
    position: Option<u64>,
    files: Option<&[crate::model::FileRecord]>,
) {
    if !state.events.has_listeners() {
        return;
    }
    let mut resp = JobResponse::new(
        job,
        position,
        state.metrics.mean_run_secs(),
        state.progress.get(job.id),
    )
    .with_waiting(state.router.waiting(job.id));
    if let Some(files) = files {
        resp = resp.with_files(files);
    }
    let data = serde_json::to_value(resp).unwrap_or(Value::Null);
    state.events.publish(Event {
        kind,
        data,
        timestamp: to_rfc3339(state.now()),
        user_id: Some(job.user_id.clone()),
        preview: None,
    });
}

/// Submit a job.
#[utoipa::path(
    post, path = "/api/jobs", tag = "jobs",
    request_body(content = inline(model::SubmitRequest), description = "The job"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key (per user) → same job: 201 the first time, 200 after")),
    responses(
        (status = 201, description = "Created", body = SubmitResponse),
        (status = 200, description = "Idempotent replay: the job created earlier with this key", body = SubmitResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Too large", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 429, description = "Queue full or user limit", body = ErrorBody),
        (status = 503, description = "`server_busy`: too many bytes of bodies (submits and results) in flight (nothing stored; retry after `Retry-After` seconds), or `store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = Option<u32>, description = "Seconds to wait before a retry (on `server_busy`)"))),
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let scope = caller.require_user()?;
    // The room this body takes in the budget of bodies in flight is held until the answer.
    let (bytes, _room) = read_budgeted(&state, &headers, body, SUBMIT_BODY_LIMIT).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation(
            "body",
            ErrorCode::MissingBody,
            "a JSON body is required",
        ));
    }
    if !super::declares_json(&headers) {
        return Err(ApiError::unsupported_media_type());
    }
    // The workflow stays the JSON text it came in as (the body, kept by the job without a
    // copy); only the small fields are read.
    let text = String::from_utf8(bytes).map_err(|e| {
        ApiError::malformed_json(format!(
            "it is not UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let parsed = model::parse_submit(&text)?;
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(model::validate_idempotency_key(v.to_str().unwrap_or(""))?),
        None => None,
    };
    let new = parsed.validate(text, key)?;
    if let Some(user) = scope {
        if user != new.user_id {
            return Err(
                ApiError::forbidden("you may only submit jobs as yourself").with_field("user_id")
            );
        }
        if new.priority == 0 {
            return Err(ApiError::forbidden(
                "priority 0 (instructor override) needs the admin token",
            )
            .with_field("priority"));
        }
    }
    let limits = SubmitLimits {
        max_pending: state.settings.max_pending,
        max_per_user: state.settings.max_per_user,
        max_attempts: state.settings.max_attempts,
    };
    // A job any worker can run needs only one waiting worker woken; a routed job wakes all
    // of them so the one that can run it gets the chance.
    let anyone = new.requirements.is_empty();
    let has_inputs = !new.inputs.is_empty();
    let submitted = match state.store.submit_raw(new, limits, state.now()).await {
        Ok(s) => s,
        Err(StoreError::Backend(e)) => {
            tracing::error!(error = %Chain(&e), "store error on a submit; the job may be stored");
            return Err(ApiError::submit_outcome_unknown());
        }
        Err(e) => return Err(e.into()),
    };
    // A new job's files are the inputs just attached; a replay's are whatever it has now.
    let files = if has_inputs || !submitted.created {
        state
            .store
            .files(&[submitted.job.id])
            .await?
            .remove(&submitted.job.id)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let resp = JobResponse::new(
        &submitted.job,
        submitted.position,
        state.metrics.mean_run_secs(),
        None,
    )
    .with_files(&files);
    if submitted.created {
        state.metrics.submitted.inc();
        publish_with_files(
            &state,
            "job_created",
            &submitted.job,
            resp.position_in_queue,
            Some(&files),
        );
        if anyone {
            state.job_available.notify_one();
        } else {
            state.job_available.notify_waiters();
        }
        tracing::info!(job_id = %submitted.job.id, user_id = %submitted.job.user_id, priority = submitted.job.priority, "job submitted");
        Ok((StatusCode::CREATED, Json(SubmitResponse::from(resp))).into_response())
    } else {
        Ok((StatusCode::OK, Json(SubmitResponse::from(resp))).into_response())
    }
}

/// Submit answer: the job response plus `job_id` (the same as `id`), which the original
/// service's submit answer used.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SubmitResponse {
    /// Same as `id`.
    pub job_id: uuid::Uuid,
    /// The job.
    #[serde(flatten)]
    pub job: JobResponse,
}

impl From<JobResponse> for SubmitResponse {
    fn from(job: JobResponse) -> Self {
        Self {
            job_id: job.id,
            job,
        }
    }
}

/// List jobs, newest first.
#[utoipa::path(
    get, path = "/api/jobs", tag = "jobs",
    params(
        ("status" = Option<String>, Query, description = "pending|running|completed|failed|cancelled"),
        ("user_id" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{1,100}$", description = "Only this user's jobs"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 100"),
        ("offset" = Option<u32>, Query, description = "Skip this many (paging)"),
    ),
    responses((status = 200, body = Vec<JobResponse>), (status = 422, body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryMap,
) -> Result<Json<Vec<JobResponse>>, ApiError> {
    let scope = caller.require_user()?;
    let q = super::query_map(query)?;
    let status = match q.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::validation(
                "status",
                ErrorCode::InvalidStatus,
                "`status` must be one of pending, running, completed, failed, cancelled",
            )
        })?),
    };
    let mut user_id = match q.get("user_id").map(String::as_str) {
        None | Some("") => None,
        Some(u) => Some(model::validate_user_id("user_id", u)?),
    };
    if let Some(me) = scope {
        if user_id.as_deref().is_some_and(|u| u != me) {
            return Ok(Json(Vec::new()));
        }
        user_id = Some(me.to_owned());
    }
    let limit = parse_count(&q, "limit", 100, 1, 1000)?;
    let offset = match q.get("page") {
        Some(_) if !q.contains_key("offset") => {
            let page = parse_count(&q, "page", 1, 1, 1_000_000)?;
            (page - 1).saturating_mul(limit)
        }
        _ => parse_count(&q, "offset", 0, 0, u32::MAX)?,
    };
    let jobs = state
        .store
        .list(&ListFilter {
            status,
            user_id,
            limit,
            offset,
        })
        .await?;
    let ids: Vec<uuid::Uuid> = jobs.iter().map(|j| j.id).collect();
    let files = state.store.files(&ids).await?;
    let mut out = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let mine = files.get(&job.id).map_or(&[][..], Vec::as_slice);
        out.push(super::job_response_with(&state, job, mine).await?);
    }
    Ok(Json(out))
}

fn parse_count(
    q: &std::collections::HashMap<String, String>,
    field: &str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, ApiError> {
    match q.get(field) {
        None => Ok(default),
        Some(s) => match s.trim().parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::validation(
                field,
                ErrorCode::InvalidInteger,
                format!("`{field}` must be an integer from {min} to {max}"),
            )),
        },
    }
}

/// The `{id}` of a job route; a path that does not decode (`/api/jobs/%ff`) is kept as the
/// rejection so that it is answered like any other id that names no job.
type JobPath = Result<Path<String>, PathRejection>;

async fn load_visible(state: &AppState, caller: &Caller, id: JobPath) -> Result<Job, ApiError> {
    caller.require_user()?;
    let Ok(Path(id)) = id else {
        return Err(ApiError::job_not_found());
    };
    let id = super::parse_job_id(&id)?;
    match state.store.get(id).await? {
        Some(job) if caller.may_touch(&job.user_id) => Ok(job),
        // Another user's job is reported as missing, so ids cannot be probed.
        _ => Err(ApiError::job_not_found()),
    }
}

/// One job.
#[utoipa::path(
    get, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobResponse), (status = 404, body = ErrorBody))
)]
pub async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    id: JobPath,
) -> Result<Json<JobResponse>, ApiError> {
    let job = load_visible(&state, &caller, id).await?;
    Ok(Json(job_response(&state, &job).await?))
}

/// Cancel: a pending job is cancelled at once; a running job gets `cancel_requested`, which
/// its worker sees in the next heartbeat response — at once when its heartbeat waits for
/// one (`heartbeat?wait=`).
#[utoipa::path(
    delete, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 204, description = "Cancelled, or cancel requested (running job)"),
        (status = 400, description = "Already finished", body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    id: JobPath,
) -> Result<StatusCode, ApiError> {
    let job = load_visible(&state, &caller, id).await?;
    let job = state.store.cancel(job.id, state.now()).await?;
    if job.cancel_requested {
        state.cancel_requested.notify_waiters();
    }
    publish(&state, "job_updated", &job, None);
    if job.status == Status::Cancelled {
        state.events.publish(Event {
            kind: "job_deleted",
            data: json!({"job_id": job.id}),
            timestamp: to_rfc3339(state.now()),
            user_id: Some(job.user_id.clone()),
            preview: None,
        });
    }
    tracing::info!(job_id = %job.id, status = job.status.as_str(), cancel_requested = job.cancel_requested, "job cancel");
    Ok(StatusCode::NO_CONTENT)
}

/// Change the priority of a pending job. `priority` comes from the query string (as the
/// original API read it) or from a JSON body `{"priority": n}` (as its dashboard sent it).
#[utoipa::path(
    patch, path = "/api/jobs/{id}/priority", tag = "jobs",
    params(
        ("id" = String, Path, description = "Job id"),
        ("priority" = Option<u8>, Query, minimum = 0, maximum = 3, description = "0–3 (or in the JSON body)"),
    ),
    request_body(content = inline(PriorityRequest), description = "Alternative to the query parameter"),
    responses(
        (status = 200, body = JobResponse),
        (status = 400, description = "Not pending", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn set_priority(
    State(state): State<AppState>,
    caller: Caller,
    id: JobPath,
    headers: HeaderMap,
    query: QueryMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<JobResponse>, ApiError> {
    let q = super::query_map(query)?;
    let priority = match q.get("priority") {
        Some(p) => model::parse_priority_text("priority", p)?,
        None => match json_body(&headers, body, SMALL_BODY_LIMIT)? {
            Some(Value::Object(obj)) => {
                input::require(&obj, "priority", PRIORITY_REQUIRED)?;
                let req: PriorityRequest =
                    input::from_object(obj, &["priority"], model::priority_type_error)?;
                model::validate_priority("priority", req.priority)?
            }
            Some(_) => {
                return Err(ApiError::validation(
                    "body",
                    ErrorCode::InvalidType,
                    "the request body must be a JSON object",
                ));
            }
            None => {
                return Err(ApiError::validation(
                    "priority",
                    ErrorCode::MissingField,
                    PRIORITY_REQUIRED,
                ));
            }
        },
    };
    let job = load_visible(&state, &caller, id).await?;
    if caller != Caller::Admin && priority == 0 {
        return Err(
            ApiError::forbidden("priority 0 (instructor override) needs the admin token")
                .with_field("priority"),
        );
    }
    let job = state.store.set_priority(job.id, priority).await?;
    let resp = job_response(&state, &job).await?;
    publish(&state, "job_updated", &job, resp.position_in_queue);
    Ok(Json(resp))
}

const PRIORITY_REQUIRED: &str = "`priority` is required (query string or JSON body)";

/// Body of a priority change; the body is read into this type.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct PriorityRequest {
    /// 0–3.
    #[schema(minimum = 0, maximum = 3)]
    pub priority: u8,
}
