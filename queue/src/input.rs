//! What was wrong with a client's input, as the domain modules (model, scheduler,
//! progress) report it: the field to blame, what kind of problem it is and the message.
//! Only the HTTP layer (`error.rs`) turns an [`InputError`] into a status and a code.

/// A field of the input failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    /// The offending field, e.g. `priority`, `metadata.requires.comfyui`, `body`.
    pub field: String,
    /// What kind of problem it is.
    pub problem: Problem,
    /// Human-readable message.
    pub message: String,
}

/// The kinds of input problems the domain reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// A required field is absent or null.
    Missing,
    /// The field has the wrong JSON type.
    Type,
    /// The field has the wrong type or length where a display hint is read (progress).
    Value,
    /// The field is larger than `limit` bytes, serialized.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Not a valid user id.
    UserId,
    /// Not a valid workflow.
    Workflow,
    /// Not a priority 0–3.
    Priority,
    /// Not a valid error text.
    ErrorText,
    /// Not a valid worker id.
    WorkerId,
    /// Not a semver requirement.
    VersionRequirement,
    /// Not a valid idempotency key.
    IdempotencyKey,
}

impl InputError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, problem: Problem, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem,
            message: message.into(),
        }
    }

    /// `field` is larger than `limit` bytes.
    pub fn too_large(field: &str, limit: usize) -> Self {
        Self::new(
            field,
            Problem::TooLarge { limit },
            format!("`{field}` is larger than {limit} bytes"),
        )
    }
}
