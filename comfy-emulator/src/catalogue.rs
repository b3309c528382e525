//! The node classes an emulated server knows: the recorded `/object_info`
//! of its version (fixture 018), read once per process, or a small built-in
//! set of core nodes when the recordings are not on disk.

use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Node class → its `/object_info` description.
pub(crate) type Classes = Arc<Map<String, Value>>;

/// Where the recordings live when nothing else is said: the repository's
/// `fixtures/` (overridable with `COMFY_FIXTURES_DIR`).
pub fn default_fixtures_dir() -> PathBuf {
    match std::env::var_os("COMFY_FIXTURES_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures")),
    }
}

fn cache() -> &'static Mutex<HashMap<PathBuf, Classes>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Classes>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The catalogue of `version`, from `dir/comfyui-<version>/018-object_info-full.json`.
/// Falls back to [`builtin`] (with a warning) when the file cannot be read.
pub(crate) fn load(dir: &Path, version: &str) -> Classes {
    let file = dir
        .join(format!("comfyui-{version}"))
        .join("018-object_info-full.json");
    if let Ok(map) = cache().lock()
        && let Some(hit) = map.get(&file)
    {
        return hit.clone();
    }
    let parsed = std::fs::read(&file)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).map_err(|e| e.to_string()))
        .and_then(|v| match v.get("response").and_then(|r| r.get("body")) {
            Some(Value::Object(m)) => Ok(m.clone()),
            _ => Err("no response.body object".to_owned()),
        });
    let classes = match parsed {
        Ok(m) => Arc::new(m),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "recorded object_info unreadable; the emulator knows only a few core nodes");
            builtin()
        }
    };
    if let Ok(mut map) = cache().lock() {
        map.insert(file, classes.clone());
    }
    classes
}

/// `response.body` of the recorded `dir/comfyui-<version>/<file>`, or
/// `None` (with a warning) when it cannot be read.
pub(crate) fn recorded_body(dir: &Path, version: &str, file: &str) -> Option<Value> {
    let path = dir.join(format!("comfyui-{version}")).join(file);
    let parsed = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).map_err(|e| e.to_string()));
    match parsed {
        Ok(mut v) => v
            .get_mut("response")
            .and_then(|r| r.get_mut("body"))
            .map(Value::take),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "recording unreadable; the emulator answers a built-in default");
            None
        }
    }
}

/// A few core nodes, enough for image-only prompts without models.
pub(crate) fn builtin() -> Classes {
    let int = |default: i64, min: i64, max: i64| json!(["INT", {"default": default, "min": min, "max": max}]);
    let node = |name: &str, required: Value, output: Value, output_node: bool| {
        json!({
            "input": {"required": required},
            "output": output,
            "name": name,
            "display_name": name,
            "category": "image",
            "output_node": output_node,
        })
    };
    let mut m = Map::new();
    m.insert(
        "EmptyImage".into(),
        node(
            "EmptyImage",
            json!({"width": int(512, 1, 16384), "height": int(512, 1, 16384),
                   "batch_size": int(1, 1, 4096), "color": int(0, 0, 16_777_215)}),
            json!(["IMAGE"]),
            false,
        ),
    );
    m.insert(
        "ImageInvert".into(),
        node(
            "ImageInvert",
            json!({"image": ["IMAGE", {}]}),
            json!(["IMAGE"]),
            false,
        ),
    );
    m.insert(
        "SaveImage".into(),
        node(
            "SaveImage",
            json!({"images": ["IMAGE", {}], "filename_prefix": ["STRING", {"default": "ComfyUI"}]}),
            json!([]),
            true,
        ),
    );
    m.insert(
        "PreviewImage".into(),
        node(
            "PreviewImage",
            json!({"images": ["IMAGE", {}]}),
            json!([]),
            true,
        ),
    );
    Arc::new(m)
}
