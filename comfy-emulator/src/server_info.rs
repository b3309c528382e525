//! What the server is: system stats, features, the node catalogue, model
//! folders, embeddings, extensions.

use super::app::App;
use super::reply::{empty_ok, ok};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

pub(crate) async fn embeddings() -> Response {
    ok(json!([]))
}

pub(crate) async fn models(State(app): State<App>) -> Response {
    ok(json!(app.engine.profile.model_folders))
}

/// The placeholder files of a known folder (none unless configured).
pub(crate) async fn models_in(State(app): State<App>, Path(folder): Path<String>) -> Response {
    if app.engine.profile.model_folders.contains(&folder) {
        ok(json!(model_files(&app, &folder)))
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// The recorded list, or the served frontend build's scripts.
pub(crate) async fn extensions(State(app): State<App>) -> Response {
    match &app.frontend {
        Some(f) => ok(f.extensions.clone()),
        None => ok(app.engine.profile.extensions.clone()),
    }
}

pub(crate) async fn system_stats(State(app): State<App>) -> Response {
    ok(app.engine.profile.system_stats_for_port(app.port))
}

pub(crate) async fn features(State(app): State<App>) -> Response {
    ok(app.engine.profile.features.clone())
}

pub(crate) async fn object_info_all(State(app): State<App>) -> Response {
    ok(Value::Object((*app.engine.classes).clone()))
}

pub(crate) async fn object_info_one(State(app): State<App>, Path(class): Path<String>) -> Response {
    let mut m = Map::new();
    if let Some(d) = app.engine.classes.get(&class) {
        m.insert(class, d.clone());
    }
    ok(Value::Object(m))
}

pub(crate) async fn free() -> Response {
    empty_ok()
}

/// A folder's placeholder files, sorted as ComfyUI lists them.
pub(crate) fn model_files(app: &App, folder: &str) -> Vec<String> {
    let mut files: Vec<String> = app.models.get(folder).cloned().unwrap_or_default();
    files.sort();
    files.dedup();
    files
}
