//! A frontend build (the `static/` folder of a `comfyui-frontend-package`
//! wheel) served as ComfyUI serves its web root: `GET /` answers
//! `index.html`, any other `GET`/`HEAD` that no API route takes answers the
//! file under the folder with its content type, and everything else (a
//! missing file, a path that would leave the folder, another method) is the
//! emulator's usual 404. Without a folder every such request is that 404.
//!
//! `/extensions` then lists the build's `extensions/**/*.js`, as ComfyUI
//! globs its web root (the recorded list is that of the frontend the
//! release pins; 1.58.1 on 0.33.0 lists 68 scripts, not 0.33.0's 36).

use super::reply::not_found;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::path::Path;
use tower::ServiceExt as _;
use tower_http::services::ServeDir;

/// A served frontend build.
#[derive(Debug, Clone)]
pub(crate) struct Frontend {
    dir: ServeDir,
    /// `/extensions`: the build's extension scripts.
    pub(crate) extensions: Value,
}

impl Frontend {
    /// Serves the files under `dir` (`dir/index.html` for `/`). `ServeDir`
    /// refuses `..` and absolute components, so nothing outside `dir` is
    /// ever read.
    pub(crate) fn new(dir: &Path) -> Frontend {
        let mut scripts = Vec::new();
        extension_scripts(dir, &dir.join("extensions"), &mut scripts);
        scripts.sort();
        Frontend {
            dir: ServeDir::new(dir).append_index_html_on_directories(true),
            extensions: Value::Array(scripts.into_iter().map(Value::String).collect()),
        }
    }
}

/// `glob(web_root + "/extensions/**/*.js", recursive=True)` as ComfyUI's
/// `/extensions` writes it: `/extensions/core/x.js`, hidden entries left out.
fn extension_scripts(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            extension_scripts(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "js")
            && let Ok(rel) = path.strip_prefix(root)
        {
            out.push(format!("/{}", rel.to_string_lossy().replace('\\', "/")));
        }
    }
}

impl Frontend {
    /// Answers a request no API route took: a `GET`/`HEAD` of a file of the
    /// build, else the emulator's 404.
    pub(crate) async fn serve(&self, request: Request) -> Response {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return not_found().await;
        }
        match self.dir.clone().oneshot(request).await {
            Ok(response) if response.status() == StatusCode::NOT_FOUND => not_found().await,
            Ok(response) => response.map(Body::new),
            Err(never) => match never {},
        }
        .into_response()
    }
}
