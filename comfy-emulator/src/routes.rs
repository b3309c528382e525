//! The HTTP routes, answering in the recorded shapes of the emulated line.

use super::engine::{Done, Engine, Entry, Outcome, Submission};
use super::{userdata, validate, view, ws};
use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use comfy_adapter::Line;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Shared by every handler.
#[derive(Debug, Clone)]
pub(crate) struct App {
    /// The engine.
    pub(crate) engine: Arc<Engine>,
    /// The port served (for `argv`).
    pub(crate) port: u16,
    /// Ends WebSockets on stop.
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
}

type Q = Query<HashMap<String, String>>;

pub(super) fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

pub(super) fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, body)
}

fn empty_ok() -> Response {
    StatusCode::OK.into_response()
}

pub(super) fn server_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "500 Internal Server Error\n\nServer got itself in trouble",
    )
        .into_response()
}

/// A `text/plain` answer, as aiohttp's `web.Response(text=…)`.
pub(super) fn text_response(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_owned(),
    )
        .into_response()
}

fn not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::ALLOW, "GET,HEAD"),
        ],
        "405: Method Not Allowed",
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        "",
    )
        .into_response()
}

fn parse_object(body: &Bytes) -> Option<Map<String, Value>> {
    if body.is_empty() {
        return Some(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The router of one emulated server.
pub(crate) fn router(app: App) -> Router {
    let common = Router::new()
        .route("/system_stats", get(system_stats))
        .route("/features", get(features))
        .route("/object_info", get(object_info_all))
        .route("/object_info/{class}", get(object_info_one))
        .route("/prompt", post(submit).get(prompt_info))
        .route("/queue", get(queue).post(queue_control))
        .route("/history", get(history_all).post(history_control))
        .route("/history/{id}", get(history_one))
        .route("/interrupt", post(interrupt))
        .route("/free", post(free))
        .route("/view", get(view::view))
        .route(
            "/upload/image",
            post(view::upload_image).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/embeddings", get(embeddings))
        .route("/models", get(models))
        .route("/models/{folder}", get(models_in))
        .route("/extensions", get(extensions))
        .route("/users", get(userdata::users))
        .route(
            "/settings",
            get(userdata::settings).post(userdata::post_settings),
        )
        .route(
            "/settings/{id}",
            get(userdata::setting).post(userdata::post_setting),
        )
        .route("/userdata", get(userdata::list))
        .route(
            "/userdata/{file}",
            get(userdata::get)
                .post(userdata::post)
                .delete(userdata::delete)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/userdata/{file}/move/{dest}", post(userdata::move_file))
        .route("/v2/userdata", get(userdata::list_v2))
        .route("/ws", get(ws::upgrade));
    let mut jobs = Router::new()
        .route("/api/jobs/cancel", post(cancel_batch))
        .route("/api/jobs/{id}/cancel", post(cancel_one));
    if app.engine.profile.line != Line::Legacy {
        jobs = jobs
            .route("/api/jobs", get(jobs_list))
            .route("/api/jobs/{id}", get(job_by_id));
    }
    Router::new()
        .merge(common.clone())
        .nest("/api", common)
        .merge(jobs)
        .fallback(not_found)
        .with_state(app)
}

/// `max_upload_size` of `/features`: 100 MiB.
const MAX_UPLOAD: usize = 104_857_600;

async fn embeddings() -> Response {
    ok(json!([]))
}

async fn models(State(app): State<App>) -> Response {
    ok(json!(app.engine.profile.model_folders))
}

/// No models are installed: every known folder is empty.
async fn models_in(State(app): State<App>, Path(folder): Path<String>) -> Response {
    if app.engine.profile.model_folders.contains(&folder) {
        ok(json!([]))
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn extensions(State(app): State<App>) -> Response {
    ok(app.engine.profile.extensions.clone())
}

async fn system_stats(State(app): State<App>) -> Response {
    ok(app.engine.profile.system_stats_for_port(app.port))
}

async fn features(State(app): State<App>) -> Response {
    ok(app.engine.profile.features.clone())
}

async fn object_info_all(State(app): State<App>) -> Response {
    ok(Value::Object((*app.engine.classes).clone()))
}

async fn object_info_one(State(app): State<App>, Path(class): Path<String>) -> Response {
    let mut m = Map::new();
    if let Some(d) = app.engine.classes.get(&class) {
        m.insert(class, d.clone());
    }
    ok(Value::Object(m))
}

fn canonical_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

async fn submit(State(app): State<App>, body: Bytes) -> Response {
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
    let validated = match validate::validate(&engine.profile, &engine.classes, &prompt) {
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

/// Python truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

async fn prompt_info(State(app): State<App>) -> Response {
    let remaining = app.engine.lock().remaining();
    ok(json!({"exec_info": {"queue_remaining": remaining}}))
}

async fn queue(State(app): State<App>) -> Response {
    let st = app.engine.lock();
    let running: Vec<Value> = st.running.iter().map(Entry::tuple).collect();
    let pending: Vec<Value> = st.pending.iter().map(Entry::tuple).collect();
    ok(json!({"queue_running": running, "queue_pending": pending}))
}

fn id_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

async fn queue_control(State(app): State<App>, body: Bytes) -> Response {
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

async fn history_all(State(app): State<App>, Query(q): Q) -> Response {
    let max = match q.get("max_items") {
        None => None,
        Some(s) => match s.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return server_error(),
        },
    };
    let st = app.engine.lock();
    let len = st.history.len();
    // Python's `list(history)[-max_items:]` (0 keeps everything).
    let skip = match max {
        Some(m) if m > 0 => len.saturating_sub(usize::try_from(m).unwrap_or(usize::MAX)),
        Some(m) if m < 0 => usize::try_from(m.unsigned_abs())
            .unwrap_or(usize::MAX)
            .min(len),
        _ => 0,
    };
    let map: Map<String, Value> = st
        .history
        .iter()
        .skip(skip)
        .map(|d| (d.entry.id.clone(), d.history_item()))
        .collect();
    ok(Value::Object(map))
}

async fn history_one(State(app): State<App>, Path(id): Path<String>) -> Response {
    let st = app.engine.lock();
    let mut map = Map::new();
    if let Some(d) = st.done(&id) {
        map.insert(id, d.history_item());
    }
    ok(Value::Object(map))
}

async fn history_control(State(app): State<App>, body: Bytes) -> Response {
    let Some(body) = parse_object(&body) else {
        return server_error();
    };
    let mut st = app.engine.lock();
    if body.get("clear").and_then(Value::as_bool) == Some(true) {
        st.history.clear();
    }
    let ids = id_list(body.get("delete"));
    st.history.retain(|d| !ids.contains(&d.entry.id));
    drop(st);
    empty_ok()
}

async fn interrupt(State(app): State<App>, body: Bytes) -> Response {
    let body = parse_object(&body).unwrap_or_default();
    let target = body
        .get("prompt_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    app.engine.interrupt(target);
    empty_ok()
}

async fn free() -> Response {
    empty_ok()
}

/// `get_outputs_summary`: how many output items a job lists, and the one
/// to preview (a saved file first, else a temp one).
fn outputs_summary(app: &App, done: &Done) -> (usize, Option<Value>) {
    let mut count = 0;
    let mut preview = None;
    let mut fallback = None;
    let counts_text = app.engine.profile.counts_text_outputs();
    for (node, ui) in &done.outputs {
        for (media, items) in ui.as_object().into_iter().flatten() {
            if media == "animated" {
                continue;
            }
            for item in items.as_array().into_iter().flatten() {
                if !item.is_object() {
                    count += usize::from(counts_text);
                    continue;
                }
                count += 1;
                if preview.is_some() || item.get("filename").is_none() {
                    continue;
                }
                let mut p = item.clone();
                if let Some(o) = p.as_object_mut() {
                    o.insert("nodeId".into(), json!(node));
                    o.insert("mediaType".into(), json!(media));
                }
                if item.get("type").and_then(Value::as_str) == Some("output") {
                    preview = Some(p);
                } else if fallback.is_none() {
                    fallback = Some(p);
                }
            }
        }
    }
    (count, preview.or(fallback))
}

fn workflow_id(entry: &Entry) -> Option<Value> {
    entry
        .extra_data
        .get("extra_pnginfo")?
        .get("workflow")?
        .get("id")
        .cloned()
}

fn queued_job(app: &App, e: &Entry, status: &str) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(e.id));
    m.insert("status".into(), json!(status));
    m.insert("priority".into(), e.number.clone());
    m.insert("create_time".into(), json!(e.create_time));
    m.insert("outputs_count".into(), json!(0));
    if app.engine.profile.previewable_count() {
        m.insert("previewable_outputs_count".into(), json!(0));
    }
    if let Some(w) = workflow_id(e) {
        m.insert("workflow_id".into(), w);
    }
    Value::Object(m)
}

fn done_job(app: &App, d: &Done, full: bool) -> Value {
    let status = match d.outcome {
        Outcome::Success => "completed",
        Outcome::Error => "failed",
        Outcome::Interrupted if app.engine.profile.cancelled_status() => "cancelled",
        Outcome::Interrupted => "failed",
    };
    let mut m = Map::new();
    m.insert("id".into(), json!(d.entry.id));
    m.insert("status".into(), json!(status));
    m.insert("priority".into(), d.entry.number.clone());
    m.insert("create_time".into(), json!(d.entry.create_time));
    m.insert(
        "execution_start_time".into(),
        json!(d.entry.start_time.unwrap_or(d.entry.create_time)),
    );
    m.insert("execution_end_time".into(), json!(d.end_time));
    if let Some(e) = &d.error {
        m.insert("execution_error".into(), e.clone());
    }
    let (count, preview) = outputs_summary(app, d);
    m.insert("outputs_count".into(), json!(count));
    if app.engine.profile.previewable_count() {
        let previewable = d
            .outputs
            .values()
            .filter_map(Value::as_object)
            .flat_map(|ui| ui.values())
            .filter_map(Value::as_array)
            .flatten()
            .filter(|i| i.get("filename").is_some())
            .count();
        m.insert("previewable_outputs_count".into(), json!(previewable));
    }
    if let Some(p) = preview {
        m.insert("preview_output".into(), p);
    }
    if let Some(w) = workflow_id(&d.entry) {
        m.insert("workflow_id".into(), w);
    }
    if full {
        m.insert("outputs".into(), Value::Object(d.outputs.clone()));
        m.insert("execution_status".into(), d.status());
        m.insert(
            "workflow".into(),
            json!({"prompt": d.entry.prompt, "extra_data": d.entry.extra_data}),
        );
    }
    Value::Object(m)
}

fn find_job(app: &App, id: &str, full: bool) -> Option<Value> {
    let st = app.engine.lock();
    if let Some(r) = st.running.as_ref().filter(|r| r.id == id) {
        return Some(queued_job(app, r, "in_progress"));
    }
    if let Some(p) = st.pending.iter().find(|p| p.id == id) {
        return Some(queued_job(app, p, "pending"));
    }
    st.done(id).map(|d| done_job(app, d, full))
}

async fn job_by_id(State(app): State<App>, Path(id): Path<String>) -> Response {
    match find_job(&app, &id, true) {
        Some(j) => ok(j),
        None => json_response(StatusCode::NOT_FOUND, json!({"error": "Job not found"})),
    }
}

async fn jobs_list(State(app): State<App>, Query(q): Q) -> Response {
    let bad = |msg: &str| json_response(StatusCode::BAD_REQUEST, json!({"error": msg}));
    let limit = match q.get("limit") {
        None => None,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => Some(n),
            _ => return bad("limit must be a positive integer"),
        },
    };
    let offset = match q.get("offset") {
        None => 0,
        Some(s) => match s.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return bad("offset must be a non-negative integer"),
        },
    };
    let mut valid = vec!["pending", "in_progress", "completed", "failed"];
    if app.engine.profile.cancelled_status() {
        valid.push("cancelled");
    }
    let statuses: Option<Vec<String>> = q
        .get("status")
        .map(|s| s.split(',').map(|x| x.trim().to_owned()).collect());
    if let Some(st) = &statuses
        && let Some(badone) = st.iter().find(|s| !valid.contains(&s.as_str()))
    {
        return bad(&format!(
            "Invalid status value(s): {badone}. Valid values: {}",
            valid.join(", ")
        ));
    }
    let mut all: Vec<(i64, Value)> = {
        let st = app.engine.lock();
        let mut v: Vec<(i64, Value)> = Vec::new();
        if let Some(r) = &st.running {
            v.push((r.create_time, queued_job(&app, r, "in_progress")));
        }
        for p in st.pending.iter() {
            v.push((p.create_time, queued_job(&app, p, "pending")));
        }
        for d in &st.history {
            v.push((d.entry.create_time, done_job(&app, d, false)));
        }
        v
    };
    if let Some(st) = &statuses {
        all.retain(|(_, j)| {
            j.get("status")
                .and_then(Value::as_str)
                .is_some_and(|s| st.iter().any(|x| x == s))
        });
    }
    if q.get("sort_order").map(String::as_str) == Some("asc") {
        all.sort_by_key(|(t, _)| *t);
    } else {
        all.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    }
    let total = all.len();
    let jobs: Vec<Value> = all
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(|(_, j)| j)
        .collect();
    let has_more = offset + jobs.len() < total;
    ok(
        json!({"jobs": jobs, "pagination": {"offset": offset, "limit": limit, "total": total, "has_more": has_more}}),
    )
}

fn cancel_prompt(app: &App, id: &str) -> bool {
    if app.engine.delete_pending(&[id.to_owned()]) > 0 {
        return true;
    }
    app.engine.interrupt(Some(id))
}

async fn cancel_one(State(app): State<App>, Path(id): Path<String>) -> Response {
    if app.engine.profile.line != Line::CancelApi {
        return not_allowed();
    }
    ok(json!({"cancelled": cancel_prompt(&app, &id)}))
}

async fn cancel_batch(State(app): State<App>, body: Bytes) -> Response {
    if app.engine.profile.line != Line::CancelApi {
        return not_allowed();
    }
    let Some(body) = parse_object(&body) else {
        return server_error();
    };
    let ids = id_list(body.get("job_ids"));
    let invalid: Vec<&String> = ids.iter().filter(|i| !canonical_uuid(i)).collect();
    if !invalid.is_empty() {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "job_ids contains invalid id(s)", "invalid_ids": invalid}),
        );
    }
    let mut any = false;
    for id in &ids {
        any |= cancel_prompt(&app, id);
    }
    ok(json!({"cancelled": any}))
}
