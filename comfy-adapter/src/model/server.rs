//! Server identity: version, devices, flags, and what the server can do.

use crate::releases;
use serde::{Deserialize, Serialize};
use std::fmt;

pub use crate::releases::Line;

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

/// One yes-or-no capability: the vocabulary in which `detect --json`
/// prints [`Capabilities`], the worker registers with the queue, and jobs
/// name what they require (`metadata.requires.capabilities`). The name of
/// each is the field of [`Capabilities`] that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// [`Capabilities::jobs_api`].
    JobsApi,
    /// [`Capabilities::jobs_cancel_api`].
    JobsCancelApi,
    /// [`Capabilities::cancelled_status`].
    CancelledStatus,
    /// [`Capabilities::uuid_prompt_ids`].
    UuidPromptIds,
    /// [`Capabilities::missing_node_type_errors`].
    MissingNodeTypeErrors,
    /// [`Capabilities::targeted_interrupt`].
    TargetedInterrupt,
    /// [`Capabilities::multi_user`].
    MultiUser,
    /// [`Capabilities::preview_metadata`].
    PreviewMetadata,
}

impl Capability {
    /// Every capability, in the order [`Capabilities`] lists them.
    pub const ALL: [Capability; 8] = [
        Capability::JobsApi,
        Capability::JobsCancelApi,
        Capability::CancelledStatus,
        Capability::UuidPromptIds,
        Capability::MissingNodeTypeErrors,
        Capability::TargetedInterrupt,
        Capability::MultiUser,
        Capability::PreviewMetadata,
    ];

    /// Its name (`jobs_cancel_api`).
    pub fn name(self) -> &'static str {
        match self {
            Capability::JobsApi => "jobs_api",
            Capability::JobsCancelApi => "jobs_cancel_api",
            Capability::CancelledStatus => "cancelled_status",
            Capability::UuidPromptIds => "uuid_prompt_ids",
            Capability::MissingNodeTypeErrors => "missing_node_type_errors",
            Capability::TargetedInterrupt => "targeted_interrupt",
            Capability::MultiUser => "multi_user",
            Capability::PreviewMetadata => "preview_metadata",
        }
    }

    /// The capability with this name.
    pub fn from_name(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Capabilities {
    /// Whether the server has `c`.
    pub fn has(&self, c: Capability) -> bool {
        match c {
            Capability::JobsApi => self.jobs_api,
            Capability::JobsCancelApi => self.jobs_cancel_api,
            Capability::CancelledStatus => self.cancelled_status,
            Capability::UuidPromptIds => self.uuid_prompt_ids,
            Capability::MissingNodeTypeErrors => self.missing_node_type_errors,
            Capability::TargetedInterrupt => self.targeted_interrupt,
            Capability::MultiUser => self.multi_user,
            Capability::PreviewMetadata => self.preview_metadata,
        }
    }

    /// The capabilities the server has, by name, in [`Capability::ALL`]
    /// order: what a worker registers with the queue.
    pub fn names(&self) -> Vec<&'static str> {
        Capability::ALL
            .into_iter()
            .filter(|c| self.has(*c))
            .map(Capability::name)
            .collect()
    }

    /// What a line implies before any probe.
    pub fn for_line(line: Line, version: Option<&semver::Version>) -> Capabilities {
        Capabilities {
            jobs_api: line != Line::Legacy,
            jobs_cancel_api: line == Line::CancelApi,
            cancelled_status: match version {
                Some(v) => releases::Difference::CancelledStatus.applies_to(v),
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
