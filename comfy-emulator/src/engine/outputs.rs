//! What output nodes make: file names, counters and UI dicts.

use super::Engine;
use crate::nodes;
use serde_json::{Map, Value, json};

/// Characters of ComfyUI's random temp prefixes (`ComfyUI_temp_xxxxx_`).
const TEMP_CHARS: &[u8] = b"abcdefghijklmnopqrstupvxyz";

fn temp_prefix() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let tail: String = bytes
        .iter()
        .take(5)
        .map(|b| char::from(TEMP_CHARS[usize::from(*b) % TEMP_CHARS.len()]))
        .collect();
    format!("ComfyUI_temp_{tail}")
}

impl Engine {
    /// `get_save_image_path`: the subfolder and file names of `count` new
    /// files for `prefix` (`video/fixture` saves under `video/`).
    pub(super) fn next_files(
        &self,
        prefix: &str,
        ext: &str,
        trailing: bool,
        count: u64,
    ) -> (String, Vec<String>) {
        let (subfolder, name) = match prefix.rsplit_once('/') {
            Some((dir, name)) => (dir.to_owned(), name.to_owned()),
            None => (String::new(), prefix.to_owned()),
        };
        let mut st = self.lock();
        let n = st
            .counters
            .entry(format!("{subfolder}/{name}.{ext}"))
            .or_insert(0);
        let files = (0..count.max(1))
            .map(|_| {
                *n += 1;
                if trailing {
                    format!("{name}_{:05}_.{ext}", *n)
                } else {
                    format!("{name}_{:05}.{ext}", *n)
                }
            })
            .collect();
        (subfolder, files)
    }

    pub(super) fn ui_output(
        &self,
        prompt: &Map<String, Value>,
        node_id: &str,
        class: &str,
        prefix: &str,
    ) -> Option<Value> {
        let inputs = prompt.get(node_id)?.get("inputs")?;
        let input = |k: &str| {
            inputs
                .get(k)
                .and_then(nodes::link)
                .map(|(from, slot)| nodes::data_of(prompt, from, slot))
        };
        let batch = match input("images") {
            Some(nodes::Data::Image { batch, .. }) => batch,
            _ => 1,
        };
        let items = |subfolder: &str, files: Vec<String>, kind: &str| -> Value {
            files
                .into_iter()
                .map(|f| json!({"filename": f, "subfolder": subfolder, "type": kind}))
                .collect()
        };
        match class {
            "SaveImage" => {
                let (sub, files) = self.next_files(prefix, "png", true, batch);
                Some(json!({"images": items(&sub, files, "output")}))
            }
            "PreviewImage" => {
                let (sub, files) = self.next_files(&temp_prefix(), "png", true, batch);
                Some(json!({"images": items(&sub, files, "temp")}))
            }
            "SaveAnimatedWEBP" => {
                let (sub, files) = self.next_files(prefix, "webp", true, 1);
                Some(json!({"images": items(&sub, files, "output"), "animated": [batch != 1]}))
            }
            "SaveVideo" => {
                let (sub, files) = self.next_files(prefix, "mp4", true, 1);
                Some(json!({"images": items(&sub, files, "output"), "animated": [true]}))
            }
            "SaveAudio" => {
                let trailing = self.profile.audio_trailing_underscore();
                let (sub, files) = self.next_files(prefix, "flac", trailing, 1);
                Some(json!({"audio": items(&sub, files, "output")}))
            }
            "PreviewAny" => {
                let text = match inputs.get("source") {
                    Some(v) if nodes::link(v).is_some() => match input("source") {
                        Some(nodes::Data::Text(s)) => s,
                        Some(other) => other.shown().as_str().unwrap_or_default().to_owned(),
                        None => String::new(),
                    },
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                Some(json!({"text": [text]}))
            }
            _ => None,
        }
    }
}
