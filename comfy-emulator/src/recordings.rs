//! The recordings an emulated release answers from: `/system_stats`,
//! `/features`, `/models`, `/extensions` and the full `/object_info` of
//! `fixtures/comfyui-<version>/` (fixtures 001, 003, 005, 007, 018).
//!
//! Every recorded set is embedded in the crate at build time (`build.rs`),
//! so an emulator runs from any directory. A folder of recordings given at
//! run time ([`crate::EmulatorConfig::fixtures_dir`]) is read instead: that
//! is how a release recorded today is emulated before it is embedded.

use crate::catalogue::{self, Classes};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// One embedded set: the raw recorded exchanges.
#[derive(Debug)]
pub(crate) struct Embedded {
    pub(crate) version: &'static str,
    pub(crate) system_stats: &'static str,
    pub(crate) features: &'static str,
    pub(crate) models: &'static str,
    pub(crate) extensions: &'static str,
    pub(crate) object_info: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The versions whose recordings are embedded, oldest first.
pub fn embedded_versions() -> Vec<&'static str> {
    EMBEDDED.iter().map(|e| e.version).collect()
}

/// The recorded `GET /object_info` exchange of an embedded version, as
/// recorded (fixture 018): the catalogue `comfyctl convert`/`check` use for
/// `--version V` when no fixture folder is at hand.
pub fn recorded_object_info(version: &str) -> Option<&'static str> {
    EMBEDDED
        .iter()
        .find(|e| e.version == version)
        .map(|e| e.object_info)
}

/// What a version answers, parsed.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) system_stats: Value,
    pub(crate) features: Value,
    /// `None` when the set lacks fixture 005.
    pub(crate) model_folders: Option<Vec<String>>,
    /// `None` when the set lacks fixture 007.
    pub(crate) extensions: Option<Value>,
    pub(crate) classes: Classes,
}

/// Why a version's recordings could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Missing {
    /// No embedded set of that version.
    NotEmbedded,
    /// The folder has no readable set of that version.
    NotInFolder(PathBuf, String),
}

/// Parsed recordings by (version, folder they were read from).
type Cache = Mutex<HashMap<(String, Option<PathBuf>), Arc<Recorded>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The recordings of `version`: embedded, or from `dir/comfyui-<version>/`
/// when a folder is given. Parsed once per process.
pub(crate) fn load(version: &str, dir: Option<&Path>) -> Result<Arc<Recorded>, Missing> {
    let key = (version.to_owned(), dir.map(Path::to_path_buf));
    if let Ok(map) = cache().lock()
        && let Some(hit) = map.get(&key)
    {
        return Ok(hit.clone());
    }
    let recorded = Arc::new(match dir {
        None => from_embedded(version)?,
        Some(dir) => from_folder(&dir.join(format!("comfyui-{version}")))?,
    });
    if let Ok(mut map) = cache().lock() {
        map.insert(key, recorded.clone());
    }
    Ok(recorded)
}

fn from_embedded(version: &str) -> Result<Recorded, Missing> {
    let e = EMBEDDED
        .iter()
        .find(|e| e.version == version)
        .ok_or(Missing::NotEmbedded)?;
    let text = |file: &str| match file {
        SYSTEM_STATS => e.system_stats,
        FEATURES => e.features,
        MODELS => e.models,
        EXTENSIONS => e.extensions,
        OBJECT_INFO => e.object_info,
        // `assemble` asks for nothing else.
        _ => "",
    };
    assemble(
        |file| {
            let parsed = serde_json::from_str::<Value>(text(file)).map_err(|e| e.to_string());
            response_body(file, parsed)
        },
        |_| Missing::NotEmbedded,
    )
}

fn from_folder(set: &Path) -> Result<Recorded, Missing> {
    assemble(
        |file| {
            let path = set.join(file);
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()));
            response_body(&path.display().to_string(), parsed)
        },
        |file| Missing::NotInFolder(set.to_path_buf(), file.to_owned()),
    )
}

const SYSTEM_STATS: &str = "001-system_stats.json";
const FEATURES: &str = "003-features.json";
const MODELS: &str = "005-models-list.json";
const EXTENSIONS: &str = "007-extensions.json";
const OBJECT_INFO: &str = "018-object_info-full.json";

/// The files of a recorded set (`fixtures/comfyui-<version>/`) an emulated
/// release answers from; `build.rs` embeds the same five.
pub const RECORDED_FILES: [&str; 5] = [SYSTEM_STATS, FEATURES, MODELS, EXTENSIONS, OBJECT_INFO];

/// A version's answers from its recorded exchanges, each read by `body`;
/// `system_stats` and `features` are required, the rest fall back to
/// built-in defaults.
fn assemble(
    body: impl Fn(&str) -> Option<Value>,
    missing: impl Fn(&str) -> Missing,
) -> Result<Recorded, Missing> {
    Ok(Recorded {
        system_stats: body(SYSTEM_STATS).ok_or_else(|| missing(SYSTEM_STATS))?,
        features: body(FEATURES).ok_or_else(|| missing(FEATURES))?,
        model_folders: body(MODELS).and_then(|v| strings(&v)),
        extensions: body(EXTENSIONS).filter(Value::is_array),
        classes: classes(body(OBJECT_INFO)),
    })
}

/// `response.body` of a recorded exchange, or `None` with a warning.
fn response_body(what: &str, parsed: Result<Value, String>) -> Option<Value> {
    match parsed {
        Ok(mut v) => {
            let body = v
                .get_mut("response")
                .and_then(|r| r.get_mut("body"))
                .map(Value::take);
            if body.is_none() {
                tracing::warn!(file = what, "recording has no response.body");
            }
            body
        }
        Err(e) => {
            tracing::warn!(file = what, error = %e, "recording unreadable; the emulator answers a built-in default");
            None
        }
    }
}

fn strings(v: &Value) -> Option<Vec<String>> {
    Some(
        v.as_array()?
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
    )
}

fn classes(body: Option<Value>) -> Classes {
    match body {
        Some(Value::Object(m)) => Arc::new(m),
        _ => {
            tracing::warn!("no recorded object_info; the emulator knows only a few core nodes");
            catalogue::builtin()
        }
    }
}
