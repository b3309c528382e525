use crate::model::output::{FileRef, FolderType, Output, OutputKind};
use crate::wire::outputs::{NodeOutputs, UiDict, UiItem};
use serde::Deserialize;
use serde_json::Value;

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

/// One node's UI dict (`{"images": [...], "animated": [true]}`) → outputs.
/// `animated` is folded into the file entries it describes; anything not a
/// file or a text is kept as [`OutputKind::Unknown`] with its raw value.
pub fn outputs_from_ui(node_id: &str, ui: &Value, cached: bool) -> Vec<Output> {
    let mut out = Vec::new();
    if let Ok(d) = UiDict::deserialize(ui) {
        push_outputs(&mut out, node_id, d, cached);
    }
    out
}

/// Appends the outputs of one node's parsed dict to `out`, moving its
/// strings into them.
fn push_outputs(out: &mut Vec<Output>, node_id: &str, ui: UiDict, cached: bool) {
    let animated: Vec<bool> =
        ui.0.iter()
            .find(|(k, _)| k == "animated")
            .map(|(_, v)| v.iter().map(|i| matches!(i, UiItem::Bool(true))).collect())
            .unwrap_or_default();
    for (key, items) in ui.0 {
        if key == "animated" {
            continue;
        }
        let last = items.len().saturating_sub(1);
        let mut key = Some(key);
        for (i, item) in items.into_iter().enumerate() {
            // The key is cloned for every item but the last, which takes it.
            let key = if i == last {
                key.take().unwrap_or_default()
            } else {
                key.clone().unwrap_or_default()
            };
            let base = Output {
                node_id: node_id.to_owned(),
                kind: OutputKind::Unknown,
                key,
                file: None,
                text: None,
                animated: false,
                cached,
                view_url: None,
                raw: None,
            };
            let entry = match item {
                UiItem::File {
                    filename,
                    subfolder,
                    folder,
                } => {
                    let file = FileRef {
                        filename,
                        subfolder: subfolder.unwrap_or_default(),
                        folder: FolderType::from_wire(folder.as_deref().unwrap_or("output")),
                    };
                    Output {
                        kind: file_kind(&base.key, &file.filename),
                        animated: animated.get(i).copied().unwrap_or(false),
                        view_url: Some(file.view_path()),
                        file: Some(file),
                        ..base
                    }
                }
                UiItem::Text(s) if key_kind(&base.key) == OutputKind::Text => Output {
                    kind: OutputKind::Text,
                    text: Some(s),
                    ..base
                },
                UiItem::Text(s) => Output {
                    raw: Some(Value::String(s)),
                    ..base
                },
                UiItem::Bool(b) => Output {
                    raw: Some(Value::Bool(b)),
                    ..base
                },
                UiItem::Other(v) => Output {
                    raw: Some(v),
                    ..base
                },
            };
            out.push(entry);
        }
    }
}

/// All nodes' outputs of a history entry, in the server's order.
pub(crate) fn outputs_from_map(map: NodeOutputs, cached_nodes: &[String]) -> Vec<Output> {
    let mut out = Vec::new();
    for (node, ui) in map.0 {
        let cached = cached_nodes.contains(&node);
        push_outputs(&mut out, &node, ui, cached);
    }
    out
}

/// Counts outputs the way this crate lists them (files and texts).
pub fn count_outputs(outputs: &[Output]) -> u64 {
    outputs
        .iter()
        .filter(|o| o.file.is_some() || o.text.is_some())
        .count() as u64
}
