//! `GET /view` of a remote output (subfolder `comfy-queue/<job id>/...`):
//! served from the queue's file store as the user, streamed, with the
//! queue's Content-Type, ETag and ranges. The frontend asks for an output
//! the moment ComfyUI reports `executed`, before the worker has stored it,
//! so while the job runs the gateway waits for the file (up to
//! `view_wait_secs`, looking again after 5 ms, then after pauses that double up
//! to 250 ms). Every other `/view` is the user's own ComfyUI's.

use crate::config::User;
use crate::proxy::stream_back;
use crate::query::Query;
use crate::queue::QueueJob;
use crate::shapes::remote_file;
use crate::state::Gateway;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use comfy_queue_api::FileRole;
use std::time::Duration;

/// The first pause before a waiting `/view` looks for its file again; it doubles up to
/// [`LAST_LOOK_AGAIN`].
const FIRST_LOOK_AGAIN: Duration = Duration::from_millis(5);
/// The longest pause between two looks.
const LAST_LOOK_AGAIN: Duration = Duration::from_millis(250);

/// Whether a `/view` query names a remote output.
pub fn is_remote(query: Option<&str>) -> bool {
    Query::parse(query)
        .get("subfolder")
        .is_some_and(|s| remote_file(s).is_some())
}

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// The file of `job` that a `/view` names.
fn find<'a>(job: &'a QueueJob, role: FileRole, subfolder: &str, filename: &str) -> Option<&'a str> {
    job.files
        .iter()
        .find(|f| f.role == role && f.subfolder == subfolder && f.filename == filename)
        .map(|f| f.url.as_str())
}

/// Serves a remote output.
pub async fn remote(gw: &Gateway, user: &User, req: Request) -> Response {
    let p = Query::parse(req.uri().query());
    let (Some(filename), Some((job_id, own))) =
        (p.get("filename"), p.get("subfolder").and_then(remote_file))
    else {
        return not_found();
    };
    let role = match p.get("type").unwrap_or("output") {
        "output" => FileRole::Output,
        "temp" => FileRole::Temp,
        _ => return not_found(),
    };
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(gw.config().view_wait_secs);
    // The worker stores an output as soon as ComfyUI announces it, usually a few ms after
    // the frontend asked: look again soon, then less and less often.
    let mut pause = FIRST_LOOK_AGAIN;
    loop {
        let job = match gw.queue().job(&user.id, job_id).await {
            Ok(Some(j)) => j,
            Ok(None) => return not_found(),
            Err(e) => return e.into_response(),
        };
        if let Some(url) = find(&job, role, own, filename) {
            return match gw.queue().file(&user.id, url, range.as_deref()).await {
                Ok(resp) => stream_back(resp),
                Err(e) => e.into_response(),
            };
        }
        if !job.status.active() || tokio::time::Instant::now() >= deadline {
            return not_found();
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LAST_LOOK_AGAIN);
    }
}
