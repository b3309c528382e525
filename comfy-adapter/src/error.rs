//! The one error type of the crate.
//!
//! Transport failures (refused, timeout, 5xx), "this is not ComfyUI", input the
//! crate refuses before anything leaves, and ComfyUI's own typed answers
//! (prompt validation, userdata conflicts, missing files) are separate variants
//! so a caller can decide what is retryable without string matching.

use crate::model::prompt::PromptRejected;

/// Everything that can go wrong talking to a ComfyUI server.
#[derive(Debug, thiserror::Error)]
pub enum ComfyError {
    /// The TCP connection could not be made (refused, unreachable, DNS).
    #[error("cannot connect to ComfyUI at {url}: {source}")]
    Connect {
        /// The URL that was tried.
        url: String,
        /// The underlying transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server did not answer within the configured timeout.
    #[error("ComfyUI at {url} did not answer within the timeout")]
    Timeout {
        /// The URL that was tried.
        url: String,
    },
    /// Any other transport-level failure (connection reset mid-body, TLS, ...).
    #[error("transport error talking to {url}: {source}")]
    Transport {
        /// The URL that was tried.
        url: String,
        /// The underlying transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered 5xx. ComfyUI answers 500 for input it cannot parse
    /// (malformed JSON, a non-integer `max_items`) as well as for crashes.
    #[error("ComfyUI answered {status} for {method} {path}: {body}")]
    Server {
        /// HTTP method.
        method: String,
        /// Request path as sent.
        path: String,
        /// HTTP status (5xx).
        status: u16,
        /// Response body as text (truncated to 2 KiB).
        body: String,
    },
    /// The server answered with a status this call does not expect.
    #[error("unexpected {status} for {method} {path}: {body}")]
    UnexpectedStatus {
        /// HTTP method.
        method: String,
        /// Request path as sent.
        path: String,
        /// HTTP status.
        status: u16,
        /// Response body as text (truncated to 2 KiB).
        body: String,
    },
    /// The server at this address does not look like ComfyUI.
    #[error("{url} does not look like a ComfyUI server: {reason}")]
    NotComfyUi {
        /// The base URL.
        url: String,
        /// What gave it away.
        reason: String,
    },
    /// A response body could not be decoded into the expected shape.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// Which response.
        what: String,
        /// Why.
        reason: String,
    },
    /// ComfyUI refused the prompt (HTTP 400 from `POST /prompt`).
    #[error("prompt rejected: {0}")]
    PromptRejected(Box<PromptRejected>),
    /// Input refused before any request was sent.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which argument.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// The resource does not exist (404).
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The target already exists and overwrite was not allowed (409).
    #[error("already exists: {what}")]
    Conflict {
        /// What collided.
        what: String,
    },
    /// The server refused access (403), e.g. a path outside the user directory.
    #[error("forbidden: {what}")]
    Forbidden {
        /// What was refused.
        what: String,
    },
    /// The server's version is outside every known line and strict mode is on.
    #[error("unsupported ComfyUI version {version:?}: {reason}")]
    UnsupportedVersion {
        /// The version string the server reported (may be empty).
        version: String,
        /// Why it was refused.
        reason: String,
    },
    /// The WebSocket could not be opened or broke.
    #[error("websocket error at {url}: {reason}")]
    WebSocket {
        /// The ws:// URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The URL given is not usable as a ComfyUI base URL.
    #[error("invalid base URL {url:?}: {reason}")]
    InvalidUrl {
        /// What was given.
        url: String,
        /// Why.
        reason: String,
    },
}

impl ComfyError {
    /// Whether trying again (later, or on another server) may succeed:
    /// transport failures, timeouts and 5xx. Validation errors, conflicts and
    /// bad input are permanent.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::Timeout { .. }
                | Self::Transport { .. }
                | Self::Server { .. }
                | Self::WebSocket { .. }
        )
    }

    /// The prompt rejection, when this is one.
    pub fn as_rejection(&self) -> Option<&PromptRejected> {
        match self {
            Self::PromptRejected(r) => Some(r),
            _ => None,
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = ComfyError> = std::result::Result<T, E>;
