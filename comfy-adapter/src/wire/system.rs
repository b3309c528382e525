//! `GET /system_stats` and `GET /features`.

use serde::Deserialize;
use serde_json::Value;

/// `GET /system_stats`.
#[derive(Debug, Clone, Deserialize)]
pub struct SystemStats {
    /// The `system` section (required: its absence means "not ComfyUI").
    pub system: SystemSection,
    /// Devices.
    #[serde(default)]
    pub devices: Vec<DeviceWire>,
}

/// `system_stats.system`.
#[derive(Debug, Clone, Deserialize)]
pub struct SystemSection {
    /// OS name.
    pub os: Option<String>,
    /// Bytes.
    pub ram_total: Option<u64>,
    /// Bytes.
    pub ram_free: Option<u64>,
    /// Absent on very old builds.
    pub comfyui_version: Option<String>,
    /// Frontend version the server pins.
    pub required_frontend_version: Option<String>,
    /// Python version string.
    pub python_version: Option<String>,
    /// PyTorch version string.
    pub pytorch_version: Option<String>,
    /// Command line.
    #[serde(default)]
    pub argv: Vec<String>,
    /// 0.26+: pinned package versions.
    #[serde(default)]
    pub comfy_package_versions: Vec<PackageWire>,
}

/// `system_stats.devices[]`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceWire {
    /// Display name.
    pub name: Option<String>,
    /// `cuda`, `cpu`, ...
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Index (null for cpu).
    pub index: Option<u32>,
    /// Bytes.
    pub vram_total: Option<u64>,
    /// Bytes.
    pub vram_free: Option<u64>,
}

/// `system_stats.system.comfy_package_versions[]` (0.26+).
#[derive(Debug, Clone, Deserialize)]
pub struct PackageWire {
    /// Package.
    pub name: String,
    /// Installed version.
    pub installed: Option<String>,
    /// Required version.
    pub required: Option<String>,
}

/// `GET /features`: flags, kept loose because every line adds some.
#[derive(Debug, Clone, Deserialize)]
pub struct Features {
    /// Whether previews can carry metadata (binary type 4).
    #[serde(default)]
    pub supports_preview_metadata: bool,
    /// Upload limit in bytes (a float on older lines).
    pub max_upload_size: Option<f64>,
    /// Everything, for callers that want the rest.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}
