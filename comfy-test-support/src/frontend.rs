//! Built ComfyUI frontends (the static files of the `comfyui-frontend-package`
//! wheels from PyPI) for the browser tests.
//!
//! A frontend version `V` is looked up as `<root>/V/static/index.html`, where
//! `<root>` is `$COMFY_FRONTENDS` when set, otherwise
//! `${COMFY_CI_CACHE:-~/.cache/comfy-ci}/frontend` (the layout of
//! `comfy-frontend`'s cache, which `.ci/frontends.sh` fills with pip in CI).
//! A version that is not there is fetched from PyPI on first use.

use comfy_frontend::FrontendCache;
use std::path::PathBuf;

/// The frontend versions the browser tests run: the ones 0.9.2, 0.11.1 and
/// 0.33.0 pin, and the newest on PyPI when this list was written.
pub const TESTED: [&str; 4] = ["1.36.14", "1.37.11", "1.48.7", "1.58.1"];

/// The folder that holds one directory per frontend version.
pub fn root() -> PathBuf {
    FrontendCache::default_root()
}

/// The `static/` folder of frontend `version`, if it is in the cache.
pub fn find(version: &str) -> Option<PathBuf> {
    FrontendCache::new(root()).find(version)
}

/// The `static/` folder of frontend `version`, fetched from PyPI into the
/// cache when it is not there (on a thread of its own, so it can be called
/// from a test's runtime); panics with the reason when it cannot be had, so
/// a browser test never passes without it.
pub fn static_dir(version: &str) -> PathBuf {
    if let Some(dir) = find(version) {
        return dir;
    }
    let v = version.to_owned();
    let fetched = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(FrontendCache::new(root()).fetch(&v))
            .map_err(|e| e.to_string())
    })
    .join()
    .unwrap_or_else(|_| Err("the fetching thread panicked".into()));
    fetched.unwrap_or_else(|e| {
        panic!(
            "frontend {version} is not under {} and could not be fetched: {e} \
             (`bash .ci/frontends.sh` fetches it with pip; or set COMFY_FRONTENDS)",
            root().display()
        )
    })
}
