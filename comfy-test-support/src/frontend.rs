//! Built ComfyUI frontends (the static files of the `comfyui-frontend-package`
//! wheels from PyPI) for the browser tests.
//!
//! A frontend version `V` is looked up as `<root>/V/static/index.html`, where
//! `<root>` is `$COMFY_FRONTENDS` when set, otherwise
//! `${COMFY_CI_CACHE:-~/.cache/comfy-ci}/frontend` (where `.ci/run` extracts
//! the wheels it downloads, see `.ci/frontends.sh`).

use std::path::PathBuf;

/// The frontend versions the browser tests run: the ones 0.9.2, 0.11.1 and
/// 0.33.0 pin, and the newest on PyPI when this list was written.
pub const TESTED: [&str; 4] = ["1.36.14", "1.37.11", "1.48.7", "1.58.1"];

/// The folder that holds one directory per frontend version.
pub fn root() -> PathBuf {
    if let Some(dir) = std::env::var_os("COMFY_FRONTENDS") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("COMFY_CI_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/comfy-ci")))
        .unwrap_or_else(|| PathBuf::from(".cache/comfy-ci"));
    cache.join("frontend")
}

/// The `static/` folder of frontend `version`, if it has been extracted.
pub fn find(version: &str) -> Option<PathBuf> {
    let dir = root().join(version).join("static");
    dir.join("index.html").is_file().then_some(dir)
}

/// The `static/` folder of frontend `version`; panics with the command that
/// provides it when it is missing, so a browser test never passes without it.
pub fn static_dir(version: &str) -> PathBuf {
    find(version).unwrap_or_else(|| {
        panic!(
            "frontend {version} not found under {}: run `bash .ci/frontends.sh` \
             (downloads the comfyui-frontend-package wheels from PyPI) or set COMFY_FRONTENDS",
            root().display()
        )
    })
}
