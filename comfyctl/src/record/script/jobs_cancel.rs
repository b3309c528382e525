//! 063–070: the jobs cancel API (405 before 0.26; the prompts then run to
//! the end, as they did in the recordings).

use super::super::RecordError;
use super::super::capture::{Request, RequestBody};
use super::super::session::Session;
use super::{
    hidden_slow, history, job, new_client_id, post_json, probe_with, wait_idle, wait_running,
};
use serde_json::json;

pub(super) async fn run(s: &mut Session<'_>) -> Result<(), RecordError> {
    let client = new_client_id();
    let running = hidden_slow(s, &client, 21).await?;
    let batch = hidden_slow(s, &client, 22).await?;
    let pending = hidden_slow(s, &client, 23).await?;
    wait_running(s, running.as_deref()).await?;
    let cancel = |id: &str| Request::post(format!("/api/jobs/{id}/cancel"), RequestBody::None);
    probe_with(
        s,
        "jobs-cancel-pending",
        pending.as_deref(),
        "a setup prompt",
        cancel,
    )
    .await?;
    probe_with(
        s,
        "jobs-cancel-running",
        running.as_deref(),
        "a setup prompt",
        cancel,
    )
    .await?;
    s.probe(
        "jobs-cancel-unknown",
        cancel("00000000-0000-4000-8000-000000000000"),
    )
    .await?;
    probe_with(
        s,
        "jobs-cancel-batch",
        batch.as_deref(),
        "a setup prompt",
        |id| post_json("/api/jobs/cancel", json!({"job_ids": [id]})),
    )
    .await?;
    s.probe(
        "jobs-cancel-batch-malformed",
        post_json("/api/jobs/cancel", json!({"job_ids": ["not-a-uuid"]})),
    )
    .await?;
    wait_idle(s).await?;
    let running = running.as_deref();
    probe_with(
        s,
        "jobs-by-id-after-cancel-running",
        running,
        "a setup prompt",
        job,
    )
    .await?;
    probe_with(
        s,
        "jobs-by-id-after-cancel-pending",
        pending.as_deref(),
        "a setup prompt",
        job,
    )
    .await?;
    probe_with(
        s,
        "history-by-id-after-cancel-running",
        running,
        "a setup prompt",
        history,
    )
    .await?;
    Ok(())
}
