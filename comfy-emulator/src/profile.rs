//! What an emulated version answers to `/system_stats` and `/features`,
//! the fixed lists it answers (`/models`, `/extensions`), all from its
//! recordings ([`crate::recordings`]), its behaviour line and the details in
//! which releases differ. Those details are looked up by version range in
//! `comfy_adapter::releases`, never by comparing version strings: a release
//! that is not recorded behaves as the newest recorded one before it.

use crate::recordings::Recorded;
use comfy_adapter::Line;
use comfy_adapter::releases::{self, Difference, SourceLines};
use serde_json::Value;

/// `/models` when a recorded set lacks fixture 005: the folders every
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

/// One emulated release: its line and its recorded answers.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    /// The version string (`0.11.1`).
    pub(crate) version: String,
    /// The parsed version.
    pub(crate) semver: semver::Version,
    /// The behaviour line of that version.
    pub(crate) line: Line,
    /// Where ComfyUI's Python code sits in its tracebacks.
    pub(crate) source_lines: SourceLines,
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
    /// The profile of `version` from its recordings.
    pub(crate) fn new(version: &str, recorded: &Recorded) -> Option<Profile> {
        let parsed = semver::Version::parse(version).ok()?;
        Some(Profile {
            version: version.to_owned(),
            line: Line::for_version(&parsed),
            source_lines: releases::nearest(&parsed).source_lines,
            semver: parsed,
            system_stats: recorded.system_stats.clone(),
            features: recorded.features.clone(),
            model_folders: recorded.model_folders.clone().unwrap_or_else(|| {
                BUILTIN_MODEL_FOLDERS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            }),
            extensions: recorded
                .extensions
                .clone()
                .unwrap_or(Value::Array(Vec::new())),
        })
    }

    /// Whether this version shows `d` (by version range).
    pub(crate) fn has(&self, d: Difference) -> bool {
        d.applies_to(&self.semver)
    }

    /// Whether userdata `modified`/`created` are int ms (0.26+) rather
    /// than float seconds.
    pub(crate) fn userdata_times_ms(&self) -> bool {
        self.has(Difference::UserdataTimesMs)
    }

    /// Whether `GET /userdata/{file}` says `content-disposition: attachment`
    /// (0.33; 0.26 does not).
    pub(crate) fn userdata_attachment(&self) -> bool {
        self.has(Difference::UserdataAttachment)
    }

    /// How this release words its validation answers (line, traceback
    /// lines of `execution.py`).
    pub(crate) fn wording(&self) -> comfy_adapter::validate::Wording {
        comfy_adapter::validate::Wording {
            line: self.line,
            source_lines: self.source_lines,
        }
    }

    /// Whether the jobs API knows `cancelled` (0.9+; 0.6 says `failed`).
    pub(crate) fn cancelled_status(&self) -> bool {
        self.line != Line::Legacy && self.has(Difference::CancelledStatus)
    }

    /// Whether history lists outputs in the order of the prompt's outputs
    /// to execute (0.3; later releases list them in the order they ran).
    pub(crate) fn outputs_in_request_order(&self) -> bool {
        self.has(Difference::OutputsInRequestOrder)
    }

    /// Whether jobs count text outputs (`PreviewAny`) in `outputs_count`
    /// (0.26 only: 0.6–0.11 skip non-file items, 0.33 skips plain text).
    pub(crate) fn counts_text_outputs(&self) -> bool {
        self.has(Difference::TextOutputsCounted)
    }

    /// Whether jobs carry `previewable_outputs_count` (0.33).
    pub(crate) fn previewable_count(&self) -> bool {
        self.has(Difference::PreviewableOutputsCount)
    }

    /// Whether queue and history items carry `create_time` (0.6+).
    pub(crate) fn create_time(&self) -> bool {
        self.has(Difference::CreateTime)
    }

    /// Whether the "outside the output folder" message ends with a
    /// `commonpath` line (every recorded release before 0.33).
    pub(crate) fn commonpath_line(&self) -> bool {
        self.has(Difference::CommonpathLine)
    }

    /// SaveAudio names end in `_` before 0.26.
    pub(crate) fn audio_trailing_underscore(&self) -> bool {
        self.has(Difference::AudioTrailingUnderscore)
    }

    /// Whether node execution passes `v3_data` (0.6+) rather than
    /// `hidden_inputs` (as tracebacks show).
    pub(crate) fn v3_node_data(&self) -> bool {
        self.has(Difference::V3NodeData)
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
