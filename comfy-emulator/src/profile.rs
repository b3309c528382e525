//! What each emulated version answers to `/system_stats` and `/features`,
//! taken from the recordings (fixtures 001 and 003), the fixed lists it
//! answers (`/models`, `/extensions`, read from the recordings at start),
//! its behaviour line and the details in which releases differ.

use super::catalogue::recorded_body;
use comfy_adapter::Line;
use serde_json::Value;

/// `/models` when the recordings are not on disk: the folders every
/// recorded version has.
const BUILTIN_MODEL_FOLDERS: &[&str] = &[
    "checkpoints",
    "configs",
    "loras",
    "vae",
    "text_encoders",
    "diffusion_models",
    "clip_vision",
    "style_models",
    "embeddings",
    "diffusers",
    "vae_approx",
    "controlnet",
    "gligen",
    "upscale_models",
    "custom_nodes",
    "hypernetworks",
    "photomaker",
    "classifiers",
    "model_patches",
    "audio_encoders",
];

/// The versions the emulator can speak: every recorded release.
pub const VERSIONS: [&str; 6] = ["0.3.64", "0.6.0", "0.9.2", "0.11.1", "0.26.0", "0.33.0"];

macro_rules! recorded {
    ($v:literal, $file:literal) => {
        include_str!(concat!("../../fixtures/comfyui-", $v, "/", $file))
    };
}

fn recorded_pair(version: &str) -> Option<(&'static str, &'static str)> {
    Some(match version {
        "0.3.64" => (
            recorded!("0.3.64", "001-system_stats.json"),
            recorded!("0.3.64", "003-features.json"),
        ),
        "0.6.0" => (
            recorded!("0.6.0", "001-system_stats.json"),
            recorded!("0.6.0", "003-features.json"),
        ),
        "0.9.2" => (
            recorded!("0.9.2", "001-system_stats.json"),
            recorded!("0.9.2", "003-features.json"),
        ),
        "0.11.1" => (
            recorded!("0.11.1", "001-system_stats.json"),
            recorded!("0.11.1", "003-features.json"),
        ),
        "0.26.0" => (
            recorded!("0.26.0", "001-system_stats.json"),
            recorded!("0.26.0", "003-features.json"),
        ),
        "0.33.0" => (
            recorded!("0.33.0", "001-system_stats.json"),
            recorded!("0.33.0", "003-features.json"),
        ),
        _ => return None,
    })
}

/// One emulated release: its line and its recorded answers.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    /// The version string (`0.11.1`).
    pub(crate) version: String,
    /// The behaviour line of that version.
    pub(crate) line: Line,
    /// `/system_stats` body.
    pub(crate) system_stats: Value,
    /// `/features` body.
    pub(crate) features: Value,
    /// `/models`: the model folders (fixture 005, read at start).
    pub(crate) model_folders: Vec<String>,
    /// `/extensions`: the frontend's extension scripts (fixture 007, read at start).
    pub(crate) extensions: Value,
}

impl Profile {
    /// The profile of a recorded version, `None` for any other.
    pub(crate) fn recorded(version: &str) -> Option<Profile> {
        let (stats, features) = recorded_pair(version)?;
        let body = |s: &str| -> Option<Value> {
            let v: Value = serde_json::from_str(s).ok()?;
            v.get("response")?.get("body").cloned()
        };
        let parsed = semver::Version::parse(version).ok()?;
        Some(Profile {
            version: version.to_owned(),
            line: Line::for_version(&parsed),
            system_stats: body(stats)?,
            features: body(features)?,
            model_folders: BUILTIN_MODEL_FOLDERS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            extensions: Value::Array(Vec::new()),
        })
    }

    /// Fills the fixed lists this version answers (`/models`, `/extensions`)
    /// from its recordings in `dir`; keeps the built-in ones where a file
    /// cannot be read.
    pub(crate) fn with_recorded_lists(mut self, dir: &std::path::Path) -> Profile {
        let v = self.version.clone();
        if let Some(Value::Array(folders)) = recorded_body(dir, &v, "005-models-list.json") {
            self.model_folders = folders
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        }
        if let Some(ext @ Value::Array(_)) = recorded_body(dir, &v, "007-extensions.json") {
            self.extensions = ext;
        }
        self
    }

    /// Whether userdata `modified`/`created` are int ms (0.26+) rather
    /// than float seconds.
    pub(crate) fn userdata_times_ms(&self) -> bool {
        self.line == Line::CancelApi
    }

    /// Whether `GET /userdata/{file}` says `content-disposition: attachment`
    /// (0.33; 0.26 does not).
    pub(crate) fn userdata_attachment(&self) -> bool {
        self.version == "0.33.0"
    }

    /// Lines of `execution.py` in a validation traceback: the
    /// `validate_inputs` call in `validate_prompt`, and the
    /// `prompt[o_id]['class_type']` lookup in `validate_inputs`.
    pub(crate) fn validation_lines(&self) -> (u32, u32) {
        match self.version.as_str() {
            "0.3.64" => (1010, 788),
            "0.6.0" => (1033, 811),
            "0.9.2" | "0.11.1" => (1043, 818),
            "0.26.0" => (1172, 921),
            _ => (1184, 933),
        }
    }

    /// Whether the jobs API knows `cancelled` (0.9+; 0.6 says `failed`).
    pub(crate) fn cancelled_status(&self) -> bool {
        self.line != Line::Legacy && self.version != "0.6.0"
    }

    /// Whether history lists outputs in the order of the prompt's outputs
    /// to execute (0.3; later releases list them in the order they ran).
    pub(crate) fn outputs_in_request_order(&self) -> bool {
        self.line == Line::Legacy
    }

    /// Whether jobs count text outputs (`PreviewAny`) in `outputs_count`
    /// (0.26 only: 0.6–0.11 skip non-file items, 0.33 skips plain text).
    pub(crate) fn counts_text_outputs(&self) -> bool {
        self.version == "0.26.0"
    }

    /// Whether jobs carry `previewable_outputs_count` (0.33).
    pub(crate) fn previewable_count(&self) -> bool {
        self.version == "0.33.0"
    }

    /// Whether queue and history items carry `create_time` (0.6+).
    pub(crate) fn create_time(&self) -> bool {
        self.line != Line::Legacy
    }

    /// Whether the "outside the output folder" message ends with a
    /// `commonpath` line (every recorded release before 0.33).
    pub(crate) fn commonpath_line(&self) -> bool {
        self.version != "0.33.0"
    }

    /// SaveAudio names end in `_` before 0.26.
    pub(crate) fn audio_trailing_underscore(&self) -> bool {
        self.line != Line::CancelApi
    }

    /// `/system_stats` with the server's own port in `argv`.
    pub(crate) fn system_stats_for_port(&self, port: u16) -> Value {
        let mut stats = self.system_stats.clone();
        if let Some(argv) = stats
            .get_mut("system")
            .and_then(|s| s.get_mut("argv"))
            .and_then(Value::as_array_mut)
        {
            let mut next_is_port = false;
            for a in argv.iter_mut() {
                if next_is_port {
                    *a = Value::String(port.to_string());
                }
                next_is_port = a.as_str() == Some("--port");
            }
        }
        stats
    }
}
