//! The built ComfyUI frontend, ready to serve.
//!
//! ComfyUI's frontend ships on PyPI as the `comfyui-frontend-package` wheel,
//! whose `comfyui_frontend_package/static/` folder is what a ComfyUI server
//! serves at `/`. [`FrontendCache::fetch`] finds version `V` at
//! `<root>/V/static/index.html`, or downloads the wheel (its URL and SHA-256
//! from the index's Simple API, PEP 691 JSON), checks the hash, and unpacks the static files
//! there (into a temporary folder first, renamed into place, so a broken
//! download leaves nothing half-written). `.ci/frontends.sh` fills the same
//! layout with pip.

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use url::Url;

/// The PyPI project.
pub const PACKAGE: &str = "comfyui-frontend-package";

/// Why a frontend is not available.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// The version is not a version.
    #[error("{0:?} is not a frontend version (such as 1.48.7)")]
    BadVersion(String),
    /// The index could not be reached or answered with an error.
    #[error("fetching {url}: {reason}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// PyPI lists no wheel for the version.
    #[error("PyPI has no wheel of {PACKAGE} {0}")]
    NoWheel(String),
    /// The download is not what PyPI said it is.
    #[error("the wheel's SHA-256 is {got}, PyPI says {want}")]
    HashMismatch {
        /// What PyPI lists.
        want: String,
        /// What arrived.
        got: String,
    },
    /// The wheel is not a zip with a `static/index.html`.
    #[error("the wheel is not a frontend build: {0}")]
    NotAFrontend(String),
    /// The cache could not be written.
    #[error("cache {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A folder holding one directory per frontend version.
#[derive(Debug, Clone)]
pub struct FrontendCache {
    root: PathBuf,
    index: String,
}

impl FrontendCache {
    /// The cache at `root`, fetching from pypi.org.
    pub fn new(root: impl Into<PathBuf>) -> FrontendCache {
        FrontendCache {
            root: root.into(),
            index: "https://pypi.org/".to_owned(),
        }
    }

    /// `$COMFY_FRONTENDS`, else `${COMFY_CI_CACHE:-~/.cache/comfy-ci}/frontend`
    /// (a variable set to the empty string counts as unset: it would name the
    /// current directory).
    pub fn default_root() -> PathBuf {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(dir) = var("COMFY_FRONTENDS") {
            return PathBuf::from(dir);
        }
        var("COMFY_CI_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/comfy-ci")))
            .unwrap_or_else(|| PathBuf::from(".cache/comfy-ci"))
            .join("frontend")
    }

    /// Fetch from another index (a mirror, or a test server) that serves
    /// the Simple API as JSON (PEP 691) at `/simple/<project>/`.
    pub fn with_index(mut self, index: Url) -> FrontendCache {
        self.index = index.to_string();
        self
    }

    /// The cache's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `static/` folder of `version`, if it is in the cache.
    pub fn find(&self, version: &str) -> Option<PathBuf> {
        let dir = self.root.join(version).join("static");
        dir.join("index.html").is_file().then_some(dir)
    }

    /// The `static/` folder of `version`, fetched from the index when it is
    /// not in the cache yet.
    pub async fn fetch(&self, version: &str) -> Result<PathBuf, FrontendError> {
        if !is_version(version) {
            return Err(FrontendError::BadVersion(version.to_owned()));
        }
        if let Some(dir) = self.find(version) {
            return Ok(dir);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| fetch_error(&self.index, &e))?;
        let (url, sha256) = self.wheel_url(&http, version).await?;
        tracing::info!(version, %url, "downloading the ComfyUI frontend");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| FrontendError::Io { path, source }
        };
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let mut wheel = tempfile::tempfile_in(&self.root).map_err(io(&self.root))?;
        let resp = http
            .get(url.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| fetch_error(url.as_str(), &e))?;
        let mut hasher = Sha256::new();
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| fetch_error(url.as_str(), &e))?;
            hasher.update(&chunk);
            wheel.write_all(&chunk).map_err(io(&self.root))?;
        }
        let got = hex::encode(hasher.finalize());
        if !got.eq_ignore_ascii_case(&sha256) {
            return Err(FrontendError::HashMismatch { want: sha256, got });
        }
        let root = self.root.clone();
        let version = version.to_owned();
        tokio::task::spawn_blocking(move || unpack(wheel, &root, &version))
            .await
            .map_err(|e| FrontendError::NotAFrontend(e.to_string()))?
    }

    /// The wheel's URL and SHA-256 from the index's Simple API in its JSON
    /// form (PEP 691), what pip reads too, so mirrors work the same way.
    async fn wheel_url(
        &self,
        http: &reqwest::Client,
        version: &str,
    ) -> Result<(Url, String), FrontendError> {
        let index = Url::parse(&self.index).map_err(|e| FrontendError::Fetch {
            url: self.index.clone(),
            reason: e.to_string(),
        })?;
        let page = index
            .join(&format!("simple/{PACKAGE}/"))
            .map_err(|e| FrontendError::Fetch {
                url: self.index.clone(),
                reason: e.to_string(),
            })?;
        let listing: serde_json::Value = http
            .get(page.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/vnd.pypi.simple.v1+json",
            )
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| fetch_error(page.as_str(), &e))?
            .json()
            .await
            .map_err(|e| fetch_error(page.as_str(), &e))?;
        let prefix = format!("{}-{version}-", PACKAGE.replace('-', "_"));
        let wheel = listing
            .get("files")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .find(|f| {
                f.get("filename")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
            })
            .ok_or_else(|| FrontendError::NoWheel(version.to_owned()))?;
        let url = wheel
            .get("url")
            .and_then(serde_json::Value::as_str)
            .and_then(|u| page.join(u).ok())
            .ok_or_else(|| FrontendError::NoWheel(version.to_owned()))?;
        let sha256 = wheel
            .pointer("/hashes/sha256")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| FrontendError::NoWheel(version.to_owned()))?
            .to_owned();
        Ok((url, sha256))
    }
}

fn fetch_error(url: &str, e: &reqwest::Error) -> FrontendError {
    FrontendError::Fetch {
        url: url.to_owned(),
        reason: e.to_string(),
    }
}

/// `1.48.7`-like: digits and dots, and PEP 440's `.postN` suffixes.
fn is_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 40
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        && v.starts_with(|c: char| c.is_ascii_digit())
}

const STATIC_PREFIX: &str = "comfyui_frontend_package/static/";

/// Unpacks the wheel's `static/` into `<root>/<version>/static`.
fn unpack(wheel: std::fs::File, root: &Path, version: &str) -> Result<PathBuf, FrontendError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| FrontendError::Io { path, source }
    };
    let mut zip =
        zip::ZipArchive::new(wheel).map_err(|e| FrontendError::NotAFrontend(e.to_string()))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{version}."))
        .tempdir_in(root)
        .map_err(io(root))?;
    let mut files = 0usize;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| FrontendError::NotAFrontend(e.to_string()))?;
        // `enclosed_name` refuses absolute paths and `..` (no writing outside).
        let Some(name) = entry.enclosed_name() else {
            continue;
        };
        let Ok(rel) = name.strip_prefix("comfyui_frontend_package") else {
            continue;
        };
        if !rel.starts_with("static") || entry.is_dir() {
            continue;
        }
        let out = tmp.path().join(rel);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut file = std::fs::File::create(&out).map_err(io(&out))?;
        std::io::copy(&mut entry, &mut file).map_err(io(&out))?;
        files += 1;
    }
    if !tmp.path().join("static/index.html").is_file() {
        return Err(FrontendError::NotAFrontend(format!(
            "no {STATIC_PREFIX}index.html among its {files} static files"
        )));
    }
    let dest = root.join(version);
    let kept = tmp.keep();
    if let Err(e) = std::fs::rename(&kept, &dest) {
        let _ = std::fs::remove_dir_all(&kept);
        // Another process put it there first: use theirs.
        if dest.join("static/index.html").is_file() {
            return Ok(dest.join("static"));
        }
        return Err(FrontendError::Io {
            path: dest,
            source: e,
        });
    }
    tracing::info!(version, files, dir = %dest.display(), "ComfyUI frontend unpacked");
    Ok(dest.join("static"))
}
