//! The prompt queue: `POST /prompt` (numbering, validation, queueing),
//! `GET /prompt`, `/queue` and `/interrupt`.

use super::app::App;
use super::engine::{Entry, Submission};
use super::reply::{empty_ok, json_response, ok, server_error};
use super::request::{canonical_uuid, id_list, parse_object, truthy};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use comfy_adapter::Line;
use comfy_adapter::validate;
use serde_json::{Map, Value, json};

pub(crate) async fn submit(State(app): State<App>, body: Bytes) -> Response {
    let Some(mut body) = parse_object(&body) else {
        return server_error();
    };
    let engine = &app.engine;
    // Like `post_prompt`, the number is taken before anything is checked.
    let explicit = match body.get("number") {
        None => None,
        Some(v) => match v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        {
            Some(n) => Some(n),
            None => return server_error(),
        },
    };
    let front = body.get("front").is_some_and(truthy);
    let number = engine.number_for(explicit, front);
    let Some(Value::Object(prompt)) = body.remove("prompt") else {
        return json_response(StatusCode::BAD_REQUEST, validate::no_prompt());
    };
    let prompt_id = match body.get("prompt_id") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    if engine.profile.line == Line::CancelApi
        && let Some(p) = &prompt_id
        && !canonical_uuid(p)
    {
        return json_response(StatusCode::BAD_REQUEST, validate::invalid_prompt_id());
    }
    let exists = |f: &comfy_adapter::model::catalogue::FileName| engine.files.exists(f);
    let targets: Option<Vec<String>> = body
        .get("partial_execution_targets")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        });
    let validated = match validate::validate(
        &engine.profile.wording(),
        &engine.classes,
        &prompt,
        targets.as_deref(),
        &exists,
    ) {
        Ok(v) => v,
        Err(rejection) => return json_response(StatusCode::BAD_REQUEST, rejection),
    };
    let id = prompt_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let client_id = body
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let extra_data = match body.remove("extra_data") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    engine.enqueue(Submission {
        id: id.clone(),
        prompt,
        extra_data,
        outputs: validated.outputs,
        client_id,
        number: number.clone(),
    });
    ok(json!({"prompt_id": id, "number": number, "node_errors": validated.node_errors}))
}

pub(crate) async fn prompt_info(State(app): State<App>) -> Response {
    let remaining = app.engine.lock().remaining();
    ok(json!({"exec_info": {"queue_remaining": remaining}}))
}

pub(crate) async fn queue(State(app): State<App>) -> Response {
    let st = app.engine.lock();
    let running: Vec<Value> = st.running.iter().map(Entry::tuple).collect();
    let pending: Vec<Value> = st.pending.iter().map(Entry::tuple).collect();
    ok(json!({"queue_running": running, "queue_pending": pending}))
}

pub(crate) async fn queue_control(State(app): State<App>, body: Bytes) -> Response {
    let Some(body) = parse_object(&body) else {
        return server_error();
    };
    if body.get("clear").is_some_and(truthy) {
        app.engine.clear_pending();
    }
    let ids = id_list(body.get("delete"));
    if !ids.is_empty() {
        app.engine.delete_pending(&ids);
    }
    empty_ok()
}

pub(crate) async fn interrupt(State(app): State<App>, body: Bytes) -> Response {
    let body = parse_object(&body).unwrap_or_default();
    let target = body
        .get("prompt_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    app.engine.interrupt(target);
    empty_ok()
}
