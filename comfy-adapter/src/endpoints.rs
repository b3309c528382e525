//! Calls that every line answers the same way (the recordings show identical
//! wire shapes): one function per endpoint, returning the normalized model.

use crate::adapter::{UploadOptions, WriteOptions};
use crate::error::{ComfyError, Result};
use crate::http::{Body, HttpCore};
use crate::model::catalogue::NodeCatalogue;
use crate::model::output::{FileRef, FolderType};
use crate::model::prompt::{Accepted, PromptRequest, QueuePosition};
use crate::model::queue::QueueSnapshot;
use crate::model::server::{Line, ServerInfo};
use crate::model::userdata::URI_COMPONENT;
use crate::model::userdata::{
    ListOptions, Overwrite, UserdataEntry, UserdataPath, UserdataTreeEntry,
};
use crate::normalize;
use crate::wire;
use bytes::Bytes;
use percent_encoding::utf8_percent_encode;
use reqwest::Method;
use serde_json::{Value, json};

pub async fn system_stats(core: &HttpCore) -> Result<ServerInfo> {
    let resp = core.get("/system_stats", &[]).await?.ok("/system_stats")?;
    let stats: wire::system::SystemStats = resp.json("/system_stats")?;
    Ok(normalize::server_info(stats))
}

pub async fn features(core: &HttpCore) -> Result<Option<wire::system::Features>> {
    let resp = core.get("/features", &[]).await?;
    if resp.status == 404 {
        return Ok(None);
    }
    resp.ok("/features")?.json("/features").map(Some)
}

/// `POST /prompt` with `prompt_id` already decided.
pub async fn post_prompt(
    core: &HttpCore,
    req: &PromptRequest,
    prompt_id: &str,
) -> Result<Accepted> {
    let (front, number) = match req.position {
        QueuePosition::Back => (None, None),
        QueuePosition::Front => (Some(true), None),
        QueuePosition::Number(n) => (None, Some(n)),
    };
    let body = wire::prompt::PromptBody {
        prompt: &req.prompt,
        client_id: req.client_id.as_deref(),
        prompt_id: Some(prompt_id),
        extra_data: &req.extra_data,
        front,
        number,
        partial_execution_targets: req.partial_execution_targets.as_deref(),
    };
    let resp = core.post("/prompt", &[], Body::json(&body)?).await?;
    if resp.is_success() {
        let ok: wire::prompt::PromptOk = resp.json("POST /prompt answer")?;
        return Ok(normalize::accepted(ok));
    }
    let raw: Option<Value> = serde_json::from_slice(&resp.body).ok();
    match raw.and_then(|raw| normalize::rejection(resp.status, raw)) {
        Some(rejected) => Err(ComfyError::PromptRejected(Box::new(rejected))),
        None => Err(resp.into_error("POST /prompt")),
    }
}

pub async fn queue(core: &HttpCore) -> Result<QueueSnapshot> {
    let q: wire::queue::QueueWire = core
        .get("/queue", &[])
        .await?
        .ok("/queue")?
        .json("/queue")?;
    Ok(normalize::queue_snapshot(&q))
}

pub async fn queue_remaining(core: &HttpCore) -> Result<u64> {
    let info: wire::queue::PromptInfo = core
        .get("/prompt", &[])
        .await?
        .ok("GET /prompt")?
        .json("GET /prompt")?;
    Ok(info.exec_info.queue_remaining)
}

pub async fn post_queue(core: &HttpCore, body: Value) -> Result<()> {
    core.post("/queue", &[], Body::Json(body))
        .await?
        .ok("POST /queue")?;
    Ok(())
}

pub async fn interrupt(core: &HttpCore, prompt_id: Option<&str>) -> Result<()> {
    let body = match prompt_id {
        Some(id) => json!({ "prompt_id": id }),
        None => json!({}),
    };
    core.post("/interrupt", &[], Body::Json(body))
        .await?
        .ok("POST /interrupt")?;
    Ok(())
}

pub async fn delete_history(core: &HttpCore, ids: &[String]) -> Result<()> {
    core.post("/history", &[], Body::Json(json!({ "delete": ids })))
        .await?
        .ok("POST /history")?;
    Ok(())
}

/// `GET /history/{id}`: `None` when the server does not have it (`{}`).
pub async fn history_item(
    core: &HttpCore,
    prompt_id: &str,
) -> Result<Option<wire::history::HistoryItem>> {
    let path = format!("/history/{}", encode_segment(prompt_id));
    let resp = core.get(&path, &[]).await?.ok(path.clone())?;
    let entries =
        normalize::history_entries_from_slice(&resp.body).map_err(|e| ComfyError::Decode {
            what: path,
            reason: e.to_string(),
        })?;
    Ok(entries
        .into_iter()
        .find(|(id, _)| id == prompt_id)
        .map(|(_, item)| item))
}

pub async fn history_all(core: &HttpCore) -> Result<Vec<normalize::HistoryEntry>> {
    let resp = core.get("/history", &[]).await?.ok("/history")?;
    normalize::history_entries_from_slice(&resp.body).map_err(|e| ComfyError::Decode {
        what: "/history".into(),
        reason: e.to_string(),
    })
}

pub async fn free(core: &HttpCore, unload_models: bool, free_memory: bool) -> Result<()> {
    let body = json!({ "unload_models": unload_models, "free_memory": free_memory });
    core.post("/free", &[], Body::Json(body))
        .await?
        .ok("POST /free")?;
    Ok(())
}

pub async fn object_info(core: &HttpCore, class: Option<&str>) -> Result<NodeCatalogue> {
    let path = match class {
        Some(c) => format!("/object_info/{}", encode_segment(c)),
        None => "/object_info".to_owned(),
    };
    let resp = core.get(&path, &[]).await?.ok(path.clone())?;
    let map = normalize::object_info_from_slice(&resp.body).map_err(|e| ComfyError::Decode {
        what: path.clone(),
        reason: e.to_string(),
    })?;
    if let Some(c) = class
        && !map.contains(c)
    {
        return Err(ComfyError::NotFound {
            what: format!("node class {c}"),
        });
    }
    Ok(map)
}

pub async fn upload_image(
    core: &HttpCore,
    filename: &str,
    bytes: Bytes,
    opts: &UploadOptions,
) -> Result<FileRef> {
    if filename.is_empty() || filename.contains(['/', '\\', '\0']) {
        return Err(ComfyError::InvalidInput {
            field: "filename",
            reason: format!("{filename:?} is not a plain file name"),
        });
    }
    let part = reqwest::multipart::Part::stream(bytes).file_name(filename.to_owned());
    let mut form = reqwest::multipart::Form::new()
        .part("image", part)
        .text("type", opts.folder.clone())
        .text("overwrite", if opts.overwrite { "true" } else { "false" });
    if let Some(sub) = &opts.subfolder {
        form = form.text("subfolder", sub.clone());
    }
    let resp = core
        .post("/upload/image", &[], Body::Multipart(form))
        .await?
        .ok("POST /upload/image")?;
    let up: wire::userdata::UploadWire = resp.json("/upload/image answer")?;
    Ok(FileRef {
        filename: up.name,
        subfolder: up.subfolder,
        folder: FolderType::from_wire(&up.kind),
    })
}

pub async fn view(core: &HttpCore, file: &FileRef) -> Result<Bytes> {
    let query = [
        ("filename", file.filename.as_str()),
        ("subfolder", file.subfolder.as_str()),
        ("type", file.folder.as_str()),
    ];
    let resp = core.get("/view", &query).await?;
    if resp.status == 400 {
        return Err(ComfyError::InvalidInput {
            field: "filename",
            reason: resp.text(),
        });
    }
    Ok(resp.ok(format!("file {}", file.filename))?.body)
}

fn flag(name: &str, on: bool) -> Option<(&str, &str)> {
    on.then_some((name, "true"))
}

pub async fn userdata_list(
    core: &HttpCore,
    line: Line,
    dir: &UserdataPath,
    opts: ListOptions,
) -> Result<Vec<UserdataEntry>> {
    let mut query = vec![("dir", dir.as_str())];
    query.extend(flag("recurse", opts.recurse));
    query.extend(flag("full_info", opts.full_info));
    let resp = core
        .get("/userdata", &query)
        .await?
        .ok(format!("userdata directory {dir}"))?;
    if opts.full_info {
        let list: Vec<wire::userdata::FileInfoWire> = resp.json("/userdata listing")?;
        Ok(list
            .into_iter()
            .map(|w| normalize::file_info(w, line))
            .collect())
    } else {
        let list: Vec<String> = resp.json("/userdata listing")?;
        Ok(list
            .into_iter()
            .map(|path| UserdataEntry {
                path,
                size: None,
                modified: None,
                created: None,
            })
            .collect())
    }
}

pub async fn userdata_tree(
    core: &HttpCore,
    dir: Option<&UserdataPath>,
) -> Result<Vec<UserdataTreeEntry>> {
    let query: Vec<(&str, &str)> = dir.map(|d| ("path", d.as_str())).into_iter().collect();
    let resp = core
        .get("/v2/userdata", &query)
        .await?
        .ok("userdata tree")?;
    let list: Vec<wire::userdata::TreeEntryWire> = resp.json("/v2/userdata listing")?;
    Ok(list.into_iter().map(normalize::tree_entry).collect())
}

pub async fn userdata_get(core: &HttpCore, path: &UserdataPath) -> Result<Bytes> {
    let p = format!("/userdata/{}", path.encoded());
    Ok(core
        .get(&p, &[])
        .await?
        .ok(format!("userdata file {path}"))?
        .body)
}

fn write_query(opts: WriteOptions) -> Vec<(&'static str, &'static str)> {
    let mut q = Vec::new();
    if opts.overwrite == Overwrite::Deny {
        q.push(("overwrite", "false"));
    }
    q.extend(flag("full_info", opts.full_info));
    q
}

fn written_entry(
    resp: &crate::http::Response,
    line: Line,
    opts: WriteOptions,
) -> Result<UserdataEntry> {
    if opts.full_info {
        let info: wire::userdata::FileInfoWire = resp.json("userdata write answer")?;
        Ok(normalize::file_info(info, line))
    } else {
        // The server answers the relative path as a JSON string (backslashes on Windows).
        let path: String = resp.json("userdata write answer")?;
        Ok(UserdataEntry {
            path: path.replace('\\', "/"),
            size: None,
            modified: None,
            created: None,
        })
    }
}

pub async fn userdata_put(
    core: &HttpCore,
    line: Line,
    path: &UserdataPath,
    bytes: Bytes,
    opts: WriteOptions,
) -> Result<UserdataEntry> {
    let p = format!("/userdata/{}", path.encoded());
    let resp = core
        .post(&p, &write_query(opts), Body::Bytes(bytes))
        .await?
        .ok(format!("userdata file {path}"))?;
    written_entry(&resp, line, opts)
}

pub async fn userdata_move(
    core: &HttpCore,
    line: Line,
    from: &UserdataPath,
    to: &UserdataPath,
    opts: WriteOptions,
) -> Result<UserdataEntry> {
    let p = format!("/userdata/{}/move/{}", from.encoded(), to.encoded());
    let what = format!("userdata move {from} -> {to}");
    let resp = core
        .send(Method::POST, &p, &write_query(opts), Body::None)
        .await?
        .ok(what)?;
    written_entry(&resp, line, opts)
}

pub async fn userdata_delete(core: &HttpCore, path: &UserdataPath) -> Result<()> {
    let p = format!("/userdata/{}", path.encoded());
    core.send(Method::DELETE, &p, &[], Body::None)
        .await?
        .ok(format!("userdata file {path}"))?;
    Ok(())
}

/// Encodes one path segment (a prompt id or class name) like `encodeURIComponent`.
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, URI_COMPONENT).to_string()
}
