//! 023–036: a run, the same run fully cached, a run that fails, a chosen
//! prompt id, a front-of-queue prompt.

use super::super::RecordError;
use super::super::capture::Request;
use super::super::session::Session;
use super::prompts::image_prompt;
use super::{TracedRun, history, job, probe_with, submit, traced_run};
use serde_json::{Value, json};

/// What later probes need from the first runs.
pub(super) struct Runs {
    pub(super) cached: Option<String>,
    /// `(filename, subfolder)` of the first image the success run saved.
    pub(super) success_output: Option<(String, String)>,
}

pub(super) async fn run(s: &mut Session<'_>) -> Result<Runs, RecordError> {
    let ok = traced_run(
        s,
        TracedRun {
            submit: "run-success-submit",
            trace: "ws-run-success",
        },
        image_prompt(0, "fixture_ok"),
        Some(json!({"extra_pnginfo": {"workflow": {"id": "wf-fixture-1"}}})),
    )
    .await?;
    let ok = ok.as_deref();
    let mut success_output = None;
    match ok {
        Some(id) => {
            let resp = s.probe("history-by-id-success", history(id)).await?;
            success_output = first_image(&resp.body, id);
        }
        None => s.skip(
            "history-by-id-success",
            "run-success-submit gave no prompt id",
        ),
    }
    probe_with(
        s,
        "api-history-by-id-success",
        ok,
        "run-success-submit",
        |id| Request::get(format!("/api/history/{id}")),
    )
    .await?;
    probe_with(s, "jobs-by-id-completed", ok, "run-success-submit", job).await?;

    let cached = traced_run(
        s,
        TracedRun {
            submit: "run-cached-submit",
            trace: "ws-run-cached",
        },
        image_prompt(0, "fixture_ok"),
        None,
    )
    .await?;
    probe_with(
        s,
        "history-by-id-cached",
        cached.as_deref(),
        "run-cached-submit",
        history,
    )
    .await?;

    let failed = traced_run(
        s,
        TracedRun {
            submit: "run-execution-error-submit",
            trace: "ws-run-execution-error",
        },
        image_prompt(7, "../../outside"),
        None,
    )
    .await?;
    let failed = failed.as_deref();
    probe_with(
        s,
        "history-by-id-execution-error",
        failed,
        "run-execution-error-submit",
        history,
    )
    .await?;
    probe_with(
        s,
        "jobs-by-id-failed",
        failed,
        "run-execution-error-submit",
        job,
    )
    .await?;

    s.probe(
        "prompt-with-prompt_id-and-number",
        submit(json!({"prompt": image_prompt(3, "fixture_pid"), "prompt_id": "fixture-prompt-id-0001", "number": 5})),
    )
    .await?;
    s.probe(
        "prompt-front",
        submit(json!({"prompt": image_prompt(4, "fixture_front"), "front": true})),
    )
    .await?;
    Ok(Runs {
        cached,
        success_output,
    })
}

/// `(filename, subfolder)` of the first image in a history answer.
fn first_image(body: &[u8], id: &str) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let outputs = v.get(id)?.get("outputs")?.as_object()?;
    outputs.values().find_map(|o| {
        let img = o.get("images")?.as_array()?.first()?;
        Some((
            img.get("filename")?.as_str()?.to_owned(),
            img.get("subfolder")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ))
    })
}
