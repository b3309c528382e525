//! `/userdata` and `/v2/userdata`.

use serde::Deserialize;

/// A `full_info` entry. `modified`/`created` are floats before 0.26 and
/// whole numbers from 0.26; both deserialize into `f64`.
#[derive(Debug, Clone, Deserialize)]
pub struct FileInfoWire {
    /// Relative path.
    pub path: String,
    /// Bytes.
    pub size: Option<u64>,
    /// Seconds since the epoch.
    pub modified: Option<f64>,
    /// Seconds since the epoch.
    pub created: Option<f64>,
}

/// A `GET /v2/userdata` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct TreeEntryWire {
    /// Base name.
    pub name: String,
    /// Path from the user root.
    pub path: String,
    /// `file` or `directory`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Files only.
    pub size: Option<u64>,
    /// Files only.
    pub modified: Option<f64>,
}

/// `POST /upload/image` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct UploadWire {
    /// Stored name (may differ from the one sent when not overwriting).
    pub name: String,
    /// Sub-folder.
    #[serde(default)]
    pub subfolder: String,
    /// Folder type.
    #[serde(rename = "type", default)]
    pub kind: String,
}
