use crate::model::output::{FileRef, FolderType, Output, OutputKind};
use serde_json::{Map, Value};

const VIDEO_EXT: &[&str] = &["mp4", "webm", "mov", "mkv", "avi", "m4v"];
const AUDIO_EXT: &[&str] = &["flac", "mp3", "wav", "ogg", "opus", "m4a", "aac"];
const MODEL3D_EXT: &[&str] = &["glb", "gltf", "obj", "fbx", "stl", "ply", "usdz"];
const IMAGE_EXT: &[&str] = &[
    "png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff", "avif",
];

/// The kind of a file output, from its extension first (SaveVideo reports
/// mp4 files under `images`), then from the key it came under.
fn file_kind(key: &str, filename: &str) -> OutputKind {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e)
        .unwrap_or_default();
    let is = |list: &[&str]| list.iter().any(|x| x.eq_ignore_ascii_case(ext));
    if is(VIDEO_EXT) {
        OutputKind::Video
    } else if is(AUDIO_EXT) {
        OutputKind::Audio
    } else if is(MODEL3D_EXT) {
        OutputKind::Model3d
    } else if is(IMAGE_EXT) {
        OutputKind::Image
    } else {
        key_kind(key)
    }
}

fn key_kind(key: &str) -> OutputKind {
    match key {
        "images" | "image" => OutputKind::Image,
        "video" | "videos" | "gifs" => OutputKind::Video,
        "audio" => OutputKind::Audio,
        "3d" | "mesh" | "model_file" | "result" => OutputKind::Model3d,
        "text" => OutputKind::Text,
        _ => OutputKind::Unknown,
    }
}

fn file_ref(v: &Value) -> Option<FileRef> {
    let o = v.as_object()?;
    let filename = o.get("filename")?.as_str()?.to_owned();
    Some(FileRef {
        filename,
        subfolder: o
            .get("subfolder")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        folder: FolderType::from_wire(o.get("type").and_then(Value::as_str).unwrap_or("output")),
    })
}

/// One node's UI dict (`{"images": [...], "animated": [true]}`) → outputs.
/// `animated` is folded into the file entries it describes; anything not a
/// file or a text is kept as [`OutputKind::Unknown`] with its raw value.
pub fn outputs_from_ui(node_id: &str, ui: &Value, cached: bool) -> Vec<Output> {
    let Some(ui) = ui.as_object() else {
        return Vec::new();
    };
    let animated: Vec<bool> = ui
        .get("animated")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|x| x.as_bool().unwrap_or(false)).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (key, value) in ui {
        if key == "animated" {
            continue;
        }
        let items: &[Value] = match value {
            Value::Array(a) => a,
            other => std::slice::from_ref(other),
        };
        for (i, item) in items.iter().enumerate() {
            let base = Output {
                node_id: node_id.to_owned(),
                kind: OutputKind::Unknown,
                key: key.clone(),
                file: None,
                text: None,
                animated: false,
                cached,
                view_url: None,
                raw: None,
            };
            let entry = if let Some(file) = file_ref(item) {
                Output {
                    kind: file_kind(key, &file.filename),
                    animated: animated.get(i).copied().unwrap_or(false),
                    view_url: Some(file.view_path()),
                    file: Some(file),
                    ..base
                }
            } else if let (Value::String(s), OutputKind::Text) = (item, key_kind(key)) {
                Output {
                    kind: OutputKind::Text,
                    text: Some(s.clone()),
                    ..base
                }
            } else {
                Output {
                    raw: Some(item.clone()),
                    ..base
                }
            };
            out.push(entry);
        }
    }
    out
}

/// All nodes' outputs of a history entry, in the server's order.
pub(crate) fn outputs_from_map(map: &Map<String, Value>, cached_nodes: &[String]) -> Vec<Output> {
    map.iter()
        .flat_map(|(node, ui)| outputs_from_ui(node, ui, cached_nodes.iter().any(|c| c == node)))
        .collect()
}

/// Counts outputs the way this crate lists them (files and texts).
pub fn count_outputs(outputs: &[Output]) -> u64 {
    outputs
        .iter()
        .filter(|o| o.file.is_some() || o.text.is_some())
        .count() as u64
}
