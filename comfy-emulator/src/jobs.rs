//! The jobs API (0.6+): listing, one job, and the cancel endpoints
//! (0.26+; 405 before).

use super::app::App;
use super::engine::{Done, Entry, Outcome};
use super::reply::{json_response, not_allowed, ok, server_error};
use super::request::{Q, canonical_uuid, id_list, parse_object};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use comfy_adapter::Line;
use serde_json::{Map, Value, json};

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

pub(crate) async fn job_by_id(State(app): State<App>, Path(id): Path<String>) -> Response {
    match find_job(&app, &id, true) {
        Some(j) => ok(j),
        None => json_response(StatusCode::NOT_FOUND, json!({"error": "Job not found"})),
    }
}

pub(crate) async fn jobs_list(State(app): State<App>, Query(q): Q) -> Response {
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

pub(crate) async fn cancel_one(State(app): State<App>, Path(id): Path<String>) -> Response {
    if app.engine.profile.line != Line::CancelApi {
        return not_allowed();
    }
    ok(json!({"cancelled": cancel_prompt(&app, &id)}))
}

pub(crate) async fn cancel_batch(State(app): State<App>, body: Bytes) -> Response {
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
