//! `POST /prompt`: the frontend's Run, sent to the queue as a job of this
//! user and answered as ComfyUI answers it (`{prompt_id, number,
//! node_errors}`, the prompt id being the job id).
//!
//! The job's `workflow` is ComfyUI's `/prompt` body (`prompt`,
//! `extra_data`, `partial_execution_targets`) with the Comfy account
//! secrets taken out of `extra_data`; `metadata.comfy` keeps what the queue
//! panel shows (number, client id, create time, output nodes, workflow id).
//! Files the prompt reads from the user's ComfyUI input folder (an uploaded
//! image in LoadImage) are fetched from that ComfyUI and attached to the job.

use crate::config::User;
use crate::error::GatewayError;
use crate::proxy::without_url;
use crate::shapes::{ComfyMeta, Submitted};
use crate::state::Gateway;
use axum::Json;
use axum::body::to_bytes;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use comfy_adapter::Line;
use comfy_adapter::model::catalogue::NodeCatalogue;
use comfy_adapter::model::output::FolderType;
use comfy_queue_api::InputRef;
use serde_json::{Map, Value, json};

/// Keys of `extra_data` that carry the user's Comfy account credentials:
/// never stored in the queue.
pub const SECRET_KEYS: [&str; 2] = ["api_key_comfy_org", "auth_token_comfy_org"];

/// ComfyUI's 400 answer to a submit.
fn rejected(kind: &str, message: &str, details: &str, extra_info: Value) -> Response {
    (
        axum::http::StatusCode::BAD_REQUEST,
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
        return rejected(
            "no_prompt",
            "No prompt provided",
            "No prompt provided",
            json!({}),
        );
    };
    match accept(gw, user, &body, prompt).await {
        Ok(v) => Json(v).into_response(),
        Err(Reject::Comfy {
            kind,
            message,
            details,
            extra_info,
        }) => rejected(kind, &message, &details, extra_info),
        Err(Reject::Gateway(e)) => e.into_response(),
    }
}

enum Reject {
    Comfy {
        kind: &'static str,
        message: String,
        details: String,
        extra_info: Value,
    },
    Gateway(GatewayError),
}

impl From<GatewayError> for Reject {
    fn from(e: GatewayError) -> Self {
        Reject::Gateway(e)
    }
}

/// The output nodes of `prompt` by the catalogue (`output_node`), in prompt order.
fn output_nodes(catalogue: &NodeCatalogue, prompt: &Map<String, Value>) -> Vec<String> {
    prompt
        .iter()
        .filter(|(_, n)| {
            n.get("class_type")
                .and_then(Value::as_str)
                .and_then(|c| catalogue.node(c))
                .and_then(Result::ok)
                .and_then(|info| info.get("output_node").and_then(Value::as_bool))
                == Some(true)
        })
        .map(|(id, _)| id.clone())
        .collect()
}

async fn accept(
    gw: &Gateway,
    user: &User,
    body: &Value,
    prompt: Map<String, Value>,
) -> Result<Value, Reject> {
    let catalogue = gw.catalogue(user).await?;
    let line = gw.upstream_info(user).await?.shapes.line();
    if let Some((id, class)) = prompt.iter().find_map(|(id, n)| {
        let class = n.get("class_type").and_then(Value::as_str)?;
        (!catalogue.contains(class)).then(|| (id.clone(), class.to_owned()))
    }) {
        // The two wordings of the recordings (fixture 038): before 0.26 and after.
        return Err(if line == Line::CancelApi {
            Reject::Comfy {
                kind: "missing_node_type",
                message: format!("Node '{class}' not found. The custom node may not be installed."),
                details: format!("Node ID '#{id}'"),
                extra_info: json!({"node_id": id, "class_type": class, "node_title": class}),
            }
        } else {
            Reject::Comfy {
                kind: "invalid_prompt",
                message: format!("Cannot execute because node {class} does not exist."),
                details: format!("Node ID '#{id}'"),
                extra_info: json!({}),
            }
        });
    }
    let mut outputs = output_nodes(&catalogue, &prompt);
    if let Some(targets) = body
        .get("partial_execution_targets")
        .and_then(Value::as_array)
    {
        let targets: Vec<String> = targets
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        if !targets.is_empty() {
            outputs.retain(|o| targets.contains(o));
        }
    }
    if outputs.is_empty() {
        return Err(Reject::Comfy {
            kind: "prompt_no_outputs",
            message: "Prompt has no outputs".into(),
            details: String::new(),
            extra_info: json!({}),
        });
    }
    let inputs = attach_inputs(gw, user, &catalogue, &prompt).await?;

    let mut extra_data = body
        .get("extra_data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for k in SECRET_KEYS {
        extra_data.remove(k);
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
            extra_data: workflow["extra_data"].clone(),
        },
    );
    tracing::info!(user = %user.id, job = %job.id, inputs = inputs.len(), "prompt queued");
    Ok(json!({"prompt_id": job.id.to_string(), "number": number_json(number), "node_errors": {}}))
}

fn number_json(n: f64) -> Value {
    if n.fract() == 0.0 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

/// Fetches every input-folder file the prompt names from the user's ComfyUI
/// and uploads it to the queue. A file the user's ComfyUI does not have is
/// left out: the worker's ComfyUI may have it, and if not the job fails with
/// `missing_input`, naming it.
async fn attach_inputs(
    gw: &Gateway,
    user: &User,
    catalogue: &NodeCatalogue,
    prompt: &Map<String, Value>,
) -> Result<Vec<InputRef>, GatewayError> {
    let base = gw.upstream(user)?;
    let mut refs: Vec<InputRef> = Vec::new();
    for input in catalogue.file_inputs(prompt) {
        if input.file.folder != FolderType::Input {
            continue;
        }
        let name = input.file.relative();
        if refs.iter().any(|r| r.filename == name) {
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
        let uploaded = gw
            .queue()
            .upload(
                &user.id,
                &input.file.filename,
                content_type.as_deref(),
                bytes,
            )
            .await?;
        refs.push(InputRef {
            sha256: uploaded.sha256,
            filename: name,
        });
    }
    Ok(refs)
}
