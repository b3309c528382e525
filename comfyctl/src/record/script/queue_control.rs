//! 046–062: three slow prompts; the queue while busy; delete a pending
//! one, interrupt the running one, then everything; clear.

use super::super::RecordError;
use super::super::capture::Request;
use super::super::session::Session;
use super::super::session::prompt_id_of;
use super::super::trace::{self, Trace};
use super::prompts::slow_prompt;
use super::{history, job, new_client_id, post_json, probe_with, submit, wait_idle, wait_running};
use serde_json::json;

pub(super) async fn run(s: &mut Session<'_>) -> Result<(), RecordError> {
    wait_idle(s).await?;
    let client = new_client_id();
    // The slow prompts' messages, to see slow-1 start (none if no socket).
    let mut socket = Trace::open(&s.core, &client).await.ok();
    let mut slow = Vec::new();
    for (n, color) in [(1, 1), (2, 2), (3, 3)] {
        let resp = s
            .probe(
                &format!("prompt-slow-{n}"),
                submit(json!({"prompt": slow_prompt(color, "slow"), "client_id": client})),
            )
            .await?;
        slow.push(prompt_id_of(&resp));
    }
    let [first, second, third] = [slow[0].clone(), slow[1].clone(), slow[2].clone()];
    // The targeted interrupt must reach slow-1 before its last node (SaveImage)
    // starts: ComfyUI reads the flag only between nodes, so one sent while
    // SaveImage runs lets the prompt succeed. The probes below take
    // milliseconds, so from the `executing` of slow-1's first node the
    // interrupt arrives while node 1 or 2 runs, as the recordings have it
    // (`execution_interrupted` at node 2, at node 3 in 0.9.2). Without a socket,
    // the queue is polled until slow-1 runs.
    match (socket.as_mut(), first.as_deref()) {
        (Some(t), Some(id)) => {
            t.until(s.job_timeout, |m| trace::is_executing(m, id, "1"))
                .await;
        }
        _ => wait_running(s, first.as_deref()).await?,
    }
    drop(socket);
    s.probe("queue-busy", Request::get("/queue")).await?;
    s.probe("jobs-busy", Request::get("/api/jobs")).await?;
    s.probe(
        "jobs-pending-filter",
        Request::get("/api/jobs").query("status", "pending,in_progress"),
    )
    .await?;
    probe_with(
        s,
        "jobs-by-id-pending",
        third.as_deref(),
        "prompt-slow-3",
        job,
    )
    .await?;
    s.probe("prompt-get-queue-info", Request::get("/prompt"))
        .await?;
    probe_with(
        s,
        "queue-delete-pending",
        third.as_deref(),
        "prompt-slow-3",
        |id| post_json("/queue", json!({"delete": [id]})),
    )
    .await?;
    probe_with(
        s,
        "interrupt-targeted",
        first.as_deref(),
        "prompt-slow-1",
        |id| post_json("/interrupt", json!({"prompt_id": id})),
    )
    .await?;
    s.probe("queue-after-delete", Request::get("/queue"))
        .await?;
    // Right away, as the recordings did: ComfyUI clears the interrupt flag
    // when a prompt starts, so a global interrupt sent while slow-1 winds
    // down usually misses slow-2 (5 of the 6 recorded sets: 060 succeeds).
    s.probe("interrupt-global", post_json("/interrupt", json!({})))
        .await?;
    wait_idle(s).await?;
    probe_with(
        s,
        "history-by-id-interrupted",
        first.as_deref(),
        "prompt-slow-1",
        history,
    )
    .await?;
    probe_with(
        s,
        "jobs-by-id-interrupted",
        first.as_deref(),
        "prompt-slow-1",
        job,
    )
    .await?;
    probe_with(
        s,
        "history-by-id-second-slow",
        second.as_deref(),
        "prompt-slow-2",
        history,
    )
    .await?;
    probe_with(
        s,
        "jobs-by-id-deleted",
        third.as_deref(),
        "prompt-slow-3",
        job,
    )
    .await?;
    s.probe("queue-clear", post_json("/queue", json!({"clear": true})))
        .await?;
    Ok(())
}
