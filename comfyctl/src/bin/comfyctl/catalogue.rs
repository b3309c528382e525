//! Where a node catalogue comes from: a fixture set, a file or a live server.

use crate::positive_secs;
use anyhow::Context;
use clap::Args;
use comfy_adapter::model::catalogue::NodeCatalogue;
use comfy_adapter::{DetectOptions, Timeouts, detect};
use comfyctl::convert::ConvertOptions;
use comfyctl::convert::frontend::Frontend;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the node catalogue comes from.
#[derive(Debug, Args)]
pub(crate) struct CatalogueArgs {
    /// A recorded fixture set (its full GET /object_info exchange is used),
    /// an exchange file, or a plain /object_info JSON body.
    #[arg(long, value_name = "FILE_OR_FIXTURE_DIR", conflicts_with = "url")]
    object_info: Option<PathBuf>,
    /// Fetch object_info from a running server (its version is detected).
    #[arg(long)]
    url: Option<String>,
    /// The ComfyUI release the prompt is for: with --object-info or --url it
    /// only sets the frontend (the one that release pins); alone it picks
    /// the fixture set <fixtures>/comfyui-<VERSION> (a fixture set's folder
    /// is accepted too).
    #[arg(long)]
    pub(crate) version: Option<String>,
    /// The frontend version (comfyui-frontend-package) whose rules convert
    /// a UI workflow. Default: the one the release pins (--version, the
    /// fixture set's release) or, with --url, the server's
    /// required_frontend_version.
    #[arg(long, value_name = "VERSION", value_parser = parse_frontend)]
    frontend: Option<Frontend>,
    /// Where recorded fixture sets live, for --version (the built-in
    /// recordings answer when DIR has no set of that version).
    #[arg(long, env = "COMFY_FIXTURES", default_value = "fixtures")]
    fixtures: PathBuf,
    /// Seconds to wait for each request with --url.
    #[arg(long, default_value_t = 30.0, value_parser = positive_secs)]
    timeout: f64,
}

/// A catalogue and the release it belongs to, when known.
pub(crate) struct Catalogue {
    pub(crate) nodes: NodeCatalogue,
    pub(crate) version: Option<semver::Version>,
    /// The frontend to convert for, when known.
    pub(crate) frontend: Option<Frontend>,
    pub(crate) source: String,
}

impl Catalogue {
    pub(crate) fn convert_options(&self) -> ConvertOptions {
        ConvertOptions {
            frontend: self
                .frontend
                .clone()
                .or_else(|| self.version.as_ref().map(Frontend::pinned_by)),
            dedupe_subgraph_node_ids: false,
        }
    }
}

fn parse_frontend(s: &str) -> Result<Frontend, String> {
    Frontend::parse(s).map_err(|e| e.to_string())
}

pub(crate) fn parse_version(s: &str) -> anyhow::Result<semver::Version> {
    comfy_adapter::normalize::parse_version(s)
        .ok_or_else(|| anyhow::anyhow!("{s:?} is not a version like 0.11.1"))
}

/// The largest JSON file the tools read: a full `/object_info` is ~3 MB,
/// the largest official template well under 1 MB.
pub(crate) const MAX_JSON_BYTES: u64 = 64 * 1024 * 1024;

/// A regular JSON file of at most [`MAX_JSON_BYTES`], parsed. Devices,
/// FIFOs and sockets are refused before anything is read (`/dev/zero`
/// would never end), and a file that grows past the cap while read is cut
/// off and refused.
pub(crate) fn read_json(path: &Path) -> anyhow::Result<Value> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!("{} is not a regular file", path.display());
    }
    if meta.len() > MAX_JSON_BYTES {
        anyhow::bail!(
            "{} is {} bytes; the limit is {MAX_JSON_BYTES}",
            path.display(),
            meta.len()
        );
    }
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_JSON_BYTES {
        anyhow::bail!(
            "{} grew past the limit of {MAX_JSON_BYTES} bytes",
            path.display()
        );
    }
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))
}

/// The full GET /object_info exchange of a fixture set.
pub(crate) fn object_info_file(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with("object_info-full.json"))
        })
        .collect();
    names.sort();
    names.pop().ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no *-object_info-full.json (not a recorded fixture set?)",
            dir.display()
        )
    })
}

/// Reads a catalogue from a fixture dir, an exchange file or a plain body.
pub(crate) fn catalogue_from_path(path: &Path) -> anyhow::Result<Catalogue> {
    let file = if path.is_dir() {
        object_info_file(path)?
    } else {
        path.to_owned()
    };
    catalogue_from_doc(read_json(&file)?, &file.display().to_string())
}

/// A catalogue from a parsed exchange or plain body; `source` names it in
/// errors.
fn catalogue_from_doc(doc: Value, source: &str) -> anyhow::Result<Catalogue> {
    let (body, version) = match (doc.get("response"), doc.get("request")) {
        (Some(resp), Some(_)) => {
            if resp.get("status").and_then(Value::as_u64) != Some(200) {
                anyhow::bail!("{source} is not a successful object_info answer");
            }
            let version = doc
                .get("comfyui_version")
                .and_then(Value::as_str)
                .and_then(comfy_adapter::normalize::parse_version);
            (resp.get("body").cloned().unwrap_or(Value::Null), version)
        }
        _ => (doc, None),
    };
    if !body.is_object() {
        anyhow::bail!("{source} holds no object_info object");
    }
    let nodes = NodeCatalogue::from_slice(&serde_json::to_vec(&body)?)
        .with_context(|| format!("{source} is not an object_info body"))?;
    Ok(Catalogue {
        nodes,
        version,
        frontend: None,
        source: source.to_owned(),
    })
}

pub(crate) async fn load_catalogue(args: &CatalogueArgs) -> anyhow::Result<Catalogue> {
    // --version also takes a fixture set's folder.
    let version_dir = args
        .version
        .as_deref()
        .map(Path::new)
        .filter(|p| p.is_dir());
    let wanted = match (&args.version, version_dir) {
        (Some(v), None) => Some(parse_version(v)?),
        _ => None,
    };
    let mut cat = if let Some(url) = &args.url {
        let secs = Duration::from_secs_f64(args.timeout);
        let options = DetectOptions {
            timeouts: Timeouts {
                connect: secs.min(Duration::from_secs(5)),
                request: secs,
            },
            ..DetectOptions::default()
        };
        let found = detect(url, &options)
            .await
            .with_context(|| format!("detecting {url}"))?;
        let nodes = found
            .adapter
            .object_info(None)
            .await
            .with_context(|| format!("GET {url}/object_info"))?;
        Catalogue {
            nodes,
            version: found.info.version.clone(),
            frontend: found
                .info
                .required_frontend_version
                .as_deref()
                .and_then(|v| Frontend::parse(v).ok()),
            source: url.clone(),
        }
    } else if let Some(path) = &args.object_info {
        catalogue_from_path(path)?
    } else if let Some(dir) = version_dir {
        catalogue_from_path(dir)?
    } else if let Some(v) = &args.version {
        let local = args.fixtures.join(format!("comfyui-{v}"));
        if local.is_dir() {
            catalogue_from_path(&local)?
        } else if let Some(text) = comfy_emulator::recorded_object_info(v) {
            let doc = serde_json::from_str(text)
                .with_context(|| format!("the built-in object_info of {v}"))?;
            catalogue_from_doc(doc, &format!("the built-in recording of ComfyUI {v}"))?
        } else {
            anyhow::bail!(
                "no fixture set for {v}: {} does not exist and {v} is not built in (built in: {}; use --fixtures DIR, --object-info or --url)",
                local.display(),
                comfy_emulator::embedded_versions().join(", ")
            );
        }
    } else {
        anyhow::bail!(
            "say which server: --version V, --object-info FILE_OR_FIXTURE_DIR or --url URL"
        );
    };
    if cat.nodes.is_empty() {
        anyhow::bail!("the object_info from {} lists no node classes", cat.source);
    }
    if wanted.is_some() {
        cat.version = wanted;
        // The release asked for pins its own frontend.
        cat.frontend = None;
    }
    if let Some(fe) = &args.frontend {
        cat.frontend = Some(fe.clone());
    }
    Ok(cat)
}
