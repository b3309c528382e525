//! The one error type of the HTTP API. Each error has a stable machine `code` and an HTTP
//! status; the body is `{"error": {"code", "message", "field"?}, "detail": message}` (the
//! `detail` string keeps the original Python clients working).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::{Chain, StoreError};

/// An API error with its status, stable code, message and (for input errors) the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
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
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Offending field, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 422: a field failed validation.
    pub fn validation(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
        }
    }

    /// 400: the body is not JSON.
    pub fn malformed_json(message: impl std::fmt::Display) -> Self {
        Self {
            field: Some("body".into()),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the request body is not valid JSON: {message}"),
            )
        }
    }

    /// 413: a field (or the whole body) is over its size limit.
    pub fn too_large(field: &str, limit: usize) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("`{field}` is larger than {limit} bytes"),
            )
        }
    }

    /// 404: no such job.
    pub fn job_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "job_not_found", "Job not found")
    }

    /// 404: no such route.
    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "route_not_found", "Not Found")
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method Not Allowed",
        )
    }

    /// 400: the change is not allowed in the job's current status (contract status for
    /// DELETE and PATCH priority).
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_state", message)
    }

    /// 409: the lease token does not match (expired, re-leased, or the job is not running).
    pub fn lease_conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "lease_conflict", message)
    }

    /// 429: the queue holds as many pending jobs as allowed.
    pub fn queue_full(cap: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            format!("the queue already holds {cap} pending jobs"),
        )
    }

    /// 429: the user holds as many pending+running jobs as allowed.
    pub fn user_limit(cap: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "user_limit_reached",
            format!("this user already has {cap} pending or running jobs"),
        )
    }

    /// 401: credentials missing or wrong.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 503: the store cannot be reached (e.g. Redis is restarting). Nothing was written.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the job store is unavailable; retry shortly",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::job_not_found(),
            StoreError::InvalidState(m) => ApiError::invalid_state(m),
            StoreError::LeaseConflict(m) => ApiError::lease_conflict(m),
            StoreError::QueueFull(cap) => ApiError::queue_full(cap),
            StoreError::UserLimit(cap) => ApiError::user_limit(cap),
            StoreError::Backend(e) => {
                tracing::error!(error = %Chain(&e), "store error");
                ApiError::unavailable()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            detail: self.message.clone(),
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}
