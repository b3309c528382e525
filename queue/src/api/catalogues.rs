//! The GPU workers' node catalogues (their ComfyUI's `/object_info`).
//!
//! A worker uploads its catalogue (`PUT /api/workers/catalogues/{sha256}`: the bytes go into
//! the file store under their SHA-256, through the same streaming, hash-checked path as every
//! other upload) and names it in its registration (`catalogue`). Anyone authenticated (the
//! gateway calls as a user) lists the catalogues of the live workers (`GET /api/catalogues`)
//! and reads one (`GET /api/catalogues/{sha256}`), to validate a prompt as the pool would
//! before it is queued. A catalogue is kept while some worker's registration names it (the
//! file sweep counts those as references); once none does, the sweep deletes it after
//! `--upload-grace-secs`.

use std::collections::BTreeMap;
use std::fmt;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use comfy_artifacts::{ArtifactError, FileId};
use comfy_queue_api::{CatalogueInfo, CatalogueList, CatalogueStored};
use futures_util::StreamExt;
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};

use super::files::{BodyLimit, store_failed, store_stream};
use super::queue_status::ACTIVE_LEASES;
use crate::auth::{AuthError, Caller};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::model::WorkerRecord;
use crate::scheduler::parse_version;
use crate::state::AppState;

/// The `{sha256}` of a catalogue route.
type ShaPath = Result<Path<String>, PathRejection>;

/// A catalogue id: 64 hex digits (either case), as a [`FileId`].
pub(crate) fn parse_id(text: &str) -> Option<FileId> {
    let text = text.trim();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        FileId::parse(text)
    } else {
        None
    }
}

/// Any authenticated caller: a user, a worker or an admin (everyone when auth is off).
fn require_authenticated(caller: &Caller) -> Result<(), AuthError> {
    match caller {
        Caller::Admin | Caller::Worker | Caller::User(_) => Ok(()),
        Caller::BadToken => Err(AuthError::Unauthorized("invalid token")),
        Caller::Anonymous => Err(AuthError::Unauthorized(
            "no user identity: log in through the proxy, or send a token",
        )),
    }
}

/// Whether some worker's registration names catalogue `sha256`.
async fn named_by_a_worker(state: &AppState, sha256: &str) -> Result<bool, ApiError> {
    Ok(state
        .store
        .list_workers()
        .await?
        .iter()
        .any(|w| w.info.catalogue.as_deref() == Some(sha256)))
}

/// The top level of an `/object_info` body: an object whose every value is an object (a
/// node class). Values are skipped, not kept.
struct CatalogueShape;

impl<'de> Deserialize<'de> for CatalogueShape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Classes;
        impl<'de> Visitor<'de> for Classes {
            type Value = CatalogueShape;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of node classes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CatalogueShape, A::Error> {
                while map.next_key::<IgnoredAny>()?.is_some() {
                    map.next_value::<ClassShape>()?;
                }
                Ok(CatalogueShape)
            }
        }
        d.deserialize_map(Classes)
    }
}

/// One node class: any object.
struct ClassShape;

impl<'de> Deserialize<'de> for ClassShape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Class;
        impl<'de> Visitor<'de> for Class {
            type Value = ClassShape;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a node class (an object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClassShape, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ClassShape)
            }
        }
        d.deserialize_map(Class)
    }
}

/// Reads stored blob `id` back (at most `limit` bytes) and checks it is a catalogue.
async fn check_shape(state: &AppState, id: &FileId, limit: u64) -> Result<(), ApiError> {
    let blob = match state.files.get(id, None).await {
        Ok(b) => b,
        Err(ArtifactError::NotFound(_)) => {
            return Err(ApiError::new(
                ErrorCode::FileStoreUnavailable,
                "the catalogue was swept while it was being stored; send it again",
            ));
        }
        Err(e) => return Err(store_failed(&e)),
    };
    if blob.size > limit {
        return Err(too_large(limit));
    }
    let bytes = blob.into_bytes().await.map_err(|e| store_failed(&e))?;
    serde_json::from_slice::<CatalogueShape>(&bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidCatalogue,
            format!("the body is not a node catalogue (`/object_info`): {e}"),
        )
        .with_field("body")
    })?;
    Ok(())
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the catalogue is larger than the limit of {limit} bytes (--max-catalogue-bytes)"),
    )
    .with_field("body")
}

/// Deletes the blob a refused catalogue upload stored, unless something refers to it by
/// now (a user's upload of the same bytes). A failure is left to the sweep.
async fn forget_unreferenced(state: &AppState, id: &FileId) {
    let _gate = state.files_gate.write().await;
    match state.store.referenced_blobs().await {
        Ok(refs) if !refs.contains(&id.to_string()) => {
            if let Err(e) = state.files.delete(id).await {
                tracing::warn!(error = %e, sha256 = %id, "could not delete a refused catalogue");
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, sha256 = %id, "could not check a refused catalogue's references");
        }
    }
}

/// Reads and drops a body, refusing one over `limit` bytes.
async fn drain(body: Body, limit: u64) -> Result<(), ApiError> {
    let mut seen: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Err(ApiError::new(
                ErrorCode::UploadIncomplete,
                "the upload broke off before its end",
            )
            .with_field("body"));
        };
        seen = seen.saturating_add(chunk.len() as u64);
        if seen > limit {
            return Err(too_large(limit));
        }
    }
    Ok(())
}

/// A worker uploads its node catalogue (its ComfyUI's `/object_info` body) under the
/// SHA-256 of the bytes, before it names it in its registration.
#[utoipa::path(
    put, path = "/api/workers/catalogues/{sha256}", tag = "workers",
    params(
        ("sha256" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "SHA-256 of the body (64 hex digits); a body with another hash is 422 and nothing is stored"),
    ),
    request_body(content = Object, content_type = "application/json", description = "The catalogue: `/object_info` as ComfyUI answers it, an object of node classes (at most --max-catalogue-bytes, 64 MiB)"),
    responses(
        (status = 201, description = "Stored", body = CatalogueStored),
        (status = 200, description = "Stored already (the body is read and dropped)", body = CatalogueStored),
        (status = 400, description = "The body broke off", body = ErrorBody),
        (status = 413, description = "Larger than --max-catalogue-bytes", body = ErrorBody),
        (status = 422, description = "Not 64 hex digits, another hash (`hash_mismatch`), or not an object of node classes (`invalid_catalogue`)", body = ErrorBody),
        (status = 503, description = "The file store or the job store failed", body = ErrorBody),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    path: ShaPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require_worker()?;
    let id = match &path {
        Ok(Path(text)) => parse_id(text),
        Err(_) => None,
    }
    .ok_or_else(|| {
        ApiError::validation(
            "sha256",
            ErrorCode::InvalidSha256,
            "the catalogue's id must be its SHA-256: 64 hex digits",
        )
    })?;
    let sha256 = id.to_string();
    let limit = state.settings.max_catalogue_bytes;
    let stored = match state.files.head(&id).await {
        Ok(Some(size)) => {
            // The bytes are there already. A catalogue some registration names was checked
            // when it came; other bytes with this hash (a user's upload) are checked now.
            if !named_by_a_worker(&state, &sha256).await? {
                check_shape(&state, &id, limit).await?;
            }
            drain(body, limit).await?;
            CatalogueStored { sha256, size }
        }
        Ok(None) => {
            let limit = BodyLimit {
                bytes: limit,
                flag: "--max-catalogue-bytes",
            };
            let stored = store_stream(&state, &headers, body, limit, Some(id), "sha256").await?;
            if let Err(e) = check_shape(&state, &id, limit.bytes).await {
                forget_unreferenced(&state, &id).await;
                return Err(e);
            }
            tracing::info!(sha256 = %sha256, size = stored.size, "worker catalogue stored");
            return Ok((
                StatusCode::CREATED,
                Json(CatalogueStored {
                    sha256,
                    size: stored.size,
                }),
            )
                .into_response());
        }
        Err(e) => return Err(store_failed(&e)),
    };
    Ok((StatusCode::OK, Json(stored)).into_response())
}

/// Whether a worker counts as live: seen (claim, heartbeat, registration) within
/// `ACTIVE_LEASES` lease lengths, as `/health` and `/api/queue/status` count them.
fn is_live(state: &AppState, w: &WorkerRecord) -> bool {
    w.last_seen >= state.now() - ACTIVE_LEASES * state.settings.lease_ms
}

/// The distinct node catalogues of the workers seen recently (live), newest ComfyUI version
/// first: what the pool would validate a prompt against.
#[utoipa::path(
    get, path = "/api/catalogues", tag = "catalogues",
    responses(
        (status = 200, body = CatalogueList),
        (status = 503, description = "The file store or the job store failed", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<CatalogueList>, ApiError> {
    require_authenticated(&caller)?;
    let mut by_sha: BTreeMap<String, Vec<WorkerRecord>> = BTreeMap::new();
    for w in state.store.list_workers().await? {
        if !is_live(&state, &w) {
            continue;
        }
        if let Some(sha) = w.info.catalogue.clone() {
            by_sha.entry(sha).or_default().push(w);
        }
    }
    let mut catalogues = Vec::with_capacity(by_sha.len());
    for (sha256, mut workers) in by_sha {
        let Some(id) = FileId::parse(&sha256) else {
            continue;
        };
        let size = match state.files.head(&id).await {
            Ok(Some(size)) => size,
            Ok(None) => {
                tracing::error!(sha256 = %sha256, "a registered catalogue's blob is missing");
                continue;
            }
            Err(e) => return Err(store_failed(&e)),
        };
        // The newest version among its workers names it (ties: the first worker id).
        workers.sort_by(|a, b| {
            newest_first(&a.info.comfyui_version, &b.info.comfyui_version)
                .then_with(|| a.info.worker_id.cmp(&b.info.worker_id))
        });
        let (comfyui_version, line) = workers
            .first()
            .map(|w| (w.info.comfyui_version.clone(), w.info.line.clone()))
            .unwrap_or_default();
        let mut ids: Vec<String> = workers.into_iter().map(|w| w.info.worker_id).collect();
        ids.sort();
        catalogues.push(CatalogueInfo {
            sha256,
            size,
            comfyui_version,
            line,
            workers: ids,
        });
    }
    catalogues.sort_by(|a, b| {
        newest_first(&a.comfyui_version, &b.comfyui_version).then_with(|| a.sha256.cmp(&b.sha256))
    });
    Ok(Json(CatalogueList { catalogues }))
}

/// Newest version first; no version (or one that does not parse) last.
fn newest_first(a: &Option<String>, b: &Option<String>) -> std::cmp::Ordering {
    let a = a.as_deref().and_then(parse_version);
    let b = b.as_deref().and_then(parse_version);
    match (a, b) {
        (Some(a), Some(b)) => b.cmp(&a),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// The bytes of a catalogue some worker's registration names (`/object_info` as that
/// worker's ComfyUI answered it). Immutable: the id is the hash of the bytes.
#[utoipa::path(
    get, path = "/api/catalogues/{sha256}", tag = "catalogues",
    params(
        ("sha256" = String, Path, description = "The catalogue's SHA-256 (from GET /api/catalogues)"),
    ),
    responses(
        (status = 200, description = "The catalogue (ETag: its hash)", content_type = "application/json", body = Object),
        (status = 304, description = "Not modified (If-None-Match names its ETag)"),
        (status = 404, description = "No worker's registration names it", body = ErrorBody),
        (status = 503, description = "The file store or the job store failed", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: ShaPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_authenticated(&caller)?;
    let not_found = || {
        ApiError::new(
            ErrorCode::CatalogueNotFound,
            "no worker's registration names this catalogue",
        )
    };
    let id = match &path {
        Ok(Path(text)) => parse_id(text),
        Err(_) => None,
    }
    .ok_or_else(not_found)?;
    let sha256 = id.to_string();
    if !named_by_a_worker(&state, &sha256).await? {
        return Err(not_found());
    }
    let (mut out, unchanged) = super::files::content_addressed(&sha256, &headers);
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    let blob = match state.files.get(&id, None).await {
        Ok(b) => b,
        Err(ArtifactError::NotFound(_)) => {
            tracing::error!(sha256 = %sha256, "a registered catalogue's blob is missing");
            return Err(not_found());
        }
        Err(e) => return Err(store_failed(&e)),
    };
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.size));
    Ok((StatusCode::OK, out, Body::from_stream(blob.body)).into_response())
}

/// The catalogue a registration names: 64 hex digits of a catalogue the file store holds
/// (the caller holds the files gate, so the sweep cannot take it before it is recorded).
pub(crate) async fn check_registered(state: &AppState, text: &str) -> Result<String, ApiError> {
    let unknown = || {
        ApiError::validation(
            "catalogue",
            ErrorCode::UnknownCatalogue,
            "`catalogue` names no uploaded catalogue (PUT /api/workers/catalogues/{sha256} first)",
        )
    };
    let id = parse_id(text).ok_or_else(unknown)?;
    let sha256 = id.to_string();
    match state.files.head(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(unknown()),
        Err(e) => return Err(store_failed(&e)),
    }
    // Bytes no registration names yet are checked once: only a catalogue may be named (and
    // served to every user), not whatever else the file store holds under that hash.
    if !named_by_a_worker(state, &sha256).await? {
        check_shape(state, &id, state.settings.max_catalogue_bytes)
            .await
            .map_err(|e| match e.code {
                ErrorCode::InvalidCatalogue | ErrorCode::PayloadTooLarge => unknown(),
                _ => e,
            })?;
    }
    Ok(sha256)
}
