//! Outputs, normalized: one entry per file or text a node produced.

use super::NodeId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What kind of thing an output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// A still or animated image (png, jpg, webp, gif).
    Image,
    /// A video file (SaveVideo reports mp4 under `images`; this crate looks at
    /// the extension, not only at the key).
    Video,
    /// An audio file.
    Audio,
    /// Text (PreviewAny and friends).
    Text,
    /// A 3D model file (glb, gltf, obj, fbx, ...).
    Model3d,
    /// Anything else; `raw` keeps it.
    Unknown,
}

/// Which ComfyUI folder a file lives in (`type` on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FolderType {
    /// `output/`
    Output,
    /// `input/`
    Input,
    /// `temp/` (previews; deleted on restart)
    Temp,
    /// Something else, verbatim.
    Other(String),
}

impl FolderType {
    /// Maps the wire string.
    pub fn from_wire(s: &str) -> Self {
        match s {
            "output" => Self::Output,
            "input" => Self::Input,
            "temp" => Self::Temp,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Output => "output",
            Self::Input => "input",
            Self::Temp => "temp",
            Self::Other(s) => s,
        }
    }
}

/// A file on the server, addressable through `/view`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileRef {
    /// File name.
    pub filename: String,
    /// Sub-folder inside the folder (may be empty).
    pub subfolder: String,
    /// The folder.
    pub folder: FolderType,
}

impl FileRef {
    /// The `/view` path and query for this file, percent-encoded, relative to
    /// the server's base URL.
    pub fn view_path(&self) -> String {
        let mut path = String::with_capacity(40 + self.filename.len() + self.subfolder.len());
        path.push_str("/view?");
        let (filename, subfolder, folder) = (&self.filename, &self.subfolder, self.folder.as_str());
        // Most names need no escaping: written as they are, the same bytes
        // the form encoder would write.
        if [filename.as_str(), subfolder, folder].iter().all(|s| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_'))
        }) {
            for (i, (k, v)) in [
                ("filename", filename.as_str()),
                ("subfolder", subfolder),
                ("type", folder),
            ]
            .into_iter()
            .enumerate()
            {
                if i > 0 {
                    path.push('&');
                }
                path.push_str(k);
                path.push('=');
                path.push_str(v);
            }
            return path;
        }
        url::form_urlencoded::Serializer::for_suffix(path, 6)
            .append_pair("filename", filename)
            .append_pair("subfolder", subfolder)
            .append_pair("type", folder)
            .finish()
    }
}

/// One output of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// The node that produced it.
    pub node_id: NodeId,
    /// What it is.
    pub kind: OutputKind,
    /// The key it came under in the node's UI dict (`images`, `audio`, `text`, ...).
    pub key: String,
    /// The file, for file outputs.
    pub file: Option<FileRef>,
    /// The text, for text outputs.
    pub text: Option<String>,
    /// The node reported `animated: [true]` for this entry.
    pub animated: bool,
    /// The node's result came from cache in this run.
    pub cached: bool,
    /// Where to fetch the file: `/view?...`, absolute once the adapter knows
    /// the server's base URL.
    pub view_url: Option<String>,
    /// The entry as the server sent it, for [`OutputKind::Unknown`] entries
    /// (files and texts are fully described by the fields above).
    pub raw: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(f: &FileRef) -> String {
        url::form_urlencoded::Serializer::for_suffix("/view?".to_owned(), 6)
            .append_pair("filename", &f.filename)
            .append_pair("subfolder", &f.subfolder)
            .append_pair("type", f.folder.as_str())
            .finish()
    }

    fn file(filename: &str, subfolder: &str, folder: &str) -> FileRef {
        FileRef {
            filename: filename.into(),
            subfolder: subfolder.into(),
            folder: FolderType::from_wire(folder),
        }
    }

    #[test]
    fn the_fast_path_writes_what_the_form_encoder_writes() {
        for f in [
            file("ComfyUI_00001_.png", "", "output"),
            file("a b+c&d=e.png", "x/y", "temp"),
            file("été.webp", "vidéo", "input"),
            file("*-._", "", "my folder"),
        ] {
            assert_eq!(f.view_path(), encoded(&f), "{f:?}");
        }
    }

    proptest! {
        #[test]
        fn any_name_is_encoded_as_the_form_encoder_does(
            filename in ".{0,24}", subfolder in "[a-z/ %+]{0,8}", folder in "(output|temp|input|[ -~]{0,6})"
        ) {
            let f = file(&filename, &subfolder, &folder);
            prop_assert_eq!(f.view_path(), encoded(&f));
        }
    }
}
