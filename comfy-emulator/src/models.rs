//! Placeholder model files ([`crate::EmulatorConfig::models`]): the emulator
//! has no models, so a template that loads a checkpoint fails validation
//! with "Value not in list" as on a server without them. Given a list per
//! model folder, the emulator answers as a server that has those files:
//! the loader inputs that list a folder's files (the one table
//! [`MODEL_INPUTS`]) offer them in `/object_info` and accept them in a
//! prompt, `/models/{folder}` and `/experiment/models/{folder}` list them.
//! A name that is not listed still fails as a real server fails it.
//!
//! [`template_models`] builds such a list from UI workflows (templates name
//! the models they need in their nodes' `properties.models`).

use crate::catalogue::Classes;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Model files by folder (`checkpoints`, `loras`, `vae`, `text_encoders`,
/// `diffusion_models`, …), as `/models/{folder}` lists them.
pub type ModelFiles = BTreeMap<String, Vec<String>>;

/// The core loader inputs whose choices are a model folder's files
/// (`folder_paths.get_filename_list(folder)` in ComfyUI), as (class, input,
/// folder). The recorded catalogues cannot tell: their servers had no
/// models, and an input lists the folder's files, not the folder.
pub const MODEL_INPUTS: &[(&str, &str, &str)] = &[
    ("CheckpointLoaderSimple", "ckpt_name", "checkpoints"),
    ("CheckpointLoader", "ckpt_name", "checkpoints"),
    ("unCLIPCheckpointLoader", "ckpt_name", "checkpoints"),
    ("ImageOnlyCheckpointLoader", "ckpt_name", "checkpoints"),
    ("CreateHookModelAsLora", "ckpt_name", "checkpoints"),
    ("CreateHookModelAsLoraModelOnly", "ckpt_name", "checkpoints"),
    ("LTXVAudioVAELoader", "ckpt_name", "checkpoints"),
    ("LTXAVTextEncoderLoader", "ckpt_name", "checkpoints"),
    ("LTXAVTextEncoderLoader", "text_encoder", "text_encoders"),
    ("LoraLoader", "lora_name", "loras"),
    ("LoraLoaderModelOnly", "lora_name", "loras"),
    ("LoraLoaderBypass", "lora_name", "loras"),
    ("LoraLoaderBypassModelOnly", "lora_name", "loras"),
    ("CreateHookLora", "lora_name", "loras"),
    ("CreateHookLoraModelOnly", "lora_name", "loras"),
    ("VAELoader", "vae_name", "vae"),
    ("CLIPLoader", "clip_name", "text_encoders"),
    ("DualCLIPLoader", "clip_name1", "text_encoders"),
    ("DualCLIPLoader", "clip_name2", "text_encoders"),
    ("TripleCLIPLoader", "clip_name1", "text_encoders"),
    ("TripleCLIPLoader", "clip_name2", "text_encoders"),
    ("TripleCLIPLoader", "clip_name3", "text_encoders"),
    ("QuadrupleCLIPLoader", "clip_name1", "text_encoders"),
    ("QuadrupleCLIPLoader", "clip_name2", "text_encoders"),
    ("QuadrupleCLIPLoader", "clip_name3", "text_encoders"),
    ("QuadrupleCLIPLoader", "clip_name4", "text_encoders"),
    ("UNETLoader", "unet_name", "diffusion_models"),
    ("ControlNetLoader", "control_net_name", "controlnet"),
    ("DiffControlNetLoader", "control_net_name", "controlnet"),
    ("StyleModelLoader", "style_model_name", "style_models"),
    ("CLIPVisionLoader", "clip_name", "clip_vision"),
    ("GLIGENLoader", "gligen_name", "gligen"),
    ("HypernetworkLoader", "hypernetwork_name", "hypernetworks"),
    ("UpscaleModelLoader", "model_name", "upscale_models"),
    (
        "LatentUpscaleModelLoader",
        "model_name",
        "latent_upscale_models",
    ),
    ("PhotoMakerLoader", "photomaker_model_name", "photomaker"),
    ("ModelPatchLoader", "name", "model_patches"),
    ("AudioEncoderLoader", "audio_encoder_name", "audio_encoders"),
    (
        "LoadBackgroundRemovalModel",
        "bg_removal_name",
        "background_removal",
    ),
    (
        "FrameInterpolationModelLoader",
        "model_name",
        "frame_interpolation",
    ),
    ("OpticalFlowLoader", "model_name", "optical_flow"),
];

/// The catalogue with each [`MODEL_INPUTS`] input offering its folder's
/// files (sorted, as ComfyUI sorts a folder's list), ahead of what the
/// recording lists (entries that are no files, such as VAELoader's
/// `pixel_space`). Unchanged when no model is given.
pub(crate) fn apply(classes: &Classes, models: &ModelFiles) -> Classes {
    if models.values().all(Vec::is_empty) {
        return classes.clone();
    }
    let mut out: Map<String, Value> = (**classes).clone();
    for (class, input, folder) in MODEL_INPUTS {
        let Some(files) = models.get(*folder).filter(|f| !f.is_empty()) else {
            continue;
        };
        let sorted: BTreeSet<String> = files.iter().cloned().collect();
        let Some(conf) = out
            .get_mut(*class)
            .and_then(|d| d.get_mut("input"))
            .and_then(|i| {
                ["required", "optional"]
                    .into_iter()
                    .find(|s| i.get(*s).is_some_and(|s| s.get(*input).is_some()))
                    .and_then(|s| i.get_mut(s))
            })
            .and_then(|s| s.get_mut(*input))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        let options = match conf.first().map(Value::is_array) {
            // `[[choices], {...}]`
            Some(true) => conf.first_mut().and_then(Value::as_array_mut),
            // `["COMBO", {"options": [choices], ...}]`
            Some(false) => conf
                .get_mut(1)
                .and_then(|o| o.get_mut("options"))
                .and_then(Value::as_array_mut),
            None => None,
        };
        if let Some(options) = options {
            let recorded: Vec<Value> = std::mem::take(options)
                .into_iter()
                .filter(|v| v.as_str().is_none_or(|s| !sorted.contains(s)))
                .collect();
            options.extend(sorted.iter().cloned().map(Value::String));
            options.extend(recorded);
        }
    }
    Arc::new(out)
}

/// The models UI workflows name (each node's `properties.models`, `{name,
/// directory}`, subgraphs included), by folder, sorted, each once: what a
/// server needs installed to run those templates.
pub fn template_models<'a>(workflows: impl IntoIterator<Item = &'a Value>) -> ModelFiles {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for workflow in workflows {
        let mut graphs = vec![workflow];
        if let Some(subgraphs) = workflow
            .get("definitions")
            .and_then(|d| d.get("subgraphs"))
            .and_then(Value::as_array)
        {
            graphs.extend(subgraphs);
        }
        for node in graphs
            .iter()
            .filter_map(|g| g.get("nodes").and_then(Value::as_array))
            .flatten()
        {
            let models = node
                .get("properties")
                .and_then(|p| p.get("models"))
                .and_then(Value::as_array);
            for m in models.into_iter().flatten() {
                if let (Some(name), Some(dir)) = (
                    m.get("name").and_then(Value::as_str),
                    m.get("directory").and_then(Value::as_str),
                ) {
                    found
                        .entry(dir.to_owned())
                        .or_default()
                        .insert(name.to_owned());
                }
            }
        }
    }
    found
        .into_iter()
        .map(|(dir, names)| (dir, names.into_iter().collect()))
        .collect()
}

/// Why [`template_models_in`] could not read a folder of UI workflows.
#[derive(Debug, thiserror::Error)]
pub enum TemplateModelsError {
    /// The folder or a file in it could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A `.json` file is not JSON.
    #[error("{} is not JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// [`template_models`] of every `*.json` UI workflow in `dir` (such as the
/// repository's `workflows/ui/`).
pub fn template_models_in(dir: &Path) -> Result<ModelFiles, TemplateModelsError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TemplateModelsError::Read { path, source }
    };
    let mut workflows = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        let path = entry.map_err(read_err(dir))?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(read_err(&path))?;
        let workflow: Value =
            serde_json::from_slice(&bytes).map_err(|source| TemplateModelsError::Json {
                path: path.clone(),
                source,
            })?;
        workflows.push(workflow);
    }
    Ok(template_models(&workflows))
}
