//! Embeds the recordings the emulator answers from (`fixtures/comfyui-*/`:
//! system_stats, features, the model folders, the extensions and the full
//! object_info), so an emulator runs from any directory with nothing on
//! disk. Every recorded set under `fixtures/` is embedded; a test checks
//! they are exactly the releases of `comfy_adapter::releases`.
//!
//! It also sets `cfg(has_chromium)` for the browser tests
//! (`tests/frontend_boot.rs`): without Chromium and chromedriver they are
//! reported as ignored, or the build fails with COMFY_REQUIRE_CHROMIUM=1
//! (`comfy-test-support/README.md`). The library reads no such cfg.

#[allow(dead_code, unreachable_pub)]
#[path = "../comfy-test-support/src/probe.rs"]
mod probe;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Field of `Embedded` and file; the same five as `RECORDED_FILES` in
/// `src/recordings.rs` (a build script cannot use the crate it builds).
const FILES: [(&str, &str); 5] = [
    ("system_stats", "001-system_stats.json"),
    ("features", "003-features.json"),
    ("models", "005-models-list.json"),
    ("extensions", "007-extensions.json"),
    ("object_info", "018-object_info-full.json"),
];

fn main() {
    probe::build_script(&[probe::HAS_CHROMIUM]);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    println!("cargo:rerun-if-changed={}", fixtures.display());
    let mut sets: Vec<(String, PathBuf)> = std::fs::read_dir(&fixtures)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let version = name.strip_prefix("comfyui-")?.to_owned();
                    Some((version, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    sets.sort_by_key(|(v, _)| {
        v.split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    let mut out = String::from("/// Every recorded set under `fixtures/`, oldest first.\n");
    out.push_str("pub(crate) static EMBEDDED: &[Embedded] = &[\n");
    for (version, dir) in &sets {
        let _ = writeln!(out, "    Embedded {{\n        version: {version:?},");
        for (field, file) in FILES {
            let path = dir.join(file);
            println!("cargo:rerun-if-changed={}", path.display());
            let _ = writeln!(
                out,
                "        {field}: include_str!({:?}),",
                path.display().to_string()
            );
        }
        out.push_str("    },\n");
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("embedded.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        panic!("cannot write {}: {e}", dest.display());
    }
}
