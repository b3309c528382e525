//! The read side of the native queue panel, answered from the queue for
//! one user: `GET /prompt`, `/queue`, `/history`, `/history/{id}`,
//! `/api/jobs` and `/api/jobs/{id}`, in the shapes of the user's line.

use crate::config::User;
use crate::error::GatewayError;
use crate::query::Query;
use crate::queue::{JobState, QueueJob};
use crate::shapes::{ComfyMeta, Shapes};
use crate::state::Gateway;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use uuid::Uuid;

fn ok(v: Value) -> Response {
    Json(v).into_response()
}

/// ComfyUI's own error answer of the jobs API (`{"error": "..."}`).
fn jobs_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// The user's jobs the way ComfyUI would still list them (not the pending
/// ones they cancelled, not the history entries they deleted).
pub async fn visible_jobs(gw: &Gateway, user: &User) -> Result<Vec<QueueJob>, GatewayError> {
    let jobs = gw.queue().jobs(&user.id, None).await?;
    Ok(jobs
        .into_iter()
        .filter(|j| Shapes::visible(j) && !gw.hidden(j.id))
        .collect())
}

/// How many of the user's jobs wait or run.
pub async fn queue_remaining(gw: &Gateway, user: &User) -> Result<usize, GatewayError> {
    Ok(active_jobs(gw, user).await?.len())
}

/// The user's pending and running jobs. Pending ones are read first and
/// duplicates dropped: a job that starts between the two reads is in both,
/// never in neither.
async fn active_jobs(gw: &Gateway, user: &User) -> Result<Vec<QueueJob>, GatewayError> {
    let mut jobs = gw.queue().jobs(&user.id, Some(JobState::Pending)).await?;
    let running = gw.queue().jobs(&user.id, Some(JobState::Running)).await?;
    jobs.retain(|p| !running.iter().any(|r| r.id == p.id));
    jobs.extend(running);
    Ok(jobs)
}

/// `GET /prompt`: `{"exec_info": {"queue_remaining": n}}`.
pub async fn prompt_info(gw: &Gateway, user: &User) -> Response {
    match queue_remaining(gw, user).await {
        Ok(n) => ok(json!({"exec_info": {"queue_remaining": n}})),
        Err(e) => e.into_response(),
    }
}

/// `GET /queue`.
pub async fn queue(gw: &Gateway, user: &User) -> Response {
    let result = async {
        let shapes = gw.upstream_info(user).await?.shapes;
        let jobs = active_jobs(gw, user).await?;
        Ok::<_, GatewayError>(shapes.queue(&jobs, &|id| gw.submitted(id)))
    };
    match result.await {
        Ok(v) => ok(v),
        Err(e) => e.into_response(),
    }
}

/// `GET /history[?max_items=N&offset=M]`: finished jobs, oldest first, the
/// newest `max_items`.
pub async fn history(gw: &Gateway, user: &User, query: Option<&str>) -> Response {
    let q = Query::parse(query);
    let max_items = match q.get("max_items").map(str::parse::<usize>) {
        None => None,
        Some(Ok(n)) => Some(n),
        // ComfyUI answers a bad max_items with a 500 of aiohttp; the gateway
        // says what is wrong instead.
        Some(Err(_)) => {
            return GatewayError::BadRequest {
                kind: "invalid_max_items",
                message: "max_items must be a non-negative integer".into(),
            }
            .into_response();
        }
    };
    let offset = q
        .get("offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let result = async {
        let shapes = gw.upstream_info(user).await?.shapes;
        let jobs = visible_jobs(gw, user).await?;
        // Newest first from the queue; ComfyUI lists oldest first.
        let mut finished: Vec<&QueueJob> = jobs.iter().filter(|j| !j.status.active()).collect();
        finished.reverse();
        let end = finished.len().saturating_sub(offset);
        let start = max_items.map_or(0, |n| end.saturating_sub(n));
        let mut out = Map::new();
        for j in &finished[start..end] {
            out.insert(
                j.id.to_string(),
                shapes.history_entry(j, gw.submitted(j.id).as_ref()),
            );
        }
        Ok::<_, GatewayError>(Value::Object(out))
    };
    match result.await {
        Ok(v) => ok(v),
        Err(e) => e.into_response(),
    }
}

async fn own_job(gw: &Gateway, user: &User, id: &str) -> Result<Option<QueueJob>, GatewayError> {
    let Ok(id) = Uuid::parse_str(id) else {
        return Ok(None);
    };
    Ok(gw
        .queue()
        .job(&user.id, id)
        .await?
        .filter(|j| Shapes::visible(j) && !gw.hidden(j.id)))
}

/// `GET /history/{id}`: `{id: entry}`, or `{}` for a job that is unknown,
/// someone else's, or not finished.
pub async fn history_one(gw: &Gateway, user: &User, id: &str) -> Response {
    let result = async {
        let shapes = gw.upstream_info(user).await?.shapes;
        let mut out = Map::new();
        if let Some(j) = own_job(gw, user, id).await?.filter(|j| !j.status.active()) {
            out.insert(
                j.id.to_string(),
                shapes.history_entry(&j, gw.submitted(j.id).as_ref()),
            );
        }
        Ok::<_, GatewayError>(Value::Object(out))
    };
    match result.await {
        Ok(v) => ok(v),
        Err(e) => e.into_response(),
    }
}

const JOB_STATUSES: [&str; 5] = ["pending", "in_progress", "completed", "failed", "cancelled"];

/// `GET /api/jobs[?status=a,b&limit=&offset=&sort_order=]`.
pub async fn jobs(gw: &Gateway, user: &User, shapes: &Shapes, query: Option<&str>) -> Response {
    let q = Query::parse(query);
    let statuses: Option<Vec<String>> = q
        .get("status")
        .filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(|x| x.trim().to_owned()).collect());
    if let Some(list) = &statuses {
        let bad: Vec<&str> = list
            .iter()
            .map(String::as_str)
            .filter(|s| !JOB_STATUSES.contains(s))
            .collect();
        if !bad.is_empty() {
            return jobs_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Invalid status value(s): {}. Valid values: {}",
                    bad.join(", "),
                    JOB_STATUSES.join(", ")
                ),
            );
        }
    }
    let limit = match q.get("limit").map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n > 0 => Some(n as usize),
        Some(_) => return jobs_error(StatusCode::BAD_REQUEST, "limit must be a positive integer"),
    };
    let offset = match q.get("offset").map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) if n >= 0 => n as usize,
        Some(_) => {
            return jobs_error(
                StatusCode::BAD_REQUEST,
                "offset must be a non-negative integer",
            );
        }
    };
    let ascending = q.get("sort_order") == Some("asc");
    let fetched = match &statuses {
        // Newest first is what the queue answers: a page of the newest jobs
        // needs only that many of each state asked for (the frontend's two
        // polls: the active jobs, and the newest 64 finished ones).
        Some(list) if !ascending => {
            let window = offset
                .saturating_add(limit.unwrap_or(1000))
                .saturating_add(1);
            jobs_in_states(gw, user, shapes, list, window).await
        }
        _ => visible_jobs(gw, user).await,
    };
    let all = match fetched {
        Ok(j) => j,
        Err(e) => return e.into_response(),
    };
    let mut selected: Vec<&QueueJob> = all
        .iter()
        .filter(|j| {
            statuses
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == shapes.jobs_status(j)))
        })
        .collect();
    // Newest first, by ComfyUI's create_time; `asc` reverses.
    selected.sort_by_key(|j| std::cmp::Reverse(ComfyMeta::of(j).create_time));
    if ascending {
        selected.reverse();
    }
    let total = selected.len();
    let page: Vec<Value> = selected
        .iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(|j| shapes.job_item(j))
        .collect();
    let has_more = offset + page.len() < total;
    let mut pagination =
        json!({"offset": offset, "limit": limit, "total": total, "has_more": has_more});
    if limit.is_none() {
        pagination["limit"] = Value::Null;
    }
    ok(json!({"jobs": page, "pagination": pagination}))
}

/// The user's newest `window` jobs of each queue state behind the jobs API
/// statuses `list`, visible ones only.
async fn jobs_in_states(
    gw: &Gateway,
    user: &User,
    shapes: &Shapes,
    list: &[String],
    window: usize,
) -> Result<Vec<QueueJob>, GatewayError> {
    let mut states = Vec::new();
    for s in list {
        let wanted: &[JobState] = match s.as_str() {
            "pending" => &[JobState::Pending],
            "in_progress" => &[JobState::Running],
            "completed" => &[JobState::Completed],
            // Before 0.9 an interrupted prompt is `failed`.
            "failed" if !shapes.says_cancelled() => &[JobState::Failed, JobState::Cancelled],
            "failed" => &[JobState::Failed],
            "cancelled" => &[JobState::Cancelled],
            _ => &[],
        };
        for w in wanted {
            if !states.contains(w) {
                states.push(*w);
            }
        }
    }
    // In the order of a job's life, keeping a job's later reading: one that
    // moves on between two reads is listed once, as it is now, never lost.
    states.sort_by_key(|s| *s as u8);
    let mut out: Vec<QueueJob> = Vec::new();
    for s in states {
        let read = gw.queue().newest_jobs(&user.id, Some(s), window).await?;
        out.retain(|o| !read.iter().any(|j| j.id == o.id));
        out.extend(read);
    }
    out.retain(|j| Shapes::visible(j) && !gw.hidden(j.id));
    Ok(out)
}

/// `GET /api/jobs/{id}`.
pub async fn job_one(gw: &Gateway, user: &User, shapes: &Shapes, id: &str) -> Response {
    match own_job(gw, user, id).await {
        Ok(Some(j)) => ok(shapes.job_detail(&j, gw.submitted(j.id).as_ref())),
        Ok(None) => jobs_error(StatusCode::NOT_FOUND, "Job not found"),
        Err(e) => e.into_response(),
    }
}
