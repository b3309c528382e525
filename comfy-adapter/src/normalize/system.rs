use crate::model::server::{Capabilities, Device, PackageVersion, ServerInfo};
use crate::wire::system::{Features, SystemStats};

/// Parses a ComfyUI version string: `0.11.1`, `v0.11.1`, `0.11` (patch 0),
/// `0.11.1-rc1`. `None` when it is not a version.
pub fn parse_version(s: &str) -> Option<semver::Version> {
    let s = s.trim();
    let s = s.strip_prefix('v').unwrap_or(s);
    if let Ok(v) = semver::Version::parse(s) {
        return Some(v);
    }
    // Two-part versions ("0.11") and build suffixes without a dash ("0.3.64+git").
    let mut parts = s.splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = match parts.next() {
        None => 0,
        Some(rest) => {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()?
        }
    };
    Some(semver::Version::new(major, minor, patch))
}

/// `/system_stats` → [`ServerInfo`].
pub fn server_info(stats: SystemStats) -> ServerInfo {
    let sys = stats.system;
    let version = sys.comfyui_version.as_deref().and_then(parse_version);
    ServerInfo {
        version_string: sys.comfyui_version,
        version,
        os: sys.os,
        python_version: sys.python_version,
        pytorch_version: sys.pytorch_version,
        required_frontend_version: sys.required_frontend_version,
        argv: sys.argv,
        devices: stats
            .devices
            .into_iter()
            .map(|d| Device {
                name: d.name.unwrap_or_default(),
                kind: d.kind.unwrap_or_default(),
                index: d.index,
                vram_total: d.vram_total,
                vram_free: d.vram_free,
            })
            .collect(),
        ram_total: sys.ram_total,
        ram_free: sys.ram_free,
        packages: sys
            .comfy_package_versions
            .into_iter()
            .map(|p| PackageVersion {
                name: p.name,
                installed: p.installed,
                required: p.required,
            })
            .collect(),
    }
}

/// Folds `/features` into capabilities.
pub fn capabilities_from_features(caps: &mut Capabilities, features: &Features) {
    caps.preview_metadata = features.supports_preview_metadata;
    caps.max_upload_size = features
        .max_upload_size
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| x as u64);
}
