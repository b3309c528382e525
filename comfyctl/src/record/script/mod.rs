//! The probe suite, in the order of the recorded sets: each step is one
//! `NNN-name.json`. Requests are the recorded ones, byte for byte, except
//! the ids the server hands out (prompt ids, client ids).
//!
//! One module per probe group, in the order they run; this one holds what
//! several groups use (request builders, waits, the traced run).

mod files;
mod jobs_cancel;
mod listings;
mod outputs_and_interrupt;
mod prompt_runs;
mod prompts;
mod queue_control;
mod server_facts;
mod userdata;
mod validation;

pub(crate) use files::upload_form;
pub(crate) use userdata::USERDATA_WRITTEN;

use super::RecordError;
use super::capture::{Request, RequestBody};
use super::session::{Idle, InHistory, Running, Session, prompt_id_of};
use super::trace::{self, Ended, Trace};
use prompts::slow_prompt;
use serde_json::{Value, json};

/// Probes in the suite (the recorded sets hold this many files).
pub const PROBE_COUNT: usize = 118;

pub(super) const ZERO_ID: &str = "00000000-0000-0000-0000-000000000000";

pub(super) fn new_client_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(super) fn submit(body: Value) -> Request {
    Request::post("/prompt", RequestBody::Json(body))
}

pub(super) fn post_json(path: &str, body: Value) -> Request {
    Request::post(path, RequestBody::Json(body))
}

pub(super) fn history(id: &str) -> Request {
    Request::get(format!("/history/{id}"))
}

pub(super) fn job(id: &str) -> Request {
    Request::get(format!("/api/jobs/{id}"))
}

/// A prompt that runs with a WebSocket trace: the trace probe, then the
/// probes that read its result. Returns the prompt id when it was accepted.
pub(super) struct TracedRun {
    pub(super) submit: &'static str,
    pub(super) trace: &'static str,
}

pub(super) async fn traced_run(
    s: &mut Session<'_>,
    run: TracedRun,
    prompt: Value,
    extra: Option<Value>,
) -> Result<Option<String>, RecordError> {
    let client_id = new_client_id();
    let socket = Trace::open(&s.core, &client_id).await;
    let mut body = json!({"prompt": prompt, "client_id": client_id});
    if let Some(extra) = extra {
        body["extra_data"] = extra;
    }
    let resp = s.probe(run.submit, submit(body)).await?;
    let Some(id) = prompt_id_of(&resp) else {
        s.skip(
            run.trace,
            format!("{} was not accepted (HTTP {})", run.submit, resp.status),
        );
        return Ok(None);
    };
    match socket {
        Ok(mut t) => {
            let ended = t.until(s.job_timeout, |m| trace::is_finished(m, &id)).await;
            if ended == Ended::Seen {
                s.trace_probe(run.trace, &client_id, &id, t)?;
            } else {
                s.skip(
                    run.trace,
                    format!("the WebSocket trace did not end ({ended:?})"),
                );
            }
        }
        Err(e) => s.skip(run.trace, format!("no WebSocket: {e}")),
    }
    s.wait_for("the prompt's history entry", InHistory(&id))
        .await?;
    Ok(Some(id))
}

/// Probes that need an id the server did not give are skipped.
pub(super) async fn probe_with(
    s: &mut Session<'_>,
    name: &str,
    id: Option<&str>,
    needs: &str,
    request: impl FnOnce(&str) -> Request,
) -> Result<(), RecordError> {
    match id {
        Some(id) => {
            s.probe(name, request(id)).await?;
        }
        None => s.skip(name, format!("{needs} gave no prompt id")),
    }
    Ok(())
}

/// Probes that need nothing from earlier ones, in order.
pub(super) async fn probe_each(
    s: &mut Session<'_>,
    probes: impl IntoIterator<Item = (&'static str, Request)>,
) -> Result<(), RecordError> {
    for (name, request) in probes {
        s.probe(name, request).await?;
    }
    Ok(())
}

/// Runs every probe in order.
pub(crate) async fn run(s: &mut Session<'_>) -> Result<(), RecordError> {
    server_facts::run(s).await?;
    let runs = prompt_runs::run(s).await?;
    validation::run(s).await?;
    queue_control::run(s).await?;
    jobs_cancel::run(s).await?;
    listings::run(s, runs.cached.as_deref()).await?;
    outputs_and_interrupt::run(s).await?;
    files::run(s, runs.success_output.as_ref()).await?;
    userdata::run(s).await?;
    s.probe("settings", Request::get("/settings")).await?;
    s.probe("queue-final", Request::get("/queue")).await?;
    Ok(())
}

/// Submits a slow prompt outside the recording; its id, if accepted.
pub(super) async fn hidden_slow(
    s: &mut Session<'_>,
    client_id: &str,
    color: u32,
) -> Result<Option<String>, RecordError> {
    let resp = s
        .hidden(&submit(
            json!({"prompt": slow_prompt(color, "slow"), "client_id": client_id}),
        ))
        .await?;
    Ok(prompt_id_of(&resp))
}

pub(super) async fn wait_running(s: &mut Session<'_>, id: Option<&str>) -> Result<(), RecordError> {
    if let Some(id) = id {
        s.wait_for("a slow prompt to start", Running(id)).await?;
    }
    Ok(())
}

pub(super) async fn wait_idle(s: &mut Session<'_>) -> Result<(), RecordError> {
    s.wait_for("the queue to empty", Idle).await?;
    Ok(())
}
