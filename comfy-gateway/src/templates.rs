//! The platform's template workflows in every user's workflows menu, with
//! no custom node: copied into the user's userdata through ComfyUI's own
//! userdata API (`POST /userdata/workflows%2F<name>?overwrite=false`, so a
//! file the user changed is never overwritten), the seed's
//! `/api/default_workflow` answered by the gateway, and the frontend's
//! template browser (`/templates/index.json`, `/templates/<name>.json`)
//! listing the platform's templates.

use crate::config::User;
use crate::error::GatewayError;
use crate::proxy::without_url;
use crate::state::Gateway;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use comfy_adapter::model::userdata::UserdataPath;
use std::path::Path;

/// The `.json` files of the templates directory, by name.
fn templates(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_file() && name.ends_with(".json") {
            out.push((name.to_owned(), std::fs::read(&path)?));
        }
    }
    out.sort();
    Ok(out)
}

/// What provisioning did for one user.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// Templates written.
    pub written: Vec<String>,
    /// Templates the user already had (kept as they are).
    pub kept: Vec<String>,
}

/// Copies every template into `user`'s `workflows/` userdata folder, never
/// overwriting a file that is there.
pub async fn provision(gw: &Gateway, user: &User) -> Result<Provisioned, GatewayError> {
    let mut done = Provisioned::default();
    let Some(dir) = gw.config().templates_dir.clone() else {
        return Ok(done);
    };
    let files = templates(&dir).map_err(|e| GatewayError::BadRequest {
        kind: "templates_unreadable",
        message: format!("templates_dir {}: {e}", dir.display()),
    })?;
    let base = gw.upstream(user)?;
    for (name, bytes) in files {
        let path = UserdataPath::new(format!("workflows/{name}")).map_err(|e| {
            GatewayError::BadRequest {
                kind: "invalid_template_name",
                message: format!("{name}: {e}"),
            }
        })?;
        let url = crate::proxy::upstream_url(
            &base,
            &format!(
                "/api/userdata/{}?overwrite=false&full_info=true",
                path.encoded()
            ),
        )?;
        let resp = gw
            .upstream_request(user, reqwest::Method::POST, url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes)
            .send()
            .await
            .map_err(|e| GatewayError::UpstreamDown {
                upstream: base.to_string(),
                reason: without_url(&e),
            })?;
        match resp.status().as_u16() {
            200 => done.written.push(name),
            409 => done.kept.push(name),
            s => {
                return Err(GatewayError::UpstreamDown {
                    upstream: base.to_string(),
                    reason: format!("writing workflows/{name} answered {s}"),
                });
            }
        }
    }
    Ok(done)
}

/// `GET /api/default_workflow`: the configured default template.
pub async fn default_workflow(gw: &Gateway) -> Response {
    let (Some(dir), Some(name)) = (&gw.config().templates_dir, &gw.config().default_workflow)
    else {
        return GatewayError::NotFound.into_response();
    };
    match tokio::fs::read(dir.join(name)).await {
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(e) => GatewayError::BadRequest {
            kind: "default_workflow_unreadable",
            message: format!("{name}: {e}"),
        }
        .into_response(),
    }
}

/// `video_ltx2_t2v` → `Video ltx2 t2v`.
fn title(stem: &str) -> String {
    let words = stem.replace(['_', '-'], " ");
    let mut c = words.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `GET /templates/index.json`: the platform's templates as the frontend's
/// template browser reads them (the shape of the templates package's index,
/// as recorded), so the browser lists them instead of ComfyUI's own.
pub async fn index(gw: &Gateway) -> Option<Response> {
    let dir = gw.config().templates_dir.clone()?;
    let files = match templates(&dir) {
        Ok(f) => f,
        Err(e) => {
            return Some(
                GatewayError::BadRequest {
                    kind: "templates_unreadable",
                    message: format!("templates_dir {}: {e}", dir.display()),
                }
                .into_response(),
            );
        }
    };
    let entries: Vec<serde_json::Value> = files
        .iter()
        .filter_map(|(name, _)| name.strip_suffix(".json"))
        .map(|stem| {
            let kind = if stem.starts_with("video") {
                "video"
            } else {
                "image"
            };
            serde_json::json!({
                "name": stem,
                "title": title(stem),
                "description": "A workflow of the platform; runs on the GPU pool.",
                "mediaType": "image",
                // The browser asks for `<name>-1.<mediaSubtype>`: an SVG card
                // the gateway draws ([`template`]).
                "mediaSubtype": "svg",
                "tags": [kind],
                "models": [],
            })
        })
        .collect();
    let body = serde_json::json!([{
        "moduleName": "default",
        "category": "PLATFORM",
        "title": "Platform templates",
        "type": "image",
        "templates": entries,
    }]);
    Some(axum::Json(body).into_response())
}

/// A thumbnail card for a template: its title on the platform's colours.
fn thumbnail(stem: &str) -> String {
    let escaped = title(stem)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512" viewBox="0 0 512 512"><defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#1f2937"/><stop offset="1" stop-color="#2563eb"/></linearGradient></defs><rect width="512" height="512" fill="url(#g)"/><text x="256" y="256" fill="#f9fafb" font-family="sans-serif" font-size="28" text-anchor="middle">{escaped}</text></svg>"##
    )
}

/// `GET /templates/<name>.json`: one platform template; `<name>-1.svg` its card.
pub async fn template(gw: &Gateway, file: &str) -> Option<Response> {
    let dir = gw.config().templates_dir.clone()?;
    if file.contains('/') || file.contains('\\') || file.starts_with('.') {
        return None;
    }
    if let Some(stem) = file.strip_suffix("-1.svg") {
        if !dir.join(format!("{stem}.json")).is_file() {
            return None;
        }
        let card = thumbnail(stem);
        return Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "image/svg+xml")],
                card,
            )
                .into_response(),
        );
    }
    if !file.ends_with(".json") {
        return None;
    }
    let bytes = tokio::fs::read(dir.join(file)).await.ok()?;
    Some(
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
    )
}
