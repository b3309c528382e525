//! The errors of the HTTP API: every [`ErrorCode`] with its status and what it means, and
//! [`ApiError`], the one error type the handlers return. The body is
//! `{"error": {"code", "message", "field"?}, "detail": message}` (the `detail` string keeps
//! the original Python clients working).
//!
//! Domain errors ([`InputError`], [`StoreError`], [`AuthError`]) become `ApiError`s here,
//! and only here. The table of codes in `docs/queue.md` is [`ErrorCode::markdown_table`];
//! a test keeps the two the same.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::AuthError;
use crate::input::{InputError, Problem};
use crate::store::{Chain, StoreError};

/// Declares [`ErrorCode`] from one table: variant, wire code, HTTP status, when it is sent.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $status:ident, $when:literal;)+) => {
        /// A stable machine-readable error code. Each has one HTTP status.
        // The wire codes are the variants in snake_case (a unit test holds `as_str` to it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)+
        }

        impl ErrorCode {
            /// Every code, in the order of the table in `docs/queue.md`.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The wire spelling, e.g. `invalid_priority`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }

            /// The HTTP status sent with it.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)+
                }
            }

            /// When it is sent (the "when" column of the table in `docs/queue.md`).
            pub fn description(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $when,)+
                }
            }
        }
    };
}

error_codes! {
    /// The body is not JSON.
    MalformedJson = "malformed_json", BAD_REQUEST,
        "the body is not JSON (field `body`)";
    /// The job's status does not allow the change.
    InvalidState = "invalid_state", BAD_REQUEST,
        "DELETE of a finished job; PATCH priority of a non-pending job (the contract's 400)";
    /// `/ws` without a WebSocket upgrade.
    WebsocketRequired = "websocket_required", BAD_REQUEST,
        "a `/ws` request that is not a WebSocket upgrade (GET with `Connection: upgrade`, `Upgrade: websocket`, `Sec-WebSocket-Version: 13`, `Sec-WebSocket-Key`)";
    /// A file name or subfolder that cannot be used.
    InvalidFilename = "invalid_filename", BAD_REQUEST,
        "a file name or subfolder (`filename`, `subfolder`, `inputs[i].filename`) that is empty, absolute, has a `.` or `..` component, a `\\`, NUL or other control character, a component over 255 bytes, or names an earlier input again";
    /// A submit names an input this user never uploaded.
    UnknownFile = "unknown_file", BAD_REQUEST,
        "a submit's `inputs[i].sha256` that this user never uploaded (or whose upload was forgotten after `--upload-grace-secs`); field `inputs[i].sha256`";
    /// A registration names a catalogue the file store does not have.
    UnknownCatalogue = "unknown_catalogue", BAD_REQUEST,
        "a registration's `catalogue` that is not the 64-hex SHA-256 of a catalogue uploaded before (`PUT /api/workers/catalogues/{sha256}`; upload it again: an unreferenced one is swept after `--upload-grace-secs`); field `catalogue`";
    /// The body of a file upload broke off.
    UploadIncomplete = "upload_incomplete", BAD_REQUEST,
        "a file upload whose body broke off before its end (nothing is stored)";
    /// Credentials missing or wrong.
    Unauthorized = "unauthorized", UNAUTHORIZED,
        "auth on, no or wrong credentials";
    /// Authenticated but not allowed.
    Forbidden = "forbidden", FORBIDDEN,
        "authenticated but not allowed (user acting as another user, priority 0 without admin, worker token on user routes)";
    /// No such job.
    JobNotFound = "job_not_found", NOT_FOUND,
        "unknown job (also a non-UUID id, and another user's job); detail `Job not found`";
    /// The job has no such file.
    FileNotFound = "file_not_found", NOT_FOUND,
        "a job the caller may see has no file of that role and path";
    /// No worker's registration names this catalogue.
    CatalogueNotFound = "catalogue_not_found", NOT_FOUND,
        "`GET /api/catalogues/{sha256}` of a catalogue no worker's registration names (also one that is not 64 hex digits)";
    /// No such worker.
    WorkerNotFound = "worker_not_found", NOT_FOUND,
        "drain or undrain of a worker id the queue has never seen";
    /// No such route.
    RouteNotFound = "route_not_found", NOT_FOUND,
        "unknown path";
    /// The route exists, the method does not.
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED,
        "known path, unknown method";
    /// The caller does not hold the live lease.
    LeaseConflict = "lease_conflict", CONFLICT,
        "heartbeat/complete/fail/events or a file upload with a stale token, an expired lease, or a job that is not running; events of another attempt";
    /// A field or the body is over its limit.
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE,
        "workflow > 10 MB, metadata > 1 MB, result > 50 MB, a file over `--max-file-bytes` (1 GiB), an events batch of more than 256 events or with a preview over 4 MiB, or the body over the route limit (12 MB submit, 51 MB complete, 8 MiB events, 1 MB others)";
    /// The body is not declared JSON.
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE,
        "a request body whose `Content-Type` is not `application/json` (field `body`); an empty body needs none";
    /// The range asked for is not inside the file.
    RangeNotSatisfiable = "range_not_satisfiable", RANGE_NOT_SATISFIABLE,
        "a file download whose `Range` starts at or past the end of the file (the answer has `Content-Range: bytes */size`)";
    /// A required field is absent.
    MissingField = "missing_field", UNPROCESSABLE_ENTITY,
        "a required field (or query parameter) is absent or null";
    /// A submit without a body.
    MissingBody = "missing_body", UNPROCESSABLE_ENTITY,
        "a submit without a body (field `body`)";
    /// A field has the wrong JSON type.
    InvalidType = "invalid_type", UNPROCESSABLE_ENTITY,
        "a field, or the body, has the wrong JSON type";
    /// A heartbeat's progress field is unusable.
    InvalidValue = "invalid_value", UNPROCESSABLE_ENTITY,
        "a heartbeat's `progress.percent` is not a number, or `progress.node` / `node_class` / `prompt_id` not a string of at most 200 characters; a file's `node_id` / `kind` that is empty, over 200 bytes or has control characters; more than 1000 `inputs`";
    /// Not a SHA-256.
    InvalidSha256 = "invalid_sha256", UNPROCESSABLE_ENTITY,
        "an `inputs[i].sha256` or `X-Content-Sha256` that is not 64 hex digits";
    /// The bytes do not have the declared hash.
    HashMismatch = "hash_mismatch", UNPROCESSABLE_ENTITY,
        "an upload's bytes whose SHA-256 is not its `X-Content-Sha256` (nothing is stored)";
    /// An uploaded catalogue is not a JSON object of node classes.
    InvalidCatalogue = "invalid_catalogue", UNPROCESSABLE_ENTITY,
        "a catalogue upload whose body is not a JSON object of node classes (`/object_info`: class name → object)";
    /// Not a role a worker may upload.
    InvalidRole = "invalid_role", UNPROCESSABLE_ENTITY,
        "a worker file upload whose `role` is not `output` or `temp`";
    /// Not a valid user id.
    InvalidUserId = "invalid_user_id", UNPROCESSABLE_ENTITY,
        "`user_id` does not match `^[A-Za-z0-9_-]{1,100}$`";
    /// Not a valid workflow.
    InvalidWorkflow = "invalid_workflow", UNPROCESSABLE_ENTITY,
        "`workflow` is an empty object";
    /// Not a priority 0–3.
    InvalidPriority = "invalid_priority", UNPROCESSABLE_ENTITY,
        "`priority` is not an integer from 0 to 3";
    /// Not a job status.
    InvalidStatus = "invalid_status", UNPROCESSABLE_ENTITY,
        "the `status` filter is not a job status";
    /// A count out of range.
    InvalidInteger = "invalid_integer", UNPROCESSABLE_ENTITY,
        "`limit`, `offset` or `page` is not an integer in its range";
    /// Not a valid error text.
    InvalidError = "invalid_error", UNPROCESSABLE_ENTITY,
        "a fail-job `error` that is blank or over 10,000 characters";
    /// Not a UUID.
    InvalidJobId = "invalid_job_id", UNPROCESSABLE_ENTITY,
        "a `job_id` parameter that is not a UUID";
    /// Not a valid worker id.
    InvalidWorkerId = "invalid_worker_id", UNPROCESSABLE_ENTITY,
        "`worker_id` does not match `^[A-Za-z0-9_-]{1,100}$`";
    /// Not a long-poll time.
    InvalidWait = "invalid_wait", UNPROCESSABLE_ENTITY,
        "next-job `wait` is not a non-negative number of seconds";
    /// Not a version.
    InvalidVersion = "invalid_version", UNPROCESSABLE_ENTITY,
        "a registered `comfyui_version` that is not a version such as 0.9.2";
    /// Not a semver requirement.
    InvalidVersionRequirement = "invalid_version_requirement", UNPROCESSABLE_ENTITY,
        "`metadata.requires.comfyui` is not a semver requirement";
    /// Not a valid idempotency key.
    InvalidIdempotencyKey = "invalid_idempotency_key", UNPROCESSABLE_ENTITY,
        "an `Idempotency-Key` header that is not 1-200 visible ASCII characters";
    /// The line name is too long.
    InvalidLine = "invalid_line", UNPROCESSABLE_ENTITY,
        "a registered `line` over 100 characters";
    /// The query string does not parse.
    InvalidQuery = "invalid_query", UNPROCESSABLE_ENTITY,
        "a malformed query string (field `query`)";
    /// The pending cap is reached.
    QueueFull = "queue_full", TOO_MANY_REQUESTS,
        "the queue holds `--max-pending` pending jobs";
    /// The per-user cap is reached.
    UserLimitReached = "user_limit_reached", TOO_MANY_REQUESTS,
        "the user holds `--max-per-user` pending or running jobs";
    /// The store failed.
    StoreUnavailable = "store_unavailable", SERVICE_UNAVAILABLE,
        "the store failed (e.g. Redis restarting). On SQLite nothing was written; on Redis a change whose reply was lost may have been: repeat a submit with the same `Idempotency-Key` to learn which (200 with the job, or 201)";
    /// The file store failed.
    FileStoreUnavailable = "file_store_unavailable", SERVICE_UNAVAILABLE,
        "the file store (local directory or S3) failed; nothing was recorded, retry the upload or download";
    /// Too many bytes of bodies (submits, results) are being processed at once.
    ServerBusy = "server_busy", SERVICE_UNAVAILABLE,
        "a submit or complete-job whose body would take the bytes of bodies being read and processed at once past `--max-body-bytes-in-flight` (256 MiB); refused before its body is read (or as soon as a body without `Content-Length` passes it), nothing is stored; the answer has `Retry-After: 1`";
}

impl ErrorCode {
    /// The table of codes as `docs/queue.md` shows it.
    pub fn markdown_table() -> String {
        let mut out = String::from("| status | code | when |\n|---|---|---|\n");
        for code in Self::ALL {
            out.push_str(&format!(
                "| {} | `{}` | {} |\n",
                code.status().as_u16(),
                code.as_str(),
                code.description().replace('|', "\\|")
            ));
        }
        out
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API error with its stable code, message and (for input errors) the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// Stable machine-readable code (it decides the status).
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
    /// The offending field, for input errors.
    pub field: Option<String>,
}

/// Wire shape of an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
    /// The message again, as the original FastAPI service spelled it.
    pub detail: String,
}

/// Inner part of [`ErrorBody`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `invalid_priority`, `job_not_found`, `lease_conflict`.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
    /// Offending field, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error with `code` and `message`, blaming no field.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// The same error, blaming `field`.
    pub fn with_field(self, field: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..self
        }
    }

    /// The HTTP status (the code's).
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// A field failed validation (422 for every validation code).
    pub fn validation(field: &str, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(code, message).with_field(field)
    }

    /// 400: the body is not JSON.
    pub fn malformed_json(message: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::MalformedJson,
            format!("the request body is not valid JSON: {message}"),
        )
        .with_field("body")
    }

    /// 415: a body that is not declared `application/json`.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            ErrorCode::UnsupportedMediaType,
            "the request body must be sent with `Content-Type: application/json`",
        )
        .with_field("body")
    }

    /// 400: `/ws` without a WebSocket upgrade; `why` is axum's reason.
    pub fn websocket_required(why: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::WebsocketRequired,
            format!("`/ws` needs a WebSocket upgrade: {why}"),
        )
    }

    /// 404: no such job.
    pub fn job_not_found() -> Self {
        Self::new(ErrorCode::JobNotFound, "Job not found")
    }

    /// 404: no such route.
    pub fn route_not_found() -> Self {
        Self::new(ErrorCode::RouteNotFound, "Not Found")
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(ErrorCode::MethodNotAllowed, "Method Not Allowed")
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 401: credentials missing or wrong.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// 503: the store cannot be reached (e.g. Redis is restarting). On Redis a write whose
    /// reply was lost may have happened.
    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::StoreUnavailable,
            "the job store is unavailable; retry shortly",
        )
    }

    /// 503 for a submit: the job may have been stored (a lost Redis reply), so the answer
    /// says how to find out instead of inviting a blind retry.
    /// The bytes of submit bodies in flight would pass `limit`.
    pub fn server_busy(limit: u64) -> Self {
        Self::new(
            ErrorCode::ServerBusy,
            format!(
                "the queue is already processing as many bytes of submit bodies as it takes at \
                 once ({limit}); nothing was stored, retry after `Retry-After` seconds"
            ),
        )
        .with_field("body")
    }

    pub fn submit_outcome_unknown() -> Self {
        Self::new(
            ErrorCode::StoreUnavailable,
            "the job store did not answer; the job may have been stored. Repeat the submit \
             with the same Idempotency-Key to learn whether (200 with the job if it was); \
             without a key a repeat may create a second job",
        )
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        let code = match e.problem {
            Problem::Missing => ErrorCode::MissingField,
            Problem::Type => ErrorCode::InvalidType,
            Problem::Value => ErrorCode::InvalidValue,
            Problem::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            Problem::UserId => ErrorCode::InvalidUserId,
            Problem::Workflow => ErrorCode::InvalidWorkflow,
            Problem::Priority => ErrorCode::InvalidPriority,
            Problem::ErrorText => ErrorCode::InvalidError,
            Problem::WorkerId => ErrorCode::InvalidWorkerId,
            Problem::JobId => ErrorCode::InvalidJobId,
            Problem::VersionRequirement => ErrorCode::InvalidVersionRequirement,
            Problem::IdempotencyKey => ErrorCode::InvalidIdempotencyKey,
            Problem::FileName => ErrorCode::InvalidFilename,
            Problem::Sha256 => ErrorCode::InvalidSha256,
            Problem::Malformed => ErrorCode::MalformedJson,
        };
        Self::new(code, e.message).with_field(e.field)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized(m) => Self::unauthorized(m),
            AuthError::Forbidden(m) => Self::forbidden(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::job_not_found(),
            StoreError::InvalidState(m) => ApiError::new(ErrorCode::InvalidState, m),
            StoreError::LeaseConflict(m) => ApiError::new(ErrorCode::LeaseConflict, m),
            StoreError::QueueFull(cap) => ApiError::new(
                ErrorCode::QueueFull,
                format!("the queue already holds {cap} pending jobs"),
            ),
            StoreError::UserLimit(cap) => ApiError::new(
                ErrorCode::UserLimitReached,
                format!("this user already has {cap} pending or running jobs"),
            ),
            StoreError::UnknownFile(i) => ApiError::new(
                ErrorCode::UnknownFile,
                format!(
                    "`inputs[{i}].sha256` names no file this user uploaded (upload it with POST /api/files first)"
                ),
            )
            .with_field(format!("inputs[{i}].sha256")),
            StoreError::Backend(e) => {
                tracing::error!(error = %Chain(&e), "store error");
                ApiError::unavailable()
            }
        }
    }
}

/// `Retry-After` of a `server_busy` answer: bodies are read and stored in well under a
/// second, so one second later there is room again unless the burst goes on.
pub const RETRY_AFTER_SECS: &str = "1";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            detail: self.message.clone(),
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        let mut resp = (self.code.status(), axum::Json(body)).into_response();
        if self.code == ErrorCode::ServerBusy {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table between the markers in `docs/queue.md`.
    fn documented_table() -> String {
        let doc = include_str!("../../docs/queue.md");
        let start = "<!-- error-codes: generated by ErrorCode::markdown_table -->\n";
        let Some(from) = doc.find(start) else {
            panic!("docs/queue.md lacks the marker {start:?}");
        };
        let rest = &doc[from + start.len()..];
        let Some(to) = rest.find("<!-- /error-codes -->") else {
            panic!("docs/queue.md lacks the end marker of the error-code table");
        };
        rest[..to].to_owned()
    }

    #[test]
    fn the_docs_table_is_the_enum() {
        let expected = ErrorCode::markdown_table();
        let documented = documented_table();
        // Both ways, row by row, so a failure names the code that drifted.
        for row in expected.lines() {
            assert!(
                documented.lines().any(|d| d == row),
                "docs/queue.md lacks the row\n{row}\nthe table should read:\n{expected}"
            );
        }
        for row in documented.lines() {
            assert!(
                expected.lines().any(|e| e == row),
                "docs/queue.md has a row no ErrorCode makes\n{row}\nthe table should read:\n{expected}"
            );
        }
        assert_eq!(documented, expected, "same rows, different order");
    }

    #[test]
    fn codes_are_unique_and_serialize_as_spelled() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::Value::String(code.as_str().to_owned()))
            );
        }
    }

    #[test]
    fn input_errors_keep_field_message_and_get_their_status() {
        let e = ApiError::from(InputError::new("priority", Problem::Priority, "bad"));
        assert_eq!(e.code, ErrorCode::InvalidPriority);
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.field.as_deref(), Some("priority"));
        assert_eq!(e.message, "bad");
        let e = ApiError::from(InputError::too_large("workflow", 10));
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.message, "`workflow` is larger than 10 bytes");
    }
}
