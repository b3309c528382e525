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
    /// The path is fine as written but its percent-decoded form is not
    /// (`..%2Fcomfy.settings.json`): ComfyUI decodes `%` in a userdata name
    /// once more after routing, so the decoded form is what it opens.
    #[error("path {path:?} decodes to {decoded:?}, which is refused: {reason}")]
    Encoded {
        /// The path as given.
        path: String,
        /// Its percent-decoded form.
        decoded: String,
        /// Why the decoded form is refused.
        reason: Box<UserdataPathError>,
    },
}

/// A validated path relative to the user's directory (`workflows/a b.json`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserdataPath(String);

/// How many rounds of percent-decoding a path is checked through (ComfyUI
/// decodes once after routing; more rounds cost nothing and cover a proxy
/// that decodes too).
const DECODE_ROUNDS: usize = 3;

impl UserdataPath {
    /// Validates `path`: relative, `/`-separated, no empty, `.` or `..`
    /// segments, no backslash, no NUL, no drive letter — both as written
    /// and after percent-decoding it (up to three times), because ComfyUI
    /// decodes a userdata name again before it opens the file. A path that
    /// passes stays inside the user's directory, whatever ComfyUI decodes.
    pub fn new(path: impl Into<String>) -> Result<Self, UserdataPathError> {
        let path = path.into();
        Self::check(&path)?;
        let mut current = path.clone();
        for _ in 0..DECODE_ROUNDS {
            let decoded = percent_encoding::percent_decode_str(&current)
                .decode_utf8_lossy()
                .into_owned();
            if decoded == current {
                break;
            }
            Self::check(&decoded).map_err(|reason| UserdataPathError::Encoded {
                path: path.clone(),
                decoded: decoded.clone(),
                reason: Box::new(reason),
            })?;
            current = decoded;
        }
        Ok(UserdataPath(path))
    }

    /// The structural rules of [`new`](Self::new) on one spelling.
    fn check(path: &str) -> Result<(), UserdataPathError> {
        let path = path.to_owned();
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
        Ok(())
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
