//! `/view` and `/upload/image` over the emulator's `input/`, `output/` and
//! `temp/` folders, with ComfyUI's checks: a file name with `..` or a
//! leading `/` is a 400, a subfolder that leaves the folder a 403, a missing
//! file a 404; an upload without `overwrite` gets ` (1)`, ` (2)`… unless
//! the same bytes are already there.

use super::app::App;
use super::files::{Files, guess_type, inside, multipart};
use super::reply::{ok, server_error};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;

fn status(code: StatusCode) -> Response {
    code.into_response()
}

/// `name [output]` → (`name`, `output`), as `folder_paths.annotated_filepath`.
fn annotated(name: &str) -> (&str, Option<&str>) {
    for kind in ["output", "input", "temp"] {
        if let Some(stem) = name.strip_suffix(&format!(" [{kind}]")) {
            return (stem, Some(kind));
        }
    }
    (name, None)
}

/// `GET /view?filename=…[&subfolder=…][&type=output|input|temp]`.
pub(super) async fn view(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(raw) = q.get("filename") else {
        return status(StatusCode::NOT_FOUND);
    };
    let (filename, annotated_kind) = annotated(raw);
    if filename.is_empty() || filename.starts_with('/') || filename.contains("..") {
        return status(StatusCode::BAD_REQUEST);
    }
    let files: &Files = &app.engine.files;
    let kind = annotated_kind.unwrap_or_else(|| q.get("type").map_or("output", String::as_str));
    let Some(mut dir) = files.dir_of(kind) else {
        return status(StatusCode::BAD_REQUEST);
    };
    if let Some(sub) = q.get("subfolder") {
        match inside(&dir, sub) {
            Some(d) => dir = d,
            None => return status(StatusCode::FORBIDDEN),
        }
    }
    let base = filename.rsplit('/').next().unwrap_or(filename);
    let path = dir.join(base);
    if !path.is_file() {
        return status(StatusCode::NOT_FOUND);
    }
    let Ok(bytes) = std::fs::read(&path) else {
        return status(StatusCode::NOT_FOUND);
    };
    let ct = match guess_type(base) {
        Some("text/html" | "text/javascript" | "text/css") | None => "application/octet-stream",
        Some(t) => t,
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ct.to_owned()),
            (header::CONTENT_DISPOSITION, format!("filename=\"{base}\"")),
        ],
        bytes,
    )
        .into_response()
}

/// `POST /upload/image` (multipart: `image`, `type`, `subfolder`, `overwrite`).
pub(super) async fn upload_image(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(parts) = multipart(ct, &body) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let text = |name: &str| {
        parts
            .iter()
            .find(|p| p.name == name && p.filename.is_none())
            .map(|p| String::from_utf8_lossy(&p.data).into_owned())
    };
    let Some(image) = parts
        .iter()
        .find(|p| p.name == "image" && p.filename.is_some())
    else {
        return status(StatusCode::BAD_REQUEST);
    };
    let filename = image.filename.clone().unwrap_or_default();
    if filename.is_empty() {
        return status(StatusCode::BAD_REQUEST);
    }
    let kind = text("type").unwrap_or_else(|| "input".to_owned());
    // ComfyUI fails with an unbound local on any other type.
    let Some(upload_dir) = app.engine.files.dir_of(&kind) else {
        return server_error();
    };
    let subfolder = text("subfolder").unwrap_or_default();
    let Some(folder) = inside(&upload_dir, &subfolder) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let Some(mut path) = inside(&folder, &filename) else {
        return status(StatusCode::BAD_REQUEST);
    };
    if std::fs::create_dir_all(&folder).is_err() {
        return server_error();
    }
    let mut name = filename.clone();
    let mut duplicate = false;
    if !matches!(text("overwrite").as_deref(), Some("true" | "1")) {
        let (stem, ext) = match filename.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s.to_owned(), format!(".{e}")),
            _ => (filename.clone(), String::new()),
        };
        let mut i = 1;
        while path.exists() {
            if std::fs::read(&path).is_ok_and(|b| b == image.data) {
                duplicate = true;
                break;
            }
            name = format!("{stem} ({i}){ext}");
            path = PathBuf::from(&folder).join(&name);
            i += 1;
        }
    }
    if !duplicate && std::fs::write(&path, &image.data).is_err() {
        return server_error();
    }
    ok(json!({"name": name, "subfolder": subfolder, "type": kind}))
}
