//! The probe suite, in the order of the recorded sets: each step is one
//! `NNN-name.json`. Requests are the recorded ones, byte for byte, except
//! the ids the server hands out (prompt ids, client ids).

use super::RecordError;
use super::capture::{Request, RequestBody};
use super::session::{Idle, InHistory, Running, Session, prompt_id_of};
use super::trace::{self, Ended, Trace};
use comfy_adapter::error::ComfyError;
use serde_json::{Value, json};

/// Probes in the suite (the recorded sets hold this many files).
pub const PROBE_COUNT: usize = 118;

/// Userdata files the suite writes (encoded as in the URL); a server that
/// already has one is not recorded.
pub(crate) const USERDATA_WRITTEN: &[&str] = &[
    "workflows%2Ffixture_template.json",
    "workflows%2Fteam%2Fnested%20name.json",
    "workflows%2Ffull_info.json",
    "workflows%2Frenamed.json",
];

/// The workflow file the userdata probes write, as the recordings sent it.
const WORKFLOW_FILE: &str = r#"{"last_node_id": 2, "last_link_id": 1, "nodes": [], "links": [], "groups": [], "config": {}, "extra": {}, "version": 0.4}"#;

/// A 1×1 white PNG for the upload probe.
const PIXEL_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xff, 0xff, 0x3f,
    0x00, 0x05, 0xfe, 0x02, 0xfe, 0x0d, 0xef, 0x46, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The nodes the single-node `object_info` probes ask for.
const SINGLE_NODES: &[&str] = &[
    "EmptyImage",
    "SaveImage",
    "LoadImage",
    "KSampler",
    "CheckpointLoaderSimple",
    "PreviewImage",
    "LoraLoader",
];

const ZERO_ID: &str = "00000000-0000-0000-0000-000000000000";

/// The multipart form of the upload probe.
pub(crate) fn upload_form() -> Result<reqwest::multipart::Form, ComfyError> {
    let part = reqwest::multipart::Part::bytes(PIXEL_PNG)
        .file_name("fixture_upload.png")
        .mime_str("image/png")
        .map_err(|e| ComfyError::InvalidInput {
            field: "upload",
            reason: e.to_string(),
        })?;
    Ok(reqwest::multipart::Form::new()
        .part("image", part)
        .text("type", "input")
        .text("overwrite", "true"))
}

fn new_client_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// EmptyImage → SaveImage, with `_meta` titles as the frontend sends them.
fn image_prompt(color: u32, prefix: &str) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color}, "_meta": {"title": "EmptyImage"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}, "_meta": {"title": "Save Image"}},
    })
}

/// Eight 4096² images scaled and saved: seconds of work on a CPU, so the
/// queue probes see it running and waiting.
fn slow_prompt(color: u32, prefix: &str) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 4096, "height": 4096, "batch_size": 8, "color": color}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bicubic", "width": 4000, "height": 4000, "crop": "disabled"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    })
}

/// Every output kind core nodes make without models.
fn mixed_outputs_prompt() -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 4, "color": 255}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8.0}},
        "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "video/fixture", "format": "auto", "codec": "auto"}},
        "4": {"class_type": "EmptyAudio", "inputs": {"duration": 0.5, "sample_rate": 8000, "channels": 1}},
        "5": {"class_type": "SaveAudio", "inputs": {"audio": ["4", 0], "filename_prefix": "audio/fixture"}},
        "6": {"class_type": "PrimitiveString", "inputs": {"value": "hello from a fixture"}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
        "8": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["1", 0], "filename_prefix": "anim_fixture", "fps": 6.0, "lossless": false, "quality": 50, "method": "default"}},
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    })
}

fn submit(body: Value) -> Request {
    Request::post("/prompt", RequestBody::Json(body))
}

fn post_json(path: &str, body: Value) -> Request {
    Request::post(path, RequestBody::Json(body))
}

fn history(id: &str) -> Request {
    Request::get(format!("/history/{id}"))
}

fn job(id: &str) -> Request {
    Request::get(format!("/api/jobs/{id}"))
}

fn workflow_post(path: &str) -> Request {
    Request::post(
        format!("/userdata/{path}"),
        RequestBody::Text(WORKFLOW_FILE.into()),
    )
}

/// A prompt that runs with a WebSocket trace: the trace probe, then the
/// probes that read its result. Returns the prompt id when it was accepted.
struct TracedRun {
    submit: &'static str,
    trace: &'static str,
}

async fn traced_run(
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
async fn probe_with(
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
async fn probe_each(
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
    server_facts(s).await?;
    let runs = prompt_runs(s).await?;
    validation(s).await?;
    queue_control(s).await?;
    jobs_cancel(s).await?;
    listings(s, runs.cached.as_deref()).await?;
    outputs_and_interrupt(s).await?;
    files(s, runs.success_output.as_ref()).await?;
    userdata(s).await?;
    s.probe("settings", Request::get("/settings")).await?;
    s.probe("queue-final", Request::get("/queue")).await?;
    Ok(())
}

/// 001–022: what the server is, its catalogue, an empty queue and history.
async fn server_facts(s: &mut Session<'_>) -> Result<(), RecordError> {
    probe_each(
        s,
        [
            ("system_stats", Request::get("/system_stats")),
            ("api-system_stats", Request::get("/api/system_stats")),
            ("features", Request::get("/features")),
            ("embeddings", Request::get("/embeddings")),
            ("models-list", Request::get("/models")),
            ("models-checkpoints", Request::get("/models/checkpoints")),
            ("extensions", Request::get("/extensions")),
            ("users", Request::get("/users")),
        ],
    )
    .await?;
    for node in SINGLE_NODES {
        s.probe(
            &format!("object_info-{node}"),
            Request::get(format!("/object_info/{node}")),
        )
        .await?;
    }
    probe_each(
        s,
        [
            ("object_info-summary", Request::get("/object_info")),
            (
                "object_info-unknown",
                Request::get("/object_info/NoSuchNode"),
            ),
            ("object_info-full", Request::get("/object_info")),
            ("queue-empty", Request::get("/queue")),
            ("history-empty", Request::get("/history")),
            ("history-unknown-id", history(ZERO_ID)),
            ("jobs-empty", Request::get("/api/jobs")),
        ],
    )
    .await
}

/// What later probes need from the first runs.
struct Runs {
    cached: Option<String>,
    /// `(filename, subfolder)` of the first image the success run saved.
    success_output: Option<(String, String)>,
}

/// 023–036: a run, the same run fully cached, a run that fails, a chosen
/// prompt id, a front-of-queue prompt.
async fn prompt_runs(s: &mut Session<'_>) -> Result<Runs, RecordError> {
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

/// 037–045: every kind of validation failure.
async fn validation(s: &mut Session<'_>) -> Result<(), RecordError> {
    s.probe("prompt-no-prompt", submit(json!({"client_id": "x"})))
        .await?;
    s.probe(
        "prompt-unknown-class",
        submit(json!({"prompt": {"1": {"class_type": "DoesNotExist", "inputs": {}}}})),
    )
    .await?;
    s.probe(
        "prompt-missing-class_type",
        submit(json!({"prompt": {"1": {"inputs": {}}}})),
    )
    .await?;
    s.probe(
        "prompt-no-outputs",
        submit(json!({"prompt": {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}}}})),
    )
    .await?;
    let mut below_min = image_prompt(0, "fixture_bad");
    below_min["1"]["inputs"]["width"] = json!(0);
    s.probe(
        "prompt-value-smaller-than-min",
        submit(json!({"prompt": below_min})),
    )
    .await?;
    let mut missing = image_prompt(0, "fixture_bad2");
    if let Some(inputs) = missing["1"]["inputs"].as_object_mut() {
        inputs.shift_remove("height");
    }
    s.probe(
        "prompt-required-input-missing",
        submit(json!({"prompt": missing})),
    )
    .await?;
    s.probe(
        "prompt-model-not-found",
        submit(json!({"prompt": {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux2_klein_9b.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
            "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
            "4": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0], "latent_image": ["3", 0], "seed": 1, "steps": 4, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
            "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
            "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "klein"}},
        }})),
    )
    .await?;
    let mut bad_link = image_prompt(0, "fixture_bad4");
    bad_link["2"]["inputs"]["images"] = json!(["99", 0]);
    s.probe(
        "prompt-bad-linked-input",
        submit(json!({"prompt": bad_link})),
    )
    .await?;
    s.probe(
        "prompt-malformed-json",
        Request::post("/prompt", RequestBody::Text("{not json".into())),
    )
    .await?;
    Ok(())
}

/// Submits a slow prompt outside the recording; its id, if accepted.
async fn hidden_slow(
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

async fn wait_running(s: &mut Session<'_>, id: Option<&str>) -> Result<(), RecordError> {
    if let Some(id) = id {
        s.wait_for("a slow prompt to start", Running(id)).await?;
    }
    Ok(())
}

async fn wait_idle(s: &mut Session<'_>) -> Result<(), RecordError> {
    s.wait_for("the queue to empty", Idle).await?;
    Ok(())
}

/// 046–062: three slow prompts; the queue while busy; delete a pending
/// one, interrupt the running one, then everything; clear.
async fn queue_control(s: &mut Session<'_>) -> Result<(), RecordError> {
    wait_idle(s).await?;
    let client = new_client_id();
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
    wait_running(s, first.as_deref()).await?;
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

/// 063–070: the jobs cancel API (405 before 0.26; the prompts then run to
/// the end, as they did in the recordings).
async fn jobs_cancel(s: &mut Session<'_>) -> Result<(), RecordError> {
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

/// 071–080: history and jobs listings, paging, bad parameters, deletion.
async fn listings(s: &mut Session<'_>, cached: Option<&str>) -> Result<(), RecordError> {
    let jobs = || Request::get("/api/jobs");
    probe_each(
        s,
        [
            (
                "history-max_items-2",
                Request::get("/history").query("max_items", "2"),
            ),
            (
                "history-bad-max_items",
                Request::get("/history").query("max_items", "abc"),
            ),
            ("jobs-list", jobs().query("limit", "3")),
            (
                "jobs-list-asc-offset",
                jobs()
                    .query("limit", "2")
                    .query("offset", "1")
                    .query("sort_order", "asc"),
            ),
            ("jobs-bad-status", jobs().query("status", "running")),
            ("jobs-bad-limit", jobs().query("limit", "0")),
            ("jobs-unknown-id", job(ZERO_ID)),
            ("jobs-without-api-prefix", Request::get("/jobs")),
        ],
    )
    .await?;
    probe_with(s, "history-delete-one", cached, "run-cached-submit", |id| {
        post_json("/history", json!({"delete": [id]}))
    })
    .await?;
    probe_with(
        s,
        "history-after-delete-one",
        cached,
        "run-cached-submit",
        history,
    )
    .await?;
    Ok(())
}

/// 081–088: every output kind in one prompt; a run interrupted while it
/// saves, traced on the WebSocket.
async fn outputs_and_interrupt(s: &mut Session<'_>) -> Result<(), RecordError> {
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
    // Interrupt while the last node (SaveImage) runs, as the recordings did.
    match socket.as_mut() {
        Some(t) => {
            t.until(s.job_timeout, |m| trace::is_executing(m, &id, "3"))
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

/// 089–092: `/view` of an output, a missing file, a traversal; an upload.
async fn files(s: &mut Session<'_>, output: Option<&(String, String)>) -> Result<(), RecordError> {
    match output {
        Some((filename, subfolder)) => {
            s.probe(
                "view-output-image",
                Request::get("/view")
                    .query("filename", filename.clone())
                    .query("subfolder", subfolder.clone())
                    .query("type", "output"),
            )
            .await?;
        }
        None => s.skip("view-output-image", "the success run listed no image"),
    }
    s.probe(
        "view-missing",
        Request::get("/view")
            .query("filename", "nope.png")
            .query("type", "output"),
    )
    .await?;
    s.probe(
        "view-traversal",
        Request::get("/view")
            .query("filename", "../../etc/passwd")
            .query("type", "output"),
    )
    .await?;
    s.probe(
        "upload-image",
        Request::post(
            "/upload/image",
            RequestBody::Upload {
                description:
                    "multipart: image=fixture_upload.png (1x1 png), type=input, overwrite=true"
                        .into(),
            },
        ),
    )
    .await?;
    Ok(())
}

/// 093–116: userdata with encoded, nested and space-containing paths.
async fn userdata(s: &mut Session<'_>) -> Result<(), RecordError> {
    let list = || Request::get("/userdata").query("dir", "workflows");
    let move_to = |from: &str, to: &str| {
        Request::post(format!("/userdata/{from}/move/{to}"), RequestBody::None)
    };
    probe_each(
        s,
        [
            ("userdata-list-missing-dir", list()),
            (
                "userdata-post-encoded",
                workflow_post("workflows%2Ffixture_template.json"),
            ),
            (
                "userdata-post-nested",
                workflow_post("workflows%2Fteam%2Fnested%20name.json"),
            ),
            (
                "userdata-post-no-overwrite-conflict",
                workflow_post("workflows%2Ffixture_template.json").query("overwrite", "false"),
            ),
            (
                "userdata-post-full_info",
                workflow_post("workflows%2Ffull_info.json").query("full_info", "true"),
            ),
            ("userdata-list", list()),
            ("userdata-list-recurse", list().query("recurse", "true")),
            (
                "userdata-list-full_info",
                list().query("recurse", "true").query("full_info", "true"),
            ),
            (
                "userdata-list-split",
                list().query("recurse", "true").query("split", "true"),
            ),
            (
                "api-userdata-list",
                Request::get("/api/userdata").query("dir", "workflows"),
            ),
            ("v2-userdata-root", Request::get("/v2/userdata")),
            (
                "v2-userdata-workflows",
                Request::get("/v2/userdata").query("path", "workflows"),
            ),
            (
                "userdata-get-encoded",
                Request::get("/userdata/workflows%2Ffixture_template.json"),
            ),
            (
                "api-userdata-get-encoded",
                Request::get("/api/userdata/workflows%2Ffixture_template.json"),
            ),
            (
                "userdata-get-unencoded-slash",
                Request::get("/userdata/workflows/fixture_template.json"),
            ),
            (
                "userdata-get-nested-space",
                Request::get("/userdata/workflows%2Fteam%2Fnested%20name.json"),
            ),
            (
                "userdata-get-missing",
                Request::get("/userdata/workflows%2Fnope.json"),
            ),
            (
                "userdata-get-traversal",
                Request::get("/userdata/..%2F..%2Fcomfy.settings.json"),
            ),
            (
                "userdata-get-traversal-2",
                Request::get("/userdata/workflows%2F..%2F..%2F..%2Fserver.py"),
            ),
            (
                "userdata-move",
                move_to("workflows%2Ffull_info.json", "workflows%2Frenamed.json"),
            ),
            (
                "userdata-move-conflict",
                move_to(
                    "workflows%2Frenamed.json",
                    "workflows%2Ffixture_template.json",
                )
                .query("overwrite", "false"),
            ),
            (
                "userdata-delete",
                Request::delete("/userdata/workflows%2Frenamed.json"),
            ),
            (
                "userdata-delete-missing",
                Request::delete("/userdata/workflows%2Frenamed.json"),
            ),
            ("userdata-list-after", list().query("recurse", "true")),
        ],
    )
    .await
}
