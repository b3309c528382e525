//! `/userdata`, `/v2/userdata`, `/settings` and `/users` of a single-user
//! server, backed by `user/default` in the emulator's temporary directory,
//! with ComfyUI's rules: the file name is one percent-encoded path segment
//! (decoded twice when it still holds a `%`), paths that leave the user's
//! folder are refused with 403, the parent folder is made on every access,
//! `overwrite=false` conflicts with 409, listings glob like Python's `glob`.

use super::app::App;
use super::files::inside;
use super::reply::{ok, server_error, text_response};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::time::SystemTime;

type Q = Query<HashMap<String, String>>;

fn status(code: StatusCode) -> Response {
    code.into_response()
}

/// The user's folder joined with `file` as ComfyUI resolves it, making the
/// parent folder; `None` when the path leaves the user's folder.
fn user_path(app: &App, file: Option<&str>) -> Option<PathBuf> {
    let root = app.engine.files.user_root();
    let path = match file {
        None => root,
        Some(f) => {
            let decoded;
            let f = if f.contains('%') {
                decoded = percent_encoding::percent_decode_str(f)
                    .decode_utf8_lossy()
                    .into_owned();
                decoded.as_str()
            } else {
                f
            };
            inside(&root, f)?
        }
    };
    if let Some(parent) = path.parent()
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        tracing::warn!(dir = %parent.display(), error = %e, "emulated user folder not made");
    }
    Some(path)
}

/// Resolves `file`, or the status to answer: 400 (empty), 403 (outside)
/// or, with `must_exist`, 404.
fn resolve(app: &App, file: &str, must_exist: bool) -> Result<PathBuf, StatusCode> {
    if file.is_empty() {
        return Err(StatusCode::BAD_REQUEST);
    }
    let path = user_path(app, Some(file)).ok_or(StatusCode::FORBIDDEN)?;
    if must_exist && !path.exists() {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(path)
}

fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn overwrite(q: &HashMap<String, String>) -> bool {
    q.get("overwrite").is_none_or(|v| v != "false")
}

fn secs(t: std::io::Result<SystemTime>) -> f64 {
    t.ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A time as this version writes it: float seconds, or int ms (0.26+).
fn time_value(app: &App, s: f64) -> Value {
    if app.engine.profile.userdata_times_ms() {
        json!((s * 1000.0) as i64)
    } else {
        json!(s)
    }
}

fn rel(path: &FsPath, base: &FsPath) -> String {
    path.strip_prefix(base)
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default()
}

/// `{path, size, modified, created}` of `path` relative to `base`.
fn file_info(app: &App, path: &FsPath, base: &FsPath) -> Value {
    let meta = std::fs::metadata(path).ok();
    let size = meta.as_ref().map_or(0, std::fs::Metadata::len);
    let modified = secs(meta.as_ref().map_or_else(
        || Err(std::io::Error::other("gone")),
        std::fs::Metadata::modified,
    ));
    let created = meta
        .as_ref()
        .and_then(|m| m.created().ok())
        .map_or(modified, |t| secs(Ok(t)));
    json!({
        "path": rel(path, base),
        "size": size,
        "modified": time_value(app, modified),
        "created": time_value(app, created),
    })
}

/// Sorted entries of `dir` without hidden ones (what `glob` matches with `*`).
fn entries(dir: &FsPath) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Files under `dir` in `glob` order: `*`, or `**/*` when recursing.
fn glob_files(dir: &FsPath, recurse: bool, out: &mut Vec<PathBuf>) {
    for p in entries(dir) {
        if p.is_file() {
            out.push(p);
        } else if recurse && p.is_dir() {
            glob_files(&p, true, out);
        }
    }
}

/// `GET /userdata?dir=…[&recurse][&full_info][&split]`.
pub(super) async fn list(State(app): State<App>, Query(q): Q) -> Response {
    let dir = q.get("dir").map(String::as_str).unwrap_or_default();
    if dir.is_empty() {
        return text_response(StatusCode::BAD_REQUEST, "Directory must be specified");
    }
    let Some(path) = user_path(&app, Some(dir)) else {
        return status(StatusCode::FORBIDDEN);
    };
    if !path.exists() {
        return text_response(StatusCode::NOT_FOUND, "Directory not found");
    }
    let (full_info, split) = (flag(&q, "full_info"), flag(&q, "split"));
    let mut files = Vec::new();
    glob_files(&path, flag(&q, "recurse"), &mut files);
    let items: Vec<Value> = files
        .iter()
        .map(|f| {
            if full_info {
                return file_info(&app, f, &path);
            }
            let r = rel(f, &path);
            if split {
                let mut v = vec![json!(r)];
                v.extend(r.split('/').map(|s| json!(s)));
                Value::Array(v)
            } else {
                json!(r)
            }
        })
        .collect();
    ok(Value::Array(items))
}

/// `GET /v2/userdata[?path=…]`: every folder and file below, folders
/// first, each by name.
pub(super) async fn list_v2(State(app): State<App>, Query(q): Q) -> Response {
    let Some(base) = user_path(&app, None) else {
        return text_response(StatusCode::FORBIDDEN, "Invalid user");
    };
    let sub = q.get("path").map(String::as_str).unwrap_or_default();
    let Some(target) = inside(&base, sub) else {
        return text_response(StatusCode::FORBIDDEN, "Path outside the user folder");
    };
    if !target.exists() {
        return text_response(StatusCode::NOT_FOUND, "Path not found");
    }
    if !target.is_dir() {
        return text_response(StatusCode::BAD_REQUEST, "Path is not a directory");
    }
    fn walk(dir: &FsPath, dirs: &mut Vec<PathBuf>, files: &mut Vec<PathBuf>) {
        let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        all.sort();
        for p in all {
            if p.is_dir() {
                dirs.push(p.clone());
                walk(&p, dirs, files);
            } else {
                files.push(p);
            }
        }
    }
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    walk(&target, &mut dirs, &mut files);
    let name = |p: &FsPath| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut items: Vec<(bool, String, Value)> = Vec::new();
    for d in &dirs {
        let n = name(d);
        items.push((
            false,
            n.to_lowercase(),
            json!({"name": n, "path": rel(d, &base), "type": "directory"}),
        ));
    }
    for f in &files {
        let n = name(f);
        let mut m = Map::new();
        m.insert("name".into(), json!(n));
        m.insert("path".into(), json!(rel(f, &base)));
        m.insert("type".into(), json!("file"));
        if let Ok(meta) = std::fs::metadata(f) {
            m.insert("size".into(), json!(meta.len()));
            m.insert("modified".into(), json!(secs(meta.modified())));
        }
        items.push((true, n.to_lowercase(), Value::Object(m)));
    }
    items.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    ok(Value::Array(items.into_iter().map(|i| i.2).collect()))
}

/// `GET /userdata/{file}`: the file as stored.
pub(super) async fn get(State(app): State<App>, Path(file): Path<String>) -> Response {
    let path = match resolve(&app, &file, true) {
        Ok(p) => p,
        Err(code) => return status(code),
    };
    let Ok(bytes) = std::fs::read(&path) else {
        return status(StatusCode::NOT_FOUND);
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ct = super::files::guess_type(&name).unwrap_or("application/octet-stream");
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, ct)], bytes).into_response();
    if app.engine.profile.userdata_attachment() {
        resp.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            header::HeaderValue::from_static("attachment"),
        );
    }
    resp
}

/// The answer to a write or move: the relative path, or its info.
fn written(app: &App, path: &FsPath, full_info: bool) -> Response {
    let base = app.engine.files.user_root();
    if full_info {
        ok(file_info(app, path, &base))
    } else {
        ok(json!(rel(path, &base)))
    }
}

/// `POST /userdata/{file}[?overwrite=false][&full_info=true]`.
pub(super) async fn post(
    State(app): State<App>,
    Path(file): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let path = match resolve(&app, &file, false) {
        Ok(p) => p,
        Err(code) => return status(code),
    };
    if !overwrite(&q) && path.exists() {
        return text_response(StatusCode::CONFLICT, "File already exists");
    }
    if std::fs::write(&path, &body).is_err() {
        return status(StatusCode::BAD_REQUEST);
    }
    written(&app, &path, flag(&q, "full_info"))
}

/// `DELETE /userdata/{file}`.
pub(super) async fn delete(State(app): State<App>, Path(file): Path<String>) -> Response {
    let path = match resolve(&app, &file, true) {
        Ok(p) => p,
        Err(code) => return status(code),
    };
    match std::fs::remove_file(&path) {
        Ok(()) => status(StatusCode::NO_CONTENT),
        Err(_) => server_error(),
    }
}

/// `POST /userdata/{file}/move/{dest}[?overwrite=false][&full_info=true]`.
pub(super) async fn move_file(
    State(app): State<App>,
    Path((file, dest)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    let source = match resolve(&app, &file, true) {
        Ok(p) => p,
        Err(code) => return status(code),
    };
    // ComfyUI goes on with the 403 response as the destination and fails.
    let Ok(dest) = resolve(&app, &dest, false) else {
        return server_error();
    };
    if !overwrite(&q) && dest.exists() {
        return text_response(StatusCode::CONFLICT, "File already exists");
    }
    let moved = std::fs::rename(&source, &dest)
        .or_else(|_| std::fs::copy(&source, &dest).and_then(|_| std::fs::remove_file(&source)));
    if moved.is_err() {
        return server_error();
    }
    written(&app, &dest, flag(&q, "full_info"))
}

/// `GET /users`: single-user mode; `migrated` once the user's folder exists.
pub(super) async fn users(State(app): State<App>) -> Response {
    let migrated = app.engine.files.user_root().exists();
    ok(json!({"storage": "server", "migrated": migrated}))
}

const SETTINGS: &str = "comfy.settings.json";

fn read_settings(app: &App) -> (PathBuf, Map<String, Value>) {
    let path = user_path(app, Some(SETTINGS)).unwrap_or_else(|| app.engine.files.user_root());
    let settings = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
        .unwrap_or_default();
    (path, settings)
}

fn write_settings(path: &FsPath, settings: Map<String, Value>) -> Response {
    let text = serde_json::to_string_pretty(&Value::Object(settings)).unwrap_or_default();
    match std::fs::write(path, text) {
        Ok(()) => status(StatusCode::OK),
        Err(_) => server_error(),
    }
}

/// `GET /settings`.
pub(super) async fn settings(State(app): State<App>) -> Response {
    ok(Value::Object(read_settings(&app).1))
}

/// `GET /settings/{id}`: the value, or `null`.
pub(super) async fn setting(State(app): State<App>, Path(id): Path<String>) -> Response {
    let (_, s) = read_settings(&app);
    ok(s.get(&id).cloned().unwrap_or(Value::Null))
}

/// `POST /settings`: merges a JSON object into the settings.
pub(super) async fn post_settings(State(app): State<App>, body: Bytes) -> Response {
    let Ok(new) = serde_json::from_slice::<Map<String, Value>>(&body) else {
        return server_error();
    };
    let (path, mut s) = read_settings(&app);
    s.extend(new);
    write_settings(&path, s)
}

/// `POST /settings/{id}`: sets one value.
pub(super) async fn post_setting(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return server_error();
    };
    let (path, mut s) = read_settings(&app);
    s.insert(id, value);
    write_settings(&path, s)
}
