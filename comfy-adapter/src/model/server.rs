//! Server identity: version, devices, flags, and what the server can do.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A behaviour line: a range of ComfyUI releases that speak the same API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Line {
    /// 0.3 – 0.5: no `/api/jobs`; status comes from `/queue` + `/history`.
    Legacy,
    /// 0.6 – 0.25: `/api/jobs` list and by-id; no cancel endpoint.
    JobsApi,
    /// 0.26 and later: `/api/jobs/{id}/cancel`, canonical-UUID prompt ids,
    /// `missing_node_type` errors.
    CancelApi,
}

impl Line {
    /// Every line, oldest first.
    pub const ALL: [Line; 3] = [Line::Legacy, Line::JobsApi, Line::CancelApi];

    /// The release range this line covers, as written in the docs.
    pub fn range(self) -> &'static str {
        match self {
            Line::Legacy => "0.3-0.5",
            Line::JobsApi => "0.6-0.25",
            Line::CancelApi => "0.26+",
        }
    }

    /// The line a (parsed) version belongs to by number alone.
    pub fn for_version(v: &semver::Version) -> Line {
        if v.major > 0 || v.minor >= 26 {
            Line::CancelApi
        } else if v.minor >= 6 {
            Line::JobsApi
        } else {
            Line::Legacy
        }
    }

    /// The recorded releases this line is tested against.
    pub fn tested_versions(self) -> &'static [&'static str] {
        match self {
            Line::Legacy => &["0.3.64"],
            Line::JobsApi => &["0.6.0", "0.9.2", "0.11.1"],
            Line::CancelApi => &["0.26.0", "0.33.0"],
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Line::Legacy => "legacy",
            Line::JobsApi => "jobs-api",
            Line::CancelApi => "cancel-api",
        };
        write!(f, "{name} ({})", self.range())
    }
}

/// What `/system_stats` (and `/features`) tell about a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The version string exactly as reported (`system.comfyui_version`).
    pub version_string: Option<String>,
    /// The parsed version, when it parses as semver (a leading `v` is allowed).
    pub version: Option<semver::Version>,
    /// Operating system as reported (`linux`, `nt`, ...).
    pub os: Option<String>,
    /// Python version string.
    pub python_version: Option<String>,
    /// PyTorch version string.
    pub pytorch_version: Option<String>,
    /// Frontend package version the server requires.
    pub required_frontend_version: Option<String>,
    /// The server's command line (`main.py --listen ...`).
    pub argv: Vec<String>,
    /// Compute devices.
    pub devices: Vec<Device>,
    /// Total and free RAM in bytes.
    pub ram_total: Option<u64>,
    /// Free RAM in bytes.
    pub ram_free: Option<u64>,
    /// Package versions (0.26+ `comfy_package_versions`), empty before.
    pub packages: Vec<PackageVersion>,
}

impl ServerInfo {
    /// Whether the server runs with `--multi-user` (userdata then depends on
    /// the `comfy-user` header).
    pub fn multi_user(&self) -> bool {
        self.has_flag("--multi-user")
    }

    /// Whether a command-line flag is present (`--cpu`, `--lowvram`, ...).
    pub fn has_flag(&self, flag: &str) -> bool {
        self.argv.iter().any(|a| a == flag)
    }
}

/// A compute device from `/system_stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Display name (`cuda:0 NVIDIA H100 ...`, `cpu`).
    pub name: String,
    /// Kind (`cuda`, `cpu`, `mps`, ...).
    pub kind: String,
    /// Device index, when there is one.
    pub index: Option<u32>,
    /// Total VRAM in bytes.
    pub vram_total: Option<u64>,
    /// Free VRAM in bytes.
    pub vram_free: Option<u64>,
}

/// One entry of `comfy_package_versions` (0.26+).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageVersion {
    /// Package name.
    pub name: String,
    /// Installed version.
    pub installed: Option<String>,
    /// Version the server requires.
    pub required: Option<String>,
}

/// What a server can do, from its version and from probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// `GET /api/jobs` answers (0.6+; probed).
    pub jobs_api: bool,
    /// `POST /api/jobs/{id}/cancel` exists (0.26+; probed).
    pub jobs_cancel_api: bool,
    /// The jobs API knows the `cancelled` status (0.9+).
    pub cancelled_status: bool,
    /// A client-chosen prompt id must be a canonical lowercase UUID (0.26+).
    pub uuid_prompt_ids: bool,
    /// Unknown node classes are reported as `missing_node_type` (0.26+).
    pub missing_node_type_errors: bool,
    /// `POST /interrupt {prompt_id}` interrupts only that prompt (every
    /// recorded line; a non-running id is a no-op).
    pub targeted_interrupt: bool,
    /// The server runs with `--multi-user`.
    pub multi_user: bool,
    /// `/features` says the server can send previews with metadata.
    pub preview_metadata: bool,
    /// `/features` upload limit in bytes.
    pub max_upload_size: Option<u64>,
}

impl Capabilities {
    /// What a line implies before any probe.
    pub fn for_line(line: Line, version: Option<&semver::Version>) -> Capabilities {
        let at_least = |minor: u64| version.is_some_and(|v| v.major > 0 || v.minor >= minor);
        Capabilities {
            jobs_api: line != Line::Legacy,
            jobs_cancel_api: line == Line::CancelApi,
            cancelled_status: match version {
                Some(_) => at_least(9),
                None => line != Line::Legacy,
            },
            uuid_prompt_ids: line == Line::CancelApi,
            missing_node_type_errors: line == Line::CancelApi,
            targeted_interrupt: true,
            multi_user: false,
            preview_metadata: false,
            max_upload_size: None,
        }
    }
}
