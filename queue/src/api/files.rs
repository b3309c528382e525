//! Files of jobs: user uploads (`POST /api/files`), worker uploads of outputs
//! (`POST /api/workers/jobs/{id}/files`) and downloads (`GET /api/jobs/{id}/files/{role}/{path}`).
//!
//! Bodies stream straight into the file store (`comfy-artifacts`' [`BlobStore`]), which keys
//! them by their SHA-256; nothing holds a whole file in memory. The job store keeps which job
//! a file belongs to, under which name and content type. A download streams the blob back,
//! whole or one byte range.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use comfy_artifacts::{ArtifactError, ByteStream, FileId, PutOptions, Stored};
use comfy_queue_api::{JobFile, UploadedFile};
use futures_util::{Stream, StreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use uuid::Uuid;

use super::QueryMap;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::model::{self, FileRecord, FileRole, Upload};
use crate::state::AppState;
use crate::store::StoreError;

/// What a path segment keeps unescaped in a file URL: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The queue path that serves a file: `/api/jobs/{id}/files/{role}/{subfolder/}{filename}`,
/// each segment percent-encoded.
pub fn file_url(job: Uuid, f: &FileRecord) -> String {
    let mut url = format!("/api/jobs/{job}/files/{}/", f.role.as_str());
    for part in f.subfolder.split('/').filter(|p| !p.is_empty()) {
        url.extend(utf8_percent_encode(part, SEGMENT));
        url.push('/');
    }
    url.extend(utf8_percent_encode(&f.filename, SEGMENT));
    url
}

/// A stored file as the API describes it.
pub fn job_file(job: Uuid, f: &FileRecord) -> JobFile {
    JobFile {
        role: f.role,
        filename: f.filename.clone(),
        subfolder: f.subfolder.clone(),
        sha256: f.sha256.clone(),
        size: f.size,
        content_type: f.content_type.clone(),
        node_id: f.node_id.clone(),
        kind: f.kind.clone(),
        url: file_url(job, f),
    }
}

/// The content type to store: the upload's own `Content-Type` when it says something
/// (not `application/octet-stream`, parses as `type/subtype`), else guessed from the name.
pub fn content_type_for(headers: &HeaderMap, filename: &str) -> String {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            let essence = v.split(';').next().unwrap_or("").trim();
            let ok = essence.split_once('/').is_some_and(|(t, s)| {
                !t.is_empty()
                    && !s.is_empty()
                    && essence
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            });
            ok && v.len() <= model::MAX_FILE_LABEL_BYTES
                && v.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
                && !essence.eq_ignore_ascii_case("application/octet-stream")
        });
    match declared {
        Some(v) => v.to_owned(),
        None => mime_guess::from_path(filename)
            .first_raw()
            .unwrap_or("application/octet-stream")
            .to_owned(),
    }
}

/// A request body as the file store takes it, cut off with an error once it passes `limit`
/// bytes (the flag then tells the caller why), whatever the backend does with its own limit.
struct Limited {
    inner: ByteStream,
    seen: u64,
    limit: u64,
    over: Arc<AtomicBool>,
}

impl Stream for Limited {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.over.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen = self.seen.saturating_add(chunk.len() as u64);
                if self.seen > self.limit {
                    self.over.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(io::Error::other(
                        "the file is over the size limit",
                    ))))
                } else {
                    Poll::Ready(Some(Ok(chunk)))
                }
            }
            other => other,
        }
    }
}

/// A body's size limit, and the flag that sets it (named in the 413's message).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit {
    /// Largest body in bytes.
    pub bytes: u64,
    /// The setting, e.g. `--max-file-bytes`.
    pub flag: &'static str,
}

fn too_large(limit: BodyLimit) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!(
            "the file is larger than the limit of {} bytes ({})",
            limit.bytes, limit.flag
        ),
    )
    .with_field("body")
}

pub(crate) fn store_failed(e: &ArtifactError) -> ApiError {
    tracing::error!(error = %e, "file store error");
    ApiError::new(
        ErrorCode::FileStoreUnavailable,
        "the file store is unavailable; retry shortly",
    )
}

/// The `X-Content-Sha256` header, if given.
fn declared_hash(headers: &HeaderMap) -> Result<Option<FileId>, ApiError> {
    let Some(v) = headers.get("x-content-sha256") else {
        return Ok(None);
    };
    let text = model::validate_sha256("X-Content-Sha256", v.to_str().unwrap_or("").trim())?;
    FileId::parse(&text).map(Some).ok_or_else(|| {
        ApiError::validation(
            "X-Content-Sha256",
            ErrorCode::InvalidSha256,
            "`X-Content-Sha256` must be 64 hex digits",
        )
    })
}

/// Streams `body` into the file store (at most `--max-file-bytes`, checked against the
/// declared hash if there is one).
async fn store_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Stored, ApiError> {
    let expected = declared_hash(headers)?;
    let limit = BodyLimit {
        bytes: state.settings.max_file_bytes,
        flag: "--max-file-bytes",
    };
    store_stream(state, headers, body, limit, expected, "X-Content-Sha256").await
}

/// Streams `body` into the file store: at most `limit` (413 at once from `Content-Length`,
/// else when the stream passes it), and, when `expected` is given, only if its SHA-256 is
/// that (422 `hash_mismatch` naming `hash_field` otherwise). Whatever fails leaves no blob.
/// Every upload route stores its body through here.
pub(crate) async fn store_stream(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: BodyLimit,
    expected: Option<FileId>,
    hash_field: &'static str,
) -> Result<Stored, ApiError> {
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > limit.bytes) {
        return Err(too_large(limit));
    }
    let over = Arc::new(AtomicBool::new(false));
    let stream: ByteStream = Box::pin(body.into_data_stream().map(|r| r.map_err(io::Error::other)));
    let limited: ByteStream = Box::pin(Limited {
        inner: stream,
        seen: 0,
        limit: limit.bytes,
        over: over.clone(),
    });
    let put = state
        .files
        .put(
            limited,
            PutOptions {
                max_bytes: limit.bytes,
                expected,
            },
        )
        .await;
    match put {
        Ok(stored) => Ok(stored),
        Err(_) if over.load(Ordering::Relaxed) => Err(too_large(limit)),
        Err(ArtifactError::TooLarge { .. }) => Err(too_large(limit)),
        Err(ArtifactError::HashMismatch { expected, actual }) => Err(ApiError::validation(
            hash_field,
            ErrorCode::HashMismatch,
            format!(
                "the body's SHA-256 is {actual}, not the declared {expected}; nothing was stored"
            ),
        )),
        Err(ArtifactError::Body(e)) => Err(ApiError::new(
            ErrorCode::UploadIncomplete,
            format!("the upload broke off: {e}; nothing was stored"),
        )
        .with_field("body")),
        Err(e) => Err(store_failed(&e)),
    }
}

/// After recording a blob (under the gate): the blob is still there. A sweep that ran
/// between the put (which found these bytes stored already) and the record may have
/// deleted it; the upload must then be sent again.
async fn confirm_stored(state: &AppState, id: &FileId) -> Result<(), ApiError> {
    match state.files.head(id).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::new(
            ErrorCode::FileStoreUnavailable,
            "the file was swept while it was being stored; send it again",
        )),
        Err(e) => Err(store_failed(&e)),
    }
}

/// Upload a file (raw body) for a later submit to name as an input.
#[utoipa::path(
    post, path = "/api/files", tag = "files",
    params(
        ("filename" = String, Query, description = "The file's name (one path component)"),
        ("user_id" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{1,100}$", description = "Admins only: the user whose submits may name it (default: the trusted user header)"),
        ("X-Content-Sha256" = Option<String>, Header, description = "SHA-256 of the body (64 hex digits); another hash is 422 and nothing is stored"),
    ),
    request_body(content = RawBytes, content_type = "application/octet-stream", description = "The bytes (any content type; it is kept unless it is application/octet-stream, else guessed from the name)"),
    responses(
        (status = 201, description = "Stored", body = UploadedFile),
        (status = 200, description = "This user had uploaded these bytes before", body = UploadedFile),
        (status = 400, description = "Bad file name, or the body broke off", body = ErrorBody),
        (status = 413, description = "Larger than --max-file-bytes", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 503, description = "The file store or the job store failed", body = ErrorBody),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: QueryMap,
    body: Body,
) -> Result<Response, ApiError> {
    let scope = caller.require_user()?;
    let q = super::query_map(query)?;
    let user_id = match (scope, q.get("user_id")) {
        (Some(me), Some(other)) if other != me => {
            return Err(
                ApiError::forbidden("you may only upload files as yourself").with_field("user_id")
            );
        }
        (Some(me), _) => me.to_owned(),
        (None, Some(u)) => model::validate_user_id("user_id", u)?,
        (None, None) => {
            let from_header = headers
                .get(state.settings.auth.user_header.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::trim);
            match from_header {
                Some(u) => model::validate_user_id("user_id", u)?,
                None => {
                    return Err(ApiError::validation(
                        "user_id",
                        ErrorCode::MissingField,
                        "`user_id` is required for admin uploads (the user whose submits name the file)",
                    ));
                }
            }
        }
    };
    let filename = required(&q, "filename")?;
    let filename = model::validate_filename("filename", filename)?;
    let content_type = content_type_for(&headers, &filename);
    let stored = store_body(&state, &headers, body).await?;
    let sha256 = stored.id.to_string();
    let created = {
        let _gate = state.files_gate.read().await;
        let created = state
            .store
            .record_upload(Upload {
                user_id: user_id.clone(),
                sha256: sha256.clone(),
                filename: filename.clone(),
                content_type: content_type.clone(),
                size: stored.size,
                uploaded_at: state.now(),
            })
            .await?;
        confirm_stored(&state, &stored.id).await?;
        created
    };
    tracing::info!(user_id = %user_id, sha256 = %sha256, size = stored.size, "file uploaded");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        axum::Json(UploadedFile {
            sha256,
            size: stored.size,
            content_type,
            filename,
        }),
    )
        .into_response())
}

fn required<'a>(q: &'a HashMap<String, String>, field: &str) -> Result<&'a str, ApiError> {
    q.get(field).map(String::as_str).ok_or_else(|| {
        ApiError::validation(
            field,
            ErrorCode::MissingField,
            format!("`{field}` is required"),
        )
    })
}

/// The `{id}` of a job route (a path that does not decode names no job).
type IdPath = Result<Path<String>, PathRejection>;

/// A worker stores a file the job wrote (raw body): an output, or a temp file (preview).
#[utoipa::path(
    post, path = "/api/workers/jobs/{id}/files", tag = "workers",
    params(
        ("id" = String, Path, description = "The leased job"),
        ("lease_token" = String, Query, description = "Token from next-job (or the X-Lease-Token header)"),
        ("role" = Option<String>, Query, description = "`output` (default) or `temp`"),
        ("filename" = String, Query, description = "The file's name as ComfyUI wrote it"),
        ("subfolder" = Option<String>, Query, description = "ComfyUI subfolder (default none)"),
        ("node_id" = Option<String>, Query, description = "The node that wrote it"),
        ("kind" = Option<String>, Query, description = "Output kind (image, video, audio, ...)"),
        ("X-Content-Sha256" = Option<String>, Header, description = "SHA-256 of the body; another hash is 422 and nothing is stored"),
    ),
    request_body(content = RawBytes, content_type = "application/octet-stream", description = "The bytes"),
    responses(
        (status = 201, description = "Stored (a file of the same role, subfolder and name is replaced)", body = JobFile),
        (status = 400, description = "Bad file name or subfolder, or the body broke off", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Lease lost: expired, re-leased, or not running", body = ErrorBody),
        (status = 413, description = "Larger than --max-file-bytes", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 503, description = "The file store or the job store failed", body = ErrorBody),
    )
)]
pub async fn worker_upload(
    State(state): State<AppState>,
    caller: Caller,
    id: IdPath,
    headers: HeaderMap,
    query: QueryMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<JobFile>), ApiError> {
    caller.require_worker()?;
    let Ok(Path(id)) = id else {
        return Err(ApiError::job_not_found());
    };
    let id = super::parse_job_id(&id)?;
    let q = super::query_map(query)?;
    let token = match q.get("lease_token") {
        Some(t) => t.clone(),
        None => match headers.get("x-lease-token").and_then(|v| v.to_str().ok()) {
            Some(t) => t.to_owned(),
            None => {
                return Err(ApiError::validation(
                    "lease_token",
                    ErrorCode::MissingField,
                    "`lease_token` is required",
                ));
            }
        },
    };
    let role = match q.get("role").map(String::as_str) {
        None | Some("output") => FileRole::Output,
        Some("temp") => FileRole::Temp,
        Some(_) => {
            return Err(ApiError::validation(
                "role",
                ErrorCode::InvalidRole,
                "`role` must be `output` or `temp`",
            ));
        }
    };
    let filename = model::validate_filename("filename", required(&q, "filename")?)?;
    let subfolder =
        model::validate_subfolder("subfolder", q.get("subfolder").map_or("", String::as_str))?;
    let node_id = q
        .get("node_id")
        .map(|n| model::validate_file_label("node_id", n))
        .transpose()?;
    let kind = q
        .get("kind")
        .map(|k| model::validate_file_label("kind", k))
        .transpose()?;
    let content_type = content_type_for(&headers, &filename);
    // A worker that lost its lease is told before it sends the bytes.
    state.store.check_lease(id, &token, state.now()).await?;
    let stored = store_body(&state, &headers, body).await?;
    let file = FileRecord {
        role,
        subfolder,
        filename,
        sha256: stored.id.to_string(),
        size: stored.size,
        content_type,
        node_id,
        kind,
        position: 0,
        created_at: 0,
    };
    let file = {
        let _gate = state.files_gate.read().await;
        // Fenced again: the lease may have been lost while the body streamed in (the blob
        // then stays unreferenced and the sweep removes it).
        let file = state.store.add_file(id, &token, file, state.now()).await?;
        confirm_stored(&state, &stored.id).await?;
        file
    };
    tracing::info!(job_id = %id, role = file.role.as_str(), sha256 = %file.sha256, size = file.size, "job file stored");
    Ok((StatusCode::CREATED, axum::Json(job_file(id, &file))))
}

/// The path of a download: job id, role and `subfolder/filename`.
type FilePath = Result<Path<(String, String, String)>, PathRejection>;

/// Download a file of a job: the whole file, or one byte range (`Range: bytes=a-b`, `a-`,
/// `-n`). Several ranges are answered with the whole file.
#[utoipa::path(
    get, path = "/api/jobs/{id}/files/{role}/{path}", tag = "files",
    params(
        ("id" = String, Path, description = "Job id"),
        ("role" = String, Path, description = "`input`, `output` or `temp`"),
        ("path" = String, Path, description = "`subfolder/filename` (the JobFile's `url` has it)"),
        ("lease_token" = Option<String>, Query, description = "Workers: the token of the job's current lease"),
        ("token" = Option<String>, Query, description = "Admins: the admin token, for `<img src>` where no header can be set"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`"),
    ),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream", body = RawBytes),
        (status = 206, description = "The range asked for (Content-Range)", content_type = "application/octet-stream", body = RawBytes),
        (status = 304, description = "Not modified (If-None-Match names its ETag)"),
        (status = 404, description = "No such job or file, or not the caller's", body = ErrorBody),
        (status = 416, description = "The range is outside the file (Content-Range: bytes */size)", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 503, description = "The file store or the job store failed", body = ErrorBody),
    )
)]
pub async fn download(
    State(state): State<AppState>,
    path: FilePath,
    headers: HeaderMap,
    query: QueryMap,
) -> Result<Response, ApiError> {
    let q = super::query_map(query)?;
    let caller = state
        .settings
        .auth
        .identify(&headers, q.get("token").map(String::as_str));
    let Ok(Path((id, role, rest))) = path else {
        return Err(ApiError::job_not_found());
    };
    let id = super::parse_job_id(&id)?;
    match &caller {
        Caller::BadToken => return Err(ApiError::unauthorized("invalid token")),
        Caller::Anonymous => {
            return Err(ApiError::unauthorized(
                "no user identity: log in through the proxy",
            ));
        }
        _ => {}
    }
    let job = state
        .store
        .get(id)
        .await?
        .ok_or_else(ApiError::job_not_found)?;
    let allowed = match &caller {
        Caller::Admin => true,
        Caller::User(u) => *u == job.user_id,
        Caller::Worker => {
            let token = q.get("lease_token").cloned().or_else(|| {
                headers
                    .get("x-lease-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            });
            match token {
                Some(t) => match state.store.check_lease(id, &t, state.now()).await {
                    Ok(()) => true,
                    Err(StoreError::LeaseConflict(_) | StoreError::NotFound) => false,
                    Err(e) => return Err(e.into()),
                },
                None => false,
            }
        }
        Caller::BadToken | Caller::Anonymous => false,
    };
    if !allowed {
        // As for a job the caller cannot see.
        return Err(ApiError::job_not_found());
    }
    let not_found = || ApiError::new(ErrorCode::FileNotFound, "the job has no such file");
    let role = FileRole::parse(&role).ok_or_else(not_found)?;
    let (subfolder, filename) = model::split_file_path("path", &rest).map_err(|_| not_found())?;
    let file = state
        .store
        .find_file(id, role, &subfolder, &filename)
        .await?
        .ok_or_else(not_found)?;
    let (mut out, unchanged) = content_addressed(&file.sha256, &headers);
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    let content_type = HeaderValue::from_str(&file.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    out.insert(header::CONTENT_TYPE, content_type);
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&file.filename)) {
        out.insert(header::CONTENT_DISPOSITION, v);
    }
    // The bytes are whatever a user uploaded: never sniffed into something else, and never
    // run as a page of the queue's origin (the admin token lives there).
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    let Some(blob_id) = FileId::parse(&file.sha256) else {
        tracing::error!(job_id = %id, sha256 = %file.sha256, "a file record names no valid blob");
        return Err(not_found());
    };
    let size = file.size;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(text) => match pick_range(text, size) {
            Pick::Whole => None,
            Pick::One(r) => Some(r),
            Pick::Unsatisfiable => return Ok(unsatisfiable(size)),
        },
    };
    let blob = match state.files.get(&blob_id, range.clone()).await {
        Ok(b) => b,
        Err(ArtifactError::NotFound(_)) => {
            tracing::error!(job_id = %id, sha256 = %file.sha256, "a recorded file's blob is missing");
            return Err(not_found());
        }
        Err(ArtifactError::RangeNotSatisfiable { .. }) => return Ok(unsatisfiable(size)),
        Err(e) => return Err(store_failed(&e)),
    };
    let status = match &range {
        Some(r) => {
            if let Ok(v) = HeaderValue::from_str(&format!(
                "bytes {}-{}/{}",
                r.start,
                r.end.saturating_sub(1),
                blob.size
            )) {
                out.insert(header::CONTENT_RANGE, v);
            }
            out.insert(header::CONTENT_LENGTH, HeaderValue::from(r.end - r.start));
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            out.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.size));
            StatusCode::OK
        }
    };
    Ok((status, out, Body::from_stream(blob.body)).into_response())
}

/// 416 with `Content-Range: bytes */size`.
fn unsatisfiable(size: u64) -> Response {
    let err = ApiError::new(
        ErrorCode::RangeNotSatisfiable,
        format!("the range is outside the file of {size} bytes"),
    );
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        headers.insert(header::CONTENT_RANGE, v);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    (headers, err).into_response()
}

/// Raw bytes of a file, as request and response bodies carry them.
#[derive(Debug, utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct RawBytes(pub Vec<u8>);

/// What to answer to a `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pick {
    /// Ignore it: serve the whole file (malformed, several ranges, empty file).
    Whole,
    /// One satisfiable range, end exclusive.
    One(std::ops::Range<u64>),
    /// 416.
    Unsatisfiable,
}

fn pick_range(text: &str, size: u64) -> Pick {
    let Ok(parsed) = http_range_header::parse_range_header(text) else {
        return Pick::Whole;
    };
    match parsed.validate(size) {
        Ok(ranges) => match ranges.as_slice() {
            [one] => Pick::One(*one.start()..one.end().saturating_add(1)),
            _ => Pick::Whole,
        },
        Err(http_range_header::RangeUnsatisfiableError::Unsatisfiable) => Pick::Unsatisfiable,
        Err(_) => Pick::Whole,
    }
}

/// `inline; filename="..."; filename*=UTF-8''...`: an ASCII name with `"` and `\` escaped
/// (anything else outside printable ASCII becomes `_`) for old clients, the exact name
/// percent-encoded (RFC 8187) for the rest.
fn content_disposition(filename: &str) -> String {
    let mut ascii = String::with_capacity(filename.len());
    for c in filename.chars() {
        match c {
            '"' | '\\' => {
                ascii.push('\\');
                ascii.push(c);
            }
            ' '..='~' => ascii.push(c),
            _ => ascii.push('_'),
        }
    }
    let exact: String = utf8_percent_encode(filename, SEGMENT).collect();
    format!("inline; filename=\"{ascii}\"; filename*=UTF-8''{exact}")
}

/// The caching headers of bytes named by their SHA-256 (`ETag` = the quoted
/// hash; private, immutable for a year), and whether the request's
/// `If-None-Match` already names them (then the answer is 304).
pub(crate) fn content_addressed(sha256: &str, request: &HeaderMap) -> (HeaderMap, bool) {
    let etag = format!("\"{sha256}\"");
    let mut out = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, v);
    }
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    (out, unchanged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_one_several_and_outside() {
        assert_eq!(pick_range("bytes=0-9", 100), Pick::One(0..10));
        assert_eq!(pick_range("bytes=90-", 100), Pick::One(90..100));
        assert_eq!(pick_range("bytes=-10", 100), Pick::One(90..100));
        assert_eq!(pick_range("bytes=95-200", 100), Pick::One(95..100));
        assert_eq!(pick_range("bytes=0-1,5-6", 100), Pick::Whole);
        assert_eq!(pick_range("bytes=100-", 100), Pick::Unsatisfiable);
        assert_eq!(pick_range("bytes=x", 100), Pick::Whole);
        assert_eq!(pick_range("items=0-1", 100), Pick::Whole);
    }

    #[test]
    fn disposition_escapes_the_name() {
        assert_eq!(
            content_disposition("a\"b\\c é.png"),
            "inline; filename=\"a\\\"b\\\\c _.png\"; filename*=UTF-8''a%22b%5Cc%20%C3%A9.png"
        );
    }

    #[test]
    fn urls_encode_each_segment() {
        let f = FileRecord {
            role: FileRole::Output,
            subfolder: "a b/c".into(),
            filename: "x?.png".into(),
            sha256: "0".repeat(64),
            size: 1,
            content_type: "image/png".into(),
            node_id: None,
            kind: None,
            position: 0,
            created_at: 0,
        };
        let id = Uuid::nil();
        assert_eq!(
            file_url(id, &f),
            format!("/api/jobs/{id}/files/output/a%20b/c/x%3F.png")
        );
        let f = FileRecord {
            subfolder: String::new(),
            ..f
        };
        assert_eq!(
            file_url(id, &f),
            format!("/api/jobs/{id}/files/output/x%3F.png")
        );
    }

    #[test]
    fn content_types_are_kept_or_guessed() {
        let mut h = HeaderMap::new();
        assert_eq!(content_type_for(&h, "a.png"), "image/png");
        assert_eq!(
            content_type_for(&h, "a.unknownext"),
            "application/octet-stream"
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        assert_eq!(content_type_for(&h, "a.webp"), "image/webp");
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
        assert_eq!(content_type_for(&h, "a.png"), "image/jpeg");
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("nonsense"));
        assert_eq!(content_type_for(&h, "a.png"), "image/png");
    }
}
