//! The write side of the queue panel, for the user's own jobs only:
//! `POST /queue {delete|clear}`, `POST /history {delete|clear}`,
//! `POST /interrupt [{prompt_id}]`, `POST /api/jobs/{id}/cancel` and
//! `POST /api/jobs/cancel {job_ids}`. ComfyUI answers the first three with an
//! empty 200 and the cancel routes with `{"cancelled": bool}`.

use crate::config::User;
use crate::error::GatewayError;
use crate::listing::visible_jobs;
use crate::queue::JobState;
use crate::state::Gateway;
use axum::Json;
use axum::body::to_bytes;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

const CONTROL_BODY: usize = 1024 * 1024;

async fn body_json(req: Request) -> Result<Value, GatewayError> {
    let bytes = to_bytes(req.into_body(), CONTROL_BODY)
        .await
        .map_err(|_| GatewayError::TooLarge(CONTROL_BODY))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|e| GatewayError::BadRequest {
        kind: "invalid_json",
        message: format!("the body is not JSON: {e}"),
    })
}

fn ids(v: Option<&Value>) -> Vec<Uuid> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|s| Uuid::parse_str(s).ok())
        .collect()
}

fn empty_ok() -> Response {
    axum::http::StatusCode::OK.into_response()
}

/// Cancels those of `ids` that are the user's and still wait or run
/// (`only_pending`: those that wait). Returns how many were cancelled.
async fn cancel_own(
    gw: &Gateway,
    user: &User,
    ids: &[Uuid],
    only_pending: bool,
) -> Result<usize, GatewayError> {
    let mut n = 0;
    for &id in ids {
        let Some(job) = gw.queue().job(&user.id, id).await? else {
            continue;
        };
        let wanted = if only_pending {
            job.status == JobState::Pending
        } else {
            job.status.active()
        };
        if wanted && gw.queue().cancel(&user.id, id).await? {
            n += 1;
        }
    }
    Ok(n)
}

async fn own_ids(gw: &Gateway, user: &User, status: JobState) -> Result<Vec<Uuid>, GatewayError> {
    Ok(gw
        .queue()
        .jobs(&user.id, Some(status))
        .await?
        .iter()
        .map(|j| j.id)
        .collect())
}

/// `POST /queue`: `{"delete": [ids]}` removes pending prompts, `{"clear": true}` all pending.
pub async fn queue_control(gw: &Gateway, user: &User, req: Request) -> Response {
    let result = async {
        let body = body_json(req).await?;
        if body.get("clear").and_then(Value::as_bool) == Some(true) {
            let pending = own_ids(gw, user, JobState::Pending).await?;
            cancel_own(gw, user, &pending, true).await?;
        }
        let delete = ids(body.get("delete"));
        cancel_own(gw, user, &delete, true).await?;
        Ok::<_, GatewayError>(())
    };
    match result.await {
        Ok(()) => empty_ok(),
        Err(e) => e.into_response(),
    }
}

/// `POST /history`: `{"delete": [ids]}` or `{"clear": true}` takes finished
/// jobs out of the user's history (the queue keeps them for the admins).
pub async fn history_control(gw: &Gateway, user: &User, req: Request) -> Response {
    let result = async {
        let body = body_json(req).await?;
        let finished: Vec<Uuid> = visible_jobs(gw, user)
            .await?
            .iter()
            .filter(|j| !j.status.active())
            .map(|j| j.id)
            .collect();
        if body.get("clear").and_then(Value::as_bool) == Some(true) {
            gw.hide(finished.iter().copied());
        }
        let delete = ids(body.get("delete"));
        gw.hide(delete.into_iter().filter(|id| finished.contains(id)));
        Ok::<_, GatewayError>(())
    };
    match result.await {
        Ok(()) => empty_ok(),
        Err(e) => e.into_response(),
    }
}

/// `POST /interrupt`: with `{"prompt_id"}` that job if it is the user's and
/// runs; without, every job of the user that runs. Never anyone else's.
pub async fn interrupt(gw: &Gateway, user: &User, req: Request) -> Response {
    let result = async {
        let body = body_json(req).await?;
        let running = own_ids(gw, user, JobState::Running).await?;
        let targets: Vec<Uuid> = match body.get("prompt_id").and_then(Value::as_str) {
            Some(id) => Uuid::parse_str(id)
                .ok()
                .filter(|id| running.contains(id))
                .into_iter()
                .collect(),
            None => running,
        };
        cancel_own(gw, user, &targets, false).await?;
        Ok::<_, GatewayError>(())
    };
    match result.await {
        Ok(()) => empty_ok(),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/jobs/{id}/cancel` (0.26+).
pub async fn cancel_one(gw: &Gateway, user: &User, id: &str) -> Response {
    let ids: Vec<Uuid> = Uuid::parse_str(id).ok().into_iter().collect();
    match cancel_own(gw, user, &ids, false).await {
        Ok(n) => Json(json!({"cancelled": n > 0})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/jobs/cancel {"job_ids": [...]}` (0.26+).
pub async fn cancel_batch(gw: &Gateway, user: &User, req: Request) -> Response {
    let result = async {
        let body = body_json(req).await?;
        let Some(list) = body.get("job_ids").and_then(Value::as_array) else {
            return Err(GatewayError::BadRequest {
                kind: "invalid_job_ids",
                message: "job_ids must be a list of job ids".into(),
            });
        };
        let ids: Vec<Uuid> = list
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|s| Uuid::parse_str(s).ok())
            .collect();
        cancel_own(gw, user, &ids, false).await
    };
    match result.await {
        Ok(n) => Json(json!({"cancelled": n > 0})).into_response(),
        Err(e) => e.into_response(),
    }
}
