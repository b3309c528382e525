//! Userdata paths and listings.
//!
//! ComfyUI addresses a userdata file as ONE path segment, so a nested path
//! must travel with `/` encoded as `%2F` (the recordings show an unencoded
//! slash answers 404). [`UserdataPath`] validates a path before any request
//! leaves and encodes it the way the frontend's `encodeURIComponent` does.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What one URL path segment may carry unencoded: the unreserved set of
/// RFC 3986. Everything else, `/`, space and `%` included, is encoded.
pub(crate) const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why a userdata path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserdataPathError {
    /// The path is empty.
    #[error("path is empty")]
    Empty,
    /// The path starts with `/` (absolute).
    #[error("path {0:?} is absolute")]
    Absolute(String),
    /// A segment is empty (`a//b`, trailing `/`).
    #[error("path {0:?} has an empty segment")]
    EmptySegment(String),
    /// A segment is `.` or `..`.
    #[error("path {0:?} has a '.' or '..' segment")]
    DotSegment(String),
    /// The path contains a backslash.
    #[error("path {0:?} contains a backslash")]
    Backslash(String),
    /// The path contains a NUL byte.
    #[error("path contains a NUL byte")]
    Nul,
    /// The path starts with a drive letter (`C:`).
    #[error("path {0:?} starts with a drive letter")]
    Drive(String),
}

/// A validated path relative to the user's directory (`workflows/a b.json`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserdataPath(String);

impl UserdataPath {
    /// Validates `path`: relative, `/`-separated, no empty, `.` or `..`
    /// segments, no backslash, no NUL, no drive letter.
    pub fn new(path: impl Into<String>) -> Result<Self, UserdataPathError> {
        let path = path.into();
        if path.is_empty() {
            return Err(UserdataPathError::Empty);
        }
        if path.contains('\0') {
            return Err(UserdataPathError::Nul);
        }
        if path.contains('\\') {
            return Err(UserdataPathError::Backslash(path));
        }
        if path.starts_with('/') {
            return Err(UserdataPathError::Absolute(path));
        }
        let bytes = path.as_bytes();
        if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
            return Err(UserdataPathError::Drive(path));
        }
        for seg in path.split('/') {
            if seg.is_empty() {
                return Err(UserdataPathError::EmptySegment(path));
            }
            if seg == "." || seg == ".." {
                return Err(UserdataPathError::DotSegment(path));
            }
        }
        Ok(UserdataPath(path))
    }

    /// The path as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path as one URL path segment: `/` → `%2F`, space → `%20`,
    /// `%` → `%25`, everything but `A-Za-z0-9-_.~` encoded.
    pub fn encoded(&self) -> String {
        utf8_percent_encode(&self.0, URI_COMPONENT).to_string()
    }

    /// Joins a child name (validated like a path).
    pub fn join(&self, child: &str) -> Result<Self, UserdataPathError> {
        Self::new(format!("{}/{child}", self.0))
    }
}

impl TryFrom<String> for UserdataPath {
    type Error = UserdataPathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<&str> for UserdataPath {
    type Error = UserdataPathError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<UserdataPath> for String {
    fn from(p: UserdataPath) -> String {
        p.0
    }
}

impl fmt::Display for UserdataPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to list under a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListOptions {
    /// Include sub-directories' files.
    pub recurse: bool,
    /// Ask for size and times.
    pub full_info: bool,
}

/// A file in a userdata listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserdataEntry {
    /// Path relative to the listed directory (`team/nested name.json`) or,
    /// for write answers, to the user root.
    pub path: String,
    /// Size in bytes (with `full_info`).
    pub size: Option<u64>,
    /// Modification time, seconds since the epoch (float before 0.26, whole
    /// seconds from 0.26; always a float here).
    pub modified: Option<f64>,
    /// Creation time, seconds since the epoch.
    pub created: Option<f64>,
}

/// Whether a write may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overwrite {
    /// Replace an existing file (the server's default).
    Allow,
    /// Fail with [`crate::ComfyError::Conflict`] when the target exists.
    Deny,
}

/// An entry of the recursive `/v2/userdata` tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserdataTreeEntry {
    /// Base name.
    pub name: String,
    /// Path from the user root.
    pub path: String,
    /// Directory (true) or file.
    pub is_dir: bool,
    /// Files: size in bytes.
    pub size: Option<u64>,
    /// Files: modification time, seconds since the epoch.
    pub modified: Option<f64>,
}
