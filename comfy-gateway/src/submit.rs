//! `POST /prompt`: the frontend's Run, sent to the queue as a job of this
//! user and answered as ComfyUI answers it (`{prompt_id, number,
//! node_errors}`, the prompt id being the job id).
//!
//! The job's `workflow` is ComfyUI's `/prompt` body (`prompt`,
//! `extra_data`, `partial_execution_targets`) with the Comfy account
//! secrets of `extra_data` sealed for the workers (`comfy-sealed`), or
//! removed when no sealing key is configured; `metadata.comfy` keeps what the queue
//! panel shows (number, client id, create time, output nodes, workflow id).
//! Files the prompt reads from the user's ComfyUI input folder (an uploaded
//! image in LoadImage) are fetched from that ComfyUI and attached to the job.

use crate::config::User;
use crate::error::GatewayError;
use crate::pool::{self, Verdict};
use crate::proxy::without_url;
use crate::shapes::{ComfyMeta, Submitted};
use crate::state::Gateway;
use axum::Json;
use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use comfy_adapter::model::catalogue::{FileName, NodeCatalogue};
use comfy_adapter::model::output::FolderType;
use comfy_adapter::validate::{self, Wording};
use comfy_queue_api::InputRef;
use serde_json::{Map, Value, json};

/// ComfyUI's 400 answer to a submit.
fn rejected(kind: &str, message: &str, details: &str, extra_info: Value) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "error": {"type": kind, "message": message, "details": details, "extra_info": extra_info},
            "node_errors": {},
        })),
    )
        .into_response()
}

/// Answers the frontend's submit.
pub async fn submit(gw: &Gateway, user: &User, req: Request) -> Response {
    let limit = gw.config().max_submit_bytes;
    let Ok(bytes) = to_bytes(req.into_body(), limit).await else {
        return GatewayError::TooLarge(limit).into_response();
    };
    let Ok(body) = serde_json::from_slice::<Value>(&bytes) else {
        return rejected(
            "invalid_json",
            "The request body is not JSON",
            "",
            json!({}),
        );
    };
    let Some(prompt) = body.get("prompt").and_then(Value::as_object).cloned() else {
        return (StatusCode::BAD_REQUEST, Json(validate::no_prompt())).into_response();
    };
    match accept(gw, user, &body, prompt).await {
        Ok(v) => Json(v).into_response(),
        Err(Reject::Comfy(body)) => (StatusCode::BAD_REQUEST, Json(body)).into_response(),
        Err(Reject::Gateway(e)) => e.into_response(),
    }
}

enum Reject {
    /// ComfyUI's own 400 body.
    Comfy(Value),
    Gateway(GatewayError),
}

impl From<GatewayError> for Reject {
    fn from(e: GatewayError) -> Self {
        Reject::Gateway(e)
    }
}

/// Whether `class` is an output node in `catalogue` (`output_node`).
fn is_output(catalogue: &NodeCatalogue, class: &str) -> bool {
    catalogue
        .node(class)
        .and_then(Result::ok)
        .and_then(|info| info.get("output_node").and_then(Value::as_bool))
        == Some(true)
}

/// The outputs to run and the `node_errors` of the answer: checked against
/// the catalogues of the GPU workers when they published one (a value no
/// worker accepts is ComfyUI's 400, naming the nodes), else against the
/// user's own ComfyUI (classes and output nodes only: its model lists are
/// not the pool's).
fn check(
    wording: &Wording,
    own: &NodeCatalogue,
    pool: &[pool::PoolCatalogue],
    prompt: &Map<String, Value>,
    targets: Option<&[String]>,
    inputs: &[Fetched],
) -> Result<(Vec<String>, Map<String, Value>), Reject> {
    let travels = |f: &FileName| {
        f.folder == FolderType::Input && inputs.iter().any(|i| i.name == f.relative())
    };
    match pool::judge(wording, pool, prompt, targets, &travels) {
        Verdict::Passed(v) => Ok((v.outputs, v.node_errors)),
        Verdict::Refused(body) => Err(Reject::Comfy(body)),
        Verdict::Unchecked => {
            validate::check_classes(wording, prompt, &|c| own.contains(c))
                .map_err(Reject::Comfy)?;
            let outputs = validate::output_nodes(prompt, &|c| is_output(own, c), targets)
                .map_err(Reject::Comfy)?;
            Ok((outputs, Map::new()))
        }
    }
}

async fn accept(
    gw: &Gateway,
    user: &User,
    body: &Value,
    prompt: Map<String, Value>,
) -> Result<Value, Reject> {
    let catalogue = gw.catalogue(user).await?;
    let wording = gw.upstream_info(user).await?.shapes.wording();
    let targets: Option<Vec<String>> = body
        .get("partial_execution_targets")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        });
    // Classes first, as ComfyUI: an unknown node is refused before any
    // file is fetched.
    validate::check_classes(&wording, &prompt, &|c| catalogue.contains(c))
        .map_err(Reject::Comfy)?;
    let fetched = fetch_inputs(gw, user, &catalogue, &prompt).await?;
    let pool = gw.pool().catalogues(gw.queue(), &user.id).await;
    let (outputs, node_errors) = check(
        &wording,
        &catalogue,
        &pool,
        &prompt,
        targets.as_deref(),
        &fetched,
    )?;
    let inputs = upload_inputs(gw, user, fetched).await?;

    let mut extra_data = body
        .get("extra_data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    match comfy_sealed::seal(&mut extra_data, gw.sealing_key(), &user.id) {
        Ok(comfy_sealed::Sealed::Removed(n)) => {
            tracing::info!(user = %user.id, secrets = n, "Comfy account secrets removed (no sealing_key_file): API nodes run signed out");
        }
        Ok(_) => {}
        Err(e) => return Err(Reject::Gateway(e.into())),
    }
    let client_id = body
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let front = body.get("front").and_then(Value::as_bool) == Some(true);
    let number = match body.get("number").and_then(Value::as_f64) {
        Some(n) => n,
        None if front => -(gw.next_number() as f64),
        None => gw.next_number() as f64,
    };
    let create_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let meta = ComfyMeta {
        number,
        client_id: client_id.clone(),
        create_time,
        outputs_to_execute: outputs,
        workflow_id: extra_data
            .get("extra_pnginfo")
            .and_then(|p| p.get("workflow"))
            .and_then(|w| w.get("id"))
            .cloned(),
    };
    let mut workflow = json!({"prompt": prompt, "extra_data": extra_data});
    if let Some(t) = body.get("partial_execution_targets") {
        workflow["partial_execution_targets"] = t.clone();
    }
    let key = body
        .get("prompt_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let metadata = meta.to_metadata();
    let submit = crate::queue::Submit {
        user_id: &user.id,
        workflow: &workflow,
        priority: front.then_some(1),
        metadata: &metadata,
        inputs: &inputs,
    };
    let job = gw.queue().submit(&submit, &key).await?;
    gw.remember(
        job.id,
        Submitted {
            prompt: workflow["prompt"].clone(),
            // As ComfyUI lists it: no credentials, sealed or not.
            extra_data: {
                let mut shown = workflow["extra_data"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                shown.remove(comfy_sealed::SEALED_FIELD);
                Value::Object(shown)
            },
        },
    );
    tracing::info!(user = %user.id, job = %job.id, inputs = inputs.len(), "prompt queued");
    Ok(
        json!({"prompt_id": job.id.to_string(), "number": number_json(number), "node_errors": node_errors}),
    )
}

fn number_json(n: f64) -> Value {
    if n.fract() == 0.0 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

/// An input-folder file the prompt names, fetched from the user's ComfyUI.
struct Fetched {
    /// Its name in the prompt, relative to the input folder.
    name: String,
    filename: String,
    content_type: Option<String>,
    bytes: bytes::Bytes,
}

/// Fetches every input-folder file the prompt names from the user's
/// ComfyUI. A file the user's ComfyUI does not have is left out: the
/// worker's ComfyUI may have it, and if not the prompt is refused as
/// ComfyUI refuses it (or the job fails with `missing_input`, naming it).
async fn fetch_inputs(
    gw: &Gateway,
    user: &User,
    catalogue: &NodeCatalogue,
    prompt: &Map<String, Value>,
) -> Result<Vec<Fetched>, GatewayError> {
    let base = gw.upstream(user)?;
    let mut fetched: Vec<Fetched> = Vec::new();
    for input in catalogue.file_inputs(prompt) {
        if input.file.folder != FolderType::Input {
            continue;
        }
        let name = input.file.relative();
        if fetched.iter().any(|f| f.name == name) {
            continue;
        }
        let mut url = base.join("view").map_err(|e| GatewayError::UpstreamDown {
            upstream: base.to_string(),
            reason: e.to_string(),
        })?;
        url.query_pairs_mut()
            .append_pair("filename", &input.file.filename)
            .append_pair("subfolder", &input.file.subfolder)
            .append_pair("type", "input");
        let resp = gw
            .upstream_request(user, reqwest::Method::GET, url)
            .send()
            .await
            .map_err(|e| GatewayError::UpstreamDown {
                upstream: base.to_string(),
                reason: without_url(&e),
            })?;
        if !resp.status().is_success() {
            tracing::info!(user = %user.id, file = %name, status = %resp.status(), "input not on the user's ComfyUI; left to the worker");
            continue;
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.bytes().await.map_err(|e| GatewayError::UpstreamDown {
            upstream: base.to_string(),
            reason: without_url(&e),
        })?;
        fetched.push(Fetched {
            name,
            filename: input.file.filename,
            content_type,
            bytes,
        });
    }
    Ok(fetched)
}

/// Uploads the fetched inputs to the queue, for the job to name.
async fn upload_inputs(
    gw: &Gateway,
    user: &User,
    fetched: Vec<Fetched>,
) -> Result<Vec<InputRef>, GatewayError> {
    let mut refs = Vec::with_capacity(fetched.len());
    for f in fetched {
        let uploaded = gw
            .queue()
            .upload(&user.id, &f.filename, f.content_type.as_deref(), f.bytes)
            .await?;
        refs.push(InputRef {
            sha256: uploaded.sha256,
            filename: f.name,
        });
    }
    Ok(refs)
}
