//! What the gateway answers when it cannot do what was asked, in ComfyUI's
//! own error shape (`{"error": {type, message, details, extra_info},
//! "node_errors": {}}`), which the frontend shows in its error dialog.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Every failure the gateway reports to a browser.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No user could be named (no header from a trusted proxy).
    #[error("not signed in: the gateway got no user name from a trusted proxy")]
    Unauthenticated,
    /// The user header came from an address that may not set it.
    #[error("the user header came from {0}, which is not a trusted proxy")]
    ForgedIdentity(std::net::IpAddr),
    /// The named user is not configured.
    #[error("user {0:?} is not configured on this gateway")]
    UnknownUser(String),
    /// The path is another user's.
    #[error("this path belongs to another user")]
    OtherUsersPath,
    /// The path is nobody's.
    #[error("no such path on this gateway")]
    NotFound,
    /// The user's ComfyUI did not answer.
    #[error("your ComfyUI at {upstream} is not reachable: {reason}")]
    UpstreamDown {
        /// Its base URL.
        upstream: String,
        /// What failed.
        reason: String,
    },
    /// The queue did not answer, or answered with an error the user cannot fix.
    #[error("the job queue is not reachable: {0}")]
    QueueDown(String),
    /// The queue refused the request (its status and message).
    #[error("{message}")]
    Queue {
        /// The queue's status.
        status: StatusCode,
        /// The queue's error code.
        code: String,
        /// The queue's message.
        message: String,
    },
    /// The request itself is wrong (ComfyUI answers these 400).
    #[error("{message}")]
    BadRequest {
        /// ComfyUI's error `type`.
        kind: &'static str,
        /// For people.
        message: String,
    },
    /// The body is over the limit.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The Comfy account secrets could not be sealed.
    #[error("{0}")]
    Sealing(#[from] comfy_sealed::SealError),
}

impl GatewayError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::Unauthenticated => StatusCode::UNAUTHORIZED,
            GatewayError::ForgedIdentity(_) | GatewayError::OtherUsersPath => StatusCode::FORBIDDEN,
            GatewayError::UnknownUser(_) => StatusCode::FORBIDDEN,
            GatewayError::NotFound => StatusCode::NOT_FOUND,
            GatewayError::UpstreamDown { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::QueueDown(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Queue { status, .. } => *status,
            GatewayError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            GatewayError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::Sealing(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// ComfyUI's error `type` for it.
    pub fn kind(&self) -> &str {
        match self {
            GatewayError::Unauthenticated => "unauthenticated",
            GatewayError::ForgedIdentity(_) => "forged_identity",
            GatewayError::UnknownUser(_) => "unknown_user",
            GatewayError::OtherUsersPath => "forbidden",
            GatewayError::NotFound => "not_found",
            GatewayError::UpstreamDown { .. } => "upstream_unavailable",
            GatewayError::QueueDown(_) => "queue_unavailable",
            GatewayError::Queue { code, .. } => code,
            GatewayError::BadRequest { kind, .. } => kind,
            GatewayError::TooLarge(_) => "payload_too_large",
            GatewayError::Sealing(_) => "sealing_failed",
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.to_string();
        let body = json!({
            "error": {
                "type": self.kind(),
                "message": message,
                "details": "",
                "extra_info": {},
            },
            "node_errors": {},
        });
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"ComfyUI\""),
            );
        }
        resp
    }
}
