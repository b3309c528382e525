//! 081–088: every output kind in one prompt; a run interrupted before it
//! saves, traced on the WebSocket.

use super::super::RecordError;
use super::super::session::Session;
use super::super::session::{InHistory, prompt_id_of};
use super::super::trace::{self, Ended, Trace};
use super::prompts::{mixed_outputs_prompt, slow_prompt};
use super::{
    TracedRun, history, job, new_client_id, post_json, probe_with, submit, traced_run, wait_running,
};
use serde_json::json;

/// The node of the slow prompt (ImageScale, the one before SaveImage) whose
/// `executing` message sends the interrupt.
pub(super) const INTERRUPT_DURING: &str = "2";

pub(super) async fn run(s: &mut Session<'_>) -> Result<(), RecordError> {
    let mixed = traced_run(
        s,
        TracedRun {
            submit: "run-mixed-outputs-submit",
            trace: "ws-run-mixed-outputs",
        },
        mixed_outputs_prompt(),
        None,
    )
    .await?;
    let mixed = mixed.as_deref();
    probe_with(
        s,
        "history-by-id-mixed-outputs",
        mixed,
        "run-mixed-outputs-submit",
        history,
    )
    .await?;
    probe_with(
        s,
        "jobs-by-id-mixed-outputs",
        mixed,
        "run-mixed-outputs-submit",
        job,
    )
    .await?;

    let client_id = new_client_id();
    let socket = Trace::open(&s.core, &client_id).await;
    let resp = s
        .probe(
            "run-interrupted-submit",
            submit(json!({"prompt": slow_prompt(11, "slowi"), "client_id": client_id})),
        )
        .await?;
    let Some(id) = prompt_id_of(&resp) else {
        for name in [
            "run-interrupted-interrupt",
            "ws-run-interrupted",
            "history-by-id-interrupted-ws",
        ] {
            s.skip(name, "run-interrupted-submit gave no prompt id");
        }
        return Ok(());
    };
    let mut socket = socket.ok();
    // Interrupt while an earlier node runs, not the last. ComfyUI reads its
    // interrupt flag only between nodes and inside nodes that loop (samplers):
    // an interrupt sent once SaveImage, the last node, has started is never
    // seen and the prompt succeeds (real 0.9.2, 0.11.1 and 0.33.0 did). Sent
    // while ImageScale runs, the flag stops the prompt as SaveImage starts:
    // `execution_interrupted` at node 3, as every recorded set has it.
    match socket.as_mut() {
        Some(t) => {
            t.until(s.job_timeout, |m| {
                trace::is_executing(m, &id, INTERRUPT_DURING)
            })
            .await;
        }
        None => wait_running(s, Some(&id)).await?,
    }
    s.probe(
        "run-interrupted-interrupt",
        post_json("/interrupt", json!({"prompt_id": id})),
    )
    .await?;
    match socket {
        Some(mut t) => {
            let ended = t.until(s.job_timeout, |m| trace::is_finished(m, &id)).await;
            if ended == Ended::Seen {
                s.trace_probe("ws-run-interrupted", &client_id, &id, t)?;
            } else {
                s.skip(
                    "ws-run-interrupted",
                    format!("the WebSocket trace did not end ({ended:?})"),
                );
            }
        }
        None => s.skip("ws-run-interrupted", "no WebSocket"),
    }
    s.wait_for("the interrupted prompt's history entry", InHistory(&id))
        .await?;
    s.probe("history-by-id-interrupted-ws", history(&id))
        .await?;
    Ok(())
}
