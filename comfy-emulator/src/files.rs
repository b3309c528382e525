//! The server's folders (`input/`, `output/`, `temp/`, `user/`) in a
//! temporary directory made when the emulator starts and removed when it
//! stops, and the path rules ComfyUI applies to them.

use std::io;
use std::path::{Path, PathBuf};

/// A 1×1 transparent PNG: the bytes of every image the emulator "renders".
pub(crate) const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

/// [`PNG`] with a `tEXt` chunk per `(keyword, text)` after its header, where
/// PIL puts the text ComfyUI's SaveImage adds.
pub(crate) fn png_with_text(text: &[(String, String)]) -> Vec<u8> {
    // Signature (8 bytes) and the IHDR chunk (4 + 4 + 13 + 4).
    let (head, rest) = PNG.split_at(33);
    let mut out = head.to_vec();
    for (keyword, value) in text {
        let mut chunk = b"tEXt".to_vec();
        chunk.extend_from_slice(keyword.as_bytes());
        chunk.push(0);
        chunk.extend_from_slice(value.as_bytes());
        let len = u32::try_from(chunk.len() - 4).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
    }
    out.extend_from_slice(rest);
    out
}

/// The folders of one emulated server. Dropping it removes them.
#[derive(Debug)]
pub(crate) struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    /// Makes a fresh temporary directory with `input/`, `output/`, `temp/`
    /// and `user/` (the user's own folder `user/default` is made on first
    /// use, as ComfyUI does).
    pub(crate) fn new() -> io::Result<Files> {
        let dir = tempfile::Builder::new()
            .prefix("comfy-emulator-")
            .tempdir()?;
        for sub in ["input", "output", "temp", "user"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        Ok(Files { dir })
    }

    /// The temporary directory itself.
    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Removes the directory now (a connection that outlives the server
    /// must not keep it); dropping removes it too.
    pub(crate) fn remove(&self) {
        if let Err(e) = std::fs::remove_dir_all(self.dir.path())
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.path().display(), error = %e, "emulator folders not removed");
        }
    }

    /// The folder of an upload or output `type` (`input`, `output`, `temp`).
    pub(crate) fn dir_of(&self, kind: &str) -> Option<PathBuf> {
        matches!(kind, "input" | "output" | "temp").then(|| self.dir.path().join(kind))
    }

    /// Whether a file a loader names is in its folder (as
    /// `folder_paths.exists_annotated_filepath`).
    pub(crate) fn exists(&self, f: &comfy_adapter::model::catalogue::FileName) -> bool {
        self.dir_of(f.folder.as_str())
            .and_then(|d| inside(&d, &f.relative()))
            .is_some_and(|p| p.is_file())
    }

    /// `user/default`: the single user's data folder.
    pub(crate) fn user_root(&self) -> PathBuf {
        self.dir.path().join("user").join("default")
    }

    /// Writes the files a node's UI output names (`{"images": [{filename,
    /// subfolder, type}]}`), so `/view` serves them.
    pub(crate) fn store_outputs(&self, ui: &serde_json::Value, png_text: &[(String, String)]) {
        let Some(media) = ui.as_object() else {
            return;
        };
        for item in media
            .values()
            .filter_map(serde_json::Value::as_array)
            .flatten()
        {
            let field = |k: &str| item.get(k).and_then(serde_json::Value::as_str);
            let (Some(name), Some(dir)) = (
                field("filename"),
                field("type").and_then(|t| self.dir_of(t)),
            ) else {
                continue;
            };
            let Some(folder) = inside(&dir, field("subfolder").unwrap_or_default()) else {
                continue;
            };
            let Some(path) = inside(&folder, name) else {
                continue;
            };
            let bytes = if name.ends_with(".png") {
                png_with_text(png_text)
            } else {
                b"emulated output".to_vec()
            };
            if let Err(e) =
                std::fs::create_dir_all(&folder).and_then(|()| std::fs::write(&path, &bytes))
            {
                tracing::warn!(file = %path.display(), error = %e, "emulated output not written");
            }
        }
    }
}

/// `root/rel` with `.`/`..` resolved lexically (as `os.path.abspath` does),
/// or `None` when the result leaves `root` or `rel` is absolute.
pub(crate) fn inside(root: &Path, rel: &str) -> Option<PathBuf> {
    if rel.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    let mut p = root.to_path_buf();
    p.extend(parts);
    Some(p)
}

/// The content type Python's `mimetypes.guess_type` gives a file name, or
/// `None` when it knows none.
pub(crate) fn guess_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "flac" => "audio/flac",
        "mp3" => "audio/mpeg",
        "wav" => "audio/x-wav",
        "ogg" => "audio/ogg",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "js" => "text/javascript",
        "css" => "text/css",
        "glb" => "model/gltf-binary",
        _ => return None,
    })
}

/// One part of a `multipart/form-data` body.
#[derive(Debug)]
pub(crate) struct Part {
    /// The form field name.
    pub(crate) name: String,
    /// The file name, for file parts.
    pub(crate) filename: Option<String>,
    /// The content.
    pub(crate) data: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

fn disposition_param(header: &str, key: &str) -> Option<String> {
    header.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The parts of a `multipart/form-data` body, or `None` when the content
/// type is not multipart or the body is malformed.
pub(crate) fn multipart(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let boundary = disposition_param(params, "boundary")?;
    let delim = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut at = find(body, &delim, 0)? + delim.len();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Some(parts);
        }
        let head_start = find(body, b"\r\n", at)? + 2;
        let head_end = find(body, b"\r\n\r\n", head_start)?;
        let head = std::str::from_utf8(&body[head_start..head_end]).ok()?;
        let data_start = head_end + 4;
        let next = find(body, &delim, data_start)?;
        let data_end = next.checked_sub(2).filter(|e| *e >= data_start)?;
        let disposition = head.split("\r\n").find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-disposition")
                .then_some(v)
        })?;
        parts.push(Part {
            name: disposition_param(disposition, "name")?,
            filename: disposition_param(disposition, "filename"),
            data: body[data_start..data_end].to_vec(),
        });
        at = next + delim.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks of a PNG as (type, data), each CRC checked.
    fn chunks(png: &[u8]) -> Vec<(String, Vec<u8>)> {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let mut at = 8;
        let mut out = Vec::new();
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let body = &png[at + 4..at + 8 + len];
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc, crc32fast::hash(body), "the CRC of {:?}", &body[..4]);
            out.push((
                String::from_utf8_lossy(&body[..4]).into_owned(),
                body[4..].to_vec(),
            ));
            at += 12 + len;
        }
        out
    }

    #[test]
    fn images_carry_their_prompt_in_text_chunks_after_the_header() {
        assert_eq!(png_with_text(&[]), PNG);
        let text = [
            ("prompt".to_owned(), r#"{"1":{}}"#.to_owned()),
            ("workflow".to_owned(), "{}".to_owned()),
        ];
        let png = png_with_text(&text);
        let kinds: Vec<String> = chunks(&png).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, ["IHDR", "tEXt", "tEXt", "IDAT", "IEND"]);
        assert_eq!(chunks(&png)[1].1, b"prompt\0{\"1\":{}}");
        assert_ne!(png_with_text(&text[..1]), png);
    }

    #[test]
    fn inside_resolves_dots_and_refuses_escapes() {
        let root = Path::new("/r");
        assert_eq!(inside(root, "a/./b//c"), Some(PathBuf::from("/r/a/b/c")));
        assert_eq!(inside(root, "a/../b"), Some(PathBuf::from("/r/b")));
        assert_eq!(inside(root, "../x"), None);
        assert_eq!(inside(root, "a/../../x"), None);
        assert_eq!(inside(root, "/etc/passwd"), None);
    }

    #[test]
    fn multipart_parts_are_split() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--XX\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\ninput\r\n--XX--\r\n";
        let parts = multipart("multipart/form-data; boundary=XX", body).unwrap_or_default();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].filename.as_deref(), Some("a.png"));
        assert_eq!(parts[0].data, b"\x89PNG");
        assert_eq!(parts[1].name, "type");
        assert_eq!(parts[1].data, b"input");
    }
}
