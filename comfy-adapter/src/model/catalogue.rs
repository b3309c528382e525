//! The node catalogue (`/object_info`): every node class the server knows.
//!
//! A full catalogue is large (1.4 MB with core nodes only, ten times that with
//! custom node packs), and a caller usually needs a handful of classes. The
//! catalogue is therefore split into classes at scan speed and each class is
//! parsed only when asked for.

use super::output::{FileRef, FolderType};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Node classes in the server's order, each kept as raw JSON until used.
#[derive(Debug, Clone, Default)]
pub struct NodeCatalogue {
    classes: Vec<(String, Box<RawValue>)>,
    index: HashMap<String, usize>,
}

impl NodeCatalogue {
    /// Splits an `/object_info` body into classes.
    pub fn from_slice(body: &[u8]) -> Result<Self, serde_json::Error> {
        let entries: RawEntries = serde_json::from_slice(body)?;
        Ok(Self::from_entries(entries.0))
    }

    fn from_entries(classes: Vec<(String, Box<RawValue>)>) -> Self {
        let index = classes
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), i))
            .collect();
        NodeCatalogue { classes, index }
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether there are none (an unknown single class answers `{}`).
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// Whether the server knows `class`.
    pub fn contains(&self, class: &str) -> bool {
        self.index.contains_key(class)
    }

    /// Class names in the server's order.
    pub fn class_names(&self) -> impl Iterator<Item = &str> {
        self.classes.iter().map(|(n, _)| n.as_str())
    }

    /// One class's description as raw JSON.
    pub fn raw(&self, class: &str) -> Option<&RawValue> {
        self.index.get(class).map(|&i| &*self.classes[i].1)
    }

    /// One class's description, parsed (`input`, `output`, `category`, ...).
    pub fn node(&self, class: &str) -> Option<Result<Map<String, Value>, serde_json::Error>> {
        self.raw(class).map(|raw| serde_json::from_str(raw.get()))
    }

    /// The catalogue written back as one JSON object, its classes in the server's order and
    /// each class's description byte for byte as the server sent it: the same catalogue
    /// gives the same bytes (and so the same hash), and [`NodeCatalogue::from_slice`] reads
    /// them back to this catalogue.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let len: usize = self
            .classes
            .iter()
            .map(|(n, raw)| n.len() + raw.get().len() + 4)
            .sum();
        let mut out = Vec::with_capacity(len + 2);
        serde_json::to_writer(&mut out, &InOrder(&self.classes))?;
        Ok(out)
    }
}

/// Classes serialized as one object, in order.
struct InOrder<'a>(&'a [(String, Box<RawValue>)]);

impl serde::Serialize for InOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, raw) in self.0 {
            map.serialize_entry(name, raw)?;
        }
        map.end()
    }
}

/// A JSON object as `(key, raw value)` pairs in document order: one scan,
/// one copy of each value's bytes.
struct RawEntries(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for RawEntries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = RawEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object_info object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntries, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push(entry);
                }
                Ok(RawEntries(out))
            }
        }
        d.deserialize_map(RawVisitor)
    }
}

/// A file name as a prompt gives it to a loader node, with ComfyUI's
/// annotations taken apart: `sub/name.png [output]` is `name.png` in the
/// subfolder `sub` of the output folder (`folder_paths.annotated_filepath`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    /// The subfolder (`""` for none), `/`-separated.
    pub subfolder: String,
    /// The base name.
    pub filename: String,
    /// The folder: the annotation's, else the input's own (`image_folder`), else `input`.
    pub folder: FolderType,
    /// Whether the value carried a ` [input]`/` [output]`/` [temp]` annotation.
    pub annotated: bool,
}

impl FileName {
    /// Parses a prompt value; `default_folder` is the input's folder when the
    /// value carries no annotation. `None` for an empty name.
    pub fn parse(value: &str, default_folder: &FolderType) -> Option<FileName> {
        let mut name = value;
        let mut folder = default_folder.clone();
        let mut annotated = false;
        for kind in [FolderType::Input, FolderType::Output, FolderType::Temp] {
            if let Some(stem) = value
                .strip_suffix(']')
                .and_then(|v| v.strip_suffix(kind.as_str()))
                .and_then(|v| v.strip_suffix(" ["))
            {
                name = stem;
                folder = kind;
                annotated = true;
                break;
            }
        }
        let (subfolder, filename) = match name.rsplit_once('/') {
            Some((sub, file)) => (sub.trim_matches('/'), file),
            None => ("", name),
        };
        if filename.trim().is_empty() {
            return None;
        }
        Some(FileName {
            subfolder: subfolder.to_owned(),
            filename: filename.to_owned(),
            folder,
            annotated,
        })
    }

    /// `sub/name.png` (or `name.png`): the name without its annotation.
    pub fn relative(&self) -> String {
        if self.subfolder.is_empty() {
            self.filename.clone()
        } else {
            format!("{}/{}", self.subfolder, self.filename)
        }
    }

    /// The file as `/view` addresses it.
    pub fn file_ref(&self) -> FileRef {
        FileRef {
            filename: self.filename.clone(),
            subfolder: self.subfolder.clone(),
            folder: self.folder.clone(),
        }
    }
}

/// An input of a node class that names a file of one of ComfyUI's folders:
/// its options carry an upload flag (`image_upload`, `audio_upload`,
/// `video_upload`, `file_upload`, ... : any `*_upload: true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInputSpec {
    /// The input's name (`image`, `audio`, `file`, `model_file`, ...).
    pub input: String,
    /// The flag that marks it (`image_upload`, ...).
    pub upload_flag: String,
    /// The folder an unannotated value is in: `image_folder`, else `input`.
    pub folder: FolderType,
    /// The choices the server listed (files it had then, plus fixed ones
    /// such as `none`); `None` when the input lists none (a remote combo, a
    /// string widget).
    pub choices: Option<Vec<String>>,
}

/// One value of a prompt that names a file, as [`NodeCatalogue::file_inputs`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInput {
    /// The node's id in the prompt.
    pub node_id: String,
    /// Its class.
    pub class_type: String,
    /// The input's name.
    pub input: String,
    /// The value as the prompt gives it.
    pub value: String,
    /// The value taken apart.
    pub file: FileName,
    /// The flag that marks the input (`image_upload`, ...).
    pub upload_flag: String,
    /// Whether the value is one of the choices the catalogue lists for the
    /// input (`None` when it lists none).
    pub in_choices: Option<bool>,
}

/// The `*_upload: true` flag of an input's options, if any.
fn upload_flag(options: &Map<String, Value>) -> Option<&str> {
    options
        .iter()
        .find(|(k, v)| k.ends_with("_upload") && v.as_bool() == Some(true))
        .map(|(k, _)| k.as_str())
}

impl FileInputSpec {
    /// The file inputs of one parsed class description (an `/object_info`
    /// entry), in its order.
    pub fn of_class(node: &Map<String, Value>) -> Vec<FileInputSpec> {
        file_specs_of(node)
    }
}

/// The file inputs of one parsed class description.
fn file_specs_of(node: &Map<String, Value>) -> Vec<FileInputSpec> {
    let mut out = Vec::new();
    let Some(input) = node.get("input").and_then(Value::as_object) else {
        return out;
    };
    for section in ["required", "optional"] {
        let Some(section) = input.get(section).and_then(Value::as_object) else {
            continue;
        };
        for (name, conf) in section {
            let Some(options) = conf.get(1).and_then(Value::as_object) else {
                continue;
            };
            let Some(flag) = upload_flag(options) else {
                continue;
            };
            let folder = options
                .get("image_folder")
                .and_then(Value::as_str)
                .map_or(FolderType::Input, FolderType::from_wire);
            // Old form: the choices are the type (`[["a.png", ...], {...}]`);
            // new form: `["COMBO", {"options": [...]}]`.
            let list = match conf.get(0) {
                Some(Value::Array(list)) => Some(list),
                _ => options.get("options").and_then(Value::as_array),
            };
            let choices = list.map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            });
            out.push(FileInputSpec {
                input: name.clone(),
                upload_flag: flag.to_owned(),
                folder,
                choices,
            });
        }
    }
    out
}

impl NodeCatalogue {
    /// The inputs of `class` that name a file (see [`FileInputSpec`]); empty
    /// for an unknown class or one whose description does not parse.
    pub fn file_input_specs(&self, class: &str) -> Vec<FileInputSpec> {
        match self.node(class) {
            Some(Ok(node)) => file_specs_of(&node),
            _ => Vec::new(),
        }
    }

    /// Every value of an API-format `prompt` that names a file of one of
    /// ComfyUI's folders, in prompt order: inputs whose options carry an
    /// upload flag and whose value is a non-empty string (links, empty
    /// strings and nodes of unknown classes are skipped).
    pub fn file_inputs(&self, prompt: &Map<String, Value>) -> Vec<FileInput> {
        let mut specs: HashMap<&str, Vec<FileInputSpec>> = HashMap::new();
        let mut out = Vec::new();
        for (node_id, node) in prompt {
            let Some(class) = node.get("class_type").and_then(Value::as_str) else {
                continue;
            };
            let Some(inputs) = node.get("inputs").and_then(Value::as_object) else {
                continue;
            };
            let class_specs = specs
                .entry(class)
                .or_insert_with(|| self.file_input_specs(class));
            for spec in class_specs.iter() {
                let Some(value) = inputs.get(&spec.input).and_then(Value::as_str) else {
                    continue;
                };
                let Some(file) = FileName::parse(value, &spec.folder) else {
                    continue;
                };
                out.push(FileInput {
                    node_id: node_id.clone(),
                    class_type: class.to_owned(),
                    input: spec.input.clone(),
                    value: value.to_owned(),
                    file,
                    upload_flag: spec.upload_flag.clone(),
                    in_choices: spec.choices.as_ref().map(|c| c.iter().any(|v| v == value)),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::releases::RELEASES;
    use serde_json::json;

    /// The recorded full catalogue of a release.
    fn catalogue(version: &str) -> NodeCatalogue {
        let path = format!(
            "{}/../fixtures/comfyui-{version}/018-object_info-full.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        let body = serde_json::to_vec(&v["response"]["body"]).unwrap_or_default();
        NodeCatalogue::from_slice(&body).unwrap_or_default()
    }

    #[test]
    fn json_bytes_round_trip_in_class_order() {
        let mut recorded = 0;
        for release in RELEASES {
            let c = catalogue(release.version);
            if c.is_empty() {
                continue;
            }
            recorded += 1;
            let bytes = c.to_json_bytes().unwrap();
            let back = NodeCatalogue::from_slice(&bytes).unwrap();
            assert_eq!(back.len(), c.len(), "{}", release.version);
            assert!(
                back.class_names().eq(c.class_names()),
                "{}",
                release.version
            );
            for class in c.class_names() {
                assert_eq!(
                    back.raw(class).map(RawValue::get),
                    c.raw(class).map(RawValue::get),
                    "{} {class}",
                    release.version
                );
            }
            // Written again, the same bytes: the hash the worker publishes is stable.
            assert_eq!(back.to_json_bytes().unwrap(), bytes, "{}", release.version);
        }
        assert_eq!(recorded, 6, "the six recorded releases");
        // Names that need escaping, and an empty catalogue.
        let odd = NodeCatalogue::from_slice(br#"{"a\"b": {"x": 1}, "\u00e9": {}}"#).unwrap();
        let bytes = odd.to_json_bytes().unwrap();
        let back = NodeCatalogue::from_slice(&bytes).unwrap();
        assert_eq!(back.class_names().collect::<Vec<_>>(), ["a\"b", "é"]);
        assert_eq!(
            NodeCatalogue::default().to_json_bytes().unwrap(),
            b"{}".to_vec()
        );
    }

    fn specs(c: &NodeCatalogue) -> Vec<(String, String, String, String)> {
        c.class_names()
            .flat_map(|class| {
                c.file_input_specs(class).into_iter().map(move |s| {
                    (
                        class.to_owned(),
                        s.input,
                        s.upload_flag,
                        s.folder.as_str().to_owned(),
                    )
                })
            })
            .collect()
    }

    fn has(
        all: &[(String, String, String, String)],
        class: &str,
        input: &str,
        flag: &str,
        folder: &str,
    ) -> bool {
        all.iter()
            .any(|(c, i, f, d)| c == class && i == input && f == flag && d == folder)
    }

    #[test]
    fn every_recorded_release_marks_its_loaders_by_upload_flags() {
        for r in RELEASES {
            let c = catalogue(r.version);
            assert!(c.len() > 100, "{}: catalogue not read", r.version);
            let all = specs(&c);
            for (class, input, flag, folder) in [
                ("LoadImage", "image", "image_upload", "input"),
                ("LoadImageMask", "image", "image_upload", "input"),
                ("LoadImageOutput", "image", "image_upload", "output"),
                ("LoadAudio", "audio", "audio_upload", "input"),
                ("LoadVideo", "file", "video_upload", "input"),
                ("Load3D", "model_file", "file_upload", "input"),
            ] {
                assert!(
                    has(&all, class, input, flag, folder),
                    "{}: {class}.{input}",
                    r.version
                );
            }
        }
    }

    #[test]
    fn the_oldest_and_newest_recordings_differ_as_recorded() {
        let old = specs(&catalogue("0.3.64"));
        assert!(has(
            &old,
            "Load3DAnimation",
            "model_file",
            "file_upload",
            "input"
        ));
        assert!(!old.iter().any(|s| s.0 == "Painter"));
        let new = specs(&catalogue("0.33.0"));
        assert!(has(
            &new,
            "Load3DAdvanced",
            "model_file",
            "file_upload",
            "input"
        ));
        // A string widget flagged for upload (its default is empty).
        assert!(has(&new, "Painter", "mask", "image_upload", "input"));
        assert_eq!(new.len(), 8, "{new:?}");
        assert_eq!(old.len(), 7, "{old:?}");
    }

    #[test]
    fn file_inputs_of_a_prompt_are_found_with_their_choices() {
        for version in ["0.3.64", "0.33.0"] {
            let c = catalogue(version);
            let prompt = json!({
                "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
                "2": {"class_type": "LoadImage", "inputs": {"image": "pasted/photo.png [input]"}},
                "3": {"class_type": "LoadImageOutput", "inputs": {"image": "ComfyUI_00001_.png [output]"}},
                "4": {"class_type": "LoadAudio", "inputs": {"audio": "voice.flac"}},
                "5": {"class_type": "LoadVideo", "inputs": {"file": ["9", 0]}},
                "6": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x.png"}},
                "7": {"class_type": "NoSuchNode", "inputs": {"image": "a.png"}},
                "8": {"class_type": "Load3D", "inputs": {"model_file": "3d/cube.glb"}},
            });
            let found = c.file_inputs(prompt.as_object().unwrap_or(&Map::new()));
            let ids: Vec<&str> = found.iter().map(|f| f.node_id.as_str()).collect();
            assert_eq!(ids, ["1", "2", "3", "4", "8"], "{version}");
            assert_eq!(found[0].in_choices, Some(true));
            assert_eq!(found[0].file.relative(), "example.png");
            assert_eq!(found[1].in_choices, Some(false));
            assert_eq!(found[1].file.subfolder, "pasted");
            assert_eq!(found[1].file.filename, "photo.png");
            assert!(found[1].file.annotated);
            assert_eq!(found[2].file.folder, FolderType::Output);
            // A remote combo lists nothing to compare with.
            assert_eq!(found[2].in_choices, None);
            assert_eq!(found[3].upload_flag, "audio_upload");
            assert_eq!(found[3].in_choices, Some(false));
            assert_eq!(found[4].file.subfolder, "3d");
        }
    }

    #[test]
    fn annotated_names_are_taken_apart() {
        let input = FolderType::Input;
        let f = FileName::parse("a/b/c.png [temp]", &input);
        assert_eq!(
            f,
            Some(FileName {
                subfolder: "a/b".into(),
                filename: "c.png".into(),
                folder: FolderType::Temp,
                annotated: true,
            })
        );
        let f = FileName::parse("c.png", &FolderType::Output);
        assert_eq!(
            f.map(|f| (f.folder, f.annotated)),
            Some((FolderType::Output, false))
        );
        assert_eq!(FileName::parse("", &input), None);
        assert_eq!(FileName::parse("sub/", &input), None);
        // Not an annotation ComfyUI knows: part of the name.
        let f = FileName::parse("x [models]", &input);
        assert_eq!(f.map(|f| f.filename), Some("x [models]".to_owned()));
    }
}
